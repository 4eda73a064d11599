//! The live view for a terminal: one line per ship (spinner, jobs finished / total, what is
//! in progress there, a bar while pulling) above a scrolling log of finished steps, then
//! the summary table.
//!
//! One line per *ship* rather than per instance because that is what stays readable with
//! dozens of instances, and because the questions during a deployment are per host: which
//! one is slow, which one is stuck.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Palette, format_duration, summary};
use crate::orchestrate::events::{Event, EventKind, JobInfo, Step};

/// Width of the hand-drawn pull bar inside a ship line. Drawn by hand (not an indicatif
/// bar) because the ship line's position already counts jobs, and a ship can pull for
/// several instances at once.
const PULL_BAR_WIDTH: usize = 20;

struct ShipLine {
    bar: ProgressBar,
    finished: u64,
    failed: u64,
    /// Skipped or cancelled: not attempted, as opposed to attempted and failed.
    not_attempted: u64,
    /// Jobs in progress on this ship, in the order they began.
    in_flight: Vec<usize>,
}

/// How a job ended, as far as its ship's line is concerned.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Done,
    Failed,
    NotAttempted,
}

/// The step a job is in and when it entered it, to log the step's duration when it ends.
struct CurrentStep {
    step: Step,
    since_ms: u64,
}

pub struct ProgressRenderer<W: Write> {
    multi: MultiProgress,
    out: W,
    palette: Palette,
    jobs: Vec<JobInfo>,
    ships: HashMap<String, ShipLine>,
    steps: HashMap<usize, CurrentStep>,
}

impl<W: Write> ProgressRenderer<W> {
    /// `target` is where the live lines go (stderr in the CLI, hidden or in-memory in
    /// tests); `out` receives the summary table once the live lines are done.
    pub fn new(target: ProgressDrawTarget, out: W, palette: Palette) -> Self {
        ProgressRenderer {
            multi: MultiProgress::with_draw_target(target),
            out,
            palette,
            jobs: Vec::new(),
            ships: HashMap::new(),
            steps: HashMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::PlanStarted { jobs, command, .. } => self.plan_started(command, jobs),
            EventKind::JobStarted { job, ship, .. } => {
                self.steps.insert(
                    *job,
                    CurrentStep {
                        step: Step::Message {
                            text: "beginning".into(),
                        },
                        since_ms: event.at_ms,
                    },
                );
                if let Some(line) = self.ships.get_mut(ship) {
                    line.in_flight.push(*job);
                }
                self.refresh(ship);
            }
            EventKind::Step {
                job,
                instance,
                ship,
                step,
            } => {
                // Messages are news, not a state to wait in: log them as they come.
                if let Step::Message { text } = step {
                    let line = self
                        .palette
                        .dim(&format!("  {}: {text}", self.label(instance, ship)));
                    self.println(&line);
                }
                let moved_on = self
                    .steps
                    .get(job)
                    .is_some_and(|current| current.step.kind_name() != step.kind_name());
                if moved_on {
                    self.log_step_finished(*job, instance, ship, event.at_ms);
                }
                let since_ms = if moved_on {
                    event.at_ms
                } else {
                    self.steps.get(job).map_or(event.at_ms, |c| c.since_ms)
                };
                self.steps.insert(
                    *job,
                    CurrentStep {
                        step: step.clone(),
                        since_ms,
                    },
                );
                self.refresh(ship);
            }
            EventKind::JobDone {
                job,
                instance,
                ship,
                elapsed_ms,
                outcome,
            } => {
                let text = format!(
                    "{} {} {} ({})",
                    self.palette.good("✔"),
                    self.label(instance, ship),
                    self.palette.good(outcome.as_str()),
                    format_duration(*elapsed_ms)
                );
                self.job_ended(*job, ship, Ending::Done, &[text]);
            }
            EventKind::JobFailed {
                job,
                instance,
                ship,
                elapsed_ms,
                reason,
                log_tail,
            } => {
                let mut lines = vec![format!(
                    "{} {} {} after {}: {reason}",
                    self.palette.bad("✘"),
                    self.label(instance, ship),
                    self.palette.bad("failed"),
                    format_duration(*elapsed_ms)
                )];
                lines.extend(
                    log_tail
                        .iter()
                        .map(|l| self.palette.dim(&format!("    | {l}"))),
                );
                self.job_ended(*job, ship, Ending::Failed, &lines);
            }
            EventKind::JobSkipped {
                job,
                instance,
                ship,
                reason,
            }
            | EventKind::JobCancelled {
                job,
                instance,
                ship,
                reason,
            } => {
                let word = super::not_attempted_word(&event.kind);
                let text = format!(
                    "{} {} {}: {reason}",
                    self.palette.warn("-"),
                    self.label(instance, ship),
                    self.palette.warn(word)
                );
                self.job_ended(*job, ship, Ending::NotAttempted, &[text]);
            }
            EventKind::Interrupted { abort } => {
                let text = if *abort {
                    self.palette.bad("aborted: dropping operations in progress")
                } else {
                    self.palette.warn(
                        "interrupted: starting nothing new, letting operations in progress finish (Ctrl-C again to abort)",
                    )
                };
                self.println(&text);
            }
            EventKind::PlanFinished { summary } => {
                self.finish();
                write!(self.out, "{}", summary::render_table(summary, self.palette))?;
                self.out.flush()?;
            }
        }
        Ok(())
    }

