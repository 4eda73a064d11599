//! The executor: runs one operation per job over a dependency graph, as early as the graph
//! and the concurrency limits allow.
//!
//! It is generic on purpose: it knows jobs only as indices with dependencies, a ship (for
//! the per-ship limit) and names (for events). What a job *does* is the [`Operation`]'s
//! business, so the same scheduler drives start, stop, kill, clean and pull, and tests drive
//! it with fake operations and paused time.
//!
//! Scheduling is per job, not level by level: a job begins the moment every job it waits on
//! has succeeded (for `start`, success includes its `running` checks, which the operation
//! runs before returning). With [`Direction::Reverse`] a job waits on the jobs that require
//! it instead, which is the order for stop and kill.
//!
//! Cancellation has two levels (see [`Cancel`]): the first request lets in-flight operations
//! finish or clean up (they see the request through their [`StepContext`]) and starts
//! nothing new; the second drops in-flight operations at once. Either way the [`Summary`]
//! says, for every job, what happened to it.
//!
//! How the CLI wires it together (the renderer runs beside the run and ends when the last
//! sender, held by the run, is dropped):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use maestro::orchestrate::engine::events::EventSink;
//! # use maestro::orchestrate::engine::executor::{self, Operation, RunSpec};
//! # use maestro::ui::{self, RenderMode};
//! # async fn example(spec: RunSpec, op: Arc<dyn Operation>) -> std::io::Result<i32> {
//! let cancel = executor::interrupt_on_ctrl_c();
//! let (sink, events) = EventSink::new();
//! let renderer = tokio::spawn(ui::render(events, RenderMode::choose(false, false), std::io::stdout()));
//! let summary = match executor::run(spec, op, sink, cancel).await {
//!     Ok(summary) => summary,
//!     Err(bad_graph) => { eprintln!("{bad_graph}"); return Ok(2) }
//! };
//! renderer.await.map_err(std::io::Error::other)??;
//! Ok(summary.exit_code())
//! # }
//! ```

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::task::JoinSet;

use crate::config::graph::{Cycle, toposort_all};
pub use crate::orchestrate::engine::cancel::{Cancel, interrupt_on_ctrl_c};
pub use crate::orchestrate::engine::events::{
    Counts, JobReport, JobState, Summary, combined_exit_code,
};
use crate::orchestrate::engine::events::{EventKind, EventSink, JobInfo, Outcome, Step};
use crate::orchestrate::plan::select::Direction;

/// One unit of work: usually one instance of a service on its ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub instance: String,
    pub service: String,
    pub ship: String,
    /// Indices (into the same job list) of the jobs this one requires.
    pub deps: Vec<usize>,
}

/// Concurrency limits. Zero means "no limit" for either, so that a missing or zero setting
/// can never deadlock a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Concurrency {
    pub global: usize,
    /// Per ship name; ships not listed are bounded only by `global`.
    pub per_ship: HashMap<String, usize>,
}

impl Concurrency {
    pub fn unlimited() -> Self {
        Concurrency::default()
    }

    fn ship_limit(&self, ship: &str) -> usize {
        match self.per_ship.get(ship) {
            Some(&limit) if limit > 0 => limit,
            _ => usize::MAX,
        }
    }

    fn global_limit(&self) -> usize {
        if self.global == 0 {
            usize::MAX
        } else {
            self.global
        }
    }
}

/// Everything that describes a run except the work itself.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The user's command (`start`, `stop`, ...), only shown in events and the summary.
    pub command: String,
    pub jobs: Vec<Job>,
    pub direction: Direction,
    pub limits: Concurrency,
}

/// Why an operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OpError {
    pub reason: String,
    /// The container's last log lines, if the operation could fetch them.
    pub log_tail: Vec<String>,
    /// True when the operation stopped because it saw the cancellation request; the job is
    /// then reported as cancelled (not failed) and `reason` should say what state it left
    /// behind, e.g. "interrupted after create: container removed".
    pub interrupted: bool,
}

impl OpError {
    pub fn failed(reason: impl Into<String>) -> Self {
        OpError {
            reason: reason.into(),
            log_tail: Vec::new(),
            interrupted: false,
        }
    }

