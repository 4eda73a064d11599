//! `forward`: a local TCP port on the operator's machine carried to a port reached from a
//! ship's side, through the ship's SSH session (bastions included): the way to point a local
//! SQL client at a database behind a bastion.
//!
//! Decisions:
//!
//! - The target is an instance or a ship. An instance's port is reached where the lifecycle
//!   checks reach it: the port published on its ship's `ip` (or on the address the port
//!   binds, when it binds one), from the ship's side. A named port is looked up in the
//!   instance's `ports`; a number is the published port of that exposed port when the
//!   instance maps it, else the number itself on the ship's `ip`.
//! - A ship's own port is `127.0.0.1` as the ship sees it (what `ssh -L` users expect: a
//!   database that listens on the ship's loopback only is reachable), except for a ship
//!   reached over plain TCP/TLS, where nothing runs on the ship's side and its `ip` is used.
//! - What can be checked without a ship is checked first (unknown names, ports, a local port
//!   in use): bad input is refused before any connection is made.
//! - The local port is bound on 127.0.0.1 unless asked otherwise: any other address would let
//!   other machines through the operator's SSH session. Without `:LOCAL_PORT` the system
//!   picks a free port, which is printed: the same number as the remote port is often taken
//!   on a laptop (a local database), and a silent fallback would be a surprise.
//! - One SSH channel per accepted connection, opened when the connection arrives and closed
//!   when both sides are done; connections are served at once, each on its own task. A
//!   connection the ship refuses is reported and closed, and the forward goes on.
//! - It runs until it is dropped (Ctrl-C in the CLI): dropping it aborts every connection's
//!   task, which drops its channel.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{Environment, Instance, Protocol, did_you_mean};
use crate::orchestrate::engine::fleet::Fleet;
use crate::transport::{Connection, TransportError, TransportKind};

/// `PORT[:LOCAL_PORT]` as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub remote: RemotePort,
    /// `None`: a free port, chosen by the system.
    pub local: Option<u16>,
}

/// The port to reach: a named port of the instance, or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemotePort {
    Named(String),
    Number(u16),
}

impl std::fmt::Display for RemotePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemotePort::Named(name) => write!(f, "`{name}`"),
            RemotePort::Number(n) => write!(f, "{n}"),
        }
    }
}

impl PortSpec {
    /// Parses `http`, `5432`, `http:15432` or `5432:0`; the message says what was expected.
    pub fn parse(text: &str) -> Result<PortSpec, String> {
        let (remote, local) = match text.rsplit_once(':') {
            Some((remote, local)) => (remote, Some(local)),
            None => (text, None),
        };
        let local = match local {
            None => None,
            Some(local) => Some(local.parse::<u16>().map_err(|_| {
                format!(
                    "LOCAL_PORT must be a number from 0 to 65535 (0: any free port), not \
                     `{local}`"
                )
            })?),
        };
        let remote = if remote.is_empty() {
            return Err(
                "PORT is missing: write a port name or number, e.g. `http` or \
                        `5432:15432`"
                    .into(),
            );
        } else if remote.bytes().all(|b| b.is_ascii_digit()) {
            match remote.parse::<u16>() {
                Ok(n) if n > 0 => RemotePort::Number(n),
                _ => {
                    return Err(format!(
                        "PORT must be a port name or a number from 1 to 65535, not `{remote}`"
                    ));
                }
            }
        } else {
            RemotePort::Named(remote.to_string())
        };
        Ok(PortSpec {
            remote,
            local: local.filter(|p| *p != 0),
        })
    }
}

/// What is forwarded to, as far as the file tells (before any ship is asked).
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    /// The instance, or `None` for a ship's own port.
    pub instance: Option<Instance>,
    pub ship: String,
    pub port: PortSpec,
}

