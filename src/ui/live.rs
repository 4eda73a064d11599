//! What the live area of the progress view shows, apart from any terminal: the state of
//! every ship, built from the event stream, and the lines to draw for it at a given moment
//! in a terminal of a given size.
//!
//! Kept pure (no indicatif, no clock, no terminal) so that the layout, which has to stay
//! within the terminal whatever the size of the fleet, is tested by feeding events and
//! reading strings; `ui::progress` only decides when to draw and where.

use std::collections::HashMap;

use console::truncate_str;

use super::{Palette, format_duration};
use crate::orchestrate::engine::events::{Event, EventKind, JobInfo, Step};

/// Width of the hand-drawn pull bar inside a ship line. Drawn by hand (not an indicatif
/// bar) because the ship line's position already counts jobs, and a ship can pull for
/// several instances at once.
const PULL_BAR_WIDTH: usize = 20;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// How long each spinner frame lasts. The frame is derived from the time being shown, not
/// from how often we draw, so a replayed stream draws the same frames on any machine.
const SPINNER_FRAME_MS: u64 = 120;

/// The size of the terminal the lines are for, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub rows: u16,
    pub cols: u16,
}

/// How the live area is laid out for a fleet in a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One line per ship, as long as they all fit: the most direct answer to "which host is
    /// slow, which one is stuck".
    PerShip,
    /// One overall line, then as many working or failed ships as fit, in at most
    /// `max_lines` lines in all.
    Compact { max_lines: usize },
}

/// One line per ship while `ships + 1 <= rows - 2`, i.e. the ship lines, the line the
/// cursor rests on below them, and two lines of the scrolling log above, so finished steps
/// are still seen going by. Beyond that, the compact view.
pub fn choose_layout(ships: usize, rows: u16) -> Layout {
    let rows = usize::from(rows);
    if ships + 3 <= rows {
        Layout::PerShip
    } else {
        Layout::Compact {
            max_lines: compact_height(rows),
        }
    }
}

/// `rows - 2` (the cursor's line and one line of log), but always at least the overall
/// line, and never more than `rows - 1`: in a terminal of one row there is no room for a
/// live area at all.
fn compact_height(rows: usize) -> usize {
    rows.saturating_sub(2).max(1).min(rows.saturating_sub(1))
}

/// How a job ended, as far as its ship's line is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnding {
    Done,
    Failed,
    NotAttempted,
}

impl JobEnding {
    pub fn of(kind: &EventKind) -> Option<JobEnding> {
        match kind {
            EventKind::JobDone { .. } => Some(JobEnding::Done),
            EventKind::JobFailed { .. } => Some(JobEnding::Failed),
            EventKind::JobSkipped { .. } | EventKind::JobCancelled { .. } => {
                Some(JobEnding::NotAttempted)
            }
            _ => None,
        }
    }
}

/// The step a job is in and when it entered it, to log the step's duration when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentStep {
    pub step: Step,
    pub since_ms: u64,
}

/// Where a ship's connection stands. `Unknown` is normal: commands that do not connect,
/// and older streams, send no connect events at all.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Connect {
    Unknown,
    Connecting { since_ms: u64 },
    Connected,
    Failed { elapsed_ms: u64, reason: String },
}

#[derive(Debug, Clone)]
struct ShipState {
    name: String,
    total: u64,
    finished: u64,
    failed: u64,
    /// Skipped or cancelled: not attempted, as opposed to attempted and failed.
    not_attempted: u64,
    /// Jobs in progress on this ship, in the order they began.
    in_flight: Vec<usize>,
    connect: Connect,
    /// When the ship first began working (connecting or running a job): orders the
    /// compact view. Kept through the short idle moments between a connection and a job,
    /// or between two jobs, so that a ship keeps its place in the list.
    active_since: Option<u64>,
    /// When the ship first had trouble (a failed job, or unreachable).
    failed_since: Option<u64>,
}

impl ShipState {
    fn is_connecting(&self) -> bool {
        matches!(self.connect, Connect::Connecting { .. })
    }

    fn is_working(&self) -> bool {
        self.is_connecting() || !self.in_flight.is_empty()
    }

    fn has_failed(&self) -> bool {
        self.failed > 0 || matches!(self.connect, Connect::Failed { .. })
    }