    pub fn interrupted(reason: impl Into<String>) -> Self {
        OpError {
            reason: reason.into(),
            log_tail: Vec::new(),
            interrupted: true,
        }
    }

    pub fn with_log_tail(mut self, log_tail: Vec<String>) -> Self {
        self.log_tail = log_tail;
        self
    }
}

/// The work done for one job. Implementations hold whatever they need (connections per
/// ship, the plan's specs) and look it up by job index.
///
/// The contract on cancellation (first Ctrl-C): the executor does not drop the future, so
/// the operation decides. It should watch [`StepContext::is_cancelled`] between steps (and
/// race [`StepContext::cancelled`] against long waits), then either complete the step it
/// is in or undo it — a container created but not started is started or removed, never
/// left half-made — and return `Ok` if the job's goal was reached, or
/// [`OpError::interrupted`] with a reason that states what was left behind. Only a second
/// request (abort) drops the future, and the summary then says the state is unknown.
pub trait Operation: Send + Sync + 'static {
    fn run(&self, job: usize, ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>>;
}

/// What an operation gets to talk back to the run: step events and the cancellation signal.
#[derive(Debug, Clone)]
pub struct StepContext {
    job: usize,
    instance: String,
    ship: String,
    sink: EventSink,
    cancel: Cancel,
}

impl StepContext {
    pub fn job(&self) -> usize {
        self.job
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn ship(&self) -> &str {
        &self.ship
    }

    /// Report what the job is doing now; renderers show the latest step per job.
    pub fn step(&self, step: Step) {
        self.sink.send(EventKind::Step {
            job: self.job,
            instance: self.instance.clone(),
            ship: self.ship.clone(),
            step,
        });
    }

    /// True once the user asked to stop. Operations check it between steps and either finish
    /// what they began or undo it, then return [`OpError::interrupted`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the user asks to stop; for racing against long waits (pull, checks).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }
}

/// A job list the scheduler cannot run. The plan module rejects these with better messages
/// first; the executor still checks so that a bug there cannot hang a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("job {job} ({instance}) requires job {dep}, but there are only {len} jobs")]
    UnknownDependency {
        job: usize,
        instance: String,
        dep: usize,
        len: usize,
    },
    /// `instances` are the jobs on a cycle or waiting behind one.
    #[error("dependency cycle: these jobs can never start: {}", .instances.join(", "))]
    Cycle { instances: Vec<String> },
}

/// Where a job is in its life inside the scheduler.
#[derive(Debug)]
enum Slot {
    Pending,
    Running { started_at_ms: u64 },
    Finished(JobReport),
}

/// Run `op` over `spec.jobs`, emitting events to `sink`, until every job has ended.
///
/// Returns `Err` only for a malformed graph, before anything is started or emitted.
pub async fn run(
    spec: RunSpec,
    op: Arc<dyn Operation>,
    sink: EventSink,
    cancel: Cancel,
) -> Result<Summary, ScheduleError> {
    let RunSpec {
        command,
        jobs,
        direction,
        limits,
    } = spec;
    let graph = Waits::new(&jobs, direction)?;
    let started_at_ms = sink.elapsed_ms();
    sink.send(EventKind::PlanStarted {
        command: command.clone(),
        direction,
        jobs: job_infos(&jobs),
    });
    let mut scheduler = Scheduler::new(&jobs, graph, limits, direction, sink.clone());
    let mut running = Running::default();
    let mut interrupted = false;
    let mut aborted = false;
    loop {
        if cancel.is_cancelled() && !interrupted {
            interrupted = true;
            sink.send(EventKind::Interrupted { abort: false });
            scheduler.cancel_pending();
        }
        if cancel.is_aborted() {
            if !aborted {
                aborted = true;
                sink.send(EventKind::Interrupted { abort: true });
            }
            // Dropping the futures is the point of an abort: the user asked twice.
            running.tasks.abort_all();
            scheduler.abandon_running();
            break;
        }
        if !interrupted {
            for job in scheduler.take_startable() {
                let ctx = StepContext {
                    job,
                    instance: jobs[job].instance.clone(),
                    ship: jobs[job].ship.clone(),
                    sink: sink.clone(),
                    cancel: cancel.clone(),
                };
                running.spawn(job, Arc::clone(&op), ctx);
            }
        }
        if running.tasks.is_empty() {
            break;
        }
        tokio::select! {
            // Prefer completions: a job that finished should be recorded as finished even
            // if the signal arrived in the same instant.
            biased;
            ended = running.next_ended() => {
                if let Some((job, result)) = ended {
                    scheduler.finish(job, result);
                }
            },
            _ = cancel.cancelled(), if !interrupted => {}
            _ = cancel.aborted(), if !aborted => {}
        }
    }
    // Nothing can still be pending here unless the run was interrupted (cancel_pending) or
    // the graph left jobs unreachable, which Waits::new rules out; be defensive anyway so
    // every job ends in exactly one state.
    scheduler.cancel_pending();

    let summary = Summary {
        command,
        jobs: scheduler.into_reports(),
        interrupted,
        aborted,
        started_at_ms,
        finished_at_ms: sink.elapsed_ms(),
    };
    sink.send(EventKind::PlanFinished {
        summary: summary.clone(),
    });
    Ok(summary)
}

