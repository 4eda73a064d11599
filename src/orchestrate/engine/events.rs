//! The typed event stream between the executor (and the operations it runs) and whoever
//! shows progress.
//!
//! The executor never prints: everything a user may want to see about a run is an [`Event`]
//! sent through an [`EventSink`]. This keeps the scheduler testable (tests read the stream),
//! lets one run feed any renderer (`ui::progress`, `ui::plain`, `ui::json`), and makes
//! `--json` a faithful record rather than a second code path.
//!
//! Events are serialised as one flat JSON object per line, tagged by `"event"`, e.g.
//! `{"at_ms":12,"event":"job_started","job":0,"instance":"db1","ship":"a"}`. Field names
//! are part of the `--json` contract: rename with care.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::orchestrate::plan::select::Direction;

/// One thing that happened, stamped with the time since the sink was created.
///
/// Milliseconds since the start (not wall-clock time) so that a recorded stream replays the
/// same way and golden files do not depend on the day they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The identity of one job as announced at the start of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job: usize,
    pub instance: String,
    pub service: String,
    pub ship: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// Always the first event of a run; lists every job so that renderers can lay out one
    /// line per ship and count totals before anything starts.
    PlanStarted {
        command: String,
        direction: Direction,
        jobs: Vec<JobInfo>,
    },
    /// The run began connecting to a ship (sent once per ship, after PlanStarted).
    ShipConnecting { ship: String },
    /// The ship's connection is ready; `elapsed_ms` since ShipConnecting.
    ShipConnected { ship: String, elapsed_ms: u64 },
    /// The ship could not be reached; its jobs will fail with this reason.
    ShipConnectFailed {
        ship: String,
        elapsed_ms: u64,
        reason: String,
    },
    JobStarted {
        job: usize,
        instance: String,
        ship: String,
    },
    /// Progress inside a running job, emitted by the operation through its `StepContext`.
    Step {
        job: usize,
        instance: String,
        ship: String,
        step: Step,
    },
    JobDone {
        job: usize,
        instance: String,
        ship: String,
        elapsed_ms: u64,
        outcome: Outcome,
    },
    JobFailed {
        job: usize,
        instance: String,
        ship: String,
        elapsed_ms: u64,
        reason: String,
        /// The container's last log lines, when the operation could get them: the first
        /// thing an operator needs when a start fails.
        log_tail: Vec<String>,
    },
    /// Not attempted because something it waits on did not succeed.
    JobSkipped {
        job: usize,
        instance: String,
        ship: String,
        reason: String,
    },
    /// Not attempted, or interrupted, because the run was cancelled (Ctrl-C). The reason
    /// says which, and for an interrupted job what state it was left in.
    JobCancelled {
        job: usize,
        instance: String,
        ship: String,
        reason: String,
    },
    /// The run received a cancellation request: `abort` is false for the first Ctrl-C (let
    /// in-flight work finish) and true for the second (drop it now).
    Interrupted { abort: bool },
    /// Always the last event of a run.
    PlanFinished { summary: Summary },
}

/// What a running job is doing right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// `percent` is `None` while the total size is unknown (Docker reports layers lazily).
    Pulling {
        percent: Option<u8>,
        detail: String,
    },
    /// An image of this machine going to the ship through its SSH session (`image_source`):
    /// bytes sent so far, of `bytes_total` were the ship to have none of its layers.
    Pushing {
        image: String,
        bytes_sent: u64,
        bytes_total: u64,
    },
    /// What a push sent: bytes through the ship's session, and how many of the image's
    /// layers the ship already had.
    Pushed {
        image: String,
        bytes_sent: u64,
        layers_total: usize,
        layers_skipped: usize,
    },
    Creating,
    Starting,
    WaitingRunning,
    /// `check` names the check the way the environment file does, e.g. `tcp:client`.
    Checking {
        check: String,
        attempt: u32,
        max: u32,
    },
    Stopping,
    /// One restart request: the daemon stops and starts the container.
    Restarting,
    Killing,
    Removing,
    Message {
        text: String,
    },
}