/// Why a forward cannot start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "error: no instance or ship named `{name}`{}\n  = help: forward takes an instance name \
         (to reach its ports) or a ship name (to reach a port of the ship itself)",
        .help.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
    )]
    UnknownTarget { name: String, help: Option<String> },
    #[error(
        "error: instance {instance} has no port named `{port}`{}\n  = help: {}",
        .help.as_ref().map(|h| format!("; {h}")).unwrap_or_default(),
        ports_help(.known)
    )]
    UnknownPort {
        instance: String,
        port: String,
        help: Option<String>,
        /// `name (exposed/protocol)` of each port the instance declares.
        known: Vec<String>,
    },
    #[error(
        "error: `{ship}` is a ship, and a ship's ports have no names: give a number, e.g. \
         `maestro forward {ship} 5432`"
    )]
    NamedPortOnShip { ship: String },
    #[error(
        "error: port `{port}` of instance {instance} is udp; forward carries tcp only\n  = help: \
         reach it another way, or forward one of its tcp ports"
    )]
    Udp { instance: String, port: String },
    #[error(
        "error: cannot listen on {address}: {reason}\n  = help: {}",
        if *.in_use {
            "another program listens there: choose another local port (PORT:LOCAL_PORT), or \
             leave LOCAL_PORT out for a free one"
        } else {
            "listen on 127.0.0.1 (the default), or on an address of this machine"
        }
    )]
    Listen {
        address: SocketAddr,
        reason: String,
        in_use: bool,
    },
    #[error(
        "error: instance {instance} on ship {ship} publishes no host port for port \
         `{port}`{}\n  = help: start it (`maestro start {instance}`), or check the port's \
         mapping in the file",
        if *.running { "" } else { " (it has no running container)" }
    )]
    Unpublished {
        instance: String,
        ship: String,
        port: String,
        running: bool,
    },
    #[error("error: {0}")]
    Ship(#[from] Arc<TransportError>),
    #[error("error: instance {instance}: {message}")]
    Docker { instance: String, message: String },
    #[error("error: the forward stopped taking connections on {address}: {source}")]
    Accept {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

fn ports_help(known: &[String]) -> String {
    if known.is_empty() {
        "it declares no ports: give a port number (the instance's exposed port, or any port \
         of its ship)"
            .into()
    } else {
        format!("its ports: {}; or give a port number", known.join(", "))
    }
}

impl ForwardError {
    /// Input the user must fix, found before any ship was contacted, exits with 2; what
    /// happened on a ship, with 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            ForwardError::UnknownTarget { .. }
            | ForwardError::UnknownPort { .. }
            | ForwardError::NamedPortOnShip { .. }
            | ForwardError::Udp { .. }
            | ForwardError::Listen { .. } => 2,
            _ => 1,
        }
    }
}