/// What `PlanStarted` says about each job.
fn job_infos(jobs: &[Job]) -> Vec<JobInfo> {
    jobs.iter()
        .enumerate()
        .map(|(job, j)| JobInfo {
            job,
            instance: j.instance.clone(),
            service: j.service.clone(),
            ship: j.ship.clone(),
        })
        .collect()
}

/// The operations in flight, each task with the job it runs.
#[derive(Default)]
struct Running {
    tasks: JoinSet<(usize, Result<Outcome, OpError>)>,
    jobs: HashMap<tokio::task::Id, usize>,
}

impl Running {
    fn spawn(&mut self, job: usize, op: Arc<dyn Operation>, ctx: StepContext) {
        let handle = self.tasks.spawn(async move {
            // A panicking operation must fail its job, not take the run down with it and
            // leave every other job unaccounted for.
            let result = AssertUnwindSafe(op.run(job, ctx))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(OpError::failed("operation panicked")));
            (job, result)
        });
        self.jobs.insert(handle.id(), job);
    }

    /// The next job to end, with its result; `None` when no task is left or the one that
    /// ended is not known. Cancel safe, as `JoinSet::join_next_with_id` is.
    async fn next_ended(&mut self) -> Option<(usize, Result<Outcome, OpError>)> {
        match self.tasks.join_next_with_id().await? {
            Ok((id, (job, result))) => {
                self.jobs.remove(&id);
                Some((job, result))
            }
            // Panics are caught inside the task, so this is the runtime cancelling the task
            // (e.g. shutting down); the job still gets exactly one end state.
            Err(err) => {
                let job = self.jobs.remove(&err.id())?;
                let reason = format!("operation did not complete: {err}");
                Some((job, Err(OpError::failed(reason))))
            }
        }
    }
}

/// The dependency graph oriented for one direction (not `plan::select::Graph`, the file's): `waits_on[j]` must all succeed before
/// `j` begins; `unblocks[j]` are the jobs waiting on `j`.
#[derive(Debug)]
struct Waits {
    unblocks: Vec<Vec<usize>>,
    /// How many of `waits_on[j]` have not succeeded yet.
    waiting: Vec<usize>,
}

impl Waits {
    fn new(jobs: &[Job], direction: Direction) -> Result<Waits, ScheduleError> {
        let len = jobs.len();
        let mut requires: Vec<Vec<usize>> = vec![Vec::new(); len];
        let mut required_by: Vec<Vec<usize>> = vec![Vec::new(); len];
        for (job, j) in jobs.iter().enumerate() {
            // Duplicates in `deps` would make the countdown below wrong.
            let deps: BTreeSet<usize> = j.deps.iter().copied().collect();
            for dep in deps {
                if dep >= len {
                    return Err(ScheduleError::UnknownDependency {
                        job,
                        instance: j.instance.clone(),
                        dep,
                        len,
                    });
                }
                // Waiting on oneself is no wait, as for the planner and the validator
                // (config::graph).
                if dep == job {
                    continue;
                }
                requires[job].push(dep);
                required_by[dep].push(job);
            }
        }
        // Whatever no order can release sits on (or behind) a cycle, and would otherwise wait
        // for ever. The same walk as the planner's and the validator's; a cycle is one in
        // either direction.
        if let Err(Cycle { stuck, .. }) = toposort_all(&requires) {
            let instances = stuck.iter().map(|&j| jobs[j].instance.clone()).collect();
            return Err(ScheduleError::Cycle { instances });
        }
        let (waits_on, unblocks) = match direction {
            Direction::Forward => (requires, required_by),
            Direction::Reverse => (required_by, requires),
        };
        let waiting: Vec<usize> = waits_on.iter().map(Vec::len).collect();
        Ok(Waits { unblocks, waiting })
    }
}

