//! The sequences of the commands that change ships: one run of one action over one plan, or
//! a restart (stop, then a delay that Ctrl-C cuts short, then start; or rolling, one instance
//! at a time, each stopped then started).
//!
//! The CLI says what was asked ([`Request`]) and which instances ([`Selection`]); this
//! module plans it ([`plan`]), connects the ships the plans touch as the run first needs
//! each one (one [`Fleet`] for the whole sequence), runs the executor, and returns the
//! summaries. It never prints: the events go to the sink, whose renderer is the caller's.
//!
//! Before the first run, it takes the environment's deploy lock on every ship the plans
//! touch (see [`crate::orchestrate::deploy::lock`]), and releases it after the last, whatever the outcome: a
//! failed or interrupted run ends through the same path. Only a third Ctrl-C (which exits
//! at once) or a killed process leaves the lock behind, with a record that says so.
//!
//! A plain start (no `-r`) also lists each ship beside its lock, in the same round trip.
//! When every instance already runs as the file says, the run changes nothing and decides
//! from those lists, so a no-op start costs the lock's two round trips and nothing more:
//! a run that changes nothing is a read, true at the moment of its lists, as a status is.
//! Otherwise the lists are dropped and each ship's first job lists it again, under the lock:
//! a run that changes anything decides from what the ships held once the lock was theirs,
//! never from a list that may come from before it (another operator's command can end
//! between the two).
//!
//! The environment's auditors hear the command begin while the locks are being taken, and
//! end while they are given back (see [`crate::orchestrate::deploy::audit`]): both overlap the lock's round trip
//! rather than add to it. Nothing changes before both the locks and the begin record are
//! done; an auditor that fails without `ignore_errors` stops the command there, and a
//! command the lock refuses is told to the auditors as refused. Keyed on
//! [`Request::command`], so every command that comes through here is audited.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Environment;
use crate::orchestrate::deploy::audit::{Audit, AuditError, Note};
use crate::orchestrate::deploy::lock::{self, Holder, LockError, LockKind};
use crate::orchestrate::deploy::ops::{self, Action, LifecycleOp};
use crate::orchestrate::deploy::push;
use crate::orchestrate::engine::events::EventSink;
use crate::orchestrate::engine::executor::{
    self, Cancel, Concurrency, RunSpec, ScheduleError, Summary,
};
use crate::orchestrate::engine::fleet::{ConnectOptions, Fleet};
use crate::orchestrate::plan::select::{self, Direction, Graph, Plan, PlanError, Selection};

/// What the command line asked for, reduced to what the runs need.
#[derive(Debug, Clone)]
pub enum Request {
    /// One run of one action over one plan.
    Single {
        command: &'static str,
        action: Action,
        direction: Direction,
        /// Pull has no ordering to respect.
        ignore_dependencies: bool,
        /// Take over containers with an instance's name but not this environment's labels.
        adopt: bool,
    },
    Restart {
        /// Rolling: one instance at a time, this long between two.
        step_delay: Option<Duration>,
        stop_start_delay: Option<Duration>,
        only_if_changed: bool,
        refresh_images: bool,
        adopt: bool,
    },
}

impl Request {
    /// The command's name, as the lock's record tells it to other operators.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Single { command, .. } => command,
            Request::Restart { .. } => "restart",
        }
    }

    /// The direction in which the request selects its instances.
    pub fn direction(&self) -> Direction {
        match self {
            Request::Single { direction, .. } => *direction,
            Request::Restart { .. } => Direction::Reverse,
        }
    }

    /// Whether the request takes over containers that are not this environment's (`--adopt`).
    pub fn adopts(&self) -> bool {
        match self {
            Request::Single { adopt, .. } | Request::Restart { adopt, .. } => *adopt,
        }
    }

    /// Whether the request ignores dependencies whatever the selection says (pull).
    /// Whether the run may put images on ships (and so reads those of this machine first).
    pub fn needs_images(&self) -> bool {
        match self {
            Request::Single { action, .. } => {
                matches!(action, Action::Start { .. } | Action::Pull | Action::Push)
            }
            Request::Restart { .. } => true,
        }
    }

    pub fn ignores_dependencies(&self) -> bool {
        matches!(
            self,
            Request::Single {
                ignore_dependencies: true,
                ..
            }
        )
    }
}

