//! The live view for a terminal: a live area (one line per ship, or a compact view when
//! the fleet outgrows the terminal; see `ui::live`) above a scrolling log of finished
//! steps, then the summary table.
//!
//! One line per *ship* rather than per instance because that is what stays readable with
//! dozens of instances, and because the questions during a deployment are per host: which
//! one is slow, which one is stuck.
//!
//! indicatif only draws: the live area is a single bar whose whole text is ours, and it is
//! drawn only when this renderer asks (on events, at most every [`MIN_FRAME_MS`], and on
//! [`ProgressRenderer::tick`]), so what is drawn depends on the events and the clock we
//! give it, not on indicatif's own timers.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::describe::{Describer, Mark, Subject};
use super::live::{Board, View};
use super::{Palette, format_duration, summary};
use crate::orchestrate::engine::events::{Event, EventKind, Step};

/// How often the render loop should call [`ProgressRenderer::tick`]: often enough for the
/// spinners and the connecting times to look alive, rarely enough to cost nothing.
pub const TICK: Duration = Duration::from_millis(100);

/// Least time between two frames drawn because of events. A hundred ships can send
/// hundreds of events a second; redrawing a screenful for each would cost more terminal
/// output than the deployment is worth watching, and nobody reads faster than this.
const MIN_FRAME_MS: u64 = 50;

/// Where "now" comes from for the live times (connecting for 1.2s, the overall elapsed).
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// The wall clock, anchored on the first event received (events carry times since the
    /// run began, which is the base the live times must share).
    Wall { anchor: Option<(u64, Instant)> },
    /// The time of the latest event: a recorded stream replays the same frames however fast
    /// it is fed, which is what tests want.
    Events,
}

/// Where the terminal's size comes from.
#[derive(Debug, Clone, Copy)]
enum Size {
    /// Asked at every frame, so a resized terminal gets a layout that fits it.
    Stderr,
    Fixed(View),
}

/// The live area: one indicatif bar whose text is whatever lines we last put in `text`.
struct LiveArea {
    bar: ProgressBar,
    text: Arc<Mutex<String>>,
}

pub struct ProgressRenderer<W: Write> {
    multi: MultiProgress,
    live: Option<LiveArea>,
    out: W,
    palette: Palette,
    board: Board,
    clock: Clock,
    size: Size,
    min_frame_ms: u64,
    last_frame_ms: Option<u64>,
    /// The latest event time seen; "now" never goes back before it.
    latest_ms: u64,
    describer: Describer,
}

impl<W: Write> ProgressRenderer<W> {
    /// `target` is where the live lines go (stderr in the CLI, hidden or in-memory in
    /// tests); `out` receives the summary table once the live lines are done. Times shown
    /// follow the wall clock and the layout follows the size of the terminal on stderr.
    pub fn new(target: ProgressDrawTarget, out: W, palette: Palette) -> Self {
        ProgressRenderer {
            multi: MultiProgress::with_draw_target(target),
            live: None,
            out,
            palette,
            board: Board::default(),
            clock: Clock::Wall { anchor: None },
            size: Size::Stderr,
            min_frame_ms: MIN_FRAME_MS,
            last_frame_ms: None,
            latest_ms: 0,
            describer: Describer::default(),
        }
    }

    /// Shows times from the events alone (see [`Clock::Events`]): for replaying a recorded
    /// stream, where the wall clock would make every run draw different frames.
    pub fn replaying(mut self) -> Self {
        self.clock = Clock::Events;
        self
    }

    /// Lays out for a terminal of this size instead of asking stderr's.
    pub fn with_size(mut self, rows: u16, cols: u16) -> Self {
        self.size = Size::Fixed(View { rows, cols });
        self
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        self.observe_time(event.at_ms);
        match &event.kind {
            EventKind::PlanFinished { summary } => {
                self.finish();
                write!(self.out, "{}", summary::render_table(summary, self.palette))?;
                return self.out.flush();
            }
            // A command like restart runs two plans on one stream: retire the previous live
            // area before laying out the new one.
            EventKind::PlanStarted { .. } => self.finish(),
            _ => {}
        }
        // Worked out before the board moves on: a step's duration needs the step it leaves.
        let log = self.log_lines(event);
        self.board.apply(event);
        if matches!(event.kind, EventKind::PlanStarted { .. }) {
            self.start_live_area();
        }
        self.show(&log);
        Ok(())
    }