impl ForwardRequest {
    /// Resolves `target` (an instance, else a ship) and checks the port against the file.
    pub fn resolve(
        env: &Environment,
        target: &str,
        port: PortSpec,
    ) -> Result<ForwardRequest, ForwardError> {
        if let Some((_, instance)) = env.instance(target) {
            if let RemotePort::Named(name) = &port.remote {
                match instance.ports.iter().find(|p| &p.name == name) {
                    None => {
                        return Err(ForwardError::UnknownPort {
                            instance: instance.name.clone(),
                            port: name.clone(),
                            help: did_you_mean(
                                name,
                                instance.ports.iter().map(|p| p.name.as_str()),
                            ),
                            known: instance
                                .ports
                                .iter()
                                .map(|p| format!("{} ({}/{})", p.name, p.exposed.start, p.protocol))
                                .collect(),
                        });
                    }
                    Some(p) if p.protocol == Protocol::Udp => {
                        return Err(ForwardError::Udp {
                            instance: instance.name.clone(),
                            port: name.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
            return Ok(ForwardRequest {
                ship: instance.ship.clone(),
                instance: Some(instance.clone()),
                port,
            });
        }
        if let Some(ship) = env.ships.iter().find(|s| s.name == target) {
            if matches!(port.remote, RemotePort::Named(_)) {
                return Err(ForwardError::NamedPortOnShip {
                    ship: ship.name.clone(),
                });
            }
            return Ok(ForwardRequest {
                instance: None,
                ship: ship.name.clone(),
                port,
            });
        }
        let candidates = env
            .instances()
            .map(|(_, i)| i.name.as_str())
            .chain(env.ships.iter().map(|s| s.name.as_str()));
        Err(ForwardError::UnknownTarget {
            name: target.to_string(),
            help: did_you_mean(target, candidates),
        })
    }
}

/// Binds the local end: `address`, on `port` or a free one.
pub async fn listen(address: IpAddr, port: Option<u16>) -> Result<TcpListener, ForwardError> {
    let at = SocketAddr::new(address, port.unwrap_or(0));
    TcpListener::bind(at)
        .await
        .map_err(|err| ForwardError::Listen {
            address: at,
            in_use: err.kind() == std::io::ErrorKind::AddrInUse,
            reason: match err.kind() {
                std::io::ErrorKind::AddrInUse => "the address is in use".to_string(),
                std::io::ErrorKind::AddrNotAvailable => {
                    "that address is not one of this machine's".to_string()
                }
                _ => err.to_string(),
            },
        })
}

/// Where connections go, as seen from the ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    /// E.g. `web-1 port http (10.0.0.2:28080 on ship s1)`.
    pub describe: String,
}

/// The destination of `request`, given the ship's connection and, for an instance, its
/// container's published ports (`published`, from [`crate::orchestrate::plan::container::published_ports`]).
pub fn destination(
    env: &Environment,
    request: &ForwardRequest,
    transport: TransportKind,
    published: &BTreeMap<String, u16>,
    running: bool,
) -> Result<Destination, ForwardError> {
    let ship_ip = env.ship(&request.ship).map_or("", |s| s.ip.as_str());
    let Some(instance) = &request.instance else {
        let host = match transport {
            TransportKind::Ssh | TransportKind::Local => "127.0.0.1",
            TransportKind::Tcp | TransportKind::Tls => ship_ip,
        };
        let port = match request.port.remote {
            RemotePort::Number(n) => n,
            // Refused by `ForwardRequest::resolve`.
            RemotePort::Named(_) => 0,
        };
        return Ok(Destination {
            host: host.to_string(),
            port,
            describe: format!(
                "ship {} port {port} ({host}:{port} on the ship)",
                request.ship
            ),
        });
    };
    let declared = match &request.port.remote {
        RemotePort::Named(name) => instance.ports.iter().find(|p| &p.name == name),
        RemotePort::Number(n) => instance
            .ports
            .iter()
            .find(|p| p.exposed.start == *n && p.protocol == Protocol::Tcp),
    };
    let (host, port, what) = match declared {
        Some(declared) => {
            let Some(port) = published.get(&declared.name).copied() else {
                return Err(ForwardError::Unpublished {
                    instance: instance.name.clone(),
                    ship: request.ship.clone(),
                    port: declared.name.clone(),
                    running,
                });
            };
            // A port bound to one address answers only there.
            let host = declared
                .bind_ip
                .clone()
                .filter(|ip| ip != "0.0.0.0" && ip != "::" && !ip.is_empty())
                .unwrap_or_else(|| ship_ip.to_string());
            (host, port, format!("port {}", declared.name))
        }
        None => {
            let n = match request.port.remote {
                RemotePort::Number(n) => n,
                RemotePort::Named(_) => 0,
            };
            (ship_ip.to_string(), n, format!("port {n}"))
        }
    };
    Ok(Destination {
        describe: format!(
            "{} {what} ({host}:{port} on ship {})",
            instance.name, request.ship
        ),
        host,
        port,
    })
}

/// What a running forward reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardEvent {
    /// Connected and listening: connections are carried from now on.
    Listening { local: SocketAddr, to: Destination },
    /// One connection could not be carried (the ship refused it, the session broke).
    Failed { peer: SocketAddr, message: String },
}

/// The `forward` command's sequence: connects to the request's ship, finds its destination,
/// then carries every connection `listener` accepts, until dropped. Returns only when it
/// cannot go on.
pub async fn run(
    env: &Environment,
    fleet: &Arc<Fleet>,
    request: &ForwardRequest,
    listener: TcpListener,
    events: mpsc::UnboundedSender<ForwardEvent>,
) -> Result<(), ForwardError> {
    let handle = fleet.ship(&request.ship).await?;
    let (published, running) = match &request.instance {
        Some(instance) => {
            let details = handle.docker.inspect(&instance.name).await.map_err(|err| {
                ForwardError::Docker {
                    instance: instance.name.clone(),
                    message: err.to_string(),
                }
            })?;
            let running = details.as_ref().is_some_and(|d| d.running);
            (
                crate::orchestrate::plan::container::published_ports(instance, details.as_ref()),
                running,
            )
        }
        None => (BTreeMap::new(), true),
    };
    let to = destination(
        env,
        request,
        handle.connection.info().transport,
        &published,
        running,
    )?;
    let local = listener
        .local_addr()
        .map_err(|source| ForwardError::Accept {
            address: SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 0),
            source,
        })?;
    let _ = events.send(ForwardEvent::Listening {
        local,
        to: to.clone(),
    });
    serve(listener, local, handle.connection, to, events).await
}

/// Accepts connections and carries each on its own task and channel. The tasks live in a
/// `JoinSet`, so dropping this future ends every connection.
async fn serve(
    listener: TcpListener,
    local: SocketAddr,
    connection: Connection,
    to: Destination,
    events: mpsc::UnboundedSender<ForwardEvent>,
) -> Result<(), ForwardError> {
    let to = Arc::new(to);
    let mut carried = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (connection, to, events) =
                        (connection.clone(), Arc::clone(&to), events.clone());
                    carried.spawn(async move {
                        if let Err(message) = carry(stream, &connection, &to).await {
                            let _ = events.send(ForwardEvent::Failed { peer, message });
                        }
                    });
                }
                // Out of file descriptors and the like: the connection is lost, the
                // listener is not; wait a little for descriptors to be freed.
                Err(err) if is_transient(&err) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(source) => return Err(ForwardError::Accept { address: local, source }),
            },
            Some(_) = carried.join_next(), if !carried.is_empty() => {}
        }
    }
}

fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
    ) || err
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23)
}

/// One connection: a channel to the destination, bytes both ways until both sides end.
async fn carry(
    mut local: TcpStream,
    connection: &Connection,
    to: &Destination,
) -> Result<(), String> {
    let _ = local.set_nodelay(true);
    let mut remote = connection
        .open_tcp(&to.host, to.port)
        .await
        .map_err(|err| err.to_string())?;
    match tokio::io::copy_bidirectional(&mut local, &mut remote).await {
        Ok(_) => Ok(()),
        // The client went away mid-way: its business, not a failure of the forward.
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(format!("{}: {err}", to.describe)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env() -> Environment {
        crate::config::load_str(
            r#"
name: t
ships:
  s1: {ip: 10.0.0.1, ssh: {user: root}}
  s2: {ip: 10.0.0.2, docker_port: 2375}
services:
  db:
    image: postgres
    ports: {sql: "5432:15432", stats: "9000/udp", any: "8080:20000-20010", local: {exposed: 7000, external: ["127.0.0.1", 17000]}}
    instances:
      db-1: {ship: s1}
"#,
            "t.yaml",
            Path::new("."),
        )
        .expect("valid environment")
    }

    fn spec(text: &str) -> PortSpec {
        PortSpec::parse(text).expect("parses")
    }

    #[test]
    fn port_specs_parse_and_bad_ones_say_what_was_expected() {
        assert_eq!(
            spec("http"),
            PortSpec {
                remote: RemotePort::Named("http".into()),
                local: None
            }
        );
        assert_eq!(spec("5432:15432").local, Some(15432));
        assert_eq!(spec("5432:0").local, None, "0 means any free port");
        assert_eq!(spec("5432").remote, RemotePort::Number(5432));
        let err = PortSpec::parse("5432:x").expect_err("refused");
        assert!(
            err.contains("LOCAL_PORT must be a number from 0 to 65535"),
            "{err}"
        );
        let err = PortSpec::parse("70000").expect_err("refused");
        assert!(err.contains("from 1 to 65535, not `70000`"), "{err}");
        assert!(PortSpec::parse(":80").is_err());
    }

    #[test]
    fn targets_and_ports_are_checked_against_the_file() {
        let env = env();
        let err = ForwardRequest::resolve(&env, "db-2", spec("sql")).expect_err("unknown");
        assert!(err.to_string().contains("did you mean `db-1`?"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err = ForwardRequest::resolve(&env, "db-1", spec("sqll")).expect_err("unknown port");
        let msg = err.to_string();
        assert!(
            msg.contains("has no port named `sqll`; did you mean `sql`?"),
            "{msg}"
        );
        assert!(
            msg.contains("its ports: sql (5432/tcp), stats (9000/udp)"),
            "{msg}"
        );
        let err = ForwardRequest::resolve(&env, "db-1", spec("stats")).expect_err("udp");
        assert!(err.to_string().contains("is udp"), "{err}");
        let err = ForwardRequest::resolve(&env, "s1", spec("sql")).expect_err("named port on ship");
        assert!(err.to_string().contains("`s1` is a ship"), "{err}");
        assert!(ForwardRequest::resolve(&env, "s1", spec("22")).is_ok());
    }

    #[test]
    fn destinations_are_where_the_checks_look() {
        let env = env();
        let (_, db) = env.instance("db-1").expect("db-1");
        let published = crate::orchestrate::plan::container::published_ports(db, None);
        let to = |text: &str| {
            let request = ForwardRequest::resolve(&env, "db-1", spec(text)).expect("resolves");
            destination(&env, &request, TransportKind::Ssh, &published, true)
        };
        let sql = to("sql").expect("sql");
        assert_eq!((sql.host.as_str(), sql.port), ("10.0.0.1", 15432));
        let by_number = to("5432").expect("5432");
        assert_eq!(by_number.port, 15432, "an exposed port: its published port");
        let other = to("6000").expect("6000");
        assert_eq!((other.host.as_str(), other.port), ("10.0.0.1", 6000));
        let local = to("local").expect("local");
        assert_eq!((local.host.as_str(), local.port), ("127.0.0.1", 17000));
        let err = to("any").expect_err("a range is only known from the container");
        assert!(err.to_string().contains("publishes no host port"), "{err}");

        let ship = |name: &str, kind| {
            let request = ForwardRequest::resolve(&env, name, spec("22")).expect("resolves");
            destination(&env, &request, kind, &BTreeMap::new(), true).expect("ship")
        };
        assert_eq!(ship("s1", TransportKind::Ssh).host, "127.0.0.1");
        assert_eq!(ship("s2", TransportKind::Tcp).host, "10.0.0.2");
    }
}