    fn is_finished(&self) -> bool {
        self.finished >= self.total && !self.is_working()
    }

    /// Nothing more will change on this ship's line by itself: finished, or unreachable
    /// and only waiting for its jobs to be failed.
    fn is_settled(&self) -> bool {
        self.is_finished() || (!self.is_working() && matches!(self.connect, Connect::Failed { .. }))
    }

    /// Notes when the ship first worked or first failed, after any change.
    fn note_activity(&mut self, at_ms: u64) {
        if self.is_working() && self.active_since.is_none() {
            self.active_since = Some(at_ms);
        }
        if self.has_failed() && self.failed_since.is_none() {
            self.failed_since = Some(at_ms);
        }
    }
}

/// The state of one plan, fed event by event.
#[derive(Debug, Clone, Default)]
pub struct Board {
    jobs: Vec<JobInfo>,
    /// In order of first appearance in the plan, so the layout follows the plan's order.
    ships: Vec<ShipState>,
    by_name: HashMap<String, usize>,
    steps: HashMap<usize, CurrentStep>,
    started_ms: u64,
    /// Whether this plan sent any connect event: only then is "N connected" news.
    connect_events: bool,
}

impl Board {
    pub fn current_step(&self, job: usize) -> Option<&CurrentStep> {
        self.steps.get(&job)
    }

    /// Updates the state for one event. A `PlanStarted` starts a new board (a restart runs
    /// two plans on one stream); events about ships or jobs not in the plan are ignored,
    /// since a renderer must never fail a run over what it is shown.
    pub fn apply(&mut self, event: &Event) {
        let at = event.at_ms;
        match &event.kind {
            EventKind::PlanStarted { jobs, .. } => self.plan_started(jobs, at),
            EventKind::ShipConnecting { ship } => {
                self.connect_events = true;
                self.update_ship(ship, at, |s| {
                    s.connect = Connect::Connecting { since_ms: at };
                });
            }
            EventKind::ShipConnected { ship, .. } => {
                self.connect_events = true;
                self.update_ship(ship, at, |s| s.connect = Connect::Connected);
            }
            EventKind::ShipConnectFailed {
                ship,
                elapsed_ms,
                reason,
            } => {
                self.connect_events = true;
                self.update_ship(ship, at, |s| {
                    s.connect = Connect::Failed {
                        elapsed_ms: *elapsed_ms,
                        reason: reason.clone(),
                    };
                });
            }
            EventKind::JobStarted { job, ship, .. } => {
                self.steps.insert(
                    *job,
                    CurrentStep {
                        step: Step::Message {
                            text: "beginning".into(),
                        },
                        since_ms: at,
                    },
                );
                self.update_ship(ship, at, |s| s.in_flight.push(*job));
            }
            EventKind::Step { job, step, .. } => {
                // Repeated updates of one step (pull percentages, check attempts) keep the
                // time the step began, so its logged duration is the whole step's.
                let since_ms = match self.steps.get(job) {
                    Some(current) if current.step.kind_name() == step.kind_name() => {
                        current.since_ms
                    }
                    _ => at,
                };
                self.steps.insert(
                    *job,
                    CurrentStep {
                        step: step.clone(),
                        since_ms,
                    },
                );
            }
            EventKind::JobDone { job, ship, .. }
            | EventKind::JobFailed { job, ship, .. }
            | EventKind::JobSkipped { job, ship, .. }
            | EventKind::JobCancelled { job, ship, .. } => {
                let Some(ending) = JobEnding::of(&event.kind) else {
                    return;
                };
                self.steps.remove(job);
                self.update_ship(ship, at, |s| {
                    s.in_flight.retain(|j| j != job);
                    s.finished += 1;
                    match ending {
                        JobEnding::Done => {}
                        JobEnding::Failed => s.failed += 1,
                        JobEnding::NotAttempted => s.not_attempted += 1,
                    }
                });
            }
            EventKind::Interrupted { .. } | EventKind::PlanFinished { .. } => {}
        }
    }

