//! The printer of `logs`: each line of a container's output on the stream it came from,
//! prefixed with its instance (padded, in a colour the instance keeps from run to run) when
//! several instances are shown, and maestro's own notices dimmed. With `--timestamps`, each
//! line starts with the daemon's time of it, as `docker logs -t` writes it (RFC 3339, UTC,
//! nanoseconds), after the prefix. Everything goes through the
//! masking writer: a container may print its own secrets (its environment, a config file).

use std::io::Write;

use console::Style;

use super::output::{self, Masked};
use super::{Palette, colors_wanted};
use crate::docker::LogSource;
use crate::orchestrate::observe::logs::LogEvent;

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
    timestamps: bool,
    out_colours: bool,
    err_colours: bool,
    stdout: Masked<std::io::Stdout>,
    stderr: Masked<std::io::Stderr>,
}

impl LogPrinter {
    /// A printer for the logs of `instances`; `timestamps` shows each line's time.
    pub fn new<'a>(instances: impl IntoIterator<Item = &'a str>, timestamps: bool) -> LogPrinter {
        let widths: Vec<usize> = instances.into_iter().map(|i| i.chars().count()).collect();
        LogPrinter {
            several: widths.len() > 1,
            width: widths.iter().copied().max().unwrap_or(0),
            timestamps,
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
                time,
            } => {
                let text = match time {
                    Some(time) if self.timestamps => {
                        format!("{} {text}", crate::clock::format_rfc3339(time))
                    }
                    _ => text,
                };
                (instance, text, source == LogSource::Stderr, false)
            }
            LogEvent::CaughtUp { .. } => return,
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

    #[test]
    fn times_are_written_as_the_daemon_writes_them() {
        use std::time::{Duration, UNIX_EPOCH};
        for text in [
            "2026-11-25T11:38:22.472438429Z",
            "1970-01-01T00:00:00.000000000Z",
            "2000-02-29T23:59:59.000000001Z",
            "2024-12-31T00:00:00.500000000Z",
        ] {
            let time = crate::clock::parse_rfc3339(text).expect("parses");
            assert_eq!(crate::clock::format_rfc3339(time), text);
        }
        assert_eq!(
            crate::clock::format_rfc3339(UNIX_EPOCH + Duration::new(1_795_606_702, 472_438_429)),
            "2026-11-25T11:38:22.472438429Z"
        );
    }
}
