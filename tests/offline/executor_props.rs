//! Property tests for the executor: random DAGs, random operation durations, failures,
//! limits and interruptions, run in paused tokio time so that thousands of runs take a
//! second and every timing is exact.
//!
//! The expectations are computed here independently of the executor's own graph code: the
//! point is to catch a scheduler that is wrong in a way its unit tests did not imagine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use maestro::orchestrate::engine::events::{Event, EventKind, EventSink, Outcome, Step};
use maestro::orchestrate::engine::executor::{
    self, Cancel, Concurrency, Job, JobState, OpError, Operation, RunSpec, StepContext, Summary,
};
use maestro::orchestrate::plan::select::Direction;
use proptest::prelude::*;
use tokio::time::Instant;

const SHIPS: [&str; 3] = ["alpha", "beta", "gamma"];

#[derive(Debug, Clone)]
struct Scenario {
    jobs: Vec<Job>,
    durations: Vec<u64>,
    fails: Vec<bool>,
    /// Whether the job's operation, on seeing a cancel, cleans up and returns early
    /// (reported as cancelled) rather than finishing its work.
    cleans_up: Vec<bool>,
    direction: Direction,
    limits: Concurrency,
    /// Virtual milliseconds after which Ctrl-C is "pressed", if at all.
    cancel_at: Option<u64>,
    /// Virtual milliseconds after the cancel when it is "pressed" again (abort), if at all.
    abort_after: Option<u64>,
}

/// DAGs are generated with edges only towards lower indices, then the indices are
/// shuffled so the scheduler's index order carries no hint of the topological order.
fn scenario(allow_cancel: bool) -> impl Strategy<Value = Scenario> {
    (1usize..12).prop_flat_map(move |n| {
        (
            prop::collection::vec((any::<u16>(), any::<u16>()), n),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            prop::collection::vec(0..SHIPS.len(), n),
            prop::collection::vec(1u64..40, n),
            prop::collection::vec(prop::bool::weighted(0.15), n),
            prop::collection::vec(any::<bool>(), n),
            any::<bool>(),
            0usize..4,
            prop::collection::vec(0usize..3, SHIPS.len()),
            if allow_cancel {
                (
                    prop::option::weighted(0.8, 0u64..120),
                    prop::option::weighted(0.3, 1u64..40),
                )
                    .boxed()
            } else {
                Just((None, None)).boxed()
            },
        )
            .prop_map(
                |(
                    masks,
                    perm,
                    ships,
                    durations,
                    fails,
                    cleans_up,
                    reverse,
                    global,
                    per_ship,
                    (cancel_at, abort_after),
                )| {
                    let n = masks.len();
                    let mut jobs: Vec<Job> = (0..n)
                        .map(|j| Job {
                            instance: format!("i{j}"),
                            service: format!("s{}", j % 3),
                            ship: SHIPS[ships[j]].to_string(),
                            deps: Vec::new(),
                        })
                        .collect();
                    for (j, (a, b)) in masks.iter().enumerate() {
                        // AND of two masks: sparse graphs with some fan-in.
                        let mask = a & b;
                        for i in 0..j {
                            if mask & (1 << i) != 0 {
                                jobs[perm[j]].deps.push(perm[i]);
                            }
                        }
                    }
                    for (j, job) in jobs.iter_mut().enumerate() {
                        job.instance = format!("i{j}");
                    }
                    Scenario {
                        jobs,
                        durations,
                        fails,
                        cleans_up,
                        direction: if reverse {
                            Direction::Reverse
                        } else {
                            Direction::Forward
                        },
                        limits: Concurrency {
                            global,
                            per_ship: SHIPS
                                .iter()
                                .zip(per_ship)
                                .map(|(s, l)| (s.to_string(), l))
                                .collect(),
                        },
                        cancel_at,
                        abort_after,
                    }
                },
            )
    })
}

/// What the fake operation saw, on a logical clock shared with the canceller so that
/// "before" and "after" are exact even at the same virtual millisecond.
#[derive(Debug, Default)]
struct Record {
    clock: u64,
    started: HashMap<usize, (u64, Instant)>,
    ended: HashMap<usize, (u64, Instant, bool)>,
    calls: HashMap<usize, usize>,
    running: usize,
    running_per_ship: HashMap<String, usize>,
    max_running: usize,
    max_per_ship: HashMap<String, usize>,
}

