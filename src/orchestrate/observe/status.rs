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
use crate::docker::{ContainerStatus, HealthState, ManagedContainer, Protocol};
use crate::orchestrate::engine::fleet::{Fleet, ShipHandle};
use crate::orchestrate::plan::container::Kept;
use crate::orchestrate::plan::select::Plan;
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
/// [`crate::orchestrate::observe::history`]).
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
                    reason: match err.code() {
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
                    cause: err.code().to_string(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::docker;
    use crate::docker::PublishedPort;
    use crate::orchestrate::plan::select::{Graph, Selection, select};
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

    pub(crate) fn env() -> Environment {
        crate::config::load_str(ENV, "t.yaml", Path::new(".")).expect("valid")
    }

    pub(crate) fn plan(env: &Environment, include_omitted: bool) -> Plan {
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

    pub(crate) const NOW: i64 = 1_800_000_000;

    pub(crate) fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    }

    pub(crate) fn container(
        instance: &str,
        state: ContainerStatus,
        status: &str,
    ) -> ManagedContainer {
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
}
