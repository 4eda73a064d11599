//! What `status` and `plan` see: the selected instances matched against the containers one
//! list call per ship returned.
//!
//! The computations are pure ([`rows`], [`plan_actions`]) so that every state can be tested
//! without a daemon; [`gather`] does the talking (connect to the ships involved, one list call
//! each, all at once) and [`check_ports`] probes published ports from the ship's side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde::Serialize;

use crate::config::{Environment, Protocol as ConfigProtocol};
use crate::docker::{
    ContainerSpec, ContainerStatus, HealthState, ImageFacts, ManagedContainer, Protocol, SpecChange,
};
use crate::orchestrate::fleet::{Fleet, ShipHandle};
use crate::orchestrate::history::Kept;
use crate::orchestrate::plan::Plan;
use crate::transport::Connection;

/// Characters of the container id shown in the CONTAINER column.
pub const SHORT_ID_LEN: usize = 7;

/// How long one port check may take before it counts as failed.
pub const PORT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What one ship answered: its containers of the environment, or why it could not.
#[derive(Debug, Clone)]
pub enum ShipListing {
    Listed(Vec<ManagedContainer>),
    Down {
        /// A short word for tables and JSON (`refused`, `timeout`, `auth`, `docker-api`, ...).
        cause: String,
        message: String,
    },
}

/// One line of the status table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// 1-based position, in the plan's order.
    pub index: usize,
    pub instance: String,
    pub service: String,
    pub ship: String,
    /// The ship's `ip`.
    pub ship_address: String,
    #[serde(flatten)]
    pub state: InstanceState,
    /// The instance's container, when it has one.
    pub container: Option<ContainerSummary>,
    /// Named ports and their checks (`-F` only; empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortStatus>,
    /// Containers kept for a rollback (`NAME.previous`, `NAME.replaced`) that run: they
    /// should not (a daemon restart with an old restart policy, or someone's `docker
    /// start`), and run beside the instance's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_running: Vec<String>,
}

impl StatusRow {
    /// Whether the instance counts as running for the exit code.
    pub fn is_running(&self) -> bool {
        matches!(self.state, InstanceState::Running { .. })
    }
}

/// An age as far as we know it: exact (from the creation time) or as the daemon rounded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Age {
    pub seconds: u64,
    /// The daemon's status text rounds (`Up 3 minutes`, `Exited (0) 2 hours ago`).
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum InstanceState {
    /// Up (paused containers count as up, as the daemon's own `Running` flag says).
    Running {
        #[serde(rename = "for")]
        age: Option<Age>,
        paused: bool,
        health: Option<HealthState>,
    },
    /// A container exists but does not run (created, exited, restarting, dead).
    Down {
        #[serde(rename = "for")]
        age: Option<Age>,
        container_state: ContainerStatus,
        exit_code: Option<i64>,
    },
    /// No container of ours for the instance on its ship.
    Absent,
    /// Its ship could not be asked.
    HostDown { cause: String, message: String },
}

/// The container behind a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// The image as the container was created with it.
    pub image: String,
    /// The tag of `image` (`latest` when none is written).
    pub tag: String,
    pub image_id: String,
    /// The daemon's own status text, e.g. `Up 3 minutes (healthy)`.
    pub docker_status: String,
    pub spec_hash: Option<String>,
}

impl ContainerSummary {
    /// `tag:shortid`, as MaestroNG's CONTAINER column.
    pub fn tag_and_short_id(&self) -> String {
        format!("{}:{}", self.tag, short_id(&self.id))
    }
}

/// The first [`SHORT_ID_LEN`] characters of a container or image id (without `sha256:`).
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..SHORT_ID_LEN).unwrap_or(id)
}

/// A named port of an instance and whether it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortStatus {
    pub name: String,
    pub protocol: Protocol,
    pub exposed: u16,
    /// The port on the ship, when the container publishes it.
    pub external: Option<u16>,
    /// The address the check connects to, from the ship's side.
    pub address: Option<String>,
    pub check: PortCheck,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum PortCheck {
    /// A TCP connection was accepted.
    Open {
        millis: u64,
    },
    Failed {
        reason: String,
    },
    /// Not checked: UDP, or the instance is not running, or the port is not published.
    Skipped {
        reason: String,
    },
}

impl PortCheck {
    pub fn is_failure(&self) -> bool {
        matches!(self, PortCheck::Failed { .. })
    }
}

/// The container of `instance` among a ship's listing: the one labelled with it (a running
/// one first, should there be several), never one kept for a rollback (see
/// [`super::history`]).
pub fn container_of<'a>(
    containers: &'a [ManagedContainer],
    instance: &str,
) -> Option<&'a ManagedContainer> {
    let mut candidates: Vec<&ManagedContainer> = containers
        .iter()
        .filter(|c| c.instance == instance && !Kept::is_kept(&c.name, instance))
        .collect();
    candidates.sort_by_key(|c| (!c.state.is_up(), c.name != instance, -c.created));
    candidates.into_iter().next()
}