struct FakeOp {
    scenario: Scenario,
    record: Arc<Mutex<Record>>,
}

impl Operation for FakeOp {
    fn run(&self, job: usize, ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
        Box::pin(async move {
            let ship = self.scenario.jobs[job].ship.clone();
            {
                let mut r = self.record.lock().unwrap();
                r.clock += 1;
                let at = r.clock;
                r.started.insert(job, (at, Instant::now()));
                *r.calls.entry(job).or_insert(0) += 1;
                r.running += 1;
                r.max_running = r.max_running.max(r.running);
                let on_ship = r.running_per_ship.entry(ship.clone()).or_insert(0);
                *on_ship += 1;
                let on_ship = *on_ship;
                let max = r.max_per_ship.entry(ship.clone()).or_insert(0);
                *max = (*max).max(on_ship);
            }
            ctx.step(Step::Starting);
            let work = tokio::time::sleep(Duration::from_millis(self.scenario.durations[job]));
            let result = if self.scenario.cleans_up[job] {
                tokio::select! {
                    _ = work => None,
                    _ = ctx.cancelled() => Some(Err(OpError::interrupted("interrupted: cleaned up"))),
                }
            } else {
                work.await;
                None
            };
            let result = result.unwrap_or_else(|| {
                if self.scenario.fails[job] {
                    Err(OpError::failed("scripted failure"))
                } else {
                    Ok(Outcome::Started)
                }
            });
            let mut r = self.record.lock().unwrap();
            r.clock += 1;
            let at = r.clock;
            r.ended.insert(job, (at, Instant::now(), result.is_ok()));
            r.running -= 1;
            if let Some(count) = r.running_per_ship.get_mut(&ship) {
                *count -= 1;
            }
            result
        })
    }
}

struct Outcomes {
    summary: Summary,
    events: Vec<Event>,
    record: Record,
    epoch: Instant,
    /// The logical time of the cancel, if one was sent.
    cancelled_at: Option<u64>,
}

fn run_scenario(scenario: &Scenario) -> Outcomes {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let record = Arc::new(Mutex::new(Record::default()));
        let op = Arc::new(FakeOp {
            scenario: scenario.clone(),
            record: Arc::clone(&record),
        });
        let (sink, mut rx) = EventSink::new();
        let epoch = Instant::now();
        let cancel = Cancel::new();
        let cancelled_at = Arc::new(Mutex::new(None));
        if let Some(at) = scenario.cancel_at {
            let abort_after = scenario.abort_after;
            let (cancel, record, cancelled_at, sink) = (
                cancel.clone(),
                Arc::clone(&record),
                Arc::clone(&cancelled_at),
                sink.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(at)).await;
                {
                    let mut r = record.lock().unwrap();
                    r.clock += 1;
                    *cancelled_at.lock().unwrap() = Some(r.clock);
                    sink.send(cancel_marker());
                    cancel.cancel();
                }
                if let Some(after) = abort_after {
                    tokio::time::sleep(Duration::from_millis(after)).await;
                    cancel.abort();
                }
            });
        }
        let spec = RunSpec {
            command: "test".into(),
            jobs: scenario.jobs.clone(),
            direction: scenario.direction,
            limits: scenario.limits.clone(),
        };
        let summary = executor::run(spec, op, sink, cancel).await.unwrap();
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        let record = std::mem::take(&mut *record.lock().unwrap());
        let cancelled_at = *cancelled_at.lock().unwrap();
        Outcomes {
            summary,
            events,
            record,
            epoch,
            cancelled_at,
        }
    })
}

/// An event only the test's canceller sends, marking the instant of the cancel in the
/// stream's order.
fn cancel_marker() -> EventKind {
    EventKind::Step {
        job: usize::MAX,
        instance: "test".into(),
        ship: "test".into(),
        step: Step::Message {
            text: "cancel pressed".into(),
        },
    }
}

fn is_cancel_marker(event: &Event) -> bool {
    event.kind == cancel_marker()
}

/// `waits_on[j]`: the jobs that must succeed before j begins in this direction.
fn waits_on(jobs: &[Job], direction: Direction) -> Vec<Vec<usize>> {
    match direction {
        Direction::Forward => jobs.iter().map(|j| j.deps.clone()).collect(),
        Direction::Reverse => (0..jobs.len())
            .map(|j| {
                (0..jobs.len())
                    .filter(|&k| jobs[k].deps.contains(&j))
                    .collect()
            })
            .collect(),
    }
}

