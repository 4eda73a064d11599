//! The printer of `logs`: each line of a container's output on the stream it came from,
//! prefixed with its instance (padded, in a colour the instance keeps from run to run) when
//! several instances are shown, and maestro's own notices dimmed. Everything goes through the
//! masking writer: a container may print its own secrets (its environment, a config file).

use std::io::Write;

use console::Style;

use super::output::{self, Masked};
use super::{Palette, colors_wanted};
use crate::docker::LogSource;
use crate::orchestrate::logs::LogEvent;

/// Colours for instance prefixes.
const PREFIX_COLOURS: [fn(Style) -> Style; 6] = [
    Style::cyan,
    Style::magenta,
    Style::green,
    Style::yellow,
    Style::blue,
    Style::red,
];

pub struct LogPrinter {
    /// Prefix each line with its instance (more than one instance is shown).
    several: bool,
    /// The longest instance name, to align the prefixes.
    width: usize,
    out_colours: bool,
    err_colours: bool,
    stdout: Masked<std::io::Stdout>,
    stderr: Masked<std::io::Stderr>,
}

impl LogPrinter {
    /// A printer for the logs of `instances`.
    pub fn new<'a>(instances: impl IntoIterator<Item = &'a str>) -> LogPrinter {
        let widths: Vec<usize> = instances.into_iter().map(|i| i.chars().count()).collect();
        LogPrinter {
            several: widths.len() > 1,
            width: widths.iter().copied().max().unwrap_or(0),
            out_colours: colors_wanted(console::Term::stdout().is_term()),
            err_colours: colors_wanted(console::Term::stderr().is_term()),
            stdout: output::stdout(),
            stderr: output::stderr(),
        }
    }

    /// Prints one event. A closed pipe (`| head`) ends the output, not the program.
    pub fn print(&mut self, event: LogEvent) {
        let (instance, text, to_stderr, notice) = match event {
            LogEvent::Line {
                instance,
                source,
                text,
            } => (instance, text, source == LogSource::Stderr, false),
            LogEvent::Notice { instance, text } => (instance, text, true, true),
            LogEvent::Unreachable { instance, text } => {
                let _ = writeln!(self.stderr, "{instance}: {text}");
                let _ = self.stderr.flush();
                return;
            }
        };
        let colours = if to_stderr {
            self.err_colours
        } else {
            self.out_colours
        };
        let prefix = if self.several {
            prefix(&instance, self.width, colours)
        } else {
            String::new()
        };
        let text = if notice {
            let who = if self.several {
                String::new()
            } else {
                format!("{instance}: ")
            };
            Palette::new(self.err_colours).dim(&format!("[maestro] {who}{text}"))
        } else {
            text
        };
        let stream: &mut dyn Write = if to_stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        let _ = writeln!(stream, "{prefix}{text}");
        let _ = stream.flush();
    }

    /// An error that ended a reader, after the logs.
    pub fn error(&mut self, failure: &str) {
        let _ = writeln!(self.stderr, "error: {failure}");
        let _ = self.stderr.flush();
    }
}

/// FNV-1a: stable across runs and platforms, unlike the standard library's hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `instance | ` padded to `width`, in the instance's colour when `colours`.
fn prefix(instance: &str, width: usize, colours: bool) -> String {
    let text = format!("{instance:<width$} | ");
    if !colours {
        return text;
    }
    let pick = PREFIX_COLOURS[(stable_hash(instance) % PREFIX_COLOURS.len() as u64) as usize];
    pick(Style::new())
        .force_styling(true)
        .apply_to(text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_padded_and_plain_without_colour() {
        assert_eq!(prefix("web-1", 7, false), "web-1   | ");
        let coloured = prefix("web-1", 7, true);
        assert!(coloured.contains("\u{1b}["));
        assert_eq!(coloured, prefix("web-1", 7, true), "stable colour");
    }
}