    /// Stops the live lines, leaving their last state on screen. Idempotent; also called
    /// when the stream ends without a `PlanFinished` (e.g. the run returned an error).
    pub fn finish(&mut self) {
        for line in self.ships.values() {
            if !line.bar.is_finished() {
                line.bar.finish();
            }
        }
    }

    fn plan_started(&mut self, command: &str, jobs: &[JobInfo]) {
        // A command like restart runs two plans on one stream: retire the previous lines.
        self.finish();
        self.ships.clear();
        self.steps.clear();
        self.jobs = jobs.to_vec();

        // Ships in order of first appearance, so the layout follows the plan's order.
        let mut ship_order: Vec<&str> = Vec::new();
        for job in jobs {
            if !ship_order.contains(&job.ship.as_str()) {
                ship_order.push(&job.ship);
            }
        }
        let name_width = ship_order.iter().map(|s| s.len()).max().unwrap_or(0);
        let template = if self.palette.enabled() {
            format!(
                "{{spinner:.cyan}} {{prefix:<{name_width}.bold}} {{pos:>3}}/{{len:<3}} {{wide_msg}}"
            )
        } else {
            format!("{{spinner}} {{prefix:<{name_width}}} {{pos:>3}}/{{len:<3}} {{wide_msg}}")
        };
        // The template is built from a fixed pattern and a number; a failure would be a bug
        // here, and the default style is an acceptable fallback for a progress line.
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓");
        self.println(&format!(
            "{} {} jobs on {} ships",
            self.palette.strong(command),
            jobs.len(),
            ship_order.len()
        ));
        for ship in ship_order {
            let total = jobs.iter().filter(|j| j.ship == ship).count() as u64;
            let bar = self.multi.add(ProgressBar::new(total));
            bar.set_style(style.clone());
            bar.set_prefix(ship.to_string());
            bar.set_message("waiting");
            bar.enable_steady_tick(Duration::from_millis(120));
            self.ships.insert(
                ship.to_string(),
                ShipLine {
                    bar,
                    finished: 0,
                    failed: 0,
                    not_attempted: 0,
                    in_flight: Vec::new(),
                },
            );
        }
    }