/// The end state each job must reach without interruption, whatever the timing: failed if
/// scripted to fail and reached, skipped if anything it (transitively) waits on did not
/// succeed, done otherwise.
fn expected_states(scenario: &Scenario) -> Vec<&'static str> {
    let waits = waits_on(&scenario.jobs, scenario.direction);
    let n = scenario.jobs.len();
    let mut state: Vec<Option<&'static str>> = vec![None; n];
    while state.iter().any(Option::is_none) {
        for j in 0..n {
            if state[j].is_some() || waits[j].iter().any(|&d| state[d].is_none()) {
                continue;
            }
            state[j] = Some(if waits[j].iter().any(|&d| state[d] != Some("done")) {
                "skipped"
            } else if scenario.fails[j] {
                "failed"
            } else {
                "done"
            });
        }
    }
    state.into_iter().map(|s| s.unwrap_or("?")).collect()
}

fn state_name(state: &JobState) -> &'static str {
    match state {
        JobState::Done { .. } => "done",
        JobState::Failed { .. } => "failed",
        JobState::Skipped { .. } => "skipped",
        JobState::Cancelled { .. } => "cancelled",
    }
}

fn ms_since(epoch: Instant, at: Instant) -> u64 {
    at.duration_since(epoch).as_millis() as u64
}