struct Scheduler<'a> {
    jobs: &'a [Job],
    graph: Waits,
    limits: Concurrency,
    direction: Direction,
    sink: EventSink,
    slots: Vec<Slot>,
    /// Pending jobs whose waits are all satisfied, in index order so that runs are
    /// deterministic and follow the plan's order when limits force a choice.
    ready: BTreeSet<usize>,
    running_global: usize,
    running_per_ship: HashMap<String, usize>,
}

impl<'a> Scheduler<'a> {
    /// Every job pending; those that wait on nothing are ready.
    fn new(
        jobs: &'a [Job],
        graph: Waits,
        limits: Concurrency,
        direction: Direction,
        sink: EventSink,
    ) -> Self {
        let ready = (0..jobs.len()).filter(|&j| graph.waiting[j] == 0).collect();
        Scheduler {
            jobs,
            graph,
            limits,
            direction,
            sink,
            slots: jobs.iter().map(|_| Slot::Pending).collect(),
            ready,
            running_global: 0,
            running_per_ship: HashMap::new(),
        }
    }

    /// Marks as running, and returns, every ready job that fits in the limits now. A job
    /// held back by its ship's limit does not hold back jobs on other ships.
    fn take_startable(&mut self) -> Vec<usize> {
        let global_limit = self.limits.global_limit();
        let mut started = Vec::new();
        let candidates: Vec<usize> = self.ready.iter().copied().collect();
        for job in candidates {
            if self.running_global >= global_limit {
                break;
            }
            let ship = &self.jobs[job].ship;
            let on_ship = self.running_per_ship.get(ship).copied().unwrap_or(0);
            if on_ship >= self.limits.ship_limit(ship) {
                continue;
            }
            self.ready.remove(&job);
            self.running_global += 1;
            *self.running_per_ship.entry(ship.clone()).or_insert(0) += 1;
            let started_at_ms = self.sink.elapsed_ms();
            self.slots[job] = Slot::Running { started_at_ms };
            self.sink.send(EventKind::JobStarted {
                job,
                instance: self.jobs[job].instance.clone(),
                ship: ship.clone(),
            });
            started.push(job);
        }
        started
    }

    fn release(&mut self, job: usize) -> u64 {
        self.running_global = self.running_global.saturating_sub(1);
        if let Some(count) = self.running_per_ship.get_mut(&self.jobs[job].ship) {
            *count = count.saturating_sub(1);
        }
        match self.slots[job] {
            Slot::Running { started_at_ms } => started_at_ms,
            _ => self.sink.elapsed_ms(),
        }
    }

    fn report(
        &self,
        job: usize,
        state: JobState,
        started: Option<u64>,
        finished: Option<u64>,
    ) -> JobReport {
        let j = &self.jobs[job];
        JobReport {
            job,
            instance: j.instance.clone(),
            service: j.service.clone(),
            ship: j.ship.clone(),
            state,
            started_at_ms: started,
            finished_at_ms: finished,
        }
    }

