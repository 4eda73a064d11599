//! Plain output: one timestamped line per event, for logs, pipes and `--plain`.
//!
//! Every line stands alone (time, instance, ship, what happened) so that `grep web1` on a
//! CI log tells the whole story of one instance. Timestamps are seconds since the run
//! began, matching the event stream and keeping logs comparable between runs.

use std::io::{self, Write};

use super::describe::{Describer, Subject};
use super::{Palette, summary};
use crate::orchestrate::engine::events::{Event, EventKind};

pub struct PlainRenderer<W: Write> {
    out: W,
    palette: Palette,
    describer: Describer,
}

impl<W: Write> PlainRenderer<W> {
    pub fn new(out: W, palette: Palette) -> Self {
        PlainRenderer {
            out,
            palette,
            describer: Describer::default(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        // Not logged: at a hundred ships it is a hundred lines saying nothing yet; the
        // outcome (connected or unreachable) says how long it took.
        if let EventKind::ShipConnecting { .. } = event.kind {
            return Ok(());
        }
        let time = self.palette.dim(&stamp(event.at_ms));
        let p = self.palette;
        let said = self.describer.describe(event);
        match said.subject {
            Subject::Plan(command) => {
                let aside = said.aside.map(|a| format!(" ({a})")).unwrap_or_default();
                let size = said.detail.as_deref().unwrap_or_default();
                writeln!(self.out, "{time} {}: {size}{aside}", p.strong(command))?;
            }
            // Marked, or indented by the width of the mark, so ship names line up in a log.
            Subject::Ship(ship) => writeln!(
                self.out,
                "{time} {} {ship} {}",
                said.mark.paint(p),
                said.outcome(p)
            )?,
            Subject::Job { instance, ship } => {
                let who = who(instance, ship);
                writeln!(self.out, "{time} {who}: {}", said.outcome(p))?;
                for line in said.quoted {
                    writeln!(self.out, "{time} {who}:   | {line}")?;
                }
            }
            Subject::Run => writeln!(self.out, "{time} {}", said.outcome(p))?,
        }
        if let EventKind::PlanFinished { summary } = &event.kind {
            write!(self.out, "{}", summary::render_table(summary, self.palette))?;
        }
        self.out.flush()
    }
}

/// `[   12.345s]`: fixed width so that columns line up for runs under a few hours.
fn stamp(at_ms: u64) -> String {
    format!("[{:>4}.{:03}s]", at_ms / 1000, at_ms % 1000)
}

fn who(instance: &str, ship: &str) -> String {
    format!("{instance} on {ship}")
}