/// How long a container has been in its state. The list call only gives a rounded age; when
/// the container has been up since it was created (the usual case after `start`), the
/// creation time gives the exact figure, and we use it when it agrees with the rounded one.
pub fn container_age(container: &ManagedContainer, now: SystemTime) -> Option<Age> {
    let rounded = container.age?;
    if container.state.is_up() && container.created > 0 {
        let created = UNIX_EPOCH + Duration::from_secs(container.created.unsigned_abs());
        if let Ok(since_created) = now.duration_since(created)
            && agrees_with_rounded(since_created, rounded)
        {
            return Some(Age {
                seconds: since_created.as_secs(),
                approximate: false,
            });
        }
    }
    Some(Age {
        seconds: rounded.as_secs(),
        approximate: true,
    })
}

/// Whether `exact` could have been shown by the daemon as `rounded` (go-units' HumanDuration
/// truncates seconds and minutes and rounds hours). Two seconds of slack cover the time
/// between the daemon's answer and our clock reading.
fn agrees_with_rounded(exact: Duration, rounded: Duration) -> bool {
    let slack = Duration::from_secs(2);
    let unit = match rounded.as_secs() {
        0..60 => Duration::from_secs(1),
        60..3600 => Duration::from_secs(60),
        _ => return false,
    };
    exact + slack >= rounded && exact < rounded + unit + slack
}

fn state_of(container: &ManagedContainer, now: SystemTime) -> InstanceState {
    let age = container_age(container, now);
    if container.state.is_up() {
        InstanceState::Running {
            age,
            paused: container.state == ContainerStatus::Paused,
            health: container.health,
        }
    } else {
        InstanceState::Down {
            age: if container.state == ContainerStatus::Exited {
                age
            } else {
                None
            },
            container_state: container.state,
            exit_code: container.exit_code,
        }
    }
}

fn summary_of(container: &ManagedContainer) -> ContainerSummary {
    let (_, tag) = crate::config::split_image(&container.image);
    ContainerSummary {
        id: container.id.clone(),
        name: container.name.clone(),
        image: container.image.clone(),
        // An image listed by id (its tag moved away) has no tag to show.
        tag: if container.image.starts_with("sha256:") {
            "<none>".to_string()
        } else {
            tag.to_string()
        },
        image_id: container.image_id.clone(),
        docker_status: container.status.clone(),
        spec_hash: container.spec_hash.clone(),
    }
}

/// The status table: one row per instance of `plan`, in its order, from what each ship's list
/// call returned. A ship missing from `listings` counts as down (it was not asked).
pub fn rows(
    env: &Environment,
    plan: &Plan,
    listings: &BTreeMap<String, ShipListing>,
    now: SystemTime,
) -> Vec<StatusRow> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(k, step)| {
            let ship_address = env
                .ship(&step.ship)
                .map(|s| s.ip.clone())
                .unwrap_or_default();
            let kept_running = match listings.get(&step.ship) {
                Some(ShipListing::Listed(containers)) => containers
                    .iter()
                    .filter(|c| {
                        c.instance == step.instance
                            && Kept::is_kept(&c.name, &step.instance)
                            && c.state.is_up()
                    })
                    .map(|c| c.name.clone())
                    .collect(),
                _ => Vec::new(),
            };
            let (state, container) = match listings.get(&step.ship) {
                Some(ShipListing::Listed(containers)) => {
                    match container_of(containers, &step.instance) {
                        Some(c) => (state_of(c, now), Some(summary_of(c))),
                        None => (InstanceState::Absent, None),
                    }
                }
                Some(ShipListing::Down { cause, message }) => (
                    InstanceState::HostDown {
                        cause: cause.clone(),
                        message: message.clone(),
                    },
                    None,
                ),
                None => (
                    InstanceState::HostDown {
                        cause: "not-asked".into(),
                        message: format!("ship {} was not asked", step.ship),
                    },
                    None,
                ),
            };
            StatusRow {
                index: k + 1,
                instance: step.instance.clone(),
                service: step.service.clone(),
                ship: step.ship.clone(),
                ship_address,
                state,
                container,
                ports: Vec::new(),
                kept_running,
            }
        })
        .collect()
}

