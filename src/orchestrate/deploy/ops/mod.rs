//! The operations the lifecycle commands run per instance: start, stop, kill, clean, pull,
//! and the pieces of restart. Each is an [`Operation`] for the executor, looking its instance
//! up by job index.
//!
//! The start sequence is MaestroNG's: already running with the same spec and image ->
//! nothing; `pre-start` checks; remove the old container unless `--reuse`; pull if missing or
//! asked to; create; start; wait until running; `running` checks. A failure carries the
//! container's last log lines.
//!
//! Here is what a run shares between its jobs and the connection of each job's ship;
//! `unit` holds what is done to one instance (split out to keep each file readable).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};

use crate::config::{Environment, Instance, Service};
use crate::docker;
use crate::orchestrate::deploy::push::Pushes;
use crate::orchestrate::engine::events::Outcome;
use crate::orchestrate::engine::executor::{Cancel, Job, OpError, Operation, StepContext};
use crate::orchestrate::engine::fleet::Fleet;
use crate::orchestrate::plan::select::{Direction, Plan};

mod unit;

use unit::Unit;

/// How many log lines a failed start shows.
pub const LOG_TAIL_LINES: usize = 20;
/// How long a started container may take to be running.
const WAIT_RUNNING: Duration = Duration::from_secs(60);

/// The image id a pull produced, shared by the instances that wait for the same pull.
type PullSlot = Arc<tokio::sync::Mutex<Option<String>>>;

/// One ship as a start run first finds it: its containers of the environment (one list
/// call) and the ids of the images the run's instances there use (one inspect each, all at
/// once). It lets `start` see that an instance already runs with its spec and image without
/// inspecting it, level after level.
#[derive(Debug, Default)]
struct ShipSnapshot {
    containers: HashMap<String, docker::ManagedContainer>,
    image_ids: HashMap<String, Option<String>>,
}

impl ShipSnapshot {
    /// Whether `name` runs with the spec `hash` and the ship's current id of `image`: the
    /// same test as `reason_to_recreate`, except that a missing image or anything but a
    /// plain running container says "look closer" (inspect) rather than "running".
    fn already_running(&self, name: &str, hash: &str, image: &str) -> bool {
        let Some(container) = self.containers.get(name) else {
            return false;
        };
        let Some(Some(image_id)) = self.image_ids.get(image) else {
            return false;
        };
        container.state == docker::ContainerStatus::Running
            && container.spec_hash.as_deref() == Some(hash)
            && container.image_id == *image_id
    }
}

/// Taken once per ship, by the first job that needs it; `None` when it could not be.
type SnapshotSlot = Arc<tokio::sync::OnceCell<Option<Arc<ShipSnapshot>>>>;

/// The executor's jobs for a plan. The plan's `deps` are already oriented for its direction
/// ("must finish first"); the executor wants "requires" plus a direction, so a reverse plan's
/// edges are turned back.
pub fn jobs_of(plan: &Plan) -> (Vec<Job>, Direction) {
    let mut jobs: Vec<Job> = plan
        .steps
        .iter()
        .map(|s| Job {
            instance: s.instance.clone(),
            service: s.service.clone(),
            ship: s.ship.clone(),
            deps: Vec::new(),
        })
        .collect();
    let direction = plan.direction;
    for (k, step) in plan.steps.iter().enumerate() {
        for &d in &step.deps {
            match direction {
                Direction::Forward => jobs[k].deps.push(d),
                // `k` waits for `d` in reverse: `d` requires `k`.
                Direction::Reverse => jobs[d].deps.push(k),
            }
        }
    }
    for job in &mut jobs {
        job.deps.sort_unstable();
        job.deps.dedup();
    }
    (jobs, direction)
}

/// What to do to each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start {
        /// `-r`: pull even when the ship has the image.
        refresh_images: bool,
        /// `--reuse`: start an existing stopped container as it is.
        reuse: bool,
    },
    Stop,
    Kill,
    Clean,
    Pull,
    /// Images of this machine to their ships (`maestro push`); images from a registry are
    /// left alone.
    Push,
    /// Back to the deployment kept for a rollback (see [`crate::orchestrate::observe::history`]).
    Rollback,
    /// The stop half of `restart --only-if-changed`: only containers whose spec or image
    /// changed are stopped; the start half then leaves the others running.
    StopIfChanged {
        refresh_images: bool,
    },
    /// A restart of an instance that nothing else of the run depends on, nor it on them:
    /// one restart request when its container runs and matches the file and the image (the
    /// daemon stops and starts it, as `docker restart` does), else stop then start.
    RestartInPlace {
        refresh_images: bool,
    },
    /// A rolling restart of one instance: stop, wait, start, then wait before the next.
    RestartUnit {
        refresh_images: bool,
        only_if_changed: bool,
        stop_start_delay: Duration,
        step_delay: Duration,
    },
}

