//! The words for each event, shared by the plain log and the live view.
//!
//! Decision (issue 24): the renderers used to word every event themselves and the words
//! drifted apart ("FAILED" in one, "failed" in the other; "interrupt again" against
//! "Ctrl-C again"). Here each event becomes a [`Description`]: who it is about, the word for
//! what happened and how it should look, how long it took, and the reason or detail. The
//! renderers keep only layout (time stamps, labels, where the colon goes, which events they
//! show at all); a wording changes here, once, for both.
//!
//! The JSON renderer has no words (it writes the events themselves) and does not use this.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::orchestrate::engine::events::{Event, EventKind, JobInfo};
use crate::orchestrate::plan::select::Direction;

use super::{Palette, format_duration};

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'e> {
    /// A plan, by the command it runs.
    Plan(&'e str),
    /// A ship being connected to.
    Ship(&'e str),
    /// An instance's job on its ship.
    Job { instance: &'e str, ship: &'e str },
    /// The run as a whole (an interrupt, the end).
    Run,
}

/// How a word should look; the palette turns it into colour, or into nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Neutral,
    Good,
    Bad,
    Warn,
    Strong,
}

impl Tone {
    pub fn paint(self, palette: Palette, text: &str) -> String {
        match self {
            Tone::Neutral => text.to_string(),
            Tone::Good => palette.good(text),
            Tone::Bad => palette.bad(text),
            Tone::Warn => palette.warn(text),
            Tone::Strong => palette.strong(text),
        }
    }
}

/// The one-character mark in front of an outcome, so that a column of them reads at a
/// glance. `None` is news rather than an outcome, laid out as a blank of the same width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    None,
    Done,
    Failed,
    NotRun,
}

impl Mark {
    pub fn paint(self, palette: Palette) -> String {
        match self {
            Mark::None => " ".to_string(),
            Mark::Done => palette.good("✔"),
            Mark::Failed => palette.bad("✘"),
            Mark::NotRun => palette.warn("-"),
        }
    }
}

/// How long something took: "(1.2s)" when it went through, "after 1.2s" when it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elapsed {
    Took(u64),
    After(u64),
}

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Elapsed::Took(ms) => write!(f, "({})", format_duration(*ms)),
            Elapsed::After(ms) => write!(f, "after {}", format_duration(*ms)),
        }
    }
}

/// An event in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description<'e> {
    pub subject: Subject<'e>,
    pub mark: Mark,
    /// What happened, in a word or a few ("connected", "failed", a step); empty for a plan's
    /// start, which is told by its detail.
    pub verdict: Cow<'e, str>,
    pub tone: Tone,
    pub elapsed: Option<Elapsed>,
    /// The reason, or what the plan holds; shown after a colon.
    pub detail: Option<Cow<'e, str>>,
    /// A side note shown in brackets by the renderers that have room (the plan's order).
    pub aside: Option<&'static str>,
    /// Lines quoted from the container's log, shown under the event.
    pub quoted: &'e [String],
}

impl<'e> Description<'e> {
    fn new(subject: Subject<'e>, mark: Mark, verdict: impl Into<Cow<'e, str>>, tone: Tone) -> Self {
        Description {
            subject,
            mark,
            verdict: verdict.into(),
            tone,
            elapsed: None,
            detail: None,
            aside: None,
            quoted: &[],
        }
    }

    fn took(mut self, elapsed: Elapsed) -> Self {
        self.elapsed = Some(elapsed);
        self
    }