    /// What the scrolling log says about an event, if anything. Steps are on the board
    /// while they last; the log keeps the news among them and how long each one took.
    fn log_lines(&mut self, event: &Event) -> Vec<String> {
        let p = self.palette;
        let said = self.describer.describe(event);
        match (&event.kind, said.subject) {
            (
                EventKind::ShipConnecting { .. }
                | EventKind::JobStarted { .. }
                | EventKind::PlanFinished { .. },
                _,
            ) => vec![],
            (EventKind::Step { job, step, .. }, Subject::Job { instance, ship }) => {
                self.step_lines(event.at_ms, *job, step, &said.verdict, instance, ship)
            }
            (_, Subject::Plan(command)) => vec![format!(
                "{} {}",
                p.strong(command),
                said.detail.as_deref().unwrap_or_default()
            )],
            // A line without a mark is news, not an outcome: dimmed, in one colour.
            (_, Subject::Ship(ship)) if said.mark == Mark::None => {
                vec![p.dim(&format!("  {ship} {}", said.outcome(Palette::new(false))))]
            }
            (_, Subject::Ship(ship)) => vec![format!(
                "{} {} {}",
                said.mark.paint(p),
                p.strong(ship),
                said.outcome(p)
            )],
            (_, Subject::Job { instance, ship }) => {
                let mut lines = vec![format!(
                    "{} {} {}",
                    said.mark.paint(p),
                    self.label(instance, ship),
                    said.outcome(p)
                )];
                lines.extend(said.quoted.iter().map(|l| p.dim(&format!("    | {l}"))));
                lines
            }
            (_, Subject::Run) => vec![said.tone.paint(p, &said.outcome(Palette::new(false)))],
        }
    }

    /// The log lines for a step: a message or what a push sent as it comes (news, not a
    /// state to wait in), and the step it leaves with how long that took.
    fn step_lines(
        &self,
        at_ms: u64,
        job: usize,
        step: &Step,
        said: &str,
        instance: &str,
        ship: &str,
    ) -> Vec<String> {
        let p = self.palette;
        let mut lines = Vec::new();
        if matches!(step, Step::Message { .. } | Step::Pushed { .. }) {
            lines.push(p.dim(&format!("  {}: {said}", self.label(instance, ship))));
        }
        if let Some(current) = self.board.current_step(job)
            && current.step.kind_name() != step.kind_name()
            && !matches!(current.step, Step::Message { .. })
        {
            lines.push(p.dim(&format!(
                "  {} {} ({})",
                self.label(instance, ship),
                current.step.kind_name(),
                format_duration(at_ms.saturating_sub(current.since_ms))
            )));
        }
        lines
    }

    /// Puts an event's log lines above the live area and redraws it. With log lines the
    /// frame is drawn whatever the rate: printing redraws the area anyway, and it had better
    /// agree with the line just logged (not say "starting" under "started").
    fn show(&mut self, log: &[String]) {
        if log.is_empty() {
            self.draw(false);
            return;
        }
        let text = log.join("\n");
        if self.live.is_none() {
            self.println(&text);
            return;
        }
        let now = self.now_ms();
        let lines = self.board.lines(self.view(), now, self.palette);
        if let Some(live) = &self.live {
            *lock(&live.text) = lines.join("\n");
            // Through the bar rather than the MultiProgress: the bar's println draws the
            // text and the bar's fresh lines in one go, where the other would redraw the
            // lines from its last frame.
            live.bar.println(text);
        }
        self.last_frame_ms = Some(now);
    }

    /// Redraws the live area at the current time, so that spinners turn and connecting
    /// times count up between events. Meant to be called every [`TICK`].
    pub fn tick(&mut self) {
        self.draw(true);
    }

    /// Stops the live area, leaving its last state on screen as ordinary lines (so a later
    /// plan's live area starts below it). Idempotent; also called when the stream ends
    /// without a `PlanFinished` (e.g. the run returned an error).
    pub fn finish(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        let lines = self.board.lines(self.view(), self.now_ms(), self.palette);
        lock(&live.text).clear();
        live.bar.finish_and_clear();
        if !lines.is_empty() {
            self.println(&lines.join("\n"));
        }
        self.multi.remove(&live.bar);
    }