/// The ports `-F` checks for a row: every named port of the instance, with the address and
/// port to connect to from the ship's side when the running container publishes it.
pub fn port_targets(
    env: &Environment,
    row: &StatusRow,
    listing: Option<&[ManagedContainer]>,
) -> Vec<PortStatus> {
    let Some((_, instance)) = env.instance(&row.instance) else {
        return Vec::new();
    };
    let container = listing.and_then(|l| container_of(l, &row.instance));
    instance
        .ports
        .iter()
        .map(|port| {
            let protocol = match port.protocol {
                ConfigProtocol::Tcp => Protocol::Tcp,
                ConfigProtocol::Udp => Protocol::Udp,
            };
            let published = container.and_then(|c| {
                c.ports
                    .iter()
                    .find(|p| p.container_port == port.exposed.start && p.protocol == protocol)
            });
            let external = published.map(|p| p.host_port);
            // A port bound to one address (say 127.0.0.1) answers only there.
            let address = port
                .bind_ip
                .clone()
                .filter(|ip| ip != "0.0.0.0" && ip != "::" && !ip.is_empty())
                .unwrap_or_else(|| row.ship_address.clone());
            let skip = |reason: &str| PortCheck::Skipped {
                reason: reason.to_string(),
            };
            let check = if !row.is_running() {
                skip("not running")
            } else if protocol == Protocol::Udp {
                skip("udp is not checked")
            } else if external.is_none() {
                PortCheck::Failed {
                    reason: "not published by the container".into(),
                }
            } else {
                skip("not checked yet")
            };
            PortStatus {
                name: port.name.clone(),
                protocol,
                exposed: port.exposed.start,
                external,
                address: external.map(|_| address),
                check,
            }
        })
        .collect()
}

/// Checks, from the ship's side, every port of `ports` that is waiting for a check: a TCP
/// connection through the ship's SSH session (or directly for local and TCP routes), each
/// within `timeout`, all at once.
pub async fn check_ports(connection: &Connection, ports: &mut [PortStatus], timeout: Duration) {
    let pending: Vec<usize> = ports
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.check, PortCheck::Skipped { ref reason } if reason == "not checked yet"))
        .map(|(k, _)| k)
        .collect();
    let checks = pending.iter().map(|&k| {
        let port = &ports[k];
        let address = port.address.clone().unwrap_or_default();
        let external = port.external.unwrap_or_default();
        async move {
            let started = std::time::Instant::now();
            let result =
                tokio::time::timeout(timeout, connection.open_tcp(&address, external)).await;
            match result {
                Ok(Ok(_stream)) => PortCheck::Open {
                    millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                },
                Ok(Err(err)) => PortCheck::Failed {
                    reason: match err.kind() {
                        "refused" => "connection refused".to_string(),
                        _ => err.to_string(),
                    },
                },
                Err(_) => PortCheck::Failed {
                    reason: format!("no answer within {}s", timeout.as_secs_f32()),
                },
            }
        }
    });
    let results = join_all(checks).await;
    for (k, check) in pending.into_iter().zip(results) {
        ports[k].check = check;
    }
}

/// What [`gather`] found on the ships of a plan.
pub struct Observation {
    pub listings: BTreeMap<String, ShipListing>,
    /// The ships that answered, for port checks and image lookups.
    pub ships: BTreeMap<String, ShipHandle>,
}

/// Asks each ship of `fleet` once, as soon as it is connected, for its containers of the
/// environment.
pub async fn gather(env: &Environment, fleet: &Arc<Fleet>) -> Observation {
    let names: Vec<String> = fleet.names().map(str::to_string).collect();
    let lists = names.into_iter().map(|ship| async move {
        match fleet.ship(&ship).await {
            Err(err) => (
                ship,
                ShipListing::Down {
                    cause: err.kind().to_string(),
                    message: err.to_string(),
                },
                None,
            ),
            Ok(handle) => match handle.docker.list_managed(&env.name).await {
                Ok(containers) => (ship, ShipListing::Listed(containers), Some(handle)),
                Err(err) => (
                    ship,
                    ShipListing::Down {
                        cause: "docker-api".into(),
                        message: err.to_string(),
                    },
                    None,
                ),
            },
        }
    });
    let mut listings = BTreeMap::new();
    let mut ships = BTreeMap::new();
    for (ship, listing, handle) in join_all(lists).await {
        if let Some(handle) = handle {
            ships.insert(ship.clone(), handle);
        }
        listings.insert(ship, listing);
    }
    Observation { listings, ships }
}

/// What `start` would do to one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum PlannedAction {
    /// No container: create (and pull first when the ship lacks the image).
    Create { pull: bool },
    /// The container no longer matches: remove it and create it anew.
    Recreate {
        reasons: Vec<String>,
        /// Field-by-field, when the container recorded the spec it was created from.
        changes: Vec<SpecChange>,
    },
    /// Stopped, same spec and image: start it.
    Start,
    /// Running, same spec and image.
    Nothing,
    /// Its ship could not be asked.
    Unknown { cause: String, message: String },
    /// A container with the instance's name that is not this environment's: `start` would
    /// refuse it (and `start --adopt` would re-create it).
    Refused { reason: String },
}

