//! What a lifecycle operation does to one instance once its ship is connected: the start
//! sequence, stop and kill, clean, pull and push, rollback, and the halves of restart.
//!
//! Apart from [`super::LifecycleOp`], which holds what a run shares between its jobs (the
//! ship snapshots, the pulls in flight, the count of rolling-restart units) and connects each
//! job's ship; a [`Unit`] is one job's instance on that ship.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Check, Environment, Instance, Service};
use crate::docker::{
    self, ContainerDetails, ContainerSpec, Credentials, Deployment, PullRetry, RestartPolicy,
};

use crate::docker::push::PreparedImage;
use crate::orchestrate::deploy::checks::{self, CheckError, CheckState, CheckTarget};
use crate::orchestrate::deploy::push::Pushes;
use crate::orchestrate::engine::events::{Outcome, Step};
use crate::orchestrate::engine::executor::{OpError, StepContext};
use crate::orchestrate::engine::fleet::ShipHandle;
use crate::orchestrate::plan::autoconf;
use crate::orchestrate::plan::container::{
    Kept, foreign, published_ports, reason_to_recreate, refusal,
};
use crate::orchestrate::plan::spec;

use super::{Action, LOG_TAIL_LINES, LifecycleOp, WAIT_RUNNING};

/// What `start` did with the container it replaces.
#[derive(Debug, Default)]
struct SetAside {
    /// The records of the deployments before the new container, newest first.
    earlier: Vec<Deployment>,
    /// A `.replaced` is kept: once the new container succeeds, it becomes `.previous`.
    replaced_kept: bool,
    /// The old container was just kept as `.replaced` (rather than removed).
    kept_now: bool,
}

/// How a running container is brought down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    /// SIGTERM (or its `stop_signal`), then SIGKILL after `stop_timeout`.
    Stop,
    Kill,
}

pub(super) struct Unit<'a> {
    pub(super) env: &'a Environment,
    pub(super) service: &'a Service,
    pub(super) instance: &'a Instance,
    pub(super) handle: &'a ShipHandle,
    pub(super) ctx: &'a StepContext,
    pub(super) op: &'a LifecycleOp,
}

/// The container `instance` runs as, and its auto-configuration variables: from the file alone.
pub(super) fn spec_of(
    env: &Environment,
    service: &Service,
    instance: &Instance,
) -> (ContainerSpec, BTreeMap<String, String>) {
    let vars = autoconf::container_env(env, service, instance);
    (spec::container_spec_with_env(env, instance, &vars), vars)
}

fn docker_failed(err: docker::DockerError) -> OpError {
    OpError::failed(err.to_string())
}

