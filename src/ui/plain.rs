//! Plain output: one timestamped line per event, for logs, pipes and `--plain`.
//!
//! Every line stands alone (time, instance, ship, what happened) so that `grep web1` on a
//! CI log tells the whole story of one instance. Timestamps are seconds since the run
//! began, matching the event stream and keeping logs comparable between runs.

use std::io::{self, Write};

use super::{Palette, format_duration, summary};
use crate::orchestrate::engine::events::{Event, EventKind};

pub struct PlainRenderer<W: Write> {
    out: W,
    palette: Palette,
    unreachable: super::Unreachable,
}

impl<W: Write> PlainRenderer<W> {
    pub fn new(out: W, palette: Palette) -> Self {
        PlainRenderer {
            out,
            palette,
            unreachable: super::Unreachable::default(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let time = self.palette.dim(&stamp(event.at_ms));
        let p = self.palette;
        match &event.kind {
            EventKind::PlanStarted {
                command,
                direction,
                jobs,
            } => {
                let mut ships: Vec<&str> = jobs.iter().map(|j| j.ship.as_str()).collect();
                ships.sort_unstable();
                ships.dedup();
                writeln!(
                    self.out,
                    "{time} {}: {} on {} ({})",
                    p.strong(command),
                    super::count(jobs.len(), "job"),
                    super::count(ships.len(), "ship"),
                    match direction {
                        crate::orchestrate::plan::select::Direction::Forward =>
                            "dependencies first",
                        crate::orchestrate::plan::select::Direction::Reverse => "dependents first",
                    }
                )?;
            }
            // Not logged: at a hundred ships it is a hundred lines saying nothing yet; the
            // outcome (connected or unreachable) says how long it took.
            EventKind::ShipConnecting { .. } => return Ok(()),
            // Indented by the width of the failure mark so ship names line up in a log.
            EventKind::ShipConnected { ship, elapsed_ms } => {
                writeln!(
                    self.out,
                    "{time}   {ship} {} ({})",
                    p.good("connected"),
                    format_duration(*elapsed_ms)
                )?;
            }
            EventKind::ShipConnectFailed {
                ship,
                elapsed_ms,
                reason,
            } => {
                self.unreachable.record(ship, reason);
                writeln!(
                    self.out,
                    "{time} {} {ship} {} ({}): {reason}",
                    p.bad("✘"),
                    p.bad("unreachable"),
                    format_duration(*elapsed_ms)
                )?;
            }
            EventKind::JobStarted { instance, ship, .. } => {
                writeln!(self.out, "{time} {}: begin", who(instance, ship))?;
            }
            EventKind::Step {
                instance,
                ship,
                step,
                ..
            } => {
                writeln!(self.out, "{time} {}: {step}", who(instance, ship))?;
            }
            EventKind::JobDone {
                instance,
                ship,
                elapsed_ms,
                outcome,
                ..
            } => {
                writeln!(
                    self.out,
                    "{time} {}: {} ({})",
                    who(instance, ship),
                    p.good(outcome.as_str()),
                    format_duration(*elapsed_ms)
                )?;
            }
            EventKind::JobFailed {
                instance,
                ship,
                elapsed_ms,
                reason,
                log_tail,
                ..
            } => {
                writeln!(
                    self.out,
                    "{time} {}: {} after {}: {}",
                    who(instance, ship),
                    p.bad("FAILED"),
                    format_duration(*elapsed_ms),
                    self.unreachable.job_reason(ship, reason)
                )?;
                for line in log_tail {
                    writeln!(self.out, "{time} {}:   | {line}", who(instance, ship))?;
                }
            }
            EventKind::JobSkipped {
                instance,
                ship,
                reason,
                ..
            }
            | EventKind::JobCancelled {
                instance,
                ship,
                reason,
                ..
            } => {
                let word = super::not_attempted_word(&event.kind);
                writeln!(
                    self.out,
                    "{time} {}: {}: {reason}",
                    who(instance, ship),
                    p.warn(word)
                )?;
            }
            EventKind::Interrupted { abort: false } => {
                writeln!(
                    self.out,
                    "{time} {}: starting nothing new, letting operations in progress finish (interrupt again to abort)",
                    p.warn("interrupted")
                )?;
            }
            EventKind::Interrupted { abort: true } => {
                writeln!(
                    self.out,
                    "{time} {}: dropping operations in progress",
                    p.bad("aborted")
                )?;
            }
            EventKind::PlanFinished { summary } => {
                writeln!(self.out, "{time} {}", p.strong("finished"))?;
                write!(self.out, "{}", summary::render_table(summary, self.palette))?;
            }
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