    fn plan_started(&mut self, jobs: &[JobInfo], at_ms: u64) {
        *self = Board {
            jobs: jobs.to_vec(),
            started_ms: at_ms,
            ..Board::default()
        };
        for job in jobs {
            let index = match self.by_name.get(&job.ship) {
                Some(&index) => index,
                None => {
                    self.by_name.insert(job.ship.clone(), self.ships.len());
                    self.ships.push(ShipState {
                        name: job.ship.clone(),
                        total: 0,
                        finished: 0,
                        failed: 0,
                        not_attempted: 0,
                        in_flight: Vec::new(),
                        connect: Connect::Unknown,
                        active_since: None,
                        failed_since: None,
                    });
                    self.ships.len() - 1
                }
            };
            self.ships[index].total += 1;
        }
    }

    fn update_ship(&mut self, ship: &str, at_ms: u64, change: impl FnOnce(&mut ShipState)) {
        if let Some(state) = self.by_name.get(ship).and_then(|&i| self.ships.get_mut(i)) {
            change(state);
            state.note_activity(at_ms);
        }
    }

    /// The lines of the live area at `now_ms` (in the events' time base), each fitting in
    /// the view's width, and never more than `view.rows - 1` of them.
    pub fn lines(&self, view: View, now_ms: u64, palette: Palette) -> Vec<String> {
        if self.ships.is_empty() {
            return Vec::new();
        }
        let lines = match choose_layout(self.ships.len(), view.rows) {
            Layout::PerShip => {
                let width = self.name_width();
                self.ships
                    .iter()
                    .map(|ship| self.ship_line(ship, width, now_ms, palette))
                    .collect()
            }
            Layout::Compact { max_lines } => self.compact_lines(max_lines, now_ms, palette),
        };
        // One column spare: a character the terminal draws wider than Unicode says (some
        // fonts do with ✘ or …) would otherwise wrap the line and push the area down.
        let width = usize::from(view.cols).saturating_sub(1).max(1);
        lines
            .into_iter()
            .map(|line| truncate_str(&line, width, "…").into_owned())
            .collect()
    }

    /// The compact view: the overall line, then the failed and working ships that fit.
    ///
    /// Failed ships come first, in the order they failed: trouble must stay on screen after
    /// its log lines have scrolled away, and that order only ever appends. Working ships
    /// follow in the order they began: those still at it are then the slowest, which are
    /// the ones an operator looks for, and a ship only moves up when one above it finishes,
    /// so lines do not jump about on every event as "most recently active first" would at
    /// a hundred ships. Failed ships get at most half the rows while working ships
    /// want them, so a wave of failures cannot hide what is still running.
    fn compact_lines(&self, max_lines: usize, now_ms: u64, palette: Palette) -> Vec<String> {
        if max_lines == 0 {
            return Vec::new();
        }
        let mut lines = vec![self.overall_line(now_ms, palette)];
        if max_lines == 1 {
            return lines;
        }
        let mut failed: Vec<(usize, &ShipState)> = self
            .ships
            .iter()
            .enumerate()
            .filter(|(_, s)| s.has_failed())
            .collect();
        failed.sort_by_key(|(i, s)| (s.failed_since, *i));
        let mut working: Vec<(usize, &ShipState)> = self
            .ships
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.has_failed() && s.is_working())
            .collect();
        working.sort_by_key(|(i, s)| (s.active_since, *i));

        let slots = max_lines - 1;
        let wanted = failed.len() + working.len();
        // When not all fit, the last slot says how many did not.
        let shown = if wanted > slots { slots - 1 } else { wanted };
        let failed_shown = failed
            .len()
            .min((shown / 2).max(shown.saturating_sub(working.len())));
        let working_shown = working.len().min(shown - failed_shown);

