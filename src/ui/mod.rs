//! ui layer (see src/lib.rs): renderers of the executor's event stream.
//!
//! Three views of one stream, so that what a user sees, what a script parses and what a
//! log file keeps never disagree:
//!
//! - [`progress`]: live, one line per ship, for a terminal;
//! - [`plain`]: one timestamped line per event, for pipes, CI logs and `--plain`;
//! - [`json`]: the events themselves, one JSON object per line, for `--json`.
//!
//! Renderers only read events; they never drive work. A renderer that fails to write
//! (say stdout is a closed pipe) stops rendering and the run carries on: the sink ignores a
//! closed receiver.

use std::io::{self, Write};

use console::Style;

use crate::orchestrate::engine::events::EventStream;

pub mod describe;
pub mod diagnostics;
pub mod json;
mod live;
pub mod logs;
pub mod output;
pub mod plain;
pub mod progress;
pub mod report;
pub mod summary;
pub mod terminal;

pub use output::{eprintln, print, print_fields, println, println_fields};

/// Which renderer the CLI picked (progress on a terminal, plain otherwise or with `--plain`,
/// json with `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    Progress,
    Plain,
    Json,
}

impl RenderMode {
    /// The mode for the CLI's flags: `--json` wins, then `--plain`; otherwise the live
    /// display, but only when stderr (where it draws) is a terminal, since without one it
    /// would show nothing until the summary.
    pub fn choose(json: bool, plain: bool) -> RenderMode {
        if json {
            RenderMode::Json
        } else if plain || !console::Term::stderr().is_term() {
            RenderMode::Plain
        } else {
            RenderMode::Progress
        }
    }
}

/// Whether to colour output going to a stream: never when `NO_COLOR` is set to anything
/// non-empty (no-color.org, and it wins over everything else, as the issue asks), always
/// with `CLICOLOR_FORCE`, otherwise only on a terminal.
pub fn colors_wanted(stream_is_terminal: bool) -> bool {
    colors_wanted_with(
        std::env::var_os("NO_COLOR"),
        std::env::var_os("CLICOLOR_FORCE"),
        stream_is_terminal,
    )
}

/// The decision itself, apart from the process environment so that it can be tested
/// without mutating global state.
fn colors_wanted_with(
    no_color: Option<std::ffi::OsString>,
    clicolor_force: Option<std::ffi::OsString>,
    stream_is_terminal: bool,
) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    stream_is_terminal
}

/// Render `events` until the stream ends (every sender dropped), writing to `out`.
///
/// Colours follow [`colors_wanted`] for the stream drawn on. In progress mode the live
/// lines are drawn on stderr (so `out` stays clean for the summary table), and show
/// nothing when stderr is not a terminal; [`RenderMode::choose`] picks `Plain` then.
pub async fn render<W: Write + Send>(
    events: EventStream,
    mode: RenderMode,
    out: W,
) -> io::Result<()> {
    // The live display draws on stderr; the other modes write where `out` goes (stdout).
    let terminal = match mode {
        RenderMode::Progress => console::Term::stderr().is_term(),
        RenderMode::Plain | RenderMode::Json => console::Term::stdout().is_term(),
    };
    let colors = colors_wanted(terminal);
    render_with(events, mode, out, colors).await
}

/// [`render`] with the colour decision made by the caller (tests, or a `--color` flag).
pub async fn render_with<W: Write + Send>(
    mut events: EventStream,
    mode: RenderMode,
    out: W,
    colors: bool,
) -> io::Result<()> {
    let palette = Palette::new(colors);
    // Events are masked field by field before a renderer lays them out: names as written,
    // free text masked wherever a secret appears (laying out may cut a reason to the
    // terminal's width, and a cut secret no longer matches). What renderers write then
    // passes on as it is (see `output::Fields`).
    let masker = crate::secrets::global();
    let out = output::Fields(out);
    match mode {
        RenderMode::Json => {
            let mut renderer = json::JsonRenderer::new(out);
            while let Some(event) = events.recv().await {
                renderer.event(&masker.mask_value(&event))?;
            }
        }
        RenderMode::Plain => {
            let mut renderer = plain::PlainRenderer::new(out, palette);
            while let Some(event) = events.recv().await {
                renderer.event(&masker.mask_value(&event))?;
            }
        }
        RenderMode::Progress => {
            // As indicatif's own stderr target: nothing drawn on a dumb terminal.
            let target = if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
                indicatif::ProgressDrawTarget::hidden()
            } else {
                indicatif::ProgressDrawTarget::term_like_with_hz(
                    Box::new(output::FieldsTerm(console::Term::buffered_stderr())),
                    20,
                )
            };
            let mut renderer = progress::ProgressRenderer::new(target, out, palette);
            let mut ticks = tokio::time::interval(progress::TICK);
            // A late tick is simply skipped: the next frame shows the time as it is then.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => renderer.event(&masker.mask_value(&event))?,
                        None => break,
                    },
                    _ = ticks.tick() => renderer.tick(),
                }
            }
            renderer.finish();
        }
    }
    Ok(())
}

/// The few colours the renderers use, or none. Styling is forced on when enabled because
/// console would otherwise second-guess us from stdout, while we may be writing to stderr
/// or a file the caller chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    enabled: bool,
}

impl Palette {
    pub const fn new(enabled: bool) -> Self {
        Palette { enabled }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.enabled {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint(Style::new().green(), text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint(Style::new().red().bold(), text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint(Style::new().yellow(), text)
    }

    pub fn accent(&self, text: &str) -> String {
        self.paint(Style::new().cyan(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dim(), text)
    }

    pub fn strong(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }
}

/// Durations as people read them in a deployment log: tenths of a second under a minute,
/// then minutes and seconds, then hours and minutes.
pub fn format_duration(ms: u64) -> String {
    // Rounded, not truncated: 170 ms reads as 0.2s, as a stopwatch would show it.
    let tenths = ms.saturating_add(50) / 100;
    let secs = ms.saturating_add(500) / 1000;
    if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// `1 ship`, `3 ships`: a count with its noun, for messages read by people.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_naturally() {
        assert_eq!(count(1, "ship"), "1 ship");
        assert_eq!(count(0, "job"), "0 jobs");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0), "0.0s");
        assert_eq!(format_duration(1234), "1.2s");
        assert_eq!(format_duration(170), "0.2s");
        assert_eq!(format_duration(59_949), "59.9s");
        assert_eq!(format_duration(59_999), "1m00s");
        assert_eq!(format_duration(182_000), "3m02s");
        assert_eq!(format_duration(3_720_000), "1h02m");
    }

    #[test]
    fn no_color_wins_over_everything() {
        let set = |v: &str| Some(std::ffi::OsString::from(v));
        assert!(!colors_wanted_with(set("1"), set("1"), true));
        assert!(
            colors_wanted_with(set(""), None, true),
            "empty NO_COLOR is unset"
        );
        assert!(colors_wanted_with(None, set("1"), false));
        assert!(!colors_wanted_with(None, set("0"), false));
        assert!(colors_wanted_with(None, None, true));
        assert!(!colors_wanted_with(None, None, false));
    }

    #[test]
    fn a_disabled_palette_adds_nothing() {
        let palette = Palette::new(false);
        assert_eq!(palette.bad("failed"), "failed");
        assert!(Palette::new(true).bad("failed").contains("\u{1b}["));
    }
}