/// The lifecycle operation of a run.
pub struct LifecycleOp {
    env: Arc<Environment>,
    fleet: Arc<Fleet>,
    /// Instance name per job index.
    instances: Vec<String>,
    action: Action,
    /// Images already pulled in this run, per (ship, image), so that instances sharing an
    /// image pull it once.
    pulls: Mutex<HashMap<(String, String), PullSlot>>,
    /// Rolling restarts wait `step_delay` between units, not before the first.
    units_done: std::sync::atomic::AtomicUsize,
    /// Per ship, for `Action::Start` (see [`ShipSnapshot`]).
    snapshots: Mutex<HashMap<String, SnapshotSlot>>,
    /// `--adopt`: see [`LifecycleOp::adopting`].
    adopt: bool,
    /// The run's images from this machine, see [`LifecycleOp::pushing`].
    pushes: Option<Arc<Pushes>>,
}

impl LifecycleOp {
    pub fn new(env: Arc<Environment>, fleet: Arc<Fleet>, jobs: &[Job], action: Action) -> Self {
        LifecycleOp {
            env,
            fleet,
            instances: jobs.iter().map(|j| j.instance.clone()).collect(),
            action,
            pulls: Mutex::new(HashMap::new()),
            units_done: std::sync::atomic::AtomicUsize::new(0),
            snapshots: Mutex::new(HashMap::new()),
            adopt: false,
            pushes: None,
        }
    }

    /// Images that come from this machine are pushed through each ship's session instead of
    /// pulled from a registry (see [`crate::orchestrate::deploy::push`]).
    pub fn pushing(mut self, pushes: Option<Arc<Pushes>>) -> Self {
        self.pushes = pushes;
        self
    }

    /// With `adopt`, containers that have an instance's name but not this environment's
    /// labels are taken over (`--adopt`) instead of refused.
    pub fn adopting(mut self, adopt: bool) -> Self {
        self.adopt = adopt;
        self
    }

    /// The ship as this run first found it. Only a plain start may rely on it: its jobs
    /// each change only their own container, after consulting the snapshot.
    async fn snapshot(&self, ship: &str, docker: &docker::Ship) -> Option<Arc<ShipSnapshot>> {
        let slot = {
            let mut snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            snapshots.entry(ship.to_string()).or_default().clone()
        };
        slot.get_or_init(|| async {
            let mut images: Vec<&str> = self
                .instances
                .iter()
                .filter_map(|name| self.env.instance(name))
                .filter(|(_, instance)| instance.ship == ship)
                .map(|(_, instance)| instance.image.as_str())
                .collect();
            images.sort_unstable();
            images.dedup();
            let list = docker.list_managed(&self.env.name);
            let ids =
                futures_util::future::join_all(images.iter().map(|image| docker.image_id(image)));
            let (list, ids) = tokio::join!(list, ids);
            let containers = list
                .ok()?
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect();
            let mut image_ids = HashMap::new();
            for (image, id) in images.iter().zip(ids) {
                image_ids.insert(image.to_string(), id.ok()?);
            }
            Some(Arc::new(ShipSnapshot {
                containers,
                image_ids,
            }))
        })
        .await
        .clone()
    }

    async fn run_job(&self, job: usize, ctx: StepContext) -> Result<Outcome, OpError> {
        let name = self
            .instances
            .get(job)
            .ok_or_else(|| OpError::failed(format!("no instance for job {job}")))?;
        let (service, instance) = self
            .env
            .instance(name)
            .ok_or_else(|| OpError::failed(format!("unknown instance {name}")))?;
        // The job's time counts its wait for the ship's connection; a Ctrl-C meanwhile
        // ends the wait at once (nothing has been done to the instance yet).
        let handle = tokio::select! {
            connected = self.fleet.ship(&instance.ship) => {
                connected.map_err(|err| OpError::failed(err.to_string()))?
            }
            _ = ctx.cancelled() => {
                return Err(OpError::interrupted(format!(
                    "cancelled while connecting to {}: nothing done",
                    instance.ship
                )));
            }
        };
        let unit = Unit {
            env: &self.env,
            service,
            instance,
            handle: &handle,
            ctx: &ctx,
            op: self,
        };
        unit.run(self.action).await
    }

    /// Whether a start may take "already running" from the ship's snapshot: only a plain
    /// start's, which pulls nothing (`-r` does) and pushes nothing (an image of this machine
    /// is compared with the ship's first).
    fn trusts_snapshot(&self, refresh: bool, image: &str) -> bool {
        !refresh
            && matches!(self.action, Action::Start { .. })
            && self
                .pushes
                .as_ref()
                .and_then(|pushes| pushes.image(image))
                .is_none()
    }