    fn job_ended(&mut self, job: usize, ship: &str, ending: Ending, lines: &[String]) {
        // The final step ends with the job; a line for it would repeat the job's line.
        self.steps.remove(&job);
        for text in lines {
            self.println(text);
        }
        if let Some(line) = self.ships.get_mut(ship) {
            line.in_flight.retain(|&j| j != job);
            line.finished += 1;
            match ending {
                Ending::Done => {}
                Ending::Failed => line.failed += 1,
                Ending::NotAttempted => line.not_attempted += 1,
            }
            line.bar.set_position(line.finished);
        }
        self.refresh(ship);
    }

    fn log_step_finished(&mut self, job: usize, instance: &str, ship: &str, now_ms: u64) {
        if let Some(current) = self.steps.get(&job) {
            if matches!(current.step, Step::Message { .. }) {
                return;
            }
            let text = self.palette.dim(&format!(
                "  {} {} ({})",
                self.label(instance, ship),
                current.step.kind_name(),
                format_duration(now_ms.saturating_sub(current.since_ms))
            ));
            self.println(&text);
        }
    }

    /// Redraws one ship's line from what is in flight there.
    fn refresh(&self, ship: &str) {
        let Some(line) = self.ships.get(ship) else {
            return;
        };
        let total = line.bar.length().unwrap_or(0);
        let mut parts: Vec<String> = line
            .in_flight
            .iter()
            .map(|job| {
                let instance = self.jobs.get(*job).map_or("?", |j| j.instance.as_str());
                match self.steps.get(job).map(|c| &c.step) {
                    Some(Step::Pulling {
                        percent: Some(percent),
                        detail,
                    }) => format!("{instance}: pulling {} {detail}", pull_bar(*percent))
                        .trim_end()
                        .to_string(),
                    Some(step) => format!("{instance}: {step}"),
                    None => instance.to_string(),
                }
            })
            .collect();
        if parts.is_empty() {
            parts.push(if line.finished >= total {
                "done".into()
            } else {
                "waiting".into()
            });
        }
        let mut message = parts.join(", ");
        // Trouble stays visible on the ship's line after the log lines have scrolled away.
        if line.not_attempted > 0 {
            message = format!(
                "{} {message}",
                self.palette
                    .warn(&format!("[{} not attempted]", line.not_attempted))
            );
        }
        if line.failed > 0 {
            message = format!(
                "{} {message}",
                self.palette.bad(&format!("[{} failed]", line.failed))
            );
        }
        line.bar.set_message(message);
    }

    fn label(&self, instance: &str, ship: &str) -> String {
        format!("{} on {ship}", self.palette.strong(instance))
    }

    /// Log lines go above the live lines; when the target is hidden there is nowhere to put
    /// them, which is fine (the summary table still says everything).
    fn println(&self, text: &str) {
        let _ = self.multi.println(text);
    }
}

