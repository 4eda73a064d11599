//! The operator's own terminal, for `exec` and `ssh`: ui owns it as it owns the output.
//!
//! - [`RawMode`] hands every key to the remote side (Ctrl-C and Ctrl-D are bytes there, not
//!   signals here) and gives the terminal back as it was when dropped: on every way out of
//!   the command, an error, a lost connection or a panic (drops run while unwinding) included.
//!   SIGHUP and SIGTERM end the session the same way ([`ended_by_signal`]), so that the
//!   restoring drop runs for them too. Only SIGKILL leaves the terminal raw (`reset` fixes it).
//! - [`size`] and [`resizes`]: the window size at the start and on each SIGWINCH.
//! - [`input`]: standard input read on a thread of its own, since a read of a terminal cannot
//!   be cancelled: the thread is left blocked when the session ends and goes with the process.
//! - [`PassphraseOnTerminal`]: transport's prompt for an encrypted key's passphrase, read
//!   from `/dev/tty` with echo off (termios, not a `stty` subprocess), asked only when
//!   standard input is a terminal.
//!
//! termios and signals are unix-only; elsewhere there is no raw mode and no resize.

use std::io::Read;
use std::path::Path;

use tokio::sync::mpsc;

/// Whether standard input and output are both terminals: `exec` and `ssh` then give the
/// remote side one.
pub fn is_interactive() -> bool {
    console::Term::stdout().is_term() && std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// `TERM` for the remote terminal: ours, or `xterm` without one.
pub fn term_name() -> String {
    std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "xterm".into())
}

/// The window size as (rows, columns), when standard output is a terminal that knows it.
#[cfg(unix)]
pub fn size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

#[cfg(not(unix))]
pub fn size() -> Option<(u16, u16)> {
    let (rows, cols) = console::Term::stdout().size_checked()?;
    Some((rows, cols))
}

/// Standard input in raw mode until dropped; see the module header.
#[derive(Debug)]
pub struct RawMode {
    #[cfg(unix)]
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Puts standard input's terminal in raw mode. An error when it is not a terminal.
    #[cfg(unix)]
    pub fn enter() -> std::io::Result<RawMode> {
        use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }

    #[cfg(not(unix))]
    pub fn enter() -> std::io::Result<RawMode> {
        Ok(RawMode {})
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use rustix::termios::{OptionalActions, tcsetattr};
            // Drain: what the remote side wrote last is shown before the shell's prompt.
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Drain, &self.saved);
        }
    }
}

/// The window size, (rows, columns), each time it changes (SIGWINCH). Must be called inside
/// a tokio runtime; the receiver never yields where there are no such signals.
pub fn resizes() -> mpsc::Receiver<(u16, u16)> {
    let (tx, rx) = mpsc::channel(8);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut changes) = signal(SignalKind::window_change()) {
            tokio::spawn(async move {
                while changes.recv().await.is_some() {
                    if let Some(size) = size()
                        && tx.send(size).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Resolves on SIGHUP or SIGTERM (the terminal went away, or someone asked us to end), with
/// the shell's exit code for it (128 + the signal): the session ends and the terminal is
/// restored. Never, where there are no such signals.
pub async fn ended_by_signal() -> i32 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut hangup), Ok(mut terminate)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! {
                _ = hangup.recv() => return 128 + 1,
                _ = terminate.recv() => return 128 + 15,
            }
        }
    }
    std::future::pending::<i32>().await
}

/// Standard input, chunk by chunk as it is read; the receiver ends at end of file.
pub fn input() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    let reader = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buffer = vec![0u8; 8192];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.blocking_send(buffer[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        });
    // Without a thread there is no input: the remote side sees end of file.
    drop(reader);
    rx
}

/// Asks for a key's passphrase on the operator's terminal: transport calls it (see
/// `transport::PassphrasePrompt`); the command line installs it.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassphraseOnTerminal;

impl crate::transport::PassphrasePrompt for PassphraseOnTerminal {
    fn ask(&self, key: &Path) -> Option<String> {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return None;
        }
        read_hidden(&format!("Enter passphrase for key {}: ", key.display()))
    }
}

/// One line read from the controlling terminal with echo off; the terminal's modes are put
/// back as they were, whether the read worked or not.
#[cfg(unix)]
fn read_hidden(prompt: &str) -> Option<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let saved = tcgetattr(&tty).ok()?;
    let mut hidden = saved.clone();
    hidden.local_modes.remove(LocalModes::ECHO);
    // Echo off before the prompt shows: a passphrase typed as soon as the prompt appears
    // (or typed ahead) must never be echoed between the two.
    let _ = tcsetattr(&tty, OptionalActions::Drain, &hidden);
    let mut writer = &tty;
    let _ = write!(writer, "{prompt}");
    let _ = writer.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(&tty, OptionalActions::Drain, &saved);
    // The Enter typed was not echoed: end the prompt's line ourselves.
    let _ = writeln!(writer);
    read.ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(not(unix))]
fn read_hidden(_prompt: &str) -> Option<String> {
    None
}
