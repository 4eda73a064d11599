//! The one way out of the process: every byte maestro writes to stdout or stderr passes
//! through [`Masked`], which replaces each known secret with `***` wherever it appears (see
//! `secrets`), or, for structured output already masked field by field (events, reports,
//! tables, dumps), through [`Fields`] and [`FieldsTerm`]. A print site cannot forget to mask:
//! there is no other way to print.
//!
//! Masking works on whole lines, so a secret is never split between two writes: a writer keeps
//! an unfinished line until its newline, a flush or its drop. Lines that quote the environment
//! file (error snippets, `12 |     DB_PASSWORD: hunter2`) also have the values of secret-named
//! keys masked, since a file that failed to load has not told us its secrets.
//!
//! Events are also masked before a renderer lays them out (`ui::render`): laying out may cut a
//! reason to the terminal's width, and a cut secret no longer matches.

use std::io::{self, Write};

use crate::secrets;

/// A writer that masks secrets line by line before passing the text on.
pub struct Masked<W: Write> {
    inner: W,
    /// The unfinished line.
    pending: Vec<u8>,
    /// None: the process-wide masker, read at each line (secrets are added as files load).
    masker: Option<secrets::Masker>,
}

impl<W: Write> Masked<W> {
    pub fn new(inner: W) -> Masked<W> {
        Masked {
            inner,
            pending: Vec::new(),
            masker: None,
        }
    }

    /// A writer with its own masker instead of the process-wide one.
    pub fn with_masker(inner: W, masker: secrets::Masker) -> Masked<W> {
        Masked {
            inner,
            pending: Vec::new(),
            masker: Some(masker),
        }
    }

    fn write_masked(&mut self, bytes: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(bytes);
        let masked = match &self.masker {
            Some(masker) => masker.mask_snippets(&text),
            None => secrets::mask_output(&text),
        };
        self.inner.write_all(masked.as_bytes())
    }
}

impl<W: Write> Write for Masked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end + 1);
            if self.pending.is_empty() {
                self.write_masked(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.write_masked(&whole)?;
            }
            rest = after;
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_masked(&pending)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Masked<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Standard output, masked.
pub fn stdout() -> Masked<io::Stdout> {
    Masked::new(io::stdout())
}

/// Standard error, masked.
pub fn stderr() -> Masked<io::Stderr> {
    Masked::new(io::stderr())
}

/// A writer for the bytes of a remote program (`exec`, `ssh`): each write goes out at once,
/// since a prompt has no newline to wait for, with the known secrets masked in its text. Bytes
/// that are not text pass as they are (a secret is text), and a character cut between two
/// writes is held for the next one, so output comes out byte for byte when nothing is masked.
/// A secret cut between two chunks of the remote side is not seen: masking here is a courtesy
/// to the operator's screen, not a barrier.
pub struct Passthrough<W: Write> {
    inner: W,
    /// The start of a character whose end is in the next write.
    pending: Vec<u8>,
}

impl<W: Write> Passthrough<W> {
    pub fn new(inner: W) -> Passthrough<W> {
        Passthrough {
            inner,
            pending: Vec::new(),
        }
    }
}

impl<W: Write> Write for Passthrough<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(buf);
        let mut out = Vec::with_capacity(bytes.len());
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.extend_from_slice(secrets::mask(chunk.valid()).as_bytes());
            let invalid = chunk.invalid();
            // An invalid tail of at most 3 bytes at the very end may be a cut character.
            if chunks.peek().is_none() && !invalid.is_empty() && invalid.len() < 4 {
                let start = bytes.len() - invalid.len();
                if std::str::from_utf8(&bytes[start..]).is_err_and(|e| e.error_len().is_none()) {
                    self.pending = invalid.to_vec();
                    continue;
                }
            }
            out.extend_from_slice(invalid);
        }
        self.inner.write_all(&out)?;
        self.inner.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.inner.write_all(&pending)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Passthrough<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Standard output for a remote program's bytes (see [`Passthrough`]).
pub fn stdout_passthrough() -> Passthrough<io::Stdout> {
    Passthrough::new(io::stdout())
}

/// Standard error for a remote program's bytes (see [`Passthrough`]).
pub fn stderr_passthrough() -> Passthrough<io::Stderr> {
    Passthrough::new(io::stderr())
}

/// Writes `text` to standard output, masked. A closed pipe (`maestro status | head`) is not
/// an error worth reporting: the reader has what it wanted.
pub fn print(text: &str) {
    let mut out = stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// [`print`] and a newline.
pub fn println(text: &str) {
    print(&format!("{text}\n"));
}

/// Writes `text` and a newline to standard output unmasked: only for what the operator asked to
/// see in clear (`dump --show-secrets`).
pub fn println_revealed(text: &str) {
    let mut out = io::stdout();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Writes `text` and a newline to standard error, masked.
pub fn eprintln(text: &str) {
    let mut err = stderr();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// Output masked field by field before it was laid out (events, reports, tables, dumps):
/// names as the file wrote them, secret fields `***`, free text masked wherever a secret
/// appears (see `secrets::NAME_FIELDS`). Its bytes pass on as they are: a second, substring
/// pass would turn a service named like a password, or a path holding one, into `***`.
pub struct Fields<W: Write>(pub W);

impl<W: Write> Write for Fields<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes `text`, masked field by field by its maker (see [`Fields`]), to standard output.
pub fn print_fields(text: &str) {
    let mut out = Fields(io::stdout());
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// [`print_fields`] and a newline.
pub fn println_fields(text: &str) {
    print_fields(&format!("{text}\n"));
}

/// Writes `text`, made of names and fixed words only (never a value the file holds), and a
/// newline to standard error as it is (see [`Fields`]).
pub fn eprintln_fields(text: &str) {
    let mut err = Fields(io::stderr());
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// The terminal the live display draws on: it draws events masked field by field (see
/// [`Fields`]), so lines pass on as they are.
#[derive(Debug)]
pub struct FieldsTerm(pub console::Term);

impl indicatif::TermLike for FieldsTerm {
    fn width(&self) -> u16 {
        self.0.size().1
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_split_across_writes_is_masked() {
        let mut masker = secrets::Masker::default();
        masker.add("hunter2-secret");
        let mut buffer = Vec::new();
        {
            let mut writer = Masked::with_masker(&mut buffer, masker);
            let _ = writer.write_all(b"password: hunter2");
            let _ = writer.write_all(b"-secret and more\nnext line hunter2-secret");
        }
        let out = String::from_utf8(buffer).unwrap_or_default();
        assert_eq!(out, "password: *** and more\nnext line ***");
    }

    #[test]
    fn passthrough_keeps_bytes_and_characters_cut_between_writes() {
        let mut buffer = Vec::new();
        {
            let mut writer = Passthrough::new(&mut buffer);
            let euro = "€".as_bytes();
            let _ = writer.write_all(&[b'a', 0xff, b'b', euro[0]]);
            let _ = writer.write_all(&euro[1..]);
            let _ = writer.write_all(b"$ ");
        }
        let mut expected = vec![b'a', 0xff, b'b'];
        expected.extend_from_slice("€$ ".as_bytes());
        assert_eq!(buffer, expected);
    }
}