/// Invariants that hold with or without interruption.
fn check_common(scenario: &Scenario, out: &Outcomes) -> Result<(), TestCaseError> {
    let n = scenario.jobs.len();
    let waits = waits_on(&scenario.jobs, scenario.direction);
    let r = &out.record;

    // Nothing begins before what it waits on has ended successfully.
    for (&job, &(started, _)) in &r.started {
        for &dep in &waits[job] {
            let ended = r.ended.get(&dep);
            prop_assert!(
                matches!(ended, Some(&(at, _, true)) if at < started),
                "job {job} started before {dep} it waits on succeeded"
            );
        }
    }

    // Concurrency limits are never exceeded (zero means unlimited).
    if scenario.limits.global > 0 {
        prop_assert!(r.max_running <= scenario.limits.global);
    }
    for (ship, &max) in &r.max_per_ship {
        let limit = scenario.limits.per_ship.get(ship).copied().unwrap_or(0);
        if limit > 0 {
            prop_assert!(max <= limit, "ship {ship}: {max} at once, limit {limit}");
        }
    }

    // Every job: the operation ran at most once, exactly one terminal event, at most one
    // start, and the summary agrees.
    prop_assert_eq!(out.summary.jobs.len(), n);
    for job in 0..n {
        prop_assert!(r.calls.get(&job).copied().unwrap_or(0) <= 1);
        let terminal = out
            .events
            .iter()
            .filter(|e| {
                matches!(&e.kind,
                    EventKind::JobDone { job: j, .. }
                    | EventKind::JobFailed { job: j, .. }
                    | EventKind::JobSkipped { job: j, .. }
                    | EventKind::JobCancelled { job: j, .. } if *j == job)
            })
            .count();
        prop_assert_eq!(terminal, 1, "job {} has {} end events", job, terminal);
        let starts = out
            .events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::JobStarted { job: j, .. } if *j == job))
            .count();
        let ran = r.started.contains_key(&job);
        prop_assert_eq!(starts, usize::from(ran));
        let report = &out.summary.jobs[job];
        prop_assert_eq!(report.started_at_ms.is_some(), ran);
        if matches!(report.state, JobState::Skipped { .. }) {
            prop_assert!(!ran, "a skipped job never runs");
        }
    }
    // The stream is framed by the plan's start and finish.
    prop_assert!(
        matches!(
            out.events.first().map(|e| &e.kind),
            Some(EventKind::PlanStarted { .. })
        ),
        "stream starts with PlanStarted"
    );
    prop_assert!(
        matches!(
            out.events.last().map(|e| &e.kind),
            Some(EventKind::PlanFinished { .. })
        ),
        "stream ends with PlanFinished"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn uninterrupted_runs_respect_order_limits_and_end_states(scenario in scenario(false)) {
        let out = run_scenario(&scenario);
        check_common(&scenario, &out)?;

        // Skipped exactly when something waited on (transitively) failed; others as scripted.
        let expected = expected_states(&scenario);
        let actual: Vec<&str> = out.summary.jobs.iter().map(|r| state_name(&r.state)).collect();
        prop_assert_eq!(&actual, &expected);
        prop_assert_eq!(out.summary.exit_code(), if expected.iter().all(|s| *s == "done") { 0 } else { 1 });
        prop_assert!(!out.summary.interrupted);

        // Without limits a job begins the very moment its last wait ends: independent jobs
        // overlap and nothing waits for a "level" to finish.
        let unlimited = scenario.limits.global == 0
            && scenario.limits.per_ship.values().all(|&l| l == 0);
        if unlimited {
            let waits = waits_on(&scenario.jobs, scenario.direction);
            for (&job, &(_, started)) in &out.record.started {
                let ready_at = waits[job]
                    .iter()
                    .filter_map(|d| out.record.ended.get(d).map(|e| ms_since(out.epoch, e.1)))
                    .max()
                    .unwrap_or(0);
                prop_assert_eq!(ms_since(out.epoch, started), ready_at, "job {} started late", job);
            }
        }
    }

    #[test]
    fn interrupted_runs_start_nothing_after_the_cancel(scenario in scenario(true)) {
        let out = run_scenario(&scenario);
        check_common(&scenario, &out)?;
        if out.cancelled_at.is_none() {
            // The run finished before the timer fired: it must look uninterrupted.
            prop_assert!(!out.summary.interrupted);
            return Ok(());
        }
        let finished_before_cancel = out.record.ended.len() == out.record.started.len()
            && out.summary.jobs.iter().all(|r| !matches!(r.state, JobState::Cancelled { .. }));
        if !out.summary.interrupted {
            // The cancel came after the last job ended but before the run returned.
            prop_assert!(finished_before_cancel);
            return Ok(());
        }
        prop_assert_eq!(out.summary.exit_code(), 130);
        // A task spawned just before the cancel may be first polled after it, so the
        // operation's own clock is not the measure; what must not happen is the executor
        // *deciding* to start a job after the cancel. The canceller put a marker into the
        // stream at the instant it cancelled: no JobStarted may follow it.
        let marker = out
            .events
            .iter()
            .position(is_cancel_marker)
            .expect("the canceller's marker is in the stream");
        prop_assert!(
            !out.events[marker..]
                .iter()
                .any(|e| matches!(e.kind, EventKind::JobStarted { .. })),
            "a job started after the cancel"
        );
        prop_assert!(out.events[marker..]
            .iter()
            .any(|e| matches!(e.kind, EventKind::Interrupted { abort: false })), "the executor announced the interruption");
        // Every job that ran was allowed to finish or clean up: none left in an unknown
        // state, and jobs that never ran are cancelled or skipped, never done.
        for report in &out.summary.jobs {
            if report.started_at_ms.is_none() {
                prop_assert!(matches!(report.state, JobState::Cancelled { .. } | JobState::Skipped { .. }), "job {} never ran but is {:?}", report.job, report.state);
            } else {
                prop_assert!(report.finished_at_ms.is_some());
            }
        }
        if out.summary.aborted {
            // Work dropped mid-way is reported as of unknown state, never as done or failed.
            for (job, report) in out.summary.jobs.iter().enumerate() {
                let dropped = out.record.started.contains_key(&job) && !out.record.ended.contains_key(&job);
                if dropped {
                    prop_assert!(
                        matches!(&report.state, JobState::Cancelled { reason } if reason.contains("unknown")),
                        "dropped job {} reported as {:?}", job, report.state
                    );
                }
            }
        } else {
            prop_assert_eq!(out.record.started.len(), out.record.ended.len(), "all begun work completed");
        }
        // Operations that saw the cancel and chose to clean up are reported as cancelled;
        // the only other way for a job that ran to be cancelled is an abort.
        for (job, report) in out.summary.jobs.iter().enumerate() {
            if let JobState::Cancelled { reason } = &report.state
                && report.started_at_ms.is_some()
            {
                if reason.contains("unknown") {
                    prop_assert!(out.summary.aborted);
                } else {
                    prop_assert!(scenario.cleans_up[job]);
                    prop_assert_eq!(reason.as_str(), "interrupted: cleaned up");
                }
            }
        }
    }
}

/// An operation that ignores the first cancellation: only an abort gets rid of it.
struct Stubborn;

impl Operation for Stubborn {
    fn run(&self, _job: usize, _ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
        Box::pin(std::future::pending())
    }
}

