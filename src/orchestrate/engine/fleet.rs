//! The ships of one run: how each ship of the environment file is reached (the mapping from
//! its settings to a transport [`Endpoint`]), and the [`Fleet`] that owns a run's
//! connections.
//!
//! One connection per ship per run: every operation on a ship shares its SSH session, and
//! ships behind the same jump hosts share those hosts' sessions. No command connects to a
//! ship or builds a `docker::Ship` any other way.
//!
//! Warm commands: with `--persist` or a ship's `ssh.persist`, the endpoint asks the
//! transport to take its channels from the persist daemon's kept session (see
//! `transport::warm`); that choice is made here, per ship, and nowhere in the commands.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{Environment, JumpHost, KnownHostsPolicy, Ship};
use crate::docker;
use crate::orchestrate::engine::cancel::ctrl_c;
use crate::orchestrate::engine::events::{EventKind, EventSink};
use crate::orchestrate::plan::select::Plan;
use crate::transport::{
    self, Connection, DockerTarget, Endpoint, HostKeyPolicy, JumpSpec, Route, SessionPool,
    SshRoute, TlsFiles, TransportError, TransportErrorKind,
};

/// Choices the operator makes on the command line that apply to every ship.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectOptions {
    /// `--accept-new-host-keys`: record unknown host keys (changed keys are still refused).
    pub accept_new_host_keys: bool,
    /// Log in to each ship over SSH and stop there: no Docker check (`maestro ssh`).
    pub login_only: bool,
    /// `--persist` / `MAESTRO_PERSIST`: keep every SSH ship's session in the persist
    /// daemon this long (over the file's `ssh.persist`).
    pub persist: Option<std::time::Duration>,
}

/// The transport endpoint of `ship`, from its settings in `env`.
///
/// A ship with `ssh` (or MaestroNG's `ssh_tunnel`) is reached over SSH at its `endpoint`;
/// one whose endpoint is a path (`unix:///...` or `/...`), or that has a `socket_path`, is a
/// local socket (as in MaestroNG); otherwise its daemon's TCP port is reached directly, with
/// TLS when asked.
pub fn endpoint(env: &Environment, ship: &Ship, options: ConnectOptions) -> Endpoint {
    let route = if let Some(ssh) = &ship.ssh {
        let policy = match (options.accept_new_host_keys, ssh.known_hosts) {
            (true, _) | (_, KnownHostsPolicy::AcceptNew) => Some(HostKeyPolicy::AcceptNew),
            // Left to ssh_config's StrictHostKeyChecking, which defaults to strict.
            (false, KnownHostsPolicy::Strict) => None,
        };
        Route::Ssh(SshRoute {
            host: ship.endpoint.clone(),
            // 22 is the model's default: leave it to ~/.ssh/config, which may say otherwise.
            port: (ssh.port != 22).then_some(ssh.port),
            user: ssh.user.clone(),
            identity_files: ssh.identity_files.clone(),
            jumps: ssh.jump.iter().map(|j| jump_spec(env, j)).collect(),
            host_key_policy: policy,
            known_hosts_file: ssh.known_hosts_file.clone(),
            ..SshRoute::default()
        })
    } else if let Some(path) = local_socket(&ship.endpoint) {
        Route::Local {
            socket: path.into(),
        }
    } else if let Some(path) = &ship.socket_path {
        // MaestroNG: without a tunnel, a ship's `socket_path` is a socket on this machine.
        Route::Local {
            socket: path.into(),
        }
    } else {
        Route::Tcp {
            host: ship.endpoint.clone(),
            port: ship.docker_port,
            tls: ship.tls.then(|| TlsFiles {
                ca: ship.tls_ca_cert.clone(),
                cert: ship.tls_cert.clone(),
                key: ship.tls_key.clone(),
                verify: ship.tls_verify,
            }),
        }
    };
    let docker = match &ship.socket_path {
        Some(path) => DockerTarget::Socket(path.clone()),
        // MaestroNG's ssh_tunnel only ever forwarded the daemon's TCP port: keep that meaning.
        None if ship.docker_port_given || ship.ssh_tunnel.is_some() => {
            DockerTarget::Tcp(ship.docker_port)
        }
        None => DockerTarget::default(),
    };
    Endpoint {
        ship: ship.name.clone(),
        route,
        docker,
        api_version: ship.api_version.clone(),
        api_version_cache: crate::transport::default_cache_dir(),
        connect_timeout: ship.ssh_timeout.unwrap_or(ship.timeout),
        login_only: options.login_only,
        persist: options
            .persist
            .or_else(|| ship.ssh.as_ref().and_then(|ssh| ssh.persist))
            .filter(|idle| !idle.is_zero()),
    }
}

fn local_socket(endpoint: &str) -> Option<&str> {
    endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.starts_with('/').then_some(endpoint))
}