    fn start_live_area(&mut self) {
        let text = Arc::new(Mutex::new(String::new()));
        let shared = Arc::clone(&text);
        // The template is a fixed string; a failure would be a bug here, and the default
        // style (an empty spinner) is an acceptable fallback for a progress line.
        let style = ProgressStyle::with_template("{live}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "live",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&lock(&shared));
                },
            );
        let bar = self.multi.add(ProgressBar::hidden().with_style(style));
        self.live = Some(LiveArea { bar, text });
        self.last_frame_ms = None;
    }

    /// Draws the live area, unless a frame was drawn less than `min_frame_ms` ago and
    /// `force` is not set (the next event or tick catches up).
    fn draw(&mut self, force: bool) {
        let now = self.now_ms();
        let Some(live) = &self.live else {
            return;
        };
        if !force
            && self
                .last_frame_ms
                .is_some_and(|last| now < last.saturating_add(self.min_frame_ms))
        {
            return;
        }
        let lines = self.board.lines(self.view(), now, self.palette);
        *lock(&live.text) = lines.join("\n");
        live.bar.force_draw();
        self.last_frame_ms = Some(now);
    }

    fn observe_time(&mut self, at_ms: u64) {
        self.latest_ms = self.latest_ms.max(at_ms);
        if let Clock::Wall { anchor: None } = self.clock {
            self.clock = Clock::Wall {
                anchor: Some((at_ms, Instant::now())),
            };
        }
    }

    fn now_ms(&self) -> u64 {
        match self.clock {
            Clock::Wall {
                anchor: Some((at_ms, instant)),
            } => {
                let elapsed = u64::try_from(instant.elapsed().as_millis()).unwrap_or(u64::MAX);
                at_ms.saturating_add(elapsed).max(self.latest_ms)
            }
            Clock::Wall { anchor: None } | Clock::Events => self.latest_ms,
        }
    }

    fn view(&self) -> View {
        match self.size {
            Size::Fixed(view) => view,
            Size::Stderr => {
                let (rows, cols) = console::Term::stderr().size();
                View { rows, cols }
            }
        }
    }

    fn label(&self, instance: &str, ship: &str) -> String {
        format!("{} on {ship}", self.palette.strong(instance))
    }

    /// Log lines go above the live area; when the target is hidden there is nowhere to put
    /// them, which is fine (the summary table still says everything).
    fn println(&self, text: &str) {
        let _ = self.multi.println(text);
    }
}

/// The live text's lock: a panic elsewhere while holding it leaves a string, still fine
/// to draw or replace.
fn lock(text: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    text.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod render_tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;
    use crate::orchestrate::engine::events::{JobInfo, Outcome};
    use crate::orchestrate::engine::executor::{JobReport, JobState, Summary};
    use crate::orchestrate::plan::select::Direction;

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
        let started = |job: usize| EventKind::JobStarted {
            job,
            instance: who(job).0,
            ship: who(job).1,
        };
        let step = |step: Step| EventKind::Step {
            job: 0,
            instance: who(0).0,
            ship: who(0).1,
            step,
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
        let jobs = (0..2)
            .map(|job| JobInfo {
                job,
                instance: who(job).0,
                service: "svc".into(),
                ship: who(job).1,
            })
            .collect();
        let pulling = Step::Pulling {
            percent: Some(40),
            detail: "layers".into(),
        };
        let done = JobState::Done {
            outcome: Outcome::Started,
        };
        let failed = JobState::Failed {
            reason: "boom".into(),
            log_tail: vec![],
        };
        let summary = Summary {
            command: "start".into(),
            jobs: vec![report(0, done), report(1, failed)],
            interrupted: true,
            aborted: false,
            started_at_ms: 0,
            finished_at_ms: 8,
        };
        vec![
            ev(
                0,
                EventKind::PlanStarted {
                    command: "start".into(),
                    direction: Direction::Forward,
                    jobs,
                },
            ),
            ev(1, started(0)),
            ev(2, step(pulling)),
            ev(3, step(Step::Starting)),
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
            ev(5, started(1)),
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
            ev(8, EventKind::PlanFinished { summary }),
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
        let mut renderer = ProgressRenderer::new(target, Vec::new(), Palette::new(false))
            .replaying()
            .with_size(24, 100);
        // Every event's frame, so that the short-lived pull shows up.
        renderer.min_frame_ms = 0;
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
        assert!(seen_pull_bar, "{written}");
    }

    /// A log line and the live area under it are drawn together, from the same state: a
    /// job logged as started is not shown as still starting below.
    #[test]
    fn a_logged_line_comes_with_a_frame_that_agrees_with_it() {
        let term = Recorder::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 255);
        // Rate limited as in the CLI: the log line must bring its own frame.
        let mut renderer = ProgressRenderer::new(target, Vec::new(), Palette::new(false))
            .replaying()
            .with_size(24, 100);
        for event in events().into_iter().take(5) {
            renderer.event(&event).unwrap();
        }
        let written = term.0.lock().unwrap().clone();
        let logged = written
            .iter()
            .rposition(|l| l.contains("db1 on alpha started"))
            .expect("the job's end is logged");
        let alpha = written[logged + 1..]
            .iter()
            .find(|l| l.contains("alpha "))
            .expect("a frame follows the log line");
        assert!(alpha.starts_with("✓ alpha   1/1   done"), "{alpha:?}");
    }
}