/// One line of `plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub index: usize,
    pub instance: String,
    pub service: String,
    pub ship: String,
    #[serde(flatten)]
    pub action: PlannedAction,
}

/// The image ids a ship has, by image name as the environment writes it; `None` = the ship
/// does not have the image.
pub type ImageIds = BTreeMap<(String, String), Option<String>>;

/// `status`'s sequence: one list call per ship, a row per instance of `plan`, and with
/// `full` each named port checked from the ship's side, all ships at once.
pub async fn what_runs(
    env: &Environment,
    plan: &Plan,
    fleet: &Arc<Fleet>,
    full: bool,
) -> Vec<StatusRow> {
    let observed = gather(env, fleet).await;
    let mut rows = rows(env, plan, &observed.listings, SystemTime::now());
    if !full {
        return rows;
    }
    for row in rows.iter_mut() {
        let listing = match observed.listings.get(&row.ship) {
            Some(ShipListing::Listed(containers)) => Some(containers.as_slice()),
            _ => None,
        };
        row.ports = port_targets(env, row, listing);
    }
    let checks = rows.iter_mut().filter_map(|row| {
        let handle = observed.ships.get(&row.ship)?;
        Some(check_ports(
            &handle.connection,
            &mut row.ports,
            PORT_CHECK_TIMEOUT,
        ))
    });
    join_all(checks).await;
    rows
}

/// `plan`'s sequence: what `start` would do to each instance of `plan`, from one listing per
/// ship and one image lookup per (ship, image), all at once; and the lookups that failed, as
/// warnings (a failed lookup leaves the image unknown, which reads as "pull first").
pub async fn what_start_would_do(
    env: &Environment,
    plan: &Plan,
    fleet: &Arc<Fleet>,
) -> (Vec<PlanRow>, Vec<String>) {
    let specs: BTreeMap<String, ContainerSpec> = plan
        .steps
        .iter()
        .filter_map(|step| {
            let (service, instance) = env.instance(&step.instance)?;
            Some((
                step.instance.clone(),
                crate::orchestrate::spec::container_spec(env, service, instance),
            ))
        })
        .collect();
    let observed = gather(env, fleet).await;
    let mut wanted: Vec<(String, String)> = plan
        .steps
        .iter()
        .filter_map(|s| Some((s.ship.clone(), specs.get(&s.instance)?.image.clone())))
        .collect();
    wanted.sort();
    wanted.dedup();
    let lookups = wanted.into_iter().filter_map(|(ship, image)| {
        let docker_ship = observed.ships.get(&ship)?.docker.clone();
        Some(async move {
            let facts = docker_ship.image(&image).await;
            ((ship, image), facts)
        })
    });
    let mut images = ImageIds::new();
    let mut facts = BTreeMap::new();
    let mut lookup_errors = Vec::new();
    for (key, found) in join_all(lookups).await {
        match found {
            Ok(found) => {
                images.insert(key.clone(), found.as_ref().map(|f| f.id.clone()));
                if let Some(found) = found {
                    facts.insert(key, found);
                }
            }
            Err(err) => lookup_errors.push(err.to_string()),
        }
    }
    lookup_errors.extend(compose_habit_hints(env, plan, &facts));
    let mut rows = plan_actions(plan, &observed.listings, &specs, &images);
    read_deployed_values(&mut rows, &specs, &observed).await;
    find_foreign_containers(env, &mut rows, &specs, &observed).await;
    for row in &mut rows {
        if let PlannedAction::Recreate { changes, .. } = &mut row.action {
            mask_secret_fields(changes);
        }
    }
    (rows, lookup_errors)
}