/// The real SIGINT wiring: the first Ctrl-C cancels (nothing new starts, the stubborn
/// operation keeps going), the second aborts it. Lives in this test binary, not the
/// library's unit tests, because SIGINT is sent to the whole process.
///
/// No fixed delays: the test installs its own SIGINT handler before sending anything, so a
/// signal can never kill the test binary, and it sends the first signal again until the
/// executor reports it (the executor's listener may not be listening yet when it is first
/// sent), the second only once the first is reported.
#[test]
fn ctrl_c_once_cancels_twice_aborts() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut own = signal(SignalKind::interrupt()).expect("install a SIGINT handler");
        let cancel = executor::interrupt_on_ctrl_c();
        let jobs = vec![
            Job { instance: "db1".into(), service: "db".into(), ship: "alpha".into(), deps: vec![] },
            Job { instance: "web1".into(), service: "web".into(), ship: "alpha".into(), deps: vec![0] },
        ];
        let spec = RunSpec {
            command: "start".into(),
            jobs,
            direction: Direction::Forward,
            limits: Concurrency::unlimited(),
        };
        let (sink, mut rx) = EventSink::new();
        let pid = std::process::id().to_string();
        let signaller = tokio::spawn(async move {
            let mut interruptions = Vec::new();
            for second in [false, true] {
                let mut sent = 0;
                loop {
                    sent += 1;
                    let status = tokio::process::Command::new("kill")
                        .args(["-INT", &pid])
                        .status()
                        .await
                        .unwrap();
                    assert!(status.success());
                    tokio::time::timeout(Duration::from_secs(30), own.recv())
                        .await
                        .expect("the SIGINT reaches this process");
                    let reported = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(event) = rx.recv().await {
                            if let EventKind::Interrupted { abort } = event.kind {
                                return Some(abort);
                            }
                        }
                        None
                    })
                    .await;
                    match reported {
                        Ok(Some(abort)) => {
                            interruptions.push(abort);
                            break;
                        }
                        Ok(None) => panic!("the run ended before reporting Ctrl-C"),
                        // Only the first may go unheard (its listener not yet polled); a
                        // second unheard one would be a lost signal.
                        Err(_) => assert!(
                            !second && sent < 10,
                            "Ctrl-C number {} sent {sent} times and never reported",
                            interruptions.len() + 1
                        ),
                    }
                }
            }
            interruptions
        });
        let summary = tokio::time::timeout(
            Duration::from_secs(120),
            executor::run(spec, Arc::new(Stubborn), sink, cancel),
        )
        .await
        .expect("the second Ctrl-C ends the run")
        .unwrap();
        let interruptions = tokio::time::timeout(Duration::from_secs(60), signaller)
            .await
            .expect("the signaller ends")
            .unwrap();
        assert!(summary.interrupted && summary.aborted);
        assert_eq!(summary.exit_code(), 130);
        assert!(matches!(&summary.jobs[0].state, JobState::Cancelled { reason } if reason.contains("unknown")));
        assert!(matches!(&summary.jobs[1].state, JobState::Cancelled { reason } if reason.contains("not started")));
        assert_eq!(interruptions, vec![false, true]);
    });
}

// ---------------------------------------------------------------------------------------
// restart: the sequence of runs (orchestrate::deploy::lifecycle::sequence) over the same executor

use maestro::orchestrate::deploy::lifecycle::{self, Request};
use maestro::orchestrate::deploy::ops::Action;
use maestro::orchestrate::plan::select::{Plan, PlanStep};

#[derive(Debug, Clone)]
struct RestartScenario {
    /// `deps[k]`: the steps step k requires (lower indices).
    deps: Vec<Vec<usize>>,
    ships: Vec<usize>,
    durations: Vec<u64>,
    rolling: bool,
    stop_start_delay: Option<u64>,
    only_if_changed: bool,
    refresh_images: bool,
    cancel_at: Option<u64>,
}