impl Unit<'_> {
    fn name(&self) -> &str {
        &self.instance.name
    }

    fn ship(&self) -> &docker::Ship {
        &self.handle.docker
    }

    fn ship_ip(&self) -> &str {
        self.env
            .ship(&self.instance.ship)
            .map_or("", |s| s.ip.as_str())
    }

    fn spec(&self) -> (ContainerSpec, BTreeMap<String, String>) {
        spec_of(self.env, self.service, self.instance)
    }

    async fn sleep(&self, duration: Duration) -> Result<(), OpError> {
        tokio::select! {
            _ = tokio::time::sleep(duration) => Ok(()),
            _ = self.ctx.cancelled() => Err(OpError::interrupted("interrupted while waiting")),
        }
    }

    /// The instance's container, if there is one. Every operation that changes a container
    /// finds it here, so this is where ownership is enforced: a container with the instance's
    /// name that does not carry this environment's labels for this instance (another
    /// environment's, MaestroNG's, someone's by hand) is refused, and left as it is, unless
    /// the run adopts it.
    async fn inspect(&self) -> Result<Option<ContainerDetails>, OpError> {
        self.inspect_owned(self.name(), self.op.adopt).await
    }

    /// The container `name` of this instance (its own or a kept one), if there is one;
    /// refused when it is not the environment's instance, unless `adopt`.
    async fn inspect_owned(
        &self,
        name: &str,
        adopt: bool,
    ) -> Result<Option<ContainerDetails>, OpError> {
        let details = self.ship().inspect(name).await.map_err(docker_failed)?;
        if let Some(found) = &details
            && !adopt
            && let Some(why) = foreign(found, &self.env.name, self.name())
        {
            return Err(OpError::failed(refusal(name, &self.instance.ship, &why)));
        }
        Ok(details)
    }

    /// The container's last log lines, for a failure report; none if they cannot be read.
    async fn log_tail(&self) -> Vec<String> {
        self.ship()
            .logs_tail(self.name(), LOG_TAIL_LINES)
            .await
            .unwrap_or_default()
    }

    async fn fail_with_logs(&self, reason: String) -> OpError {
        OpError::failed(reason).with_log_tail(self.log_tail().await)
    }

    async fn checks(
        &self,
        state: CheckState,
        checks: &[Check],
        vars: &BTreeMap<String, String>,
        watch: bool,
    ) -> Result<(), CheckError> {
        self.checks_of(state, checks, vars, watch, None).await
    }

    /// [`Unit::checks`], with the container's `details` when the caller has just read them.
    async fn checks_of(
        &self,
        state: CheckState,
        checks: &[Check],
        vars: &BTreeMap<String, String>,
        watch: bool,
        details: Option<ContainerDetails>,
    ) -> Result<(), CheckError> {
        if checks.is_empty() && !watch {
            return Ok(());
        }
        let details = match details {
            Some(details) => Some(details),
            None => self.ship().inspect(self.name()).await.ok().flatten(),
        };
        let ports = published_ports(self.instance, details.as_ref());
        let target = CheckTarget {
            connection: &self.handle.connection,
            ship: self.ship(),
            ship_ip: self.ship_ip(),
            container: self.name(),
            ports: &ports,
            env: vars,
            has_healthcheck: details.as_ref().map(|d| d.health.is_some()),
        };
        checks::run_checks(&target, state, checks, watch, self.ctx).await
    }

    fn check_failure(err: CheckError, left: &str) -> OpError {
        match err {
            CheckError::Cancelled { .. } => OpError::interrupted(format!("{err}: {left}")),
            other => OpError::failed(other.to_string()),
        }
    }

    /// Why the instance's container should be re-created, `None` when it matches the file
    /// and the image the ship has (after a pull with `refresh`). A missing container counts
    /// as changed.
    async fn change_reason(&self, refresh: bool) -> Result<Option<String>, OpError> {
        let (spec, _) = self.spec();
        let Some(existing) = self.inspect().await? else {
            return Ok(Some("no container".into()));
        };
        let image_id = self.current_image_id(refresh).await?;
        Ok(reason_to_recreate(
            &existing,
            &spec.hash(),
            image_id.as_deref(),
        ))
    }

    /// The instance's image when it comes from this machine.
    fn local_image(&self) -> Option<&PreparedImage> {
        self.op.pushes.as_ref()?.image(&self.instance.image)
    }

    /// The id of the image the instance should run: pulled first with `refresh`; an image of
    /// this machine is pushed first when the ship's is not the same.
    async fn current_image_id(&self, refresh: bool) -> Result<Option<String>, OpError> {
        if refresh {
            return self.pull().await.map(Some);
        }
        let on_ship = self
            .ship()
            .image_id(&self.instance.image)
            .await
            .map_err(docker_failed)?;
        match self.local_image() {
            Some(local) if on_ship.as_deref() != Some(local.id.as_str()) => {
                self.pull().await.map(Some)
            }
            _ => Ok(on_ship),
        }
    }

    /// Pushes the instance's image from this machine through the ship's session (once per
    /// ship and image in a run); returns its id.
    async fn push(&self, local: &PreparedImage, pushes: &Pushes) -> Result<String, OpError> {
        let image = &self.instance.image;
        let total = local.layer_bytes();
        self.ctx.step(Step::Pushing {
            image: image.clone(),
            bytes_sent: 0,
            bytes_total: total,
        });
        let ctx = self.ctx;
        let mut last = 0u64;
        let push = pushes.push(self.handle, local, |sent| {
            // One event per 1% of the image at most: the daemon reports every chunk.
            if sent.saturating_sub(last) >= (total / 100).max(1) {
                last = sent;
                ctx.step(Step::Pushing {
                    image: image.clone(),
                    bytes_sent: sent,
                    bytes_total: total,
                });
            }
        });
        let report = tokio::select! {
            result = push => result.map_err(docker_failed)?,
            _ = self.ctx.cancelled() => {
                return Err(OpError::interrupted(
                    "interrupted while pushing: the layers received are kept, the image is \
                     not tagged",
                ));
            }
        };
        self.ctx.step(Step::Pushed {
            image: image.clone(),
            bytes_sent: report.bytes_sent,
            layers_total: report.layers_total,
            layers_skipped: report.layers_skipped,
        });
        Ok(report.id)
    }

    /// Pulls the instance's image (once per ship and image in a run); returns its id. An
    /// image of this machine is pushed instead.
    async fn pull(&self) -> Result<String, OpError> {
        let image = &self.instance.image;
        let slot = self.op.pull_slot(&self.instance.ship, image);
        let mut pulled = slot.lock().await;
        if let Some(id) = pulled.as_ref() {
            return Ok(id.clone());
        }
        if let (Some(local), Some(pushes)) = (self.local_image(), self.op.pushes.as_ref()) {
            let id = self.push(local, pushes).await?;
            *pulled = Some(id.clone());
            return Ok(id);
        }
        let (auth, retry) = self.registry_auth();
        self.ctx.step(Step::Pulling {
            percent: None,
            detail: image.clone(),
        });
        let ctx = self.ctx;
        let mut last_percent: Option<u8> = None;
        let pull = self.ship().pull(image, auth, &retry, |p| {
            // One event per percent: a pull reports every chunk of every layer.
            if last_percent != Some(p.percent) {
                last_percent = Some(p.percent);
                ctx.step(Step::Pulling {
                    percent: Some(p.percent),
                    detail: format!("{}/{} layers", p.layers_done, p.layers_total),
                });
            }
        });
        let id = tokio::select! {
            result = pull => result.map_err(docker_failed)?,
            _ = self.ctx.cancelled() => {
                return Err(OpError::interrupted("interrupted while pulling"));
            }
        };
        *pulled = Some(id.clone());
        Ok(id)
    }

    /// Credentials and retry policy for the image: from the file's `registries`, or the
    /// Docker client config for the image's registry.
    fn registry_auth(&self) -> (Option<Credentials>, PullRetry) {
        let image = &self.instance.image;
        let mut retry = PullRetry::default();
        let mut host = docker::registry_of_image(image).map(str::to_string);
        if let Some(registry) = self.env.registry_for_image(image) {
            retry.attempts = registry.retry.attempts.max(1);
            retry.on_status = registry.retry.when.clone();
            if let (Some(user), Some(password)) = (&registry.username, &registry.password) {
                let mut creds = Credentials::new(user.clone(), password.expose());
                creds.email = registry.email.clone();
                creds.server = Some(registry.host_port().to_string());
                return (Some(creds), retry);
            }
            host = Some(registry.host_port().to_string());
        }
        let creds = host.and_then(|h| match Credentials::from_docker_config(&h) {
            Ok(found) => found,
            Err(err) => {
                self.ctx.step(Step::Message {
                    text: format!("ignoring the Docker client config: {err}"),
                });
                None
            }
        });
        (creds, retry)
    }

    async fn start(&self, refresh: bool, reuse: bool) -> Result<Outcome, OpError> {
        let (spec, vars) = self.spec();
        let hash = spec.hash();
        if self.op.trusts_snapshot(refresh, &self.instance.image)
            && let Some(snapshot) = self.op.snapshot(&self.instance.ship, self.ship()).await
            && snapshot.already_running(self.name(), &hash, &self.instance.image)
        {
            return Ok(Outcome::AlreadyRunning);
        }
        let image_id = self.current_image_id(refresh).await?;
        let existing = self.inspect().await?;
        let change = existing
            .as_ref()
            .and_then(|c| reason_to_recreate(c, &hash, image_id.as_deref()));
        if let Some(c) = &existing
            && c.running
            && change.is_none()
        {
            return Ok(Outcome::AlreadyRunning);
        }

        self.pre_start_checks(&vars).await?;

        let mut replaced = false;
        let aside = match &existing {
            Some(c) => {
                if reuse && change.is_none() {
                    self.ctx.step(Step::Message {
                        text: "re-using the stopped container".into(),
                    });
                    return self.start_created(&vars, Outcome::Started).await;
                }
                replaced = c.running;
                self.set_aside(c, change.as_deref()).await?
            }
            None => self.nothing_to_set_aside().await?,
        };
        if self.ctx.is_cancelled() {
            return Err(OpError::interrupted(match (&existing, aside.kept_now) {
                (None, _) => "interrupted before create: nothing created",
                (Some(_), true) => {
                    "interrupted before create: old container stopped and kept for `rollback`, \
                     none created"
                }
                (Some(_), false) => {
                    "interrupted before create: old container removed, none created"
                }
            }));
        }
        let image_id = match image_id {
            Some(id) => id,
            None => self.pull().await?,
        };
        let record = self.record(hash, image_id);
        self.create(&spec, &record, &aside.earlier).await?;
        let outcome = if replaced {
            Outcome::Other("re-created".into())
        } else {
            Outcome::Started
        };
        let outcome = self.start_created(&vars, outcome).await?;
        if aside.replaced_kept {
            self.settle().await;
        }
        Ok(outcome)
    }

    /// `pre-start` checks; their failure leaves everything as it was.
    async fn pre_start_checks(&self, vars: &BTreeMap<String, String>) -> Result<(), OpError> {
        self.checks(
            CheckState::PreStart,
            &self.instance.lifecycle.pre_start,
            vars,
            false,
        )
        .await
        .map_err(|e| Self::check_failure(e, "nothing changed"))
    }

    /// Stops the instance's container when `existing` (its inspection) says it runs.
    async fn stop_if_running(&self, existing: &ContainerDetails) -> Result<(), OpError> {
        if existing.running {
            self.ctx.step(Step::Stopping);
            self.ship()
                .stop(self.name(), stop_timeout(self.instance))
                .await
                .map_err(docker_failed)?;
        }
        Ok(())
    }

    /// Removes the instance's container, running or not.
    async fn remove_own(&self) -> Result<(), OpError> {
        self.ctx.step(Step::Removing);
        self.ship()
            .remove(self.name(), true)
            .await
            .map_err(docker_failed)
    }

    /// The record of a deployment made now, of the instance's image as `image_id`, with the
    /// spec whose hash is `spec_hash`.
    fn record(&self, spec_hash: String, image_id: String) -> Deployment {
        Deployment {
            at: crate::clock::now_secs(),
            by: crate::orchestrate::deploy::lock::operator(),
            image: self.instance.image.clone(),
            image_id,
            spec_hash,
            succeeded: true,
        }
    }

    /// Creates the instance's container (its networks first), with `record` after `earlier`
    /// as its deployment labels. A Ctrl-C meanwhile removes it again: never a container
    /// created but not started.
    async fn create(
        &self,
        spec: &ContainerSpec,
        record: &Deployment,
        earlier: &[Deployment],
    ) -> Result<(), OpError> {
        if spec.network_mode.is_none() {
            for network in &spec.networks {
                self.ship()
                    .ensure_network(&network.name)
                    .await
                    .map_err(docker_failed)?;
            }
        }
        self.ctx.step(Step::Creating);
        self.ship()
            .create_recorded(spec, &record.labels(earlier))
            .await
            .map_err(docker_failed)?;
        if self.ctx.is_cancelled() {
            // Never leave a container created but not started behind.
            return match self.ship().remove(self.name(), true).await {
                Ok(()) => Err(OpError::interrupted(
                    "interrupted after create: container removed",
                )),
                Err(err) => Err(OpError::interrupted(format!(
                    "interrupted after create: removing the container failed: {err}"
                ))),
            };
        }
        Ok(())
    }

    /// The instance's container kept for a rollback as `kept`, if there is one; one that is
    /// not this environment's is refused, `--adopt` or not: only the instance's own
    /// container is taken over.
    async fn kept(&self, kept: Kept) -> Result<Option<ContainerDetails>, OpError> {
        self.inspect_owned(&kept.name(self.name()), false).await
    }

    /// The labels of the instance's container kept as `kept`, if there is one: from the run's
    /// snapshot of the ship when it has one (a start: no call), else by inspecting it.
    async fn kept_labels(&self, kept: Kept) -> Result<Option<BTreeMap<String, String>>, OpError> {
        if matches!(self.op.action, Action::Start { .. })
            && let Some(snapshot) = self.op.snapshot(&self.instance.ship, self.ship()).await
        {
            // Only this job changes this instance's containers: the snapshot is still true.
            let name = kept.name(self.name());
            return Ok(snapshot.containers.get(&name).map(|c| c.labels.clone()));
        }
        Ok(self.kept(kept).await?.map(|c| c.labels))
    }

    /// Moves the container `start` is about to replace out of the way, stopped. A container
    /// of another deployment (`reason` says what changed) is kept as `NAME.replaced` when it
    /// is the environment's and no `.replaced` is kept already, and removed when a
    /// `.replaced` is kept (it is a deployment that never succeeded). The same deployment
    /// re-created (a stopped container started again) or a container that is not the
    /// environment's (adopted: nothing to return to) is removed: keeping it would make the
    /// rollback point a copy of what runs.
    async fn set_aside(
        &self,
        existing: &ContainerDetails,
        reason: Option<&str>,
    ) -> Result<SetAside, OpError> {
        if let Some(reason) = reason {
            self.ctx.step(Step::Message {
                text: format!("re-creating: {reason}"),
            });
        }
        self.stop_if_running(existing).await?;
        let mut earlier = Deployment::history_of(&existing.labels);
        let record = Deployment::of(&existing.labels);
        let ours = foreign(existing, &self.env.name, self.name()).is_none();
        let another_deployment = ours && reason.is_some();
        let replaced_kept = self.kept_labels(Kept::Replaced).await?.is_some();
        if another_deployment && !replaced_kept {
            earlier.splice(0..0, record);
            self.keep(self.name(), Kept::Replaced).await?;
            return Ok(SetAside {
                earlier,
                replaced_kept: true,
                kept_now: true,
            });
        }
        if another_deployment && let Some(mut failed) = record {
            failed.succeeded = false;
            earlier.insert(0, failed);
        }
        self.remove_own().await?;
        Ok(SetAside {
            earlier,
            replaced_kept,
            kept_now: false,
        })
    }

    /// When the instance has no container: the records before the new one are those of the
    /// container kept for a rollback (a start interrupted after setting the old one aside,
    /// or an instance cleaned since).
    async fn nothing_to_set_aside(&self) -> Result<SetAside, OpError> {
        for kept in [Kept::Replaced, Kept::Previous] {
            if let Some(labels) = self.kept_labels(kept).await? {
                let mut earlier = Deployment::history_of(&labels);
                earlier.splice(0..0, Deployment::of(&labels));
                return Ok(SetAside {
                    earlier,
                    replaced_kept: kept == Kept::Replaced,
                    kept_now: false,
                });
            }
        }
        Ok(SetAside::default())
    }

    /// After a deployment succeeded, when a `.replaced` is kept: it becomes `NAME.previous`
    /// (the older one goes). A failure here leaves the deployment as it is, and is said.
    async fn settle(&self) {
        let settled = async {
            let previous = Kept::Previous.name(self.name());
            if self.kept(Kept::Previous).await?.is_some() {
                self.ship()
                    .remove(&previous, true)
                    .await
                    .map_err(docker_failed)?;
            }
            self.rename(&Kept::Replaced.name(self.name()), &previous)
                .await
        };
        if let Err(err) = settled.await {
            self.ctx.step(Step::Message {
                text: format!(
                    "deployed, but the replaced container stays the rollback point: {err}"
                ),
            });
        }
    }

    /// `rollback`: the container kept for a rollback takes the instance's name again and is
    /// started, with `start`'s checks. The current container, stopped, is kept as
    /// `NAME.previous` when it was a deployment that succeeded (a second rollback undoes the
    /// first, as `kubectl rollout undo` does), and removed when it never succeeded (the
    /// rollback returned to `.replaced`). Nothing kept: nothing to do.
    async fn rollback(&self) -> Result<Outcome, OpError> {
        let current = self.inspect().await?;
        let (target, failed_current) = match self.kept(Kept::Replaced).await? {
            Some(found) => (found, true),
            None => match self.kept(Kept::Previous).await? {
                Some(found) => (found, false),
                None => {
                    self.ctx.step(Step::Message {
                        text: "no earlier deployment is kept: nothing to return to".into(),
                    });
                    return Ok(Outcome::NothingToDo);
                }
            },
        };
        let (_, vars) = self.spec();
        self.pre_start_checks(&vars).await?;
        let returning_to = match Deployment::of(&target.labels) {
            Some(r) => format!(
                "returning to the deployment of {} by {} ({})",
                crate::clock::format_unix_time(r.at),
                r.by,
                r.image
            ),
            None => format!("returning to {} ({})", target.name, target.image),
        };
        self.ctx.step(Step::Message { text: returning_to });
        let swap = match &current {
            Some(c) => {
                self.stop_if_running(c).await?;
                let keep = !failed_current && foreign(c, &self.env.name, self.name()).is_none();
                if keep {
                    // `.previous` is the target: the current one waits as `.replaced`.
                    self.keep(self.name(), Kept::Replaced).await?;
                } else {
                    self.remove_own().await?;
                }
                keep
            }
            None => false,
        };
        self.rename(&target.name, self.name()).await?;
        // Set aside, it could not come back by itself; restored, it restarts as it was made.
        let policy = target
            .recorded_spec()
            .and_then(|spec| RestartPolicy::recorded_in(&spec));
        self.ship()
            .set_restart_policy(self.name(), policy.as_ref())
            .await
            .map_err(docker_failed)?;
        if swap {
            self.rename(
                &Kept::Replaced.name(self.name()),
                &Kept::Previous.name(self.name()),
            )
            .await?;
        }
        self.start_created(&vars, Outcome::Other("rolled back".into()))
            .await
    }

    /// Sets the stopped container `name` aside as `kept`, with the restart policy `no`: a
    /// daemon restart (a reboot) would otherwise start it again beside the current one (a
    /// port clash, one network alias served by two versions, consumers running twice).
    async fn keep(&self, name: &str, kept: Kept) -> Result<(), OpError> {
        self.ship()
            .set_restart_policy(name, None)
            .await
            .map_err(docker_failed)?;
        self.rename(name, &kept.name(self.name())).await
    }

    async fn rename(&self, name: &str, to: &str) -> Result<(), OpError> {
        self.ship().rename(name, to).await.map_err(docker_failed)
    }

    /// Starts the existing container, waits until it runs and passes its `running` checks.
    async fn start_created(
        &self,
        vars: &BTreeMap<String, String>,
        outcome: Outcome,
    ) -> Result<Outcome, OpError> {
        self.ctx.step(Step::Starting);
        if let Err(err) = self.ship().start(self.name()).await {
            return Err(self.fail_with_logs(err.to_string()).await);
        }
        self.wait_and_check_running(vars, outcome).await
    }

    /// After the daemon started the container: until it runs, then the `running` checks.
    async fn wait_and_check_running(
        &self,
        vars: &BTreeMap<String, String>,
        outcome: Outcome,
    ) -> Result<Outcome, OpError> {
        self.ctx.step(Step::WaitingRunning);
        let running = match self.ship().wait_running(self.name(), WAIT_RUNNING).await {
            Ok(details) => details,
            Err(err) => return Err(self.fail_with_logs(err.to_string()).await),
        };
        // The details just read serve the checks (ports, whether it has a HEALTHCHECK):
        // no second look at the container.
        match self
            .checks_of(
                CheckState::Running,
                &self.instance.lifecycle.running,
                vars,
                true,
                Some(running),
            )
            .await
        {
            Ok(()) => Ok(outcome),
            Err(err @ CheckError::Cancelled { .. }) => Err(OpError::interrupted(format!(
                "{err}: the container is left running"
            ))),
            Err(err) => Err(self.fail_with_logs(err.to_string()).await),
        }
    }

    /// [`Action::RestartInPlace`]: one request to the daemon when the container runs and
    /// nothing about it changed, with the `pre-stop` checks before and the `running` checks
    /// after. An instance with `stopped` or `pre-start` checks (which need the moment in
    /// between), or whose container changed, is stopped and then started (re-created).
    async fn restart_in_place(&self, refresh: bool) -> Result<Outcome, OpError> {
        let lifecycle = &self.instance.lifecycle;
        let in_between = !lifecycle.stopped.is_empty() || !lifecycle.pre_start.is_empty();
        let (spec, vars) = self.spec();
        let image_id = self.current_image_id(refresh);
        // Both reads at once: one round trip.
        let (existing, image_id) = tokio::try_join!(self.inspect(), image_id)?;
        let unchanged = existing.as_ref().is_some_and(|c| {
            c.running && reason_to_recreate(c, &spec.hash(), image_id.as_deref()).is_none()
        });
        if in_between || !unchanged {
            self.halt(Halt::Stop).await?;
            self.start(refresh, false).await?;
            return Ok(Outcome::Restarted);
        }
        self.checks(CheckState::PreStop, &lifecycle.pre_stop, &vars, false)
            .await
            .map_err(|e| Self::check_failure(e, "the container is left running"))?;
        self.ctx.step(Step::Restarting);
        if let Err(err) = self
            .ship()
            .restart(self.name(), stop_timeout(self.instance))
            .await
        {
            return Err(self.fail_with_logs(err.to_string()).await);
        }
        self.wait_and_check_running(&vars, Outcome::Restarted).await
    }

    /// stop and kill: `pre-stop` checks, the daemon stops (or kills) the container, then
    /// `stopped` checks. A container that is absent or not running needs nothing.
    async fn halt(&self, how: Halt) -> Result<Outcome, OpError> {
        let Some(existing) = self.inspect().await? else {
            return Ok(Outcome::NothingToDo);
        };
        if !existing.running {
            return Ok(Outcome::NothingToDo);
        }
        let (_, vars) = self.spec();
        self.checks(
            CheckState::PreStop,
            &self.instance.lifecycle.pre_stop,
            &vars,
            false,
        )
        .await
        .map_err(|e| Self::check_failure(e, "the container is left running"))?;
        let (outcome, left) = if how == Halt::Kill {
            self.ctx.step(Step::Killing);
            match self.ship().kill(self.name(), "SIGKILL").await {
                Ok(()) => {}
                // It stopped on its own meanwhile.
                Err(err) if err.is_conflict() => {}
                Err(err) => return Err(docker_failed(err)),
            }
            // The kill call returns before the daemon has reaped the container.
            for _ in 0..50 {
                match self.inspect().await? {
                    Some(c) if c.running => tokio::time::sleep(Duration::from_millis(100)).await,
                    _ => break,
                }
            }
            (Outcome::Killed, "the container is killed")
        } else {
            self.ctx.step(Step::Stopping);
            self.ship()
                .stop(self.name(), stop_timeout(self.instance))
                .await
                .map_err(docker_failed)?;
            (Outcome::Stopped, "the container is stopped")
        };
        self.checks(
            CheckState::Stopped,
            &self.instance.lifecycle.stopped,
            &vars,
            false,
        )
        .await
        .map_err(|e| Self::check_failure(e, left))?;
        Ok(outcome)
    }

    /// Removes the stopped container, and a kept `.previous` that a `.replaced` has made
    /// older than the rollback point; what a rollback returns to stays.
    async fn clean(&self) -> Result<Outcome, OpError> {
        let mut outcome = Outcome::NothingToDo;
        if let Some(c) = self.inspect().await?
            && !c.running
        {
            self.ctx.step(Step::Removing);
            self.ship()
                .remove(self.name(), false)
                .await
                .map_err(docker_failed)?;
            outcome = Outcome::Removed;
        }
        if self.kept(Kept::Replaced).await?.is_some()
            && let Some(older) = self.kept(Kept::Previous).await?
        {
            self.ctx.step(Step::Removing);
            self.ship()
                .remove(&older.name, true)
                .await
                .map_err(docker_failed)?;
            outcome = Outcome::Removed;
        }
        Ok(outcome)
    }
}