/// Hints for a file that looks written with compose's meaning in mind where MaestroNG's
/// meaning stays, judged against what the image declares, so that a correct MaestroNG file is
/// never warned about on its text alone:
/// - a port `8080:80` is CONTAINER:HOST in MaestroNG's format (compose reads HOST:CONTAINER):
///   when the image exposes the host side and not the container side, it was probably meant
///   the other way round;
/// - a schema 1 volume `{/a: /b}` mounts the ship's /b at /a (container first; compose and
///   schema 2 read host first): when the image declares /b as a volume and not /a, likewise.
pub fn compose_habit_hints(
    env: &Environment,
    plan: &Plan,
    images: &BTreeMap<(String, String), ImageFacts>,
) -> Vec<String> {
    let mut hints = Vec::new();
    for step in &plan.steps {
        let Some((_, instance)) = env.instance(&step.instance) else {
            continue;
        };
        let Some(image) = images.get(&(step.ship.clone(), instance.image.clone())) else {
            continue;
        };
        for port in &instance.ports {
            if !port.exposed.is_single() || !port.external.is_single() {
                continue;
            }
            let (inside, outside) = (port.exposed.start, port.external.start);
            let proto = port.protocol.as_str();
            let exposes = |p: u16| {
                image
                    .exposed_ports
                    .iter()
                    .any(|e| *e == format!("{p}/{proto}"))
            };
            if inside != outside && exposes(outside) && !exposes(inside) {
                hints.push(format!(
                    "instance {}: port `{}` publishes container port {inside} as the ship's port \
                     {outside}, but the image {} exposes {outside}/{proto}, not {inside}/{proto}. \
                     In maestro's (MaestroNG's) format `{inside}:{outside}` is CONTAINER:HOST, \
                     the reverse of compose's; if the container listens on {outside}, write \
                     `{outside}:{inside}`, or `{{exposed: {outside}, external: {inside}}}`",
                    instance.name, port.name, instance.image
                ));
            }
        }
        if env.schema != 1 {
            continue;
        }
        for bind in &instance.volumes {
            let declares = |path: &str| image.volumes.iter().any(|v| v == path);
            if bind.host.starts_with('/') && declares(&bind.host) && !declares(&bind.container) {
                hints.push(format!(
                    "instance {}: the volume `{}: {}` mounts the ship's {} at {} in the \
                     container (schema 1 reads volumes container-first), but the image {} \
                     declares the volume {}. If you meant the ship's {} at {}, write `{}: {}`, \
                     or use schema 2 (`__maestro: {{schema: 2}}`), whose volumes read host-first \
                     as compose's do",
                    instance.name,
                    bind.container,
                    bind.host,
                    bind.host,
                    bind.container,
                    instance.image,
                    bind.host,
                    bind.container,
                    bind.host,
                    bind.host,
                    bind.container
                ));
            }
        }
    }
    hints
}

/// The old values of the fields the spec label records only as fingerprints (environment,
/// command, ...), read from each re-created container's own config: one inspect per such
/// container, all at once.
async fn read_deployed_values(
    rows: &mut [PlanRow],
    specs: &BTreeMap<String, ContainerSpec>,
    observed: &Observation,
) {
    let fingerprinted =
        |changes: &[crate::docker::SpecChange]| changes.iter().any(|c| c.old_is_fingerprint());
    let inspections = rows.iter().enumerate().filter_map(|(k, row)| {
        let PlannedAction::Recreate { changes, .. } = &row.action else {
            return None;
        };
        if !fingerprinted(changes) {
            return None;
        }
        let spec = specs.get(&row.instance)?;
        let ship = observed.ships.get(&row.ship)?.docker.clone();
        Some(async move { (k, ship.inspect(&spec.name).await) })
    });
    for (k, inspected) in join_all(inspections).await {
        let (Some(row), Ok(Some(details))) = (rows.get_mut(k), inspected) else {
            continue;
        };
        let (Some(spec), Some(recorded)) = (specs.get(&row.instance), details.recorded_spec())
        else {
            continue;
        };
        if let PlannedAction::Recreate { changes, .. } = &mut row.action {
            *changes = spec.changes_since(recorded, Some(&details));
        }
    }
}

/// The rows `plan_actions` would create, checked for a container of the same name that the
/// listing (by this environment's labels) could not see: `start` would refuse it. One inspect
/// per such row, all at once.
async fn find_foreign_containers(
    env: &Environment,
    rows: &mut [PlanRow],
    specs: &BTreeMap<String, ContainerSpec>,
    observed: &Observation,
) {
    let inspections = rows.iter().enumerate().filter_map(|(k, row)| {
        if !matches!(row.action, PlannedAction::Create { .. }) {
            return None;
        }
        let spec = specs.get(&row.instance)?;
        let ship = observed.ships.get(&row.ship)?.docker.clone();
        Some(async move { (k, ship.inspect(&spec.name).await) })
    });
    for (k, inspected) in join_all(inspections).await {
        let (Some(row), Ok(Some(found))) = (rows.get_mut(k), inspected) else {
            continue;
        };
        if let Some(why) = super::ops::foreign(&found, &env.name, &row.instance) {
            row.action = PlannedAction::Refused {
                reason: super::ops::refusal(found.name.trim_start_matches('/'), &row.ship, &why),
            };
        }
    }
}

/// Values of secret-named environment variables shown as `***`, old and new: an old value is
/// no longer in the file, so the output's masking does not know it.
fn mask_secret_fields(changes: &mut [crate::docker::SpecChange]) {
    let masker = super::secrets::global();
    for change in changes {
        let secret = change
            .field
            .strip_prefix("env.")
            .is_some_and(|name| masker.is_secret_name(name));
        if secret {
            for value in [&mut change.old, &mut change.new].into_iter().flatten() {
                *value = super::secrets::MASK.to_string();
            }
        }
    }
}

