//! Errors of the config layer, reported against the user's text: file, line, column, a
//! snippet with a caret, the field path and a "did you mean".

use std::fmt;

use super::node::Pos;

/// Exit code for any configuration error (MaestroNG's users script around it).
pub const CONFIG_ERROR_EXIT_CODE: i32 = 2;

/// One problem found in an environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (or `<stdin>`).
    pub file: String,
    /// 1-based; 0 when the problem has no single place.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    /// Dotted path of the offending field, e.g. `services.web.instances.web1.ports.http`.
    pub field: Option<String>,
    pub message: String,
    /// Source lines with a caret under the offending text, ready to print.
    pub snippet: Option<String>,
    /// A suggestion such as "did you mean `image`?".
    pub help: Option<String>,
    /// Extra context (e.g. that line numbers refer to the rendered template).
    pub note: Option<String>,
}

impl Diagnostic {
    /// The diagnostic as a warning: the same layout, `warning:` instead of `error:`.
    pub fn as_warning(&self) -> String {
        let text = self.to_string();
        match text.strip_prefix("error: ") {
            Some(rest) => format!("warning: {rest}"),
            None => text,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if self.line > 0 {
            write!(
                f,
                "\n  --> {}:{}:{}",
                self.file,
                self.line,
                self.column.max(1)
            )?;
        } else {
            write!(f, "\n  --> {}", self.file)?;
        }
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        if let Some(field) = &self.field {
            write!(f, "\n   = field: {field}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n   = help: {help}")?;
        }
        if let Some(note) = &self.note {
            write!(f, "\n   = note: {note}")?;
        }
        Ok(())
    }
}

/// Why an environment file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("error: cannot read environment file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "error: {file} is larger than {limit} bytes ({size} bytes or more); refusing to load it \
         (environment files are limited to 10 MB)"
    )]
    TooLarge { file: String, size: u64, limit: u64 },
    /// The Jinja2 template could not be rendered.
    #[error("{0}")]
    Template(Box<Diagnostic>),
    /// The rendered text is not valid YAML (syntax, duplicate key, alias bomb...).
    #[error("{0}")]
    Yaml(Box<Diagnostic>),
    /// The YAML does not fit the model: wrong type, unknown or missing key, bad spec.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    /// Cross-references are wrong: unknown ship or service, cycles, conflicts. All of them are
    /// reported at once.
    #[error("{}", render_all(.0))]
    Semantic(Vec<Diagnostic>),
}

/// Errors shown in full; the rest are counted by kind. A generated file with one mistake
/// repeated thousands of times must not print hundreds of thousands of lines.
const SHOWN_IN_FULL: usize = 10;

fn render_all(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().take(SHOWN_IN_FULL).enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.push_str(&d.to_string());
    }
    if diagnostics.len() > SHOWN_IN_FULL {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for d in &diagnostics[SHOWN_IN_FULL..] {
            let kind = kind_of(&d.message);
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        out.push_str(&format!(
            "\n\n... and {} more:",
            diagnostics.len() - SHOWN_IN_FULL
        ));
        for (kind, n) in kinds {
            out.push_str(&format!("\n  {n} x {kind}"));
        }
    }
    if diagnostics.len() > 1 {
        out.push_str(&format!("\n\n{} errors found", diagnostics.len()));
    }
    out
}

/// A message with its names (`...`) and numbers left out: what kind of error it is.
fn kind_of(message: &str) -> String {
    let mut kind = String::new();
    let mut in_name = false;
    for c in message.chars() {
        match c {
            '`' => {
                if !in_name {
                    kind.push_str("`…`");
                }
                in_name = !in_name;
            }
            _ if in_name => {}
            c if c.is_ascii_digit() => {
                if !kind.ends_with('N') {
                    kind.push('N');
                }
            }
            c => kind.push(c),
        }
    }
    kind
}

impl ConfigError {
    /// The process exit code for configuration errors: always 2.
    pub fn exit_code(&self) -> i32 {
        CONFIG_ERROR_EXIT_CODE
    }

    /// Every located diagnostic carried by this error (empty for read/size errors).
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        match self {
            ConfigError::Read { .. } | ConfigError::TooLarge { .. } => Vec::new(),
            ConfigError::Template(d) | ConfigError::Yaml(d) | ConfigError::Invalid(d) => {
                vec![d.as_ref()]
            }
            ConfigError::Semantic(ds) => ds.iter().collect(),
        }
    }
}

/// The text the positions refer to, and how to show a piece of it.
#[derive(Debug, Clone)]
pub(crate) struct SourceText {
    pub name: String,
    pub text: String,
    /// Set when template rendering changed the line structure of the file, so that line numbers
    /// refer to the rendered text rather than the file on disk.
    pub rendered_differs: bool,
}

impl SourceText {
    pub fn diagnostic(
        &self,
        pos: Pos,
        field: Option<&str>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        let note = if self.rendered_differs && pos.is_known() {
            Some("line numbers refer to the file after Jinja2 template rendering".to_owned())
        } else {
            None
        };
        Diagnostic {
            file: self.name.clone(),
            line: pos.line,
            column: pos.column,
            field: field.filter(|f| !f.is_empty()).map(str::to_owned),
            message: message.into(),
            snippet: snippet(&self.text, pos),
            help,
            note,
        }
    }
}

/// Longest source line quoted whole in a snippet.
const MAX_SNIPPET_LINE_CHARS: usize = 160;
/// Characters shown before the column when a long line is cut.
const SNIPPET_CONTEXT_CHARS: usize = 60;