/// A jump host named as another ship is reached the way that ship is reached over SSH.
fn jump_spec(env: &Environment, jump: &JumpHost) -> JumpSpec {
    match jump {
        JumpHost::Address { user, host, port } => JumpSpec {
            host: host.clone(),
            port: *port,
            user: user.clone(),
        },
        JumpHost::Ship(name) => {
            let ship = env.ships.iter().find(|s| &s.name == name);
            let ssh = ship.and_then(|s| s.ssh.as_ref());
            JumpSpec {
                host: ship.map_or_else(|| name.clone(), |s| s.endpoint.clone()),
                port: ssh.and_then(|s| (s.port != 22).then_some(s.port)),
                user: ssh.and_then(|s| s.user.clone()),
            }
        }
    }
}

/// One connected ship: its connection (for checks from its side) and its Docker API.
#[derive(Clone, Debug)]
pub struct ShipHandle {
    pub connection: Connection,
    pub docker: docker::Ship,
}

/// Why a ship of the run could not be used: shared by every job that waits on the ship.
pub type ShipError = Arc<TransportError>;

type ShipResult = Result<ShipHandle, ShipError>;

/// The connections of one run, and the one owner of them.
///
/// Each ship is connected on its own, all at once, from the first time any ship is asked
/// for: a caller waits only for the ship it needs ([`Fleet::ship`]), so one slow or silent
/// ship holds up nothing but its own work. SSH sessions along common routes are shared
/// (see `transport::SessionPool`). [`Fleet::close`] ends everything the run opened, also
/// connections still being made.
pub struct Fleet {
    endpoints: BTreeMap<String, Endpoint>,
    pool: SessionPool,
    /// Per ship: `None` until its attempt ends.
    results: BTreeMap<String, watch::Sender<Option<ShipResult>>>,
    started: std::sync::Once,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    events: Mutex<Option<EventSink>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("ships", &self.endpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Fleet {
    /// The named ships of `env`; nothing is connected yet.
    pub fn new(env: &Environment, names: &[&str], options: ConnectOptions) -> Fleet {
        let endpoints: BTreeMap<String, Endpoint> = env
            .ships
            .iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|ship| (ship.name.clone(), endpoint(env, ship, options)))
            .collect();
        let results = endpoints
            .keys()
            .map(|name| (name.clone(), watch::channel(None).0))
            .collect();
        Fleet {
            endpoints,
            pool: SessionPool::new(),
            results,
            started: std::sync::Once::new(),
            tasks: Mutex::new(Vec::new()),
            events: Mutex::new(None),
        }
    }

    /// The ships that run at least one instance of `plans`; nothing is connected yet.
    pub fn for_plans<'a>(
        env: &Environment,
        plans: impl IntoIterator<Item = &'a Plan>,
        options: ConnectOptions,
    ) -> Fleet {
        let ships: BTreeSet<&str> = plans
            .into_iter()
            .flat_map(|p| p.steps.iter().map(|s| s.ship.as_str()))
            .collect();
        let names: Vec<&str> = ships.into_iter().collect();
        Fleet::new(env, &names, options)
    }

    /// Reports each ship's connecting, connected and failed on `sink` (a run's event stream).
    pub fn with_events(self, sink: EventSink) -> Fleet {
        *self.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        self
    }