/// What `start` would do for each instance of `plan`: `specs` are the wanted container specs
/// by instance, `images` the ship's current id of each (ship, image).
///
/// The decision mirrors `start`: a running container whose spec hash and image id match is
/// left alone; a container without our spec hash, or with another one, or whose image is no
/// longer the one the ship has under that name, is re-created.
pub fn plan_actions(
    plan: &Plan,
    listings: &BTreeMap<String, ShipListing>,
    specs: &BTreeMap<String, ContainerSpec>,
    images: &ImageIds,
) -> Vec<PlanRow> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(k, step)| {
            let action = match (listings.get(&step.ship), specs.get(&step.instance)) {
                (Some(ShipListing::Down { cause, message }), _) => PlannedAction::Unknown {
                    cause: cause.clone(),
                    message: message.clone(),
                },
                (None, _) => PlannedAction::Unknown {
                    cause: "not-asked".into(),
                    message: format!("ship {} was not asked", step.ship),
                },
                (_, None) => PlannedAction::Unknown {
                    cause: "no-spec".into(),
                    message: format!("no container spec for {}", step.instance),
                },
                (Some(ShipListing::Listed(containers)), Some(spec)) => {
                    let image_id = images
                        .get(&(step.ship.clone(), spec.image.clone()))
                        .cloned()
                        .flatten();
                    action_for(container_of(containers, &step.instance), spec, image_id)
                }
            };
            PlanRow {
                index: k + 1,
                instance: step.instance.clone(),
                service: step.service.clone(),
                ship: step.ship.clone(),
                action,
            }
        })
        .collect()
}