/// `[#########-----------] 45%`
fn pull_bar(percent: u8) -> String {
    let percent = usize::from(percent.min(100));
    let filled = percent * PULL_BAR_WIDTH / 100;
    format!(
        "[{}{}] {percent:>3}%",
        "#".repeat(filled),
        "-".repeat(PULL_BAR_WIDTH - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_bar_fills_proportionally() {
        assert_eq!(pull_bar(0), "[--------------------]   0%");
        assert_eq!(pull_bar(45), "[#########-----------]  45%");
        assert_eq!(pull_bar(200), "[####################] 100%");
    }
}

#[cfg(test)]
mod render_tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;
    use crate::orchestrate::events::{Direction, Outcome};
    use crate::orchestrate::executor::{JobReport, JobState, Summary};

    /// A terminal that keeps every line written to it, to see what the live view drew.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn events() -> Vec<Event> {
        let ev = |at_ms, kind| Event { at_ms, kind };
        let who = |job: usize| match job {
            0 => ("db1".to_string(), "alpha".to_string()),
            _ => ("web1".to_string(), "beta".to_string()),
        };
        let report = |job: usize, state: JobState| JobReport {
            job,
            instance: who(job).0,
            service: "svc".into(),
            ship: who(job).1,
            state,
            started_at_ms: Some(0),
            finished_at_ms: Some(500),
        };
        vec![
            ev(
                0,
                EventKind::PlanStarted {
                    command: "start".into(),
                    direction: Direction::Forward,
                    jobs: (0..2)
                        .map(|job| JobInfo {
                            job,
                            instance: who(job).0,
                            service: "svc".into(),
                            ship: who(job).1,
                        })
                        .collect(),
                },
            ),
            ev(
                1,
                EventKind::JobStarted {
                    job: 0,
                    instance: who(0).0,
                    ship: who(0).1,
                },
            ),
            ev(
                2,
                EventKind::Step {
                    job: 0,
                    instance: who(0).0,
                    ship: who(0).1,
                    step: Step::Pulling {
                        percent: Some(40),
                        detail: "layers".into(),
                    },
                },
            ),
            ev(
                3,
                EventKind::Step {
                    job: 0,
                    instance: who(0).0,
                    ship: who(0).1,
                    step: Step::Starting,
                },
            ),
            ev(
                4,
                EventKind::JobDone {
                    job: 0,
                    instance: who(0).0,
                    ship: who(0).1,
                    elapsed_ms: 3,
                    outcome: Outcome::Started,
                },
            ),
            ev(
                5,
                EventKind::JobStarted {
                    job: 1,
                    instance: who(1).0,
                    ship: who(1).1,
                },
            ),
            ev(6, EventKind::Interrupted { abort: false }),
            ev(
                7,
                EventKind::JobFailed {
                    job: 1,
                    instance: who(1).0,
                    ship: who(1).1,
                    elapsed_ms: 2,
                    reason: "boom".into(),
                    log_tail: vec!["last".into()],
                },
            ),
            ev(
                8,
                EventKind::PlanFinished {
                    summary: Summary {
                        command: "start".into(),
                        jobs: vec![
                            report(
                                0,
                                JobState::Done {
                                    outcome: Outcome::Started,
                                },
                            ),
                            report(
                                1,
                                JobState::Failed {
                                    reason: "boom".into(),
                                    log_tail: vec![],
                                },
                            ),
                        ],
                        interrupted: true,
                        aborted: false,
                        started_at_ms: 0,
                        finished_at_ms: 8,
                    },
                },
            ),
        ]
    }

    #[test]
    fn runs_on_a_hidden_target_and_still_writes_the_summary() {
        let mut renderer = ProgressRenderer::new(
            ProgressDrawTarget::hidden(),
            Vec::new(),
            Palette::new(false),
        );
        for event in events() {
            renderer.event(&event).unwrap();
        }
        renderer.finish();
        let out = String::from_utf8(renderer.into_inner()).unwrap();
        assert!(out.starts_with("#  INSTANCE"), "{out}");
        assert!(out.contains("interrupted"), "{out}");
    }

    #[test]
    fn draws_one_line_per_ship_and_logs_finished_steps() {
        let term = Recorder::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 255);
        let mut renderer = ProgressRenderer::new(target, Vec::new(), Palette::new(false));
        let mut seen_pull_bar = false;
        for event in events() {
            renderer.event(&event).unwrap();
            // Draws are rate limited; look at every frame written so far.
            seen_pull_bar |= term
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("db1: pulling [########"));
        }
        let written = term.0.lock().unwrap().join("\n");
        assert!(written.contains("alpha"), "{written}");
        assert!(written.contains("beta"), "{written}");
        assert!(written.contains("db1 on alpha started"), "{written}");
        assert!(
            written.contains("db1 on alpha pulling"),
            "finished step logged: {written}"
        );
        assert!(written.contains("web1 on beta failed after"), "{written}");
        assert!(written.contains("    | last"), "{written}");
        // The pull comes early, within the rate limiter's initial burst, so its frame is drawn.
        assert!(seen_pull_bar, "{written}");
    }
}