    fn finish(&mut self, job: usize, result: Result<Outcome, OpError>) {
        let started_at_ms = self.release(job);
        let finished_at_ms = self.sink.elapsed_ms();
        let elapsed_ms = finished_at_ms.saturating_sub(started_at_ms);
        let instance = self.jobs[job].instance.clone();
        let ship = self.jobs[job].ship.clone();
        let state = match result {
            Ok(outcome) => {
                self.sink.send(EventKind::JobDone {
                    job,
                    instance,
                    ship,
                    elapsed_ms,
                    outcome: outcome.clone(),
                });
                JobState::Done { outcome }
            }
            Err(err) if err.interrupted => {
                self.sink.send(EventKind::JobCancelled {
                    job,
                    instance,
                    ship,
                    reason: err.reason.clone(),
                });
                JobState::Cancelled { reason: err.reason }
            }
            Err(err) => {
                self.sink.send(EventKind::JobFailed {
                    job,
                    instance,
                    ship,
                    elapsed_ms,
                    reason: err.reason.clone(),
                    log_tail: err.log_tail.clone(),
                });
                JobState::Failed {
                    reason: err.reason,
                    log_tail: err.log_tail,
                }
            }
        };
        let succeeded = state.is_done();
        // An interrupted job's dependents are not "skipped because something failed": the
        // run is being cancelled, and cancel_pending accounts for them.
        let interrupted = matches!(state, JobState::Cancelled { .. });
        self.slots[job] =
            Slot::Finished(self.report(job, state, Some(started_at_ms), Some(finished_at_ms)));
        if succeeded {
            for i in 0..self.graph.unblocks[job].len() {
                let next = self.graph.unblocks[job][i];
                self.graph.waiting[next] -= 1;
                if self.graph.waiting[next] == 0 && matches!(self.slots[next], Slot::Pending) {
                    self.ready.insert(next);
                }
            }
        } else if !interrupted {
            self.skip_behind(job);
        }
    }

    /// Skips, transitively, every pending job waiting on `root`, which did not succeed.
    /// The reason names `root` (the cause) and, further down, the job in between, so a
    /// reader can follow the chain back.
    fn skip_behind(&mut self, root: usize) {
        let relation = match self.direction {
            Direction::Forward => "dependency",
            Direction::Reverse => "dependent",
        };
        let root_name = self.jobs[root].instance.clone();
        let mut queue: VecDeque<(usize, usize)> = self.graph.unblocks[root]
            .iter()
            .map(|&n| (n, root))
            .collect();
        while let Some((job, via)) = queue.pop_front() {
            if !matches!(self.slots[job], Slot::Pending) {
                continue;
            }
            let reason = if via == root {
                format!("{relation} {root_name} failed")
            } else {
                format!(
                    "{relation} {root_name} failed (through {})",
                    self.jobs[via].instance
                )
            };
            self.ready.remove(&job);
            self.sink.send(EventKind::JobSkipped {
                job,
                instance: self.jobs[job].instance.clone(),
                ship: self.jobs[job].ship.clone(),
                reason: reason.clone(),
            });
            self.slots[job] =
                Slot::Finished(self.report(job, JobState::Skipped { reason }, None, None));
            queue.extend(self.graph.unblocks[job].iter().map(|&n| (n, job)));
        }
    }

    fn cancel_pending(&mut self) {
        for job in 0..self.slots.len() {
            if matches!(self.slots[job], Slot::Pending) {
                let reason = "not started: interrupted".to_string();
                self.sink.send(EventKind::JobCancelled {
                    job,
                    instance: self.jobs[job].instance.clone(),
                    ship: self.jobs[job].ship.clone(),
                    reason: reason.clone(),
                });
                self.slots[job] =
                    Slot::Finished(self.report(job, JobState::Cancelled { reason }, None, None));
            }
        }
        self.ready.clear();
    }

    /// After an abort: the operations in flight were dropped mid-way, so their jobs'
    /// state on the ship is unknown, and the summary must say so rather than guess.
    fn abandon_running(&mut self) {
        for job in 0..self.slots.len() {
            if let Slot::Running { started_at_ms } = self.slots[job] {
                self.release(job);
                let reason = "aborted while in progress: state on the ship unknown".to_string();
                self.sink.send(EventKind::JobCancelled {
                    job,
                    instance: self.jobs[job].instance.clone(),
                    ship: self.jobs[job].ship.clone(),
                    reason: reason.clone(),
                });
                let now = self.sink.elapsed_ms();
                self.slots[job] = Slot::Finished(self.report(
                    job,
                    JobState::Cancelled { reason },
                    Some(started_at_ms),
                    Some(now),
                ));
            }
        }
    }