fn restart_scenario() -> impl Strategy<Value = RestartScenario> {
    (1usize..8).prop_flat_map(|n| {
        (
            prop::collection::vec(any::<u8>(), n),
            prop::collection::vec(0..SHIPS.len(), n),
            prop::collection::vec(1u64..30, n),
            any::<bool>(),
            prop::option::of(1u64..50),
            any::<bool>(),
            any::<bool>(),
            prop::option::weighted(0.5, 0u64..200),
        )
            .prop_map(
                |(masks, ships, durations, rolling, delay, only_if_changed, refresh, cancel_at)| {
                    let deps = masks
                        .iter()
                        .enumerate()
                        .map(|(k, mask)| (0..k.min(8)).filter(|d| mask & (1 << d) != 0).collect())
                        .collect();
                    RestartScenario {
                        deps,
                        ships,
                        durations,
                        rolling,
                        stop_start_delay: delay,
                        only_if_changed,
                        refresh_images: refresh,
                        cancel_at,
                    }
                },
            )
    })
}

impl RestartScenario {
    /// The plan of one half, as `plan::select` makes it: in a forward plan a step's deps are
    /// what it requires; in a reverse plan, the steps that require it (they stop first), and
    /// the steps are listed in reverse, so that every dep still comes earlier.
    fn plan(&self, direction: Direction) -> Plan {
        let n = self.deps.len();
        let position = |k: usize| match direction {
            Direction::Forward => k,
            Direction::Reverse => n - 1 - k,
        };
        let mut steps: Vec<PlanStep> = (0..n)
            .map(|k| {
                let deps = match direction {
                    Direction::Forward => self.deps[k].clone(),
                    Direction::Reverse => (0..n).filter(|&j| self.deps[j].contains(&k)).collect(),
                };
                PlanStep {
                    node: k,
                    instance: format!("i{k}"),
                    service: format!("s{k}"),
                    ship: SHIPS[self.ships[k]].to_string(),
                    deps: deps.into_iter().map(position).collect(),
                }
            })
            .collect();
        steps.sort_by_key(|step| position(step.node));
        Plan { steps, direction }
    }

    fn request(&self) -> Request {
        Request::Restart {
            step_delay: self.rolling.then(|| Duration::from_millis(5)),
            stop_start_delay: self.stop_start_delay.map(Duration::from_millis),
            only_if_changed: self.only_if_changed,
            refresh_images: self.refresh_images,
            adopt: false,
        }
    }
}

/// One call of the scripted operation: which run, which action, which instance (`job`: its
/// index in the scenario), when (logical clock) it began and ended.
#[derive(Debug, Clone)]
struct Call {
    command: &'static str,
    action: Action,
    job: usize,
    began: u64,
    ended: Option<u64>,
    /// Virtual time of the first poll.
    began_at: Instant,
}

#[derive(Default)]
struct RestartRecord {
    clock: u64,
    calls: Vec<Call>,
    cancelled_at: Option<u64>,
    /// Virtual time of the cancel.
    cancelled_instant: Option<Instant>,
}

struct ScriptedOp {
    command: &'static str,
    action: Action,
    /// The scenario's index of each job's instance.
    nodes: Vec<usize>,
    durations: Vec<u64>,
    record: Arc<Mutex<RestartRecord>>,
}

impl Operation for ScriptedOp {
    fn run(&self, job: usize, _ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
        let job = self.nodes[job];
        Box::pin(async move {
            let index = {
                let mut r = self.record.lock().unwrap();
                r.clock += 1;
                let began = r.clock;
                r.calls.push(Call {
                    command: self.command,
                    action: self.action,
                    job,
                    began,
                    ended: None,
                    began_at: Instant::now(),
                });
                r.calls.len() - 1
            };
            tokio::time::sleep(Duration::from_millis(self.durations[job])).await;
            let mut r = self.record.lock().unwrap();
            r.clock += 1;
            r.calls[index].ended = Some(r.clock);
            Ok(Outcome::Started)
        })
    }
}