impl Step {
    /// A stable name for the kind of step, used by renderers to notice when a job moves on
    /// to a new step (repeated `Pulling` or `Checking` updates are the same step).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Step::Pulling { .. } => "pulling",
            Step::Pushing { .. } => "pushing",
            Step::Pushed { .. } => "pushed",
            Step::Creating => "creating",
            Step::Starting => "starting",
            Step::WaitingRunning => "waiting for running",
            Step::Checking { .. } => "checking",
            Step::Stopping => "stopping",
            Step::Restarting => "restarting",
            Step::Killing => "killing",
            Step::Removing => "removing",
            Step::Message { .. } => "message",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Pulling {
                percent: Some(p),
                detail,
            } if detail.is_empty() => write!(f, "pulling {p}%"),
            Step::Pulling {
                percent: Some(p),
                detail,
            } => write!(f, "pulling {p}% {detail}"),
            Step::Pulling {
                percent: None,
                detail,
            } if detail.is_empty() => write!(f, "pulling"),
            Step::Pulling {
                percent: None,
                detail,
            } => write!(f, "pulling {detail}"),
            Step::Pushing {
                image,
                bytes_sent,
                bytes_total,
            } => write!(
                f,
                "pushing {image}: {} sent (image {})",
                megabytes(*bytes_sent),
                megabytes(*bytes_total)
            ),
            Step::Pushed {
                image,
                bytes_sent,
                layers_total,
                layers_skipped,
            } => write!(
                f,
                "pushed {image}: {} sent, {layers_skipped} of {layers_total} layers already there",
                megabytes(*bytes_sent)
            ),
            Step::Checking {
                check,
                attempt,
                max,
            } => write!(f, "checking {check} {attempt}/{max}"),
            Step::Message { text } => f.write_str(text),
            other => f.write_str(other.kind_name()),
        }
    }
}

/// `12.3 MB`, `0.4 kB`: sizes as a person reads them.
fn megabytes(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// How a job that succeeded ended.
///
/// Serialised as a plain string (`"started"`, `"already running"`, ...) because that is what
/// a human or a `jq` filter wants; operations may report something not listed with
/// [`Outcome::Other`], which round-trips as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Started,
    AlreadyRunning,
    Restarted,
    Stopped,
    Killed,
    Removed,
    Pulled,
    Pushed,
    NothingToDo,
    Other(String),
}

impl Outcome {
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Started => "started",
            Outcome::AlreadyRunning => "already running",
            Outcome::Restarted => "restarted",
            Outcome::Stopped => "stopped",
            Outcome::Killed => "killed",
            Outcome::Removed => "removed",
            Outcome::Pulled => "pulled",
            Outcome::Pushed => "pushed",
            Outcome::NothingToDo => "nothing to do",
            Outcome::Other(text) => text,
        }
    }

    fn from_text(text: String) -> Self {
        match text.as_str() {
            "started" => Outcome::Started,
            "already running" => Outcome::AlreadyRunning,
            "restarted" => Outcome::Restarted,
            "stopped" => Outcome::Stopped,
            "killed" => Outcome::Killed,
            "removed" => Outcome::Removed,
            "pulled" => Outcome::Pulled,
            "pushed" => Outcome::Pushed,
            "nothing to do" => Outcome::NothingToDo,
            _ => Outcome::Other(text),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Outcome::from_text)
    }
}

/// The sending half of the event stream; cheap to clone into every task.
///
/// Unbounded on purpose: events are small and few (a handful per job), and a bounded
/// channel would let a slow terminal stall the deployment it is merely showing.
/// Sending never fails from the sender's point of view: if the renderer has gone away
/// (e.g. its writer hit a closed pipe), the run must still finish cleanly.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Event>,
    epoch: Arc<Instant>,
}

/// The receiving half, handed to a renderer (or collected by a test).
pub type EventStream = mpsc::UnboundedReceiver<Event>;

impl EventSink {
    /// A new stream whose clock starts now. Uses tokio's clock so that tests with paused
    /// time get deterministic timestamps.
    pub fn new() -> (EventSink, EventStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventSink {
                tx,
                epoch: Arc::new(Instant::now()),
            },
            rx,
        )
    }

    /// Milliseconds since the sink was created; the time base of every event it sends.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn send(&self, kind: EventKind) {
        let event = Event {
            at_ms: self.elapsed_ms(),
            kind,
        };
        // A closed receiver only means nobody is watching any more; see the type's docs.
        let _ = self.tx.send(event);
    }
}