    fn into_reports(self) -> Vec<JobReport> {
        let jobs = self.jobs;
        self.slots
            .into_iter()
            .enumerate()
            .map(|(job, slot)| match slot {
                Slot::Finished(report) => report,
                // Unreachable after cancel_pending/abandon_running; kept total rather than
                // panicking so a logic slip shows up in the summary, not as a crash.
                Slot::Pending | Slot::Running { .. } => JobReport {
                    job,
                    instance: jobs[job].instance.clone(),
                    service: jobs[job].service.clone(),
                    ship: jobs[job].ship.clone(),
                    state: JobState::Cancelled {
                        reason: "not accounted for".into(),
                    },
                    started_at_ms: None,
                    finished_at_ms: None,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::engine::events::{Event, EventStream};
    use std::time::Duration;

    /// What the fake operation does for one job.
    #[derive(Clone, Copy)]
    enum Act {
        Succeed(u64),
        Fail(u64),
        Panic,
        /// Waits for cancellation, then reports having cleaned up.
        UntilCancelled,
        /// Never returns; only an abort gets rid of it.
        Hang,
    }

    struct FakeOp(Vec<Act>);

    impl Operation for FakeOp {
        fn run(&self, job: usize, ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
            let act = self.0[job];
            Box::pin(async move {
                ctx.step(Step::Starting);
                match act {
                    Act::Succeed(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(Outcome::Started)
                    }
                    Act::Fail(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Err(OpError::failed("boom").with_log_tail(vec!["last line".into()]))
                    }
                    Act::Panic => panic!("fake operation panicked"),
                    Act::UntilCancelled => {
                        ctx.cancelled().await;
                        Err(OpError::interrupted("interrupted: container removed"))
                    }
                    Act::Hang => std::future::pending().await,
                }
            })
        }
    }

    fn job(name: &str, ship: &str, deps: &[usize]) -> Job {
        Job {
            instance: name.into(),
            service: name.trim_end_matches(char::is_numeric).into(),
            ship: ship.into(),
            deps: deps.to_vec(),
        }
    }

    fn spec(jobs: Vec<Job>, direction: Direction, limits: Concurrency) -> RunSpec {
        RunSpec {
            command: "start".into(),
            jobs,
            direction,
            limits,
        }
    }

    async fn run_fake(spec: RunSpec, acts: Vec<Act>, cancel: Cancel) -> (Summary, Vec<Event>) {
        let (sink, mut rx): (EventSink, EventStream) = EventSink::new();
        let summary = run(spec, Arc::new(FakeOp(acts)), sink, cancel)
            .await
            .expect("valid graph");
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        (summary, events)
    }

    fn start_order(events: &[Event]) -> Vec<usize> {
        events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::JobStarted { job, .. } => Some(job),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_chain_runs_in_order_forward_and_reversed_backward() {
        let jobs = vec![
            job("db1", "a", &[]),
            job("app1", "a", &[0]),
            job("web1", "b", &[1]),
        ];
        let acts = vec![Act::Succeed(10); 3];
        let (summary, events) = run_fake(
            spec(jobs.clone(), Direction::Forward, Concurrency::unlimited()),
            acts.clone(),
            Cancel::new(),
        )
        .await;
        assert_eq!(start_order(&events), vec![0, 1, 2]);
        assert_eq!(summary.exit_code(), 0);
        assert_eq!(summary.elapsed_ms(), 30);

        let (_, events) = run_fake(
            spec(jobs, Direction::Reverse, Concurrency::unlimited()),
            acts,
            Cancel::new(),
        )
        .await;
        assert_eq!(start_order(&events), vec![2, 1, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_starts_when_its_own_deps_are_done_not_its_level() {
        // slow0 and fast1 are both level 0; after_fast depends only on fast1 and must not
        // wait for slow0 (level-by-level scheduling would make it).
        let jobs = vec![
            job("slow0", "a", &[]),
            job("fast1", "b", &[]),
            job("after_fast", "b", &[1]),
        ];
        let acts = vec![Act::Succeed(100), Act::Succeed(10), Act::Succeed(10)];
        let (summary, _) = run_fake(
            spec(jobs, Direction::Forward, Concurrency::unlimited()),
            acts,
            Cancel::new(),
        )
        .await;
        assert_eq!(summary.jobs[2].started_at_ms, Some(10));
        assert_eq!(summary.jobs[2].finished_at_ms, Some(20));
        assert_eq!(summary.elapsed_ms(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_skips_transitive_dependents_with_the_cause() {
        let jobs = vec![
            job("web1", "a", &[]),
            job("app1", "a", &[0]),
            job("lb1", "b", &[1]),
            job("other1", "b", &[]),
        ];
        let acts = vec![
            Act::Fail(5),
            Act::Succeed(1),
            Act::Succeed(1),
            Act::Succeed(1),
        ];
        let (summary, _) = run_fake(
            spec(jobs, Direction::Forward, Concurrency::unlimited()),
            acts,
            Cancel::new(),
        )
        .await;
        assert!(
            matches!(&summary.jobs[0].state, JobState::Failed { log_tail, .. } if log_tail == &["last line"])
        );
        assert_eq!(
            summary.jobs[1].state,
            JobState::Skipped {
                reason: "dependency web1 failed".into()
            }
        );
        assert_eq!(
            summary.jobs[2].state,
            JobState::Skipped {
                reason: "dependency web1 failed (through app1)".into()
            }
        );
        assert!(summary.jobs[3].state.is_done());
        assert_eq!(summary.exit_code(), 1);
        assert_eq!(
            summary.counts(),
            Counts {
                done: 1,
                failed: 1,
                skipped: 2,
                cancelled: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reverse_failure_skips_what_it_requires() {
        let jobs = vec![job("db1", "a", &[]), job("web1", "a", &[0])];
        let acts = vec![Act::Succeed(1), Act::Fail(1)];
        let (summary, _) = run_fake(
            spec(jobs, Direction::Reverse, Concurrency::unlimited()),
            acts,
            Cancel::new(),
        )
        .await;
        assert_eq!(
            summary.jobs[0].state,
            JobState::Skipped {
                reason: "dependent web1 failed".into()
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn limits_are_respected_and_a_full_ship_does_not_block_others() {
        let jobs = vec![
            job("a1", "a", &[]),
            job("a2", "a", &[]),
            job("a3", "a", &[]),
            job("b1", "b", &[]),
        ];
        let limits = Concurrency {
            global: 3,
            per_ship: HashMap::from([("a".to_string(), 1)]),
        };
        let (summary, _) = run_fake(
            spec(jobs, Direction::Forward, limits),
            vec![Act::Succeed(10); 4],
            Cancel::new(),
        )
        .await;
        let starts: Vec<_> = summary.jobs.iter().map(|r| r.started_at_ms).collect();
        assert_eq!(starts, vec![Some(0), Some(10), Some(20), Some(0)]);

        let jobs = vec![
            job("a1", "a", &[]),
            job("b1", "b", &[]),
            job("c1", "c", &[]),
        ];
        let limits = Concurrency {
            global: 1,
            per_ship: HashMap::new(),
        };
        let (summary, _) = run_fake(
            spec(jobs, Direction::Forward, limits),
            vec![Act::Succeed(10); 3],
            Cancel::new(),
        )
        .await;
        assert_eq!(summary.elapsed_ms(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_starts_nothing_new_and_lets_in_flight_work_finish() {
        let jobs = vec![
            job("db1", "a", &[]),
            job("web1", "a", &[0]),
            job("cache1", "b", &[]),
        ];
        let acts = vec![Act::Succeed(100), Act::Succeed(1), Act::UntilCancelled];
        let cancel = Cancel::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            trigger.escalate();
        });
        let (summary, events) = run_fake(
            spec(jobs, Direction::Forward, Concurrency::unlimited()),
            acts,
            cancel,
        )
        .await;
        assert!(summary.interrupted && !summary.aborted);
        assert_eq!(summary.exit_code(), 130);
        assert!(summary.jobs[0].state.is_done(), "in-flight job finishes");
        assert_eq!(
            summary.jobs[1].state,
            JobState::Cancelled {
                reason: "not started: interrupted".into()
            }
        );
        assert_eq!(
            summary.jobs[2].state,
            JobState::Cancelled {
                reason: "interrupted: container removed".into()
            }
        );
        assert_eq!(start_order(&events), vec![0, 2]);
        assert!(matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::PlanFinished { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_drops_in_flight_work_and_says_so() {
        let jobs = vec![job("db1", "a", &[]), job("web1", "a", &[0])];
        let cancel = Cancel::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            trigger.escalate();
            tokio::time::sleep(Duration::from_millis(5)).await;
            trigger.escalate();
        });
        let (summary, _) = run_fake(
            spec(jobs, Direction::Forward, Concurrency::unlimited()),
            vec![Act::Hang, Act::Succeed(1)],
            cancel,
        )
        .await;
        assert!(summary.aborted);
        assert!(
            matches!(&summary.jobs[0].state, JobState::Cancelled { reason } if reason.contains("unknown"))
        );
        assert_eq!(summary.jobs[0].elapsed_ms(), Some(10));
        assert!(matches!(&summary.jobs[1].state, JobState::Cancelled { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_operation_fails_only_its_job() {
        let jobs = vec![
            job("db1", "a", &[]),
            job("web1", "a", &[0]),
            job("x1", "b", &[]),
        ];
        let (summary, _) = run_fake(
            spec(jobs, Direction::Forward, Concurrency::unlimited()),
            vec![Act::Panic, Act::Succeed(1), Act::Succeed(1)],
            Cancel::new(),
        )
        .await;
        assert!(
            matches!(&summary.jobs[0].state, JobState::Failed { reason, .. } if reason == "operation panicked")
        );
        assert!(matches!(summary.jobs[1].state, JobState::Skipped { .. }));
        assert!(summary.jobs[2].state.is_done());
    }

    #[tokio::test]
    async fn malformed_graphs_are_refused_before_anything_runs() {
        let (sink, mut rx) = EventSink::new();
        let cycle = vec![
            job("a1", "a", &[1]),
            job("b1", "a", &[0]),
            job("c1", "a", &[]),
        ];
        let err = run(
            spec(cycle, Direction::Forward, Concurrency::unlimited()),
            Arc::new(FakeOp(vec![])),
            sink.clone(),
            Cancel::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            ScheduleError::Cycle {
                instances: vec!["a1".into(), "b1".into()]
            }
        );
        let unknown = vec![job("a1", "a", &[7])];
        let err = run(
            spec(unknown, Direction::Reverse, Concurrency::unlimited()),
            Arc::new(FakeOp(vec![])),
            sink,
            Cancel::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            ScheduleError::UnknownDependency { dep: 7, .. }
        ));
        assert!(rx.try_recv().is_err(), "no events for a refused graph");
    }

    #[test]
    fn combined_exit_code_prefers_interruption_then_failure() {
        let summary = |interrupted: bool, state: JobState| Summary {
            command: "restart".into(),
            jobs: vec![JobReport {
                job: 0,
                instance: "a1".into(),
                service: "a".into(),
                ship: "s".into(),
                state,
                started_at_ms: None,
                finished_at_ms: None,
            }],
            interrupted,
            aborted: false,
            started_at_ms: 0,
            finished_at_ms: 0,
        };
        let ok = summary(
            false,
            JobState::Done {
                outcome: Outcome::Stopped,
            },
        );
        let failed = summary(
            false,
            JobState::Failed {
                reason: "x".into(),
                log_tail: vec![],
            },
        );
        let interrupted = summary(
            true,
            JobState::Done {
                outcome: Outcome::Started,
            },
        );
        assert_eq!(combined_exit_code([&ok, &ok]), 0);
        assert_eq!(combined_exit_code([&ok, &failed]), 1);
        assert_eq!(combined_exit_code([&failed, &interrupted]), 130);
        assert_eq!(combined_exit_code([]), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_plan_finishes_at_once() {
        let (summary, events) = run_fake(
            spec(vec![], Direction::Forward, Concurrency::unlimited()),
            vec![],
            Cancel::new(),
        )
        .await;
        assert_eq!(summary.exit_code(), 0);
        assert_eq!(events.len(), 2);
    }
}