/// The plans `request` runs, in order, for `selection` (whose direction and dependency
/// handling [`Request::direction`] and [`Request::ignores_dependencies`] set): one for a
/// single action or a rolling restart, two (stop, then start) for a restart.
pub fn plan(
    env: &Environment,
    graph: &Graph,
    request: &Request,
    selection: &Selection,
) -> Result<Vec<Plan>, PlanError> {
    match request {
        Request::Single { .. } => Ok(vec![select::select(env, graph, selection)?]),
        Request::Restart {
            step_delay,
            stop_start_delay,
            only_if_changed,
            ..
        } => {
            // -d widens a restart to the dependents, whichever half runs.
            let (stop, start) = select::select_restart(env, graph, selection)?;
            // Nothing to stop means nothing to restart (the start half's names would be
            // empty, which selects everything).
            let start = if stop.is_empty() {
                Plan::default()
            } else {
                start
            };
            // No instance of the restart depends on another: no order to keep between
            // them, so each restarts on its own, in place (see [`sequence`]).
            let in_place = !only_if_changed
                && stop_start_delay.is_none()
                && start.steps.iter().all(|s| s.deps.is_empty());
            Ok(if step_delay.is_some() || in_place {
                vec![start]
            } else {
                vec![stop, start]
            })
        }
    }
}

/// Why a sequence did not run to its summaries.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
    /// The deploy lock of a ship was held by someone else, or could not be taken: nothing ran.
    /// Locks taken meanwhile that could not be given back are beside it, to be told.
    #[error("{0}")]
    Lock(LockError, Vec<LockError>),
    /// An auditor could not hear the command begin (or Ctrl-C came then): nothing ran. The
    /// locks were released; those that could not be are beside it, to be told.
    #[error("{0}")]
    Audit(AuditError, Vec<LockError>),
    /// An image that comes from this machine could not be read: nothing was touched.
    #[error("{0}")]
    Images(String),
}

/// What a sequence that ran leaves to tell.
#[derive(Debug)]
pub struct Finished {
    /// Every run's summary, in order.
    pub summaries: Vec<Summary>,
    /// Locks that could not be released.
    pub unreleased: Vec<LockError>,
    /// Dead holders' locks this command took over (`ship: holder`).
    pub taken_over: Vec<String>,
    /// Auditors that failed (without changing the result), or hipchat's notice.
    pub audit: Vec<Note>,
}

/// Runs `plans` (from [`plan`]) as `request` says, with one fleet for the ships they touch,
/// under the deploy lock of those ships, and returns every run's summary (see [`sequence`]).
/// Locks that could not be released and the auditors' notes are returned beside the
/// summaries, to be told.
pub async fn run(
    env: Arc<Environment>,
    request: Request,
    plans: Vec<Plan>,
    limits: Concurrency,
    options: ConnectOptions,
    sink: EventSink,
    cancel: Cancel,
) -> Result<Finished, RunError> {
    let pushes = local_images(&env, &request, &plans, &cancel).await?;
    let fleet = Arc::new(Fleet::for_plans(&env, &plans, options).with_events(sink.clone()));
    let ours = Holder::ours(request.command(), LockKind::Command, None);
    let ships: Vec<&str> = fleet.names().collect();
    let audit = Audit::new(&env, request.command(), &plans);
    let adopt = request.adopts();
    let new_op = |plan: &Plan, action: Action| {
        let (jobs, direction) = ops::jobs_of(plan);
        let op = LifecycleOp::new(Arc::clone(&env), Arc::clone(&fleet), &jobs, action)
            .adopting(adopt)
            .pushing(pushes.clone());
        (Arc::new(op), jobs, direction)
    };
    // A plain start lists its ships beside the lock (see the module's header).
    let mut ahead = match (&request, plans.first()) {
        (
            Request::Single {
                action: action @ Action::Start { .. },
                ..
            },
            Some(plan),
        ) => Some((*action, new_op(plan, *action))),
        _ => None,
    };
    let look_ahead = async {
        match &ahead {
            Some((_, (op, ..))) => op.look_ahead(&cancel).await,
            None => false,
        }
    };
    let (locks, begun, changes_nothing) = tokio::join!(
        lock::acquire(&fleet, &env, &ours, &ships, true, &cancel),
        audit.begin(&cancel),
        look_ahead
    );
    let (locks, mut notes) = locked_and_begun(locks, begun, &audit, &fleet, &cancel).await?;
    for skipped in &locks.skipped {
        tracing::warn!("{}: not locked: {}", skipped.ship, skipped.reason);
    }
    let taken_over = locks.taken_over.clone();
    if let Some((_, (op, ..))) = &ahead
        && !changes_nothing
    {
        op.forget_snapshots();
    }
    let run = |command: &'static str, plan: &Plan, action: Action, limits: Concurrency| {
        let (op, jobs, direction) = match ahead.take() {
            Some((looked, prepared)) if looked == action => prepared,
            _ => new_op(plan, action),
        };
        let spec = RunSpec {
            command: command.to_string(),
            jobs,
            direction,
            limits,
        };
        executor::run(spec, op, sink.clone(), cancel.clone())
    };
    let summaries = sequence(&request, &plans, limits, &cancel, run).await;
    let (ended, unreleased) = tokio::join!(audit.end(&summaries, &cancel), locks.release());
    notes.extend(ended);
    fleet.close().await;
    Ok(Finished {
        summaries: summaries?,
        unreleased,
        taken_over,
        audit: notes,
    })
}