        let width = self.name_width();
        for (_, ship) in failed
            .iter()
            .take(failed_shown)
            .chain(working.iter().take(working_shown))
        {
            lines.push(self.ship_line(ship, width, now_ms, palette));
        }
        let more_working = working.len() - working_shown;
        let more_failed = failed.len() - failed_shown;
        if more_working + more_failed > 0 {
            let mut parts = Vec::new();
            if more_working > 0 {
                parts.push(format!("{more_working} more working"));
            }
            if more_failed > 0 {
                parts.push(format!("{more_failed} more failed"));
            }
            lines.push(palette.dim(&format!("… and {}", parts.join(", "))));
        }
        lines
    }

    /// e.g. `⠧ 40 ships: 31 connected, 12 done, 1 failed · 57/80 instances · 3.4s`.
    ///
    /// Counts ships, not events: a ship that could not be reached and whose jobs then
    /// failed is one failed ship.
    fn overall_line(&self, now_ms: u64, palette: Palette) -> String {
        let ships = self.ships.len();
        let failed = self.ships.iter().filter(|s| s.has_failed()).count();
        let done = self
            .ships
            .iter()
            .filter(|s| s.is_finished() && !s.has_failed())
            .count();
        let finished_jobs: u64 = self.ships.iter().map(|s| s.finished).sum();
        let total_jobs = self.jobs.len();
        let all_finished = self.ships.iter().all(ShipState::is_finished);
        let not_attempted = self.ships.iter().any(|s| s.not_attempted > 0);
        let mark = if all_finished {
            end_mark(failed > 0, not_attempted, palette)
        } else {
            palette.accent(spinner(now_ms))
        };
        let mut counts = Vec::new();
        if self.connect_events {
            let connected = self
                .ships
                .iter()
                .filter(|s| s.connect == Connect::Connected)
                .count();
            counts.push(format!("{connected} connected"));
        }
        counts.push(palette.good(&format!("{done} done")));
        if failed > 0 {
            counts.push(palette.bad(&format!("{failed} failed")));
        }
        format!(
            "{mark} {}: {} · {finished_jobs}/{total_jobs} instances · {}",
            palette.strong(&format!(
                "{ships} ship{}",
                if ships == 1 { "" } else { "s" }
            )),
            counts.join(", "),
            format_duration(now_ms.saturating_sub(self.started_ms))
        )
    }

    fn name_width(&self) -> usize {
        self.ships.iter().map(|s| s.name.len()).max().unwrap_or(0)
    }

    /// `⠹ alpha   1/3   db1: pulling [####----] 20% 1/5 layers`
    fn ship_line(&self, ship: &ShipState, name_width: usize, now_ms: u64, p: Palette) -> String {
        let mark = if ship.is_settled() {
            end_mark(ship.has_failed(), ship.not_attempted > 0, p)
        } else {
            p.accent(spinner(now_ms))
        };
        format!(
            "{mark} {} {:>3}/{:<3} {}",
            p.strong(&format!("{:<name_width$}", ship.name)),
            ship.finished,
            ship.total,
            self.ship_message(ship, now_ms, p)
        )
    }

    fn ship_message(&self, ship: &ShipState, now_ms: u64, p: Palette) -> String {
        let parts: Vec<String> = ship
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
        // Jobs that began while their ship connects are waiting for it: say so.
        let connecting = matches!(ship.connect, Connect::Connecting { .. });
        let mut message = if !parts.is_empty() && !connecting {
            parts.join(", ")
        } else {
            match &ship.connect {
                Connect::Connecting { since_ms } => format!(
                    "connecting ({})",
                    format_duration(now_ms.saturating_sub(*since_ms))
                ),
                Connect::Failed { elapsed_ms, reason } => format!(
                    "{} ({}): {reason}",
                    p.bad("unreachable"),
                    format_duration(*elapsed_ms)
                ),
                Connect::Unknown | Connect::Connected if ship.finished >= ship.total => {
                    "done".into()
                }
                Connect::Unknown | Connect::Connected => "waiting".into(),
            }
        };
        // Trouble stays visible on the ship's line after the log lines have scrolled away.
        if ship.not_attempted > 0 {
            message = format!(
                "{} {message}",
                p.warn(&format!("[{} not attempted]", ship.not_attempted))
            );
        }
        if ship.failed > 0 {
            message = format!("{} {message}", p.bad(&format!("[{} failed]", ship.failed)));
        }
        message
    }
}

/// The mark of something that is over: ✘ if anything failed (a ✓ beside "[1 failed]"
/// would contradict itself), `-` if something was not attempted, otherwise ✓.
fn end_mark(failed: bool, not_attempted: bool, p: Palette) -> String {
    if failed {
        p.bad("✘")
    } else if not_attempted {
        p.warn("-")
    } else {
        p.good("✓")
    }
}