    fn because(mut self, detail: impl Into<Cow<'e, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The verdict in its colour.
    pub fn painted_verdict(&self, palette: Palette) -> String {
        self.tone.paint(palette, &self.verdict)
    }

    /// The verdict, how long and the detail: "failed after 1.2s: boom".
    pub fn outcome(&self, palette: Palette) -> String {
        let mut text = self.painted_verdict(palette);
        if let Some(elapsed) = self.elapsed {
            text.push(' ');
            text.push_str(&elapsed.to_string());
        }
        if let Some(detail) = &self.detail {
            text.push_str(": ");
            text.push_str(detail);
        }
        text
    }
}

/// Words events, remembering what it needs from earlier events: the ships that could not
/// be reached, so that a job that failed for the same reason says so in a few words
/// instead of printing the connection error a second time.
#[derive(Debug, Default)]
pub struct Describer {
    unreachable: HashMap<String, String>,
}

impl Describer {
    pub fn describe<'e>(&mut self, event: &'e Event) -> Description<'e> {
        match &event.kind {
            EventKind::PlanStarted {
                command,
                direction,
                jobs,
            } => plan_started(command, *direction, jobs),
            EventKind::ShipConnecting { ship } => {
                Description::new(Subject::Ship(ship), Mark::None, "connecting", Tone::Neutral)
            }
            EventKind::ShipConnected { ship, elapsed_ms } => {
                Description::new(Subject::Ship(ship), Mark::None, "connected", Tone::Good)
                    .took(Elapsed::Took(*elapsed_ms))
            }
            EventKind::ShipConnectFailed {
                ship,
                elapsed_ms,
                reason,
            } => {
                self.unreachable.insert(ship.clone(), reason.clone());
                Description::new(Subject::Ship(ship), Mark::Failed, "unreachable", Tone::Bad)
                    .took(Elapsed::Took(*elapsed_ms))
                    .because(reason.as_str())
            }
            EventKind::JobStarted { instance, ship, .. } => {
                Description::new(job(instance, ship), Mark::None, "begin", Tone::Neutral)
            }
            EventKind::Step {
                instance,
                ship,
                step,
                ..
            } => Description::new(
                job(instance, ship),
                Mark::None,
                step.to_string(),
                Tone::Neutral,
            ),
            EventKind::JobDone {
                instance,
                ship,
                elapsed_ms,
                outcome,
                ..
            } => Description::new(job(instance, ship), Mark::Done, outcome.as_str(), Tone::Good)
                .took(Elapsed::Took(*elapsed_ms)),
            EventKind::JobFailed {
                instance,
                ship,
                elapsed_ms,
                reason,
                log_tail,
                ..
            } => {
                let mut description =
                    Description::new(job(instance, ship), Mark::Failed, "failed", Tone::Bad)
                        .took(Elapsed::After(*elapsed_ms))
                        .because(self.job_reason(ship, reason));
                description.quoted = log_tail;
                description
            }
            EventKind::JobSkipped {
                instance,
                ship,
                reason,
                ..
            } => Description::new(job(instance, ship), Mark::NotRun, "skipped", Tone::Warn)
                .because(reason.as_str()),
            EventKind::JobCancelled {
                instance,
                ship,
                reason,
                ..
            } => Description::new(job(instance, ship), Mark::NotRun, "cancelled", Tone::Warn)
                .because(reason.as_str()),
            EventKind::Interrupted { abort: false } => {
                Description::new(Subject::Run, Mark::None, "interrupted", Tone::Warn).because(
                    "starting nothing new, letting operations in progress finish (Ctrl-C again to abort)",
                )
            }
            EventKind::Interrupted { abort: true } => {
                Description::new(Subject::Run, Mark::None, "aborted", Tone::Bad)
                    .because("dropping operations in progress")
            }
            EventKind::PlanFinished { .. } => {
                Description::new(Subject::Run, Mark::None, "finished", Tone::Strong)
            }
        }
    }

    /// `reason`, or a pointer to the ship's line above when it only repeats it.
    fn job_reason<'a>(&self, ship: &str, reason: &'a str) -> Cow<'a, str> {
        match self.unreachable.get(ship) {
            Some(cause) if !cause.is_empty() && reason.ends_with(cause.as_str()) => {
                format!("{ship} is unreachable (above)").into()
            }
            _ => reason.into(),
        }
    }
}

/// "start: 5 jobs on 2 ships (dependencies first)".
fn plan_started<'e>(command: &'e str, direction: Direction, jobs: &[JobInfo]) -> Description<'e> {
    let mut ships: Vec<&str> = jobs.iter().map(|j| j.ship.as_str()).collect();
    ships.sort_unstable();
    ships.dedup();
    let size = format!(
        "{} on {}",
        super::count(jobs.len(), "job"),
        super::count(ships.len(), "ship")
    );
    let mut description =
        Description::new(Subject::Plan(command), Mark::None, "", Tone::Neutral).because(size);
    description.aside = Some(match direction {
        Direction::Forward => "dependencies first",
        Direction::Reverse => "dependents first",
    });
    description
}

fn job<'e>(instance: &'e str, ship: &'e str) -> Subject<'e> {
    Subject::Job { instance, ship }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: EventKind) -> Event {
        Event { at_ms: 0, kind }
    }

    #[test]
    fn a_job_that_fails_because_its_ship_is_unreachable_points_at_the_ship() {
        let mut describer = Describer::default();
        describer.describe(&at(EventKind::ShipConnectFailed {
            ship: "s1".into(),
            elapsed_ms: 5,
            reason: "connection to root@10.0.0.1:22 refused".into(),
        }));
        assert_eq!(
            describer.job_reason("s1", "ship s1: connection to root@10.0.0.1:22 refused"),
            "s1 is unreachable (above)"
        );
        assert_eq!(
            describer.job_reason("s1", "image x not found"),
            "image x not found"
        );
        assert_eq!(
            describer.job_reason("s2", "ship s2: refused"),
            "ship s2: refused"
        );
    }

    #[test]
    fn a_failure_reads_the_same_in_every_renderer() {
        let event = at(EventKind::JobFailed {
            job: 0,
            instance: "web1".into(),
            ship: "s1".into(),
            elapsed_ms: 1200,
            reason: "boom".into(),
            log_tail: vec![],
        });
        let description = Describer::default().describe(&event);
        assert_eq!(
            description.outcome(Palette::new(false)),
            "failed after 1.2s: boom"
        );
        let interrupted = at(EventKind::Interrupted { abort: false });
        let description = Describer::default().describe(&interrupted);
        assert!(
            description
                .detail
                .is_some_and(|d| d.ends_with("(Ctrl-C again to abort)"))
        );
    }
}