    /// The ships of the run, in name order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.endpoints.keys().map(String::as_str)
    }

    /// Starts connecting every ship, once. Must be called inside a tokio runtime.
    pub fn connect(self: &Arc<Self>) {
        self.started.call_once(|| {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            for name in self.endpoints.keys() {
                let fleet = Arc::clone(self);
                let name = name.clone();
                tasks.push(tokio::spawn(async move { fleet.connect_one(&name).await }));
            }
        });
    }

    async fn connect_one(&self, name: &str) {
        let (Some(endpoint), Some(result)) = (self.endpoints.get(name), self.results.get(name))
        else {
            return;
        };
        self.announce(EventKind::ShipConnecting {
            ship: name.to_string(),
        });
        let began = std::time::Instant::now();
        let connected = transport::connect_in(endpoint, &self.pool)
            .await
            .map(|connection| ShipHandle {
                docker: docker::Ship::new(name, connection.docker().clone()),
                connection,
            })
            .map_err(Arc::new);
        let elapsed_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.announce(match &connected {
            Ok(_) => EventKind::ShipConnected {
                ship: name.to_string(),
                elapsed_ms,
            },
            Err(err) => {
                // The event names the ship already.
                let text = err.to_string();
                let reason = text
                    .strip_prefix(&format!("ship {name}: "))
                    .unwrap_or(&text);
                EventKind::ShipConnectFailed {
                    ship: name.to_string(),
                    elapsed_ms,
                    reason: reason.to_string(),
                }
            }
        });
        result.send_replace(Some(connected));
    }

    /// The ship `name`, once its connection is ready (connecting every ship if that has not
    /// begun yet).
    pub async fn ship(self: &Arc<Self>, name: &str) -> ShipResult {
        let Some(result) = self.results.get(name) else {
            return Err(Arc::new(
                TransportErrorKind::Settings {
                    message: "is not one of the ships this command connects to".into(),
                }
                .for_ship(name),
            ));
        };
        self.connect();
        let mut rx = result.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(ready) => ready.clone().unwrap_or_else(|| unreachable_ship(name)),
            // The sender lives in `self`: it cannot be gone while we hold `self`.
            Err(_) => unreachable_ship(name),
        }
    }

    /// A new connection to `name`, on sessions of its own: for a last request to a ship
    /// whose connection of the run was lost (the release of its deploy lock). Not kept by
    /// the fleet: the caller closes it.
    pub async fn reconnect(&self, name: &str) -> Result<ShipHandle, ShipError> {
        let endpoint = self.endpoints.get(name).ok_or_else(|| {
            Arc::new(
                TransportErrorKind::Settings {
                    message: "is not one of the ships this command connects to".into(),
                }
                .for_ship(name),
            )
        })?;
        let connection = transport::connect_in(endpoint, &SessionPool::new())
            .await
            .map_err(Arc::new)?;
        Ok(ShipHandle {
            docker: docker::Ship::new(name, connection.docker().clone()),
            connection,
        })
    }

    /// How many ships are still connecting.
    pub fn connecting(&self) -> usize {
        self.results
            .values()
            .filter(|result| result.borrow().is_none())
            .count()
    }

    /// Runs `work` over the fleet, then closes it. Ctrl-C (SIGINT) drops `work` at once,
    /// connections being made included, and gives `None`. For the commands that only
    /// read: the lifecycle commands' two-level Ctrl-C is the executor's.
    pub async fn run<T>(self: &Arc<Self>, work: impl std::future::Future<Output = T>) -> Option<T> {
        let outcome = tokio::select! {
            done = work => Some(done),
            _ = ctrl_c() => None,
        };
        self.close().await;
        outcome
    }

    /// Ends the run's connections: attempts still under way are dropped, every session
    /// (shared jump hosts included) is closed, and the event sink is let go.
    pub async fn close(&self) {
        let tasks: Vec<_> = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.drain(..).collect()
        };
        for task in &tasks {
            task.abort();
        }
        for (name, result) in &self.results {
            // Taken out, so that the connections are dropped here, inside the runtime:
            // russh's channels need one to close.
            let closed = Err(Arc::new(
                TransportErrorKind::Settings {
                    message: "its connection was closed at the end of the command".into(),
                }
                .for_ship(name.clone()),
            ));
            if let Some(Ok(handle)) = result.send_replace(Some(closed)) {
                handle.connection.close().await;
            }
        }
        self.pool.close().await;
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Fleet {
    fn announce(&self, kind: EventKind) {
        if let Some(sink) = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            sink.send(kind);
        }
    }
}

fn unreachable_ship(name: &str) -> ShipResult {
    Err(Arc::new(
        TransportErrorKind::Settings {
            message: "its connection attempt ended without a result".into(),
        }
        .for_ship(name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env(text: &str) -> Environment {
        crate::config::load_str(text, "test.yaml", Path::new(".")).expect("valid environment")
    }

    #[test]
    fn our_ssh_block_forwards_the_socket_and_maestrong_tunnel_the_tcp_port() {
        let e = env(r#"
name: t
ships:
  a: {ip: 10.0.0.1, ssh: {user: root, jump: [bastion.example:2222]}}
  b: {ip: 10.0.0.2, ssh_tunnel: {user: deploy, key: /k}}
  c: {ip: 10.0.0.3, docker_port: 4243, ssh: {user: root}}
  d: {ip: 10.0.0.4}
  e: {ip: 10.0.0.5, endpoint: "unix:///var/run/docker.sock"}
  f: {ip: 10.0.0.6, socket_path: /run/user/1000/docker.sock}
services: {}
"#);
        let ep = |name: &str| {
            let ship = e.ships.iter().find(|s| s.name == name).expect("ship");
            endpoint(&e, ship, ConnectOptions::default())
        };
        let a = ep("a");
        assert_eq!(
            a.docker,
            DockerTarget::Socket("/var/run/docker.sock".into())
        );
        match &a.route {
            Route::Ssh(r) => {
                assert_eq!(r.host, "10.0.0.1");
                assert_eq!(r.jumps[0].host, "bastion.example");
                assert_eq!(r.jumps[0].port, Some(2222));
                assert_eq!(r.host_key_policy, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ep("b").docker, DockerTarget::Tcp(2375));
        assert_eq!(ep("c").docker, DockerTarget::Tcp(4243));
        assert!(matches!(
            ep("d").route,
            Route::Tcp {
                port: 2375,
                tls: None,
                ..
            }
        ));
        assert!(matches!(ep("e").route, Route::Local { .. }));
        match ep("f").route {
            Route::Local { socket } => assert_eq!(socket, Path::new("/run/user/1000/docker.sock")),
            other => panic!("socket_path without SSH is a local socket: {other:?}"),
        }
    }

    #[test]
    fn the_flag_accepts_new_host_keys_on_every_ssh_ship() {
        let e = env("name: t\nships:\n  a: {ip: 10.0.0.1, ssh: {user: root}}\nservices: {}\n");
        let options = ConnectOptions {
            accept_new_host_keys: true,
            ..ConnectOptions::default()
        };
        match endpoint(&e, &e.ships[0], options).route {
            Route::Ssh(r) => assert_eq!(r.host_key_policy, Some(HostKeyPolicy::AcceptNew)),
            other => panic!("{other:?}"),
        }
    }
}