fn stop_timeout(instance: &Instance) -> Duration {
    Duration::from_secs(u64::from(instance.stop_timeout))
}

impl Unit<'_> {
    /// Does `action` to the instance.
    pub(super) async fn run(&self, action: Action) -> Result<Outcome, OpError> {
        match action {
            Action::Start {
                refresh_images,
                reuse,
            } => self.start(refresh_images, reuse).await,
            Action::Stop => self.halt(Halt::Stop).await,
            Action::Kill => self.halt(Halt::Kill).await,
            Action::Clean => self.clean().await,
            Action::Rollback => self.rollback().await,
            Action::Pull => {
                self.pull().await?;
                Ok(if self.local_image().is_some() {
                    Outcome::Pushed
                } else {
                    Outcome::Pulled
                })
            }
            Action::Push => self.push_if_local().await,
            Action::StopIfChanged { refresh_images } => self.stop_if_changed(refresh_images).await,
            Action::RestartInPlace { refresh_images } => {
                self.restart_in_place(refresh_images).await
            }
            Action::RestartUnit {
                refresh_images,
                only_if_changed,
                stop_start_delay,
                step_delay,
            } => {
                if only_if_changed && self.change_reason(refresh_images).await?.is_none() {
                    return Ok(Outcome::NothingToDo);
                }
                self.restart_unit(refresh_images, stop_start_delay, step_delay)
                    .await
            }
        }
    }

    /// `maestro push`: only images of this machine; one from a registry is left alone.
    async fn push_if_local(&self) -> Result<Outcome, OpError> {
        if self.local_image().is_none() {
            self.ctx.step(Step::Message {
                text: format!(
                    "{} comes from a registry: nothing to push (`pull` fetches it)",
                    self.instance.image
                ),
            });
            return Ok(Outcome::NothingToDo);
        }
        self.pull().await?;
        Ok(Outcome::Pushed)
    }

    /// The stop half of `restart --only-if-changed`.
    async fn stop_if_changed(&self, refresh_images: bool) -> Result<Outcome, OpError> {
        match self.change_reason(refresh_images).await? {
            Some(reason) => {
                self.ctx.step(Step::Message {
                    text: format!("{reason}: restarting"),
                });
                self.halt(Halt::Stop).await
            }
            None => Ok(Outcome::NothingToDo),
        }
    }

    /// One unit of a rolling restart: after the step delay (not before the run's first
    /// unit), stop, wait the stop-start delay, start.
    async fn restart_unit(
        &self,
        refresh_images: bool,
        stop_start_delay: Duration,
        step_delay: Duration,
    ) -> Result<Outcome, OpError> {
        let done_before = self
            .op
            .units_done
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if done_before > 0 && !step_delay.is_zero() {
            self.ctx.step(Step::Message {
                text: format!("waiting {} s (step delay)", step_delay.as_secs_f64()),
            });
            self.sleep(step_delay).await?;
        }
        self.halt(Halt::Stop).await?;
        if !stop_start_delay.is_zero() {
            self.ctx.step(Step::Message {
                text: format!(
                    "waiting {} s (stop-start delay)",
                    stop_start_delay.as_secs_f64()
                ),
            });
            self.sleep(stop_start_delay).await?;
        }
        self.start(refresh_images, false).await?;
        Ok(Outcome::Restarted)
    }
}