fn spinner(now_ms: u64) -> &'static str {
    // The index is below SPINNER.len(), which fits any usize.
    SPINNER[usize::try_from((now_ms / SPINNER_FRAME_MS) % SPINNER.len() as u64).unwrap_or(0)]
}

/// `[#########-----------] 45%`
pub fn pull_bar(percent: u8) -> String {
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
    use crate::orchestrate::engine::events::Outcome;
    use crate::orchestrate::plan::select::Direction;

    const PLAIN: Palette = Palette::new(false);

    /// Feeds events to a board, in the order written, each at the time given.
    struct Feed {
        board: Board,
    }

    impl Feed {
        /// A plan of `jobs_per_ship` jobs on each of `ships` ships named s01, s02, ...
        fn fleet(ships: usize, jobs_per_ship: usize) -> Feed {
            let jobs = (0..ships * jobs_per_ship)
                .map(|job| JobInfo {
                    job,
                    instance: format!("app{job}"),
                    service: "app".into(),
                    ship: ship_name(job / jobs_per_ship),
                })
                .collect();
            let mut feed = Feed {
                board: Board::default(),
            };
            feed.at(
                0,
                EventKind::PlanStarted {
                    command: "start".into(),
                    direction: Direction::Forward,
                    jobs,
                },
            );
            feed
        }

        fn at(&mut self, at_ms: u64, kind: EventKind) -> &mut Feed {
            self.board.apply(&Event { at_ms, kind });
            self
        }

        fn connecting(&mut self, at_ms: u64, ship: usize) -> &mut Feed {
            self.at(
                at_ms,
                EventKind::ShipConnecting {
                    ship: ship_name(ship),
                },
            )
        }

        fn connected(&mut self, at_ms: u64, ship: usize) -> &mut Feed {
            self.at(
                at_ms,
                EventKind::ShipConnected {
                    ship: ship_name(ship),
                    elapsed_ms: 100,
                },
            )
        }

        fn started(&mut self, at_ms: u64, job: usize) -> &mut Feed {
            let (instance, ship) = self.who(job);
            self.at(
                at_ms,
                EventKind::JobStarted {
                    job,
                    instance,
                    ship,
                },
            )
        }

        fn done(&mut self, at_ms: u64, job: usize) -> &mut Feed {
            let (instance, ship) = self.who(job);
            self.at(
                at_ms,
                EventKind::JobDone {
                    job,
                    instance,
                    ship,
                    elapsed_ms: 10,
                    outcome: Outcome::Started,
                },
            )
        }

        fn failed(&mut self, at_ms: u64, job: usize) -> &mut Feed {
            let (instance, ship) = self.who(job);
            self.at(
                at_ms,
                EventKind::JobFailed {
                    job,
                    instance,
                    ship,
                    elapsed_ms: 10,
                    reason: "boom".into(),
                    log_tail: vec![],
                },
            )
        }

        fn who(&self, job: usize) -> (String, String) {
            let info = &self.board.jobs[job];
            (info.instance.clone(), info.ship.clone())
        }

        fn lines(&self, rows: u16, now_ms: u64) -> Vec<String> {
            self.board.lines(View { rows, cols: 100 }, now_ms, PLAIN)
        }
    }

    /// The ship a ship line is about.
    fn name(line: &str) -> &str {
        line.split_whitespace().nth(1).unwrap_or("")
    }

    fn ship_name(index: usize) -> String {
        format!("s{:02}", index + 1)
    }

    #[test]
    fn pull_bar_fills_proportionally() {
        assert_eq!(pull_bar(0), "[--------------------]   0%");
        assert_eq!(pull_bar(45), "[#########-----------]  45%");
        assert_eq!(pull_bar(200), "[####################] 100%");
    }

    #[test]
    fn one_line_per_ship_while_they_fit_with_a_margin() {
        assert_eq!(choose_layout(2, 24), Layout::PerShip);
        assert_eq!(choose_layout(21, 24), Layout::PerShip);
        assert_eq!(choose_layout(22, 24), Layout::Compact { max_lines: 22 });
        assert_eq!(choose_layout(8, 6), Layout::Compact { max_lines: 4 });
        assert_eq!(choose_layout(3, 6), Layout::PerShip);
        assert_eq!(choose_layout(1, 3), Layout::Compact { max_lines: 1 });
        assert_eq!(choose_layout(1, 1), Layout::Compact { max_lines: 0 });
    }

    /// The promise of the compact view: whatever the fleet and whatever is going on, the
    /// live area stays below the terminal's height and within its width.
    #[test]
    fn the_live_area_never_outgrows_the_terminal() {
        for ships in [1, 2, 5, 8, 21, 22, 40, 100] {
            let mut feed = Feed::fleet(ships, 2);
            for ship in 0..ships {
                feed.connecting(ship as u64, ship);
            }
            // Half the fleet connects and starts a job; some of those fail.
            for ship in (0..ships).step_by(2) {
                feed.connected(200, ship).started(300, ship * 2);
                if ship % 3 == 0 {
                    feed.failed(400, ship * 2);
                }
            }
            for rows in 0..30u16 {
                for cols in [1u16, 10, 40, 100] {
                    let view = View { rows, cols };
                    let lines = feed.board.lines(view, 1000, PLAIN);
                    assert!(
                        lines.len() < usize::from(rows.max(1)),
                        "{ships} ships in {rows} rows: {lines:#?}"
                    );
                    for line in &lines {
                        assert!(
                            console::measure_text_width(line) < usize::from(cols.max(2)),
                            "{ships} ships, {cols} cols: {line:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_connecting_ship_counts_its_time_then_goes_back_to_its_usual_state() {
        let mut feed = Feed::fleet(2, 1);
        feed.connecting(100, 0);
        assert_eq!(
            feed.lines(24, 1300),
            ["⠋ s01   0/1   connecting (1.2s)", "⠋ s02   0/1   waiting"]
        );
        // Live: the same state a moment later shows the time gone by.
        assert_eq!(feed.lines(24, 2500)[0], "⠋ s01   0/1   connecting (2.4s)");
        feed.connected(2600, 0);
        assert_eq!(feed.lines(24, 2600)[0], "⠙ s01   0/1   waiting");
        feed.started(2700, 0);
        assert_eq!(feed.lines(24, 2700)[0], "⠹ s01   0/1   app0: beginning");
        feed.done(2800, 0);
        assert_eq!(feed.lines(24, 2800)[0], "✓ s01   1/1   done");
    }

    #[test]
    fn a_job_begun_while_its_ship_connects_shows_the_connecting() {
        // The executor starts a job at once; the job then waits for its ship.
        let mut feed = Feed::fleet(1, 1);
        feed.started(0, 0).connecting(2, 0);
        assert_eq!(feed.lines(24, 1202)[0], "⠋ s01   0/1   connecting (1.2s)");
        feed.connected(1300, 0);
        assert_eq!(feed.lines(24, 1300)[0], "⠋ s01   0/1   app0: beginning");
    }

    #[test]
    fn an_unreachable_ship_shows_the_failure_and_keeps_it() {
        let mut feed = Feed::fleet(2, 2);
        feed.connecting(0, 0).at(
            5000,
            EventKind::ShipConnectFailed {
                ship: "s01".into(),
                elapsed_ms: 5000,
                reason: "connection refused".into(),
            },
        );
        assert_eq!(
            feed.lines(24, 5000)[0],
            "✘ s01   0/2   unreachable (5.0s): connection refused"
        );
        feed.failed(5001, 0).failed(5001, 1);
        assert_eq!(
            feed.lines(24, 5001)[0],
            "✘ s01   2/2   [2 failed] unreachable (5.0s): connection refused"
        );
    }

    #[test]
    fn a_ship_whose_jobs_all_failed_is_marked_failed() {
        let mut feed = Feed::fleet(2, 1);
        feed.started(0, 0).failed(10, 0).started(0, 1).done(10, 1);
        assert_eq!(
            feed.lines(24, 10),
            ["✘ s01   1/1   [1 failed] done", "✓ s02   1/1   done"]
        );
    }

    #[test]
    fn a_ship_with_no_connect_events_works_as_before() {
        let mut feed = Feed::fleet(30, 1);
        feed.started(0, 0);
        let lines = feed.lines(10, 1000);
        assert_eq!(
            lines[0], "⠇ 30 ships: 0 done · 0/30 instances · 1.0s",
            "no connected count without connect events"
        );
        assert_eq!(lines[1], "⠇ s01   0/1   app0: beginning");
        assert_eq!(lines.len(), 2, "idle ships are folded: {lines:#?}");
    }

    #[test]
    fn the_compact_view_counts_ships_and_lists_the_working_and_failed_ones() {
        // Eight ships in a six-line terminal: four lines at most.
        let mut feed = Feed::fleet(8, 2);
        for ship in 0..8 {
            feed.connecting(ship as u64 * 10, ship);
        }
        // s01 connects and finishes both jobs: folded into the overall line.
        feed.connected(100, 0)
            .started(110, 0)
            .done(120, 0)
            .started(130, 1)
            .done(140, 1);
        // s02 connects and fails a job: listed first, as trouble.
        feed.connected(150, 1).started(160, 2).failed(170, 2);
        // s03 connects and is between jobs: not working, so folded.
        feed.connected(180, 2);
        let lines = feed.lines(6, 3400);
        assert_eq!(
            lines,
            [
                "⠇ 8 ships: 3 connected, 1 done, 1 failed · 3/16 instances · 3.4s",
                "⠇ s02   1/2   [1 failed] waiting",
                "⠇ s04   0/2   connecting (3.4s)",
                "… and 4 more working",
            ]
        );
    }

    #[test]
    fn ships_are_listed_in_the_order_they_began_and_keep_their_place() {
        let mut feed = Feed::fleet(40, 2);
        for ship in 0..40 {
            feed.connecting(ship as u64, ship);
        }
        let before = feed.lines(8, 500);
        assert_eq!(before.len(), 6);
        assert_eq!(name(&before[1]), "s01");
        assert_eq!(name(&before[4]), "s04");
        assert_eq!(before[5], "… and 36 more working");
        // A later ship's news does not reorder the list; the first one finishing does.
        feed.connected(600, 30).started(600, 60);
        let names = |lines: &[String]| {
            lines
                .iter()
                .map(|l| name(l).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&feed.lines(8, 600)), names(&before));
        // s02 connects and starts a job: it keeps its place. s01 connects and has nothing
        // to start yet: folded, and those below move up.
        feed.connected(700, 1).started(701, 2).connected(702, 0);
        let after = feed.lines(8, 702);
        assert_eq!(names(&after[1..5]), ["s02", "s03", "s04", "s05"]);
        assert!(after[1].ends_with("app2: beginning"), "{after:#?}");
    }

    #[test]
    fn failed_ships_take_at_most_half_the_rows_while_others_work() {
        let mut feed = Feed::fleet(40, 1);
        for job in 0..40 {
            feed.started(0, job);
        }
        for job in 0..20 {
            feed.failed(10, job);
        }
        // 10 rows: the overall line, 7 ships, and the remainder line.
        let lines = feed.lines(12, 100);
        assert_eq!(lines.len(), 10);
        let failed = lines.iter().filter(|l| l.starts_with('✘')).count();
        assert_eq!(failed, 4, "{lines:#?}");
        assert_eq!(lines[9], "… and 16 more working, 16 more failed");
    }

    /// The summary already counts each of the unreachable ship's jobs as failed; the live
    /// view counts that ship once, not once for the connection and again for each job.
    #[test]
    fn an_unreachable_ship_whose_jobs_fail_is_one_failed_ship() {
        let mut feed = Feed::fleet(30, 2);
        feed.connecting(0, 0)
            .at(
                100,
                EventKind::ShipConnectFailed {
                    ship: "s01".into(),
                    elapsed_ms: 100,
                    reason: "no route".into(),
                },
            )
            .failed(101, 0)
            .failed(101, 1);
        assert_eq!(
            feed.lines(10, 200)[0],
            "⠙ 30 ships: 0 connected, 0 done, 1 failed · 2/60 instances · 0.2s"
        );
    }

    #[test]
    fn a_finished_plan_shows_its_end_mark() {
        let mut feed = Feed::fleet(30, 1);
        for job in 0..30 {
            feed.started(0, job).done(10, job);
        }
        assert_eq!(
            feed.lines(10, 10),
            ["✓ 30 ships: 30 done · 30/30 instances · 0.0s"]
        );
    }
}