fn run_restart(scenario: &RestartScenario) -> (Vec<Summary>, RestartRecord) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = scenario.request();
        let plans = if scenario.rolling {
            vec![scenario.plan(Direction::Forward)]
        } else {
            vec![
                scenario.plan(Direction::Reverse),
                scenario.plan(Direction::Forward),
            ]
        };
        let record = Arc::new(Mutex::new(RestartRecord::default()));
        let cancel = Cancel::new();
        if let Some(at) = scenario.cancel_at {
            let (cancel, record) = (cancel.clone(), Arc::clone(&record));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(at)).await;
                let mut r = record.lock().unwrap();
                r.clock += 1;
                r.cancelled_at = Some(r.clock);
                r.cancelled_instant = Some(Instant::now());
                cancel.cancel();
            });
        }
        let (sink, _events) = EventSink::new();
        let limits = Concurrency {
            global: 0,
            per_ship: HashMap::new(),
        };
        let run = |command: &'static str, plan: &Plan, action: Action, limits: Concurrency| {
            let (jobs, direction) = maestro::orchestrate::deploy::ops::jobs_of(plan);
            let op = Arc::new(ScriptedOp {
                command,
                action,
                nodes: plan.steps.iter().map(|step| step.node).collect(),
                durations: scenario.durations.clone(),
                record: Arc::clone(&record),
            });
            let spec = RunSpec {
                command: command.to_string(),
                jobs,
                direction,
                limits,
            };
            executor::run(spec, op, sink.clone(), cancel.clone())
        };
        let summaries = lifecycle::sequence(&request, &plans, limits, &cancel, run)
            .await
            .unwrap();
        let record = std::mem::take(&mut *record.lock().unwrap());
        (summaries, record)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn restarts_stop_all_then_start_all_and_stop_at_an_interruption(
        scenario in restart_scenario()
    ) {
        let (summaries, record) = run_restart(&scenario);
        let n = scenario.deps.len();
        let calls = |command: &'static str| record.calls.iter().filter(move |c| c.command == command);
        if scenario.rolling {
            // One run, one instance at a time, each unit the whole stop-wait-start.
            prop_assert_eq!(summaries.len(), 1);
            let as_asked = |c: &Call| matches!(
                c.action,
                Action::RestartUnit { only_if_changed, refresh_images, .. }
                    if only_if_changed == scenario.only_if_changed
                        && refresh_images == scenario.refresh_images
            );
            prop_assert!(calls("restart").all(as_asked), "units not as asked");
            let mut spans: Vec<(u64, u64)> = calls("restart")
                .filter_map(|c| Some((c.began, c.ended?)))
                .collect();
            spans.sort_unstable();
            for pair in spans.windows(2) {
                prop_assert!(pair[0].1 < pair[1].0, "two units overlapped: {:?}", spans);
            }
            // Each unit after what it requires.
            for c in calls("restart") {
                for &d in &scenario.deps[c.job] {
                    let dep = calls("restart").find(|x| x.job == d);
                    prop_assert!(dep.and_then(|x| x.ended).is_some_and(|end| end < c.began));
                }
            }
            return Ok(());
        }
        let stop_action = if scenario.only_if_changed {
            Action::StopIfChanged { refresh_images: scenario.refresh_images }
        } else {
            Action::Stop
        };
        prop_assert!(calls("restart (stop)").all(|c| c.action == stop_action));
        let start_action = Action::Start {
            refresh_images: scenario.refresh_images && !scenario.only_if_changed,
            reuse: false,
        };
        prop_assert!(calls("restart (start)").all(|c| c.action == start_action));
        // Dependents stop first: a step stops only after every step that requires it.
        for c in calls("restart (stop)") {
            for (k, deps) in scenario.deps.iter().enumerate() {
                if deps.contains(&c.job) {
                    let dependent = calls("restart (stop)").find(|x| x.job == k);
                    prop_assert!(dependent.and_then(|x| x.ended).is_some_and(|end| end < c.began));
                }
            }
        }
        let stop_ends = calls("restart (stop)").filter_map(|c| c.ended).max().unwrap_or(0);
        let started: Vec<&Call> = calls("restart (start)").collect();
        // Nothing starts before everything has stopped.
        prop_assert!(started.iter().all(|c| c.began > stop_ends));
        // A job is first polled just after it is dispatched: a cancel at the very instant the
        // start half begins may come between the two, so only a cancel at an earlier virtual
        // time must have kept the start half from running.
        let first_start = started.iter().map(|c| c.began_at).min();
        match record.cancelled_instant {
            // Interrupted during the stop half or the delay: the start half never runs.
            Some(at) if first_start.is_none_or(|first| at < first) => {
                prop_assert!(started.is_empty(), "started after the cancel: {:?}", started);
                prop_assert_eq!(summaries.len(), 1);
            }
            _ => {
                prop_assert_eq!(summaries.len(), 2);
                prop_assert_eq!(calls("restart (stop)").count(), n);
                // The start half is interrupted only by a cancel during it.
                if record.cancelled_at.is_none() {
                    prop_assert_eq!(started.len(), n);
                }
            }
        }
    }
}