// --- what a run reports at its end -----------------------------------------------------

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    Done {
        outcome: Outcome,
    },
    Failed {
        reason: String,
        log_tail: Vec<String>,
    },
    Skipped {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
}

impl JobState {
    pub fn is_done(&self) -> bool {
        matches!(self, JobState::Done { .. })
    }
}

/// The record of one job in the summary. Times are milliseconds on the event stream's
/// clock; `None` for jobs that never started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub job: usize,
    pub instance: String,
    pub service: String,
    pub ship: String,
    pub state: JobState,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
}

impl JobReport {
    pub fn elapsed_ms(&self) -> Option<u64> {
        Some(self.finished_at_ms?.saturating_sub(self.started_at_ms?))
    }
}

/// Per-state job counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

/// What a run did, job by job, in job order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub command: String,
    pub jobs: Vec<JobReport>,
    /// A cancellation was requested during the run.
    pub interrupted: bool,
    /// The second request came: in-flight operations were dropped.
    pub aborted: bool,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

impl Summary {
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for report in &self.jobs {
            match report.state {
                JobState::Done { .. } => counts.done += 1,
                JobState::Failed { .. } => counts.failed += 1,
                JobState::Skipped { .. } => counts.skipped += 1,
                JobState::Cancelled { .. } => counts.cancelled += 1,
            }
        }
        counts
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.finished_at_ms.saturating_sub(self.started_at_ms)
    }

    /// The process exit code for this run: 130 when interrupted (the shell convention for
    /// SIGINT), 1 when any job did not succeed, 0 when all did.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            130
        } else if self.jobs.iter().all(|report| report.state.is_done()) {
            0
        } else {
            1
        }
    }
}

/// The exit code of a command made of several runs (restart = stop, then start): an
/// interruption anywhere wins, then any unsuccessful job, as for a single run.
pub fn combined_exit_code<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> i32 {
    let codes: Vec<i32> = summaries.into_iter().map(Summary::exit_code).collect();
    if codes.contains(&130) {
        130
    } else if codes.contains(&1) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_flat_with_a_tag() {
        let event = Event {
            at_ms: 12,
            kind: EventKind::Step {
                job: 0,
                instance: "db1".into(),
                ship: "a".into(),
                step: Step::Checking {
                    check: "tcp:client".into(),
                    attempt: 3,
                    max: 180,
                },
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"at_ms":12,"event":"step","job":0,"instance":"db1","ship":"a","step":{"step":"checking","check":"tcp:client","attempt":3,"max":180}}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    /// The connect events are part of the `--json` contract: their tags and field names are
    /// what scripts match on, so pin them.
    #[test]
    fn connect_events_serialise_with_their_tags() {
        let cases = [
            (
                EventKind::ShipConnecting { ship: "a".into() },
                r#"{"at_ms":5,"event":"ship_connecting","ship":"a"}"#,
            ),
            (
                EventKind::ShipConnected {
                    ship: "a".into(),
                    elapsed_ms: 412,
                },
                r#"{"at_ms":5,"event":"ship_connected","ship":"a","elapsed_ms":412}"#,
            ),
            (
                EventKind::ShipConnectFailed {
                    ship: "a".into(),
                    elapsed_ms: 5000,
                    reason: "connection refused".into(),
                },
                r#"{"at_ms":5,"event":"ship_connect_failed","ship":"a","elapsed_ms":5000,"reason":"connection refused"}"#,
            ),
        ];
        for (kind, expected) in cases {
            let event = Event { at_ms: 5, kind };
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, expected);
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn outcomes_are_plain_strings_and_round_trip() {
        for outcome in [
            Outcome::Started,
            Outcome::AlreadyRunning,
            Outcome::NothingToDo,
            Outcome::Other("renamed".into()),
        ] {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            let back: Outcome = serde_json::from_str(&json).unwrap();
            assert_eq!(back, outcome);
        }
    }

    #[test]
    fn steps_display_for_humans() {
        let pulling = Step::Pulling {
            percent: Some(40),
            detail: "3/7 layers".into(),
        };
        assert_eq!(pulling.to_string(), "pulling 40% 3/7 layers");
        assert_eq!(Step::WaitingRunning.to_string(), "waiting for running");
    }
}