fn action_for(
    container: Option<&ManagedContainer>,
    spec: &ContainerSpec,
    image_id: Option<String>,
) -> PlannedAction {
    let Some(container) = container else {
        return PlannedAction::Create {
            pull: image_id.is_none(),
        };
    };
    let mut reasons = Vec::new();
    let mut changes = Vec::new();
    match container.spec_hash.as_deref() {
        None => reasons.push("the container has no spec hash (not created by maestro)".into()),
        Some(hash) if hash != spec.hash() => match container.recorded_spec() {
            Some(recorded) => {
                changes = spec.changes_since(recorded, None);
                reasons.push(format!(
                    "the container spec changed ({} field{})",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" }
                ));
            }
            None => reasons.push("the container spec changed".into()),
        },
        Some(_) => {}
    }
    if let Some(id) = image_id
        && id != container.image_id
    {
        reasons.push(format!(
            "the image changed: {} -> {}",
            short_id(&container.image_id),
            short_id(&id)
        ));
    }
    if !reasons.is_empty() {
        PlannedAction::Recreate { reasons, changes }
    } else if container.state.is_up() {
        PlannedAction::Nothing
    } else {
        PlannedAction::Start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker;
    use crate::docker::PublishedPort;
    use crate::orchestrate::plan::{Graph, Selection, select};
    use std::path::Path;

    const ENV: &str = r#"
name: t
ships:
  a: {ip: 10.0.0.1}
  b: {ip: 10.0.0.2}
services:
  db:
    image: db:9
    instances:
      db-1: {ship: a, ports: {sql: 5432, local: {exposed: 7000, external: [127.0.0.1, 7000]}, dns: "53/udp"}}
  web:
    image: web
    requires: [db]
    instances:
      web-1: {ship: a, ports: {http: "80:8080"}}
      web-2: {ship: b}
  tools:
    image: tools
    omit: true
    instances:
      tools-1: {ship: b}
"#;

    fn env() -> Environment {
        crate::config::load_str(ENV, "t.yaml", Path::new(".")).expect("valid")
    }

    fn plan(env: &Environment, include_omitted: bool) -> Plan {
        let graph = Graph::new(env);
        select(
            env,
            &graph,
            &Selection {
                include_omitted,
                ..Selection::default()
            },
        )
        .expect("plan")
    }

    #[test]
    fn compose_habits_are_hinted_only_when_the_image_disagrees() {
        let text = "name: t\nships:\n  a: {ip: 10.0.0.1}\nservices:\n  web:\n    image: nginx\n    \
                    instances:\n      web-1:\n        ship: a\n        ports: {http: \"8080:80\", \
                    api: \"9000:9000\", admin: \"8443:443\"}\n        volumes: {/data: \
                    /var/lib/mysql, /conf: /srv/conf}\n";
        let env = crate::config::load_str(text, "t.yaml", Path::new(".")).expect("valid");
        let plan = plan(&env, false);
        let images = BTreeMap::from([(
            ("a".to_string(), "nginx".to_string()),
            ImageFacts {
                id: "sha256:1".into(),
                exposed_ports: vec!["80/tcp".into(), "8443/tcp".into(), "443/tcp".into()],
                volumes: vec!["/var/lib/mysql".into()],
            },
        )]);
        let hints = compose_habit_hints(&env, &plan, &images);
        assert_eq!(hints.len(), 2, "{hints:#?}");
        // 8080:80 with an image exposing 80 only: compose's reading, most likely.
        assert!(
            hints[0].contains("port `http` publishes container port 8080 as the ship's port 80")
                && hints[0].contains("write `80:8080`"),
            "{}",
            hints[0]
        );
        // Schema 1: /data: /var/lib/mysql mounts the ship's /var/lib/mysql at /data.
        assert!(
            hints[1].contains("the image nginx declares the volume /var/lib/mysql")
                && hints[1].contains("write `/var/lib/mysql: /data`"),
            "{}",
            hints[1]
        );
        // A file that agrees with its image (or an image that says nothing) gets no hint.
        let silent = BTreeMap::from([(
            ("a".to_string(), "nginx".to_string()),
            ImageFacts {
                id: "sha256:1".into(),
                ..ImageFacts::default()
            },
        )]);
        assert!(compose_habit_hints(&env, &plan, &silent).is_empty());
    }

    const NOW: i64 = 1_800_000_000;

    fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    }

    fn container(instance: &str, state: ContainerStatus, status: &str) -> ManagedContainer {
        ManagedContainer {
            name: instance.into(),
            id: "0123456789abcdef".into(),
            environment: "t".into(),
            service: String::new(),
            instance: instance.into(),
            state,
            status: status.into(),
            age: docker::parse_status_age(status),
            exit_code: None,
            created: NOW - 182,
            image: "db:9".into(),
            image_id: "sha256:aaaaaaaaaaaa".into(),
            spec_hash: None,
            health: None,
            ports: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn rows_cover_running_down_absent_and_host_down() {
        let env = env();
        let plan = plan(&env, true);
        let mut stopped = container("web-1", ContainerStatus::Exited, "Exited (3) 2 hours ago");
        stopped.exit_code = Some(3);
        let listings = BTreeMap::from([
            (
                "a".to_string(),
                ShipListing::Listed(vec![
                    container("db-1", ContainerStatus::Running, "Up 3 minutes"),
                    stopped,
                ]),
            ),
            (
                "b".to_string(),
                ShipListing::Down {
                    cause: "refused".into(),
                    message: "ship b: connection refused".into(),
                },
            ),
        ]);
        let rows = rows(&env, &plan, &listings, at(NOW));
        let names: Vec<&str> = rows.iter().map(|r| r.instance.as_str()).collect();
        assert_eq!(names, ["db-1", "web-1", "web-2", "tools-1"]);
        assert_eq!(
            rows[0].state,
            InstanceState::Running {
                age: Some(Age {
                    seconds: 182,
                    approximate: false
                }),
                paused: false,
                health: None
            }
        );
        assert_eq!(
            rows[0].container.as_ref().map(|c| c.tag_and_short_id()),
            Some("9:0123456".to_string())
        );
        assert_eq!(rows[0].ship_address, "10.0.0.1");
        assert_eq!(
            rows[1].state,
            InstanceState::Down {
                age: Some(Age {
                    seconds: 7200,
                    approximate: true
                }),
                container_state: ContainerStatus::Exited,
                exit_code: Some(3)
            }
        );
        assert!(
            matches!(rows[2].state, InstanceState::HostDown { ref cause, .. } if cause == "refused")
        );
        assert!(rows[0].is_running() && !rows[1].is_running());
    }

    #[test]
    fn an_instance_without_container_is_absent() {
        let env = env();
        let plan = plan(&env, false);
        let listings = BTreeMap::from([
            ("a".to_string(), ShipListing::Listed(Vec::new())),
            ("b".to_string(), ShipListing::Listed(Vec::new())),
        ]);
        let rows = rows(&env, &plan, &listings, at(NOW));
        assert_eq!(
            rows.len(),
            3,
            "omitted services are left out without the flag"
        );
        assert!(rows.iter().all(|r| r.state == InstanceState::Absent));
    }

    #[test]
    fn a_restarted_container_falls_back_to_the_rounded_age() {
        // Created long ago, up for 3 minutes: the creation time says nothing about the start.
        let mut c = container("db-1", ContainerStatus::Running, "Up 3 minutes");
        c.created = NOW - 86_400;
        assert_eq!(
            container_age(&c, at(NOW)),
            Some(Age {
                seconds: 180,
                approximate: true
            })
        );
        c.created = NOW - 5;
        c.status = "Up 4 seconds".into();
        c.age = docker::parse_status_age(&c.status);
        assert_eq!(
            container_age(&c, at(NOW)),
            Some(Age {
                seconds: 5,
                approximate: false
            })
        );
    }

    #[test]
    fn ports_to_check_follow_publication_and_binding() {
        let env = env();
        let plan = plan(&env, false);
        let mut db = container("db-1", ContainerStatus::Running, "Up 3 minutes");
        db.ports = vec![
            PublishedPort {
                container_port: 5432,
                protocol: Protocol::Tcp,
                host_ip: "0.0.0.0".into(),
                host_port: 5432,
            },
            PublishedPort {
                container_port: 7000,
                protocol: Protocol::Tcp,
                host_ip: "127.0.0.1".into(),
                host_port: 7000,
            },
        ];
        let listing = vec![db];
        let listings = BTreeMap::from([("a".to_string(), ShipListing::Listed(listing.clone()))]);
        let rows = rows(&env, &plan, &listings, at(NOW));
        let ports = port_targets(&env, &rows[0], Some(&listing));
        let by_name = |n: &str| ports.iter().find(|p| p.name == n).expect("port");
        assert_eq!(by_name("sql").address.as_deref(), Some("10.0.0.1"));
        assert_eq!(by_name("sql").external, Some(5432));
        assert_eq!(by_name("local").address.as_deref(), Some("127.0.0.1"));
        assert!(
            matches!(by_name("dns").check, PortCheck::Skipped { ref reason } if reason.contains("udp"))
        );
        // web-1 is absent: nothing to check.
        let web = port_targets(&env, &rows[1], Some(&listing));
        assert!(
            matches!(web[0].check, PortCheck::Skipped { ref reason } if reason == "not running")
        );
    }

    #[test]
    fn plan_decides_create_recreate_start_nothing() {
        let env = env();
        let plan = plan(&env, false);
        let spec_of = |name: &str| {
            let (service, instance) = env.instance(name).expect("instance");
            crate::orchestrate::spec::container_spec(&env, service, instance)
        };
        let specs: BTreeMap<String, ContainerSpec> = ["db-1", "web-1", "web-2"]
            .iter()
            .map(|n| (n.to_string(), spec_of(n)))
            .collect();
        let created_from = |spec: &ContainerSpec, state, status: &str| {
            let mut c = container(&spec.name, state, status);
            c.spec_hash = Some(spec.hash());
            c.labels
                .insert(docker::SPEC_LABEL.to_string(), spec.canonical_json());
            c
        };
        // db-1 runs as specified; web-1 stopped as specified; web-2 ran an older spec.
        let db = created_from(&specs["db-1"], ContainerStatus::Running, "Up 1 second");
        let web1 = created_from(
            &specs["web-1"],
            ContainerStatus::Exited,
            "Exited (0) 1 second ago",
        );
        let mut older = specs["web-2"].clone();
        older.env.retain(|(k, _)| k != "DOCKER_TAG");
        older.env.push(("EXTRA".into(), "1".into()));
        let web2 = created_from(&older, ContainerStatus::Running, "Up 1 second");
        let listings = BTreeMap::from([
            ("a".to_string(), ShipListing::Listed(vec![db, web1])),
            ("b".to_string(), ShipListing::Listed(vec![web2])),
        ]);
        let images = ImageIds::from([
            (
                ("a".into(), "db:9".into()),
                Some("sha256:aaaaaaaaaaaa".into()),
            ),
            (
                ("a".into(), "web".into()),
                Some("sha256:aaaaaaaaaaaa".into()),
            ),
            (
                ("b".into(), "web".into()),
                Some("sha256:aaaaaaaaaaaa".into()),
            ),
        ]);
        let rows = plan_actions(&plan, &listings, &specs, &images);
        assert_eq!(rows[0].action, PlannedAction::Nothing);
        assert_eq!(rows[1].action, PlannedAction::Start);
        match &rows[2].action {
            PlannedAction::Recreate { reasons, changes } => {
                assert!(reasons[0].contains("spec changed"), "{reasons:?}");
                let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                assert_eq!(fields, ["env.DOCKER_TAG", "env.EXTRA"]);
                assert_eq!(changes[1].old.as_deref(), Some("1"));
                assert_eq!(changes[1].new, None);
            }
            other => panic!("{other:?}"),
        }

        // A newer image under the same name re-creates; a missing container is created.
        let images = ImageIds::from([
            (
                ("a".into(), "db:9".into()),
                Some("sha256:bbbbbbbbbbbb".into()),
            ),
            (("a".into(), "web".into()), None),
        ]);
        let listings = BTreeMap::from([
            (
                "a".to_string(),
                ShipListing::Listed(vec![created_from(
                    &specs["db-1"],
                    ContainerStatus::Running,
                    "Up 1 second",
                )]),
            ),
            (
                "b".to_string(),
                ShipListing::Down {
                    cause: "timeout".into(),
                    message: "late".into(),
                },
            ),
        ]);
        let rows = plan_actions(&plan, &listings, &specs, &images);
        assert!(
            matches!(&rows[0].action, PlannedAction::Recreate { reasons, .. } if reasons[0].contains("aaaaaaa -> bbbbbbb"))
        );
        assert_eq!(rows[1].action, PlannedAction::Create { pull: true });
        assert!(matches!(rows[2].action, PlannedAction::Unknown { .. }));
    }
}