/// Up to two lines of context and the offending line, with a caret under the token.
pub(crate) fn snippet(text: &str, pos: Pos) -> Option<String> {
    if !pos.is_known() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let index = pos.line.checked_sub(1)?;
    let line = lines.get(index)?;
    let first = index.saturating_sub(1);
    let width = (index + 1).to_string().len();
    let mut out = format!("{:width$} |", "");
    // A huge line (minified or hostile input) is shown as a window around the column, so that
    // an error message stays readable and small.
    let col = pos.column.max(1);
    let skip = col.saturating_sub(SNIPPET_CONTEXT_CHARS + 1);
    let window = |l: &str| -> String {
        let count = l.chars().count();
        if count <= MAX_SNIPPET_LINE_CHARS {
            return l.to_owned();
        }
        let start = skip.min(count);
        let shown: String = l.chars().skip(start).take(MAX_SNIPPET_LINE_CHARS).collect();
        let head = if start > 0 { "…" } else { "" };
        let tail = if start + MAX_SNIPPET_LINE_CHARS < count {
            "…"
        } else {
            ""
        };
        format!("{head}{shown}{tail}")
    };
    for (i, l) in lines.iter().enumerate().take(index + 1).skip(first) {
        out.push_str(&format!("\n{:>width$} | {}", i + 1, window(l)));
    }
    let (line, col) = if line.chars().count() > MAX_SNIPPET_LINE_CHARS {
        let shown = window(line);
        let offset = usize::from(skip > 0);
        let col = (col - skip + offset).min(shown.chars().count().max(1));
        (shown, col)
    } else {
        (line.to_string(), col)
    };
    let prefix: String = line
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let rest: Vec<char> = line.chars().skip(col - 1).collect();
    let mut token_len = 0;
    while let Some(&c) = rest.get(token_len) {
        let key_colon = c == ':' && rest.get(token_len + 1).is_none_or(|n| n.is_whitespace());
        if c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#') || key_colon {
            break;
        }
        token_len += 1;
    }
    let token_len = token_len.clamp(1, MAX_SNIPPET_LINE_CHARS);
    out.push_str(&format!(
        "\n{:width$} | {}{}",
        "",
        prefix,
        "^".repeat(token_len)
    ));
    Some(out)
}

/// "did you mean `x`?" when one candidate is close enough to what was written.
pub fn did_you_mean<'a, I>(written: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(written, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `written`, when one is close enough to be what was meant.
pub(crate) fn closest<'a, I>(written: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    // Fewest edits first (a swap of two letters is one edit: `wbe` is `web`), then the most
    // similar by Jaro-Winkler.
    let mut best: Option<(usize, f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(written, candidate);
        let edits = strsim::osa_distance(written, candidate);
        let close_edit = edits <= 2.max(written.len() / 4);
        let better = best.is_none_or(|(e, s, _)| edits < e || (edits == e && score > s));
        if (score >= 0.8 || close_edit) && better {
            best = Some((edits, score, candidate));
        }
    }
    best.map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_errors_show_the_first_ones_then_a_count_per_kind() {
        let diagnostic = |message: String| Diagnostic {
            file: "env.yaml".into(),
            line: 1,
            column: 1,
            field: None,
            message,
            snippet: None,
            help: None,
            note: None,
        };
        let mut all: Vec<Diagnostic> = (0..30)
            .map(|i| {
                diagnostic(format!(
                    "host port {} on ship `a` is published by both `w{i}` and `x{i}`",
                    8000 + i
                ))
            })
            .collect();
        all.push(diagnostic("unknown ship `zz`".into()));
        let text = render_all(&all);
        assert_eq!(text.matches("error: ").count(), SHOWN_IN_FULL, "{text}");
        assert!(text.contains("... and 21 more:"), "{text}");
        assert!(
            text.contains("20 x host port N on ship `…` is published by both `…` and `…`"),
            "{text}"
        );
        assert!(text.contains("1 x unknown ship `…`"), "{text}");
        assert!(text.ends_with("31 errors found"), "{text}");
    }

    #[test]
    fn snippet_points_at_the_token() {
        let text = "a: 1\nservices:\n  web:\n    imgae: nginx\n";
        let s = snippet(text, Pos { line: 4, column: 5 }).unwrap_or_default();
        assert!(s.contains("4 |     imgae: nginx"), "{s}");
        assert!(
            s.contains("  |     ^^^^^\n") || s.ends_with("  |     ^^^^^"),
            "{s}"
        );
    }

    #[test]
    fn huge_lines_are_cut_around_the_column() {
        let text = format!("a: 1\nx: {}{}\n", "[".repeat(1000), "oops");
        let s = snippet(
            &text,
            Pos {
                line: 2,
                column: 1004,
            },
        )
        .unwrap_or_default();
        assert!(s.len() < 600, "{} bytes:\n{s}", s.len());
        let lines: Vec<&str> = s.lines().collect();
        let code = lines
            .iter()
            .find(|l| l.starts_with("2 |"))
            .copied()
            .unwrap_or_default();
        let caret = lines.last().copied().unwrap_or_default();
        let at = caret.find('^').unwrap_or(0);
        assert_eq!(code.chars().nth(at), Some('o'), "{s}");
    }

    #[test]
    fn suggestions_are_close_only() {
        assert_eq!(
            did_you_mean("imgae", ["image", "instances", "env"]).as_deref(),
            Some("did you mean `image`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["image", "env"]), None);
    }
}