    /// A plain start's look at its ships before its jobs run: the snapshot of every ship it
    /// touches, each as soon as that ship's connection is up, all at once. Returns whether
    /// the run will change nothing: every instance already runs as the file says, in those
    /// snapshots. The sequence does this beside the deploy lock and keeps the snapshots only
    /// then (see [`crate::orchestrate::deploy::lifecycle`]); any other action finds nothing
    /// to look at and says `false`.
    pub async fn look_ahead(&self, cancel: &Cancel) -> bool {
        if !matches!(
            self.action,
            Action::Start {
                refresh_images: false,
                ..
            }
        ) {
            return false;
        }
        let runs: Vec<(&Service, &Instance)> = self
            .instances
            .iter()
            .filter_map(|name| self.env.instance(name))
            .collect();
        // An image of this machine is compared on the ship by the job itself: no list decides.
        if runs.len() != self.instances.len()
            || !runs
                .iter()
                .all(|(_, instance)| self.trusts_snapshot(false, &instance.image))
        {
            return false;
        }
        let ships: BTreeSet<&str> = runs.iter().map(|(_, i)| i.ship.as_str()).collect();
        let looks = ships.into_iter().map(|ship| async move {
            let handle = tokio::select! {
                connected = self.fleet.ship(ship) => connected.ok()?,
                _ = cancel.cancelled() => return None,
            };
            let snapshot = self.snapshot(ship, &handle.docker).await?;
            Some((ship, snapshot))
        });
        let found: HashMap<&str, Arc<ShipSnapshot>> =
            join_all(looks).await.into_iter().flatten().collect();
        runs.iter().all(|(service, instance)| {
            let (spec, _) = unit::spec_of(&self.env, service, instance);
            found.get(instance.ship.as_str()).is_some_and(|snapshot| {
                snapshot.already_running(&instance.name, &spec.hash(), &instance.image)
            })
        })
    }

    /// Forgets the snapshots taken so far: each ship's first job takes it again.
    pub fn forget_snapshots(&self) {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The one pull of `image` on `ship` in this run, shared by every instance that needs it.
    fn pull_slot(&self, ship: &str, image: &str) -> PullSlot {
        let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
        pulls
            .entry((ship.to_string(), image.to_string()))
            .or_default()
            .clone()
    }
}

impl Operation for LifecycleOp {
    fn run(&self, job: usize, ctx: StepContext) -> BoxFuture<'_, Result<Outcome, OpError>> {
        self.run_job(job, ctx).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::plan::select;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn listed(
        name: &str,
        state: docker::ContainerStatus,
        hash: &str,
        image_id: &str,
    ) -> docker::ManagedContainer {
        docker::ManagedContainer {
            name: name.into(),
            id: format!("id-{name}"),
            environment: "e".into(),
            service: "s".into(),
            instance: name.into(),
            state,
            status: String::new(),
            age: None,
            exit_code: None,
            created: 0,
            image: "img".into(),
            image_id: image_id.into(),
            spec_hash: Some(hash.into()),
            health: None,
            ports: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn the_snapshot_says_running_only_for_the_same_spec_and_image() {
        use docker::ContainerStatus::{Exited, Paused, Running};
        let snapshot = ShipSnapshot {
            containers: [
                listed("ok", Running, "h1", "sha256:a"),
                listed("old-spec", Running, "h0", "sha256:a"),
                listed("old-image", Running, "h1", "sha256:0"),
                listed("exited", Exited, "h1", "sha256:a"),
                listed("paused", Paused, "h1", "sha256:a"),
            ]
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect(),
            image_ids: HashMap::from([
                ("img".to_string(), Some("sha256:a".to_string())),
                ("gone".to_string(), None),
            ]),
        };
        assert!(snapshot.already_running("ok", "h1", "img"));
        for name in ["old-spec", "old-image", "exited", "paused", "absent"] {
            assert!(!snapshot.already_running(name, "h1", "img"), "{name}");
        }
        // The ship lacks the image, or it was not looked up: inspect instead.
        assert!(!snapshot.already_running("ok", "h1", "gone"));
        assert!(!snapshot.already_running("ok", "h1", "other"));
    }

    #[test]
    fn reverse_plans_become_requires_edges_again() {
        let text = r#"
name: t
ships: {a: {ip: 10.0.0.1}}
services:
  db: {image: db, instances: {db-1: {ship: a}}}
  web: {image: web, requires: [db], instances: {web-1: {ship: a}, web-2: {ship: a}}}
"#;
        let env = match crate::config::load_str(text, "t.yaml", Path::new(".")) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        let graph = select::Graph::new(&env);
        let forward =
            select::select(&env, &graph, &select::Selection::default()).unwrap_or_default();
        let (jobs, dir) = jobs_of(&forward);
        assert_eq!(dir, Direction::Forward);
        assert_eq!(jobs[0].instance, "db-1");
        assert_eq!(jobs[1].deps, vec![0]);
        let reverse = select::select(
            &env,
            &graph,
            &select::Selection {
                direction: select::Direction::Reverse,
                ..Default::default()
            },
        )
        .unwrap_or_default();
        let (jobs, dir) = jobs_of(&reverse);
        assert_eq!(dir, Direction::Reverse);
        let db = jobs.iter().position(|j| j.instance == "db-1").unwrap_or(9);
        for (k, job) in jobs.iter().enumerate() {
            if k != db {
                // web-N still "requires" db-1; the executor reverses the order.
                assert_eq!(job.deps, vec![db]);
            }
        }
    }
}