/// The images of this machine the run needs, read before any ship is touched: a missing one
/// changes nothing anywhere.
async fn local_images(
    env: &Environment,
    request: &Request,
    plans: &[Plan],
    cancel: &Cancel,
) -> Result<Option<Arc<push::Pushes>>, RunError> {
    if !request.needs_images() {
        return Ok(None);
    }
    let instances: Vec<String> = plans
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| s.instance.clone()))
        .collect();
    tokio::select! {
        prepared = push::prepare(env, &instances) => {
            Ok(prepared.map_err(RunError::Images)?.map(Arc::new))
        }
        _ = cancel.cancelled() => Err(RunError::Images(
            "interrupted while reading the images of this machine: nothing done".into(),
        )),
    }
}

/// The locks and the auditors' begin notes when both were had; otherwise what was taken is
/// given back, the fleet closed, and the error says why the command ran nothing.
async fn locked_and_begun(
    locks: Result<lock::Locks, lock::Refusal>,
    begun: Result<Vec<Note>, AuditError>,
    audit: &Audit,
    fleet: &Fleet,
    cancel: &Cancel,
) -> Result<(lock::Locks, Vec<Note>), RunError> {
    let error = match (locks, begun) {
        (Ok(locks), Ok(notes)) => return Ok((locks, notes)),
        (Ok(locks), Err(err)) => RunError::Audit(err, locks.release().await),
        // Ctrl-C heard by both: the auditors are what the operator was waiting on.
        (
            Err(lock::Refusal {
                error: LockError::Interrupted,
                unreleased,
            }),
            Err(err),
        ) => RunError::Audit(err, unreleased),
        (Err(refusal), begun) => {
            if begun.is_ok() {
                audit.refused(&refusal.error.to_string(), cancel).await;
            }
            RunError::Lock(refusal.error, refusal.unreleased)
        }
    };
    fleet.close().await;
    Err(error)
}

/// The sequence of runs `request` asks for, each made by `run` (the command's name, a plan,
/// the action, the concurrency): one run for a single action; for a rolling restart, one run
/// of one instance at a time; for a restart whose [`plan`] is one plan (no instance of it
/// depends on another), one run that restarts each in place; for other restarts, the stop
/// half, then the delay, then the start half. A restart stops at its stop half when that half was interrupted, and Ctrl-C during
/// the delay ends it there. Generic over `run` so that the property tests drive it with a
/// scripted operation.
pub async fn sequence<'p, R, F>(
    request: &Request,
    plans: &'p [Plan],
    limits: Concurrency,
    cancel: &Cancel,
    mut run: R,
) -> Result<Vec<Summary>, ScheduleError>
where
    R: FnMut(&'static str, &'p Plan, Action, Concurrency) -> F,
    F: Future<Output = Result<Summary, ScheduleError>>,
{
    let mut summaries: Vec<Summary> = Vec::new();
    match *request {
        Request::Single {
            command, action, ..
        } => {
            if let Some(plan) = plans.first() {
                summaries.push(run(command, plan, action, limits).await?);
            }
        }
        Request::Restart {
            step_delay: Some(step_delay),
            stop_start_delay,
            only_if_changed,
            refresh_images,
            ..
        } => {
            if let Some(plan) = plans.first() {
                let action = Action::RestartUnit {
                    refresh_images,
                    only_if_changed,
                    stop_start_delay: stop_start_delay.unwrap_or_default(),
                    step_delay,
                };
                let one_at_a_time = Concurrency {
                    global: 1,
                    ..limits
                };
                summaries.push(run("restart", plan, action, one_at_a_time).await?);
            }
        }
        Request::Restart {
            step_delay: None,
            stop_start_delay,
            only_if_changed,
            refresh_images,
            ..
        } => {
            if let [plan] = plans {
                let action = Action::RestartInPlace { refresh_images };
                summaries.push(run("restart", plan, action, limits).await?);
                return Ok(summaries);
            }
            let (Some(stop), Some(start)) = (plans.first(), plans.get(1)) else {
                return Ok(summaries);
            };
            let stop_action = if only_if_changed {
                Action::StopIfChanged { refresh_images }
            } else {
                Action::Stop
            };
            let stopped = run("restart (stop)", stop, stop_action, limits.clone()).await?;
            let interrupted = stopped.interrupted;
            summaries.push(stopped);
            if interrupted {
                return Ok(summaries);
            }
            if let Some(delay) = stop_start_delay {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => return Ok(summaries),
                }
            }
            // A Ctrl-C as the delay ends (both ready at once) still ends the restart here.
            if cancel.is_cancelled() {
                return Ok(summaries);
            }
            let start_action = Action::Start {
                // The stop half already pulled when it compared images.
                refresh_images: refresh_images && !only_if_changed,
                reuse: false,
            };
            summaries.push(run("restart (start)", start, start_action, limits).await?);
        }
    }
    Ok(summaries)
}
