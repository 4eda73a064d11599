use std::path::PathBuf;
use std::time::Duration;

/// Where a changed host key's old entry is and what types are involved: a host with keys on
/// record that presents a type not among them is refused as changed too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedKeyRecord {
    /// `known_hosts file:line` of the recorded key.
    pub at: String,
    /// The command that removes the old entry: `ssh-keygen -f FILE -R HOST`.
    pub forget: String,
    /// The type of the key presented: `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, ...
    pub offered_type: String,
    /// The key types on record for the host, in the order of the known_hosts files.
    pub types_on_record: Vec<String>,
}

/// Why a ship could not be reached. Every message names the ship and, for SSH, the hop
/// (`user@host:port`, with the jump hosts it was reached through) where it went wrong, so
/// that a per-ship report needs nothing else.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("ship {ship}: cannot resolve the address of {hop}: {source}")]
    Dns {
        ship: String,
        hop: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "ship {ship}: connection to {hop} refused. With no `ssh:` block (nor `ssh_tunnel`), \
         maestro reaches the Docker daemon on its {} TCP port, as MaestroNG does; to reach the \
         ship's Docker socket through SSH instead, give the ship an `ssh:` block (for example \
         `ssh: {{user: deploy}}`)",
        if *tls { "TLS" } else { "unencrypted" }
    )]
    DockerTcpRefused {
        ship: String,
        hop: String,
        tls: bool,
    },

    #[error("ship {ship}: connection to {hop} refused{}", via_text(via))]
    Refused {
        ship: String,
        hop: String,
        /// The jump host that tried to reach `hop`, when there is one (it cannot tell us
        /// whether the port was closed or the address unreachable).
        via: Option<String>,
    },

    #[error("ship {ship}: {hop} did not answer within {}s", after.as_secs_f32())]
    Timeout {
        ship: String,
        hop: String,
        after: Duration,
    },

    #[error("ship {ship}: network error talking to {hop}: {source}")]
    Io {
        ship: String,
        hop: String,
        #[source]
        source: std::io::Error,
    },

    #[error("ship {ship}: ProxyCommand `{command}` for {hop} failed: {reason}")]
    ProxyCommand {
        ship: String,
        hop: String,
        command: String,
        /// What the command said on stderr (its last lines), or why it could not start.
        reason: String,
    },

    #[error(
        "ship {ship}: {hop} is not an SSH server (it sent `{sent}`): check the address and the \
         SSH port (`ssh.port`, or Port in ~/.ssh/config)"
    )]
    NotSsh {
        ship: String,
        hop: String,
        /// The first line it sent, printable.
        sent: String,
    },

    #[error(
        "ship {ship}: {hop} closed the connection before login, without an SSH greeting \
         ({attempts} attempt{}). An sshd does this while too many logins are being set up at \
         once (its MaxStartups, 10:30:100 by default, counts every client's): raise \
         MaxStartups in that host's sshd_config, or try again when fewer logins are under \
         way. If it keeps happening, check that this address and port is an SSH server",
        if *attempts == 1 { "" } else { "s" }
    )]
    DroppedBeforeLogin {
        ship: String,
        hop: String,
        attempts: u32,
    },

    #[error("ship {ship}: SSH protocol error with {hop}: {source}")]
    Ssh {
        ship: String,
        hop: String,
        #[source]
        source: Box<russh::Error>,
    },

    #[error(
        "ship {ship}: authentication as {user} at {hop} failed; tried: {}",
        if tried.is_empty() { "nothing (no ssh-agent, no key file)".to_string() } else { tried.join("; ") }
    )]
    Auth {
        ship: String,
        hop: String,
        user: String,
        /// Each method tried, with why it did not work.
        tried: Vec<String>,
    },

    #[error(
        "ship {ship}: host key of {hop} is not known ({fingerprint}); refusing to connect. {hint}"
    )]
    HostKeyUnknown {
        ship: String,
        hop: String,
        fingerprint: String,
        hint: String,
    },

    #[error(
        "ship {ship}: HOST KEY OF {hop} HAS CHANGED: it presented the {} key {found}, but \
         {} records {} (key types on record: {}). Someone may be intercepting the \
         connection; if the change is expected, verify the new key out of band and remove the \
         old entry with `{}`",
        record.offered_type,
        record.at,
        expected.join(", "),
        record.types_on_record.join(", "),
        record.forget
    )]
    HostKeyChanged {
        ship: String,
        hop: String,
        found: String,
        expected: Box<[String]>,
        /// Boxed: kept out of the size of every `Result` that carries this error.
        record: Box<ChangedKeyRecord>,
    },

    #[error(
        "ship {ship}: host key of {hop} ({fingerprint}) is marked @revoked in {}; refusing to connect",
        file.display()
    )]
    HostKeyRevoked {
        ship: String,
        hop: String,
        fingerprint: String,
        file: PathBuf,
    },

    #[error(
        "ship {ship}: host certificate of {hop} {problem}, and its key {fingerprint} is not \
         in known_hosts either; refusing to connect"
    )]
    HostCertificate {
        ship: String,
        hop: String,
        /// What is wrong with the certificate, worded to follow "host certificate of HOP".
        problem: String,
        fingerprint: String,
    },

    #[error(
        "ship {ship}: host certificate of {hop} is signed by CA key {ca}, which is marked \
         @revoked in {}; refusing to connect",
        file.display()
    )]
    HostCaRevoked {
        ship: String,
        hop: String,
        ca: String,
        file: PathBuf,
    },

    #[error("ship {ship}: cannot use known_hosts file {}: {reason}", path.display())]
    KnownHosts {
        ship: String,
        path: PathBuf,
        reason: String,
    },

    #[error("ship {ship}: no Docker socket at {path} on {hop}")]
    SocketMissing {
        ship: String,
        hop: String,
        path: String,
    },

    #[error(
        "ship {ship}: permission denied on the Docker socket {path} on {hop}: the login user \
         cannot read and write it (add that user to the socket's group, usually `docker`, or \
         log in as a user who is in it)"
    )]
    SocketPermission {
        ship: String,
        hop: String,
        path: String,
    },

    #[error(
        "ship {ship}: {hop} could not open a channel to the Docker daemon at {target}: {reason}"
    )]
    DockerUnreachable {
        ship: String,
        hop: String,
        target: String,
        reason: String,
    },

    #[error("ship {ship}: through jump host {hop}: {source}")]
    Jump {
        ship: String,
        hop: String,
        #[source]
        source: Box<TransportError>,
    },

    /// The SSH login worked, and what came after it failed: the route, login and host key
    /// that were found stay known (`maestro ships` reports them).
    #[error("{source}")]
    AfterLogin {
        reached: Box<super::ConnectionInfo>,
        source: Box<TransportError>,
    },

    #[error("ship {ship}: Docker API: {source}")]
    Docker {
        ship: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },

    #[error("ship {ship}: {message}")]
    Settings { ship: String, message: String },

    /// An error the persist daemon met for this ship, with its kind and text there.
    #[error("ship {ship}: {message}")]
    Relayed {
        ship: String,
        kind: &'static str,
        message: String,
    },
}

fn via_text(via: &Option<String>) -> String {
    match via {
        Some(via) => format!(" (or unreachable from {via})"),
        None => String::new(),
    }
}

impl TransportError {
    pub(crate) fn docker(ship: &str, source: bollard::errors::Error) -> TransportError {
        TransportError::Docker {
            ship: ship.to_string(),
            source: Box::new(source),
        }
    }

    /// A short word for the cause, for tables and JSON (`dns`, `refused`, `timeout`, `auth`,
    /// `host-key`, `socket-missing`, `socket-permission`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Dns { .. } => "dns",
            TransportError::Refused { .. } | TransportError::DockerTcpRefused { .. } => "refused",
            TransportError::ProxyCommand { .. } => "proxy-command",
            TransportError::Timeout { .. } => "timeout",
            TransportError::Io { .. } => "network",
            TransportError::DroppedBeforeLogin { .. } => "dropped-before-login",
            TransportError::NotSsh { .. } => "not-ssh",
            TransportError::Ssh { .. } => "ssh",
            TransportError::Auth { .. } => "auth",
            TransportError::HostKeyUnknown { .. } => "host-key-unknown",
            TransportError::HostKeyChanged { .. } => "host-key-changed",
            TransportError::HostKeyRevoked { .. } | TransportError::HostCaRevoked { .. } => {
                "host-key-revoked"
            }
            TransportError::HostCertificate { .. } => "host-certificate",
            TransportError::KnownHosts { .. } => "known-hosts",
            TransportError::SocketMissing { .. } => "socket-missing",
            TransportError::SocketPermission { .. } => "socket-permission",
            TransportError::DockerUnreachable { .. } => "docker-unreachable",
            TransportError::Jump { source, .. } | TransportError::AfterLogin { source, .. } => {
                source.kind()
            }
            TransportError::Docker { .. } => "docker-api",
            TransportError::Settings { .. } => "settings",
            TransportError::Relayed { kind, .. } => kind,
        }
    }

    /// How far the connection got when the login worked and something after it failed.
    pub fn reached(&self) -> Option<&super::ConnectionInfo> {
        match self {
            TransportError::AfterLogin { reached, .. } => Some(reached),
            _ => None,
        }
    }

    /// The error at the end of a chain of jumps (the cause itself).
    pub fn root(&self) -> &TransportError {
        match self {
            TransportError::Jump { source, .. } | TransportError::AfterLogin { source, .. } => {
                source.root()
            }
            other => other,
        }
    }

    /// The same error told for `ship`: a session shared by several ships fails once, and
    /// each ship behind it reports it in its own name. Sources that cannot be copied are
    /// kept as their text.
    pub(crate) fn for_ship(&self, ship: &str) -> TransportError {
        let ship = ship.to_string();
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            TransportError::Dns { hop, source, .. } => TransportError::Dns {
                ship,
                hop: hop.clone(),
                source: io(source),
            },
            TransportError::DockerTcpRefused { hop, tls, .. } => TransportError::DockerTcpRefused {
                ship,
                hop: hop.clone(),
                tls: *tls,
            },
            TransportError::Refused { hop, via, .. } => TransportError::Refused {
                ship,
                hop: hop.clone(),
                via: via.clone(),
            },
            TransportError::Timeout { hop, after, .. } => TransportError::Timeout {
                ship,
                hop: hop.clone(),
                after: *after,
            },
            TransportError::Io { hop, source, .. } => TransportError::Io {
                ship,
                hop: hop.clone(),
                source: io(source),
            },
            TransportError::ProxyCommand {
                hop,
                command,
                reason,
                ..
            } => TransportError::ProxyCommand {
                ship,
                hop: hop.clone(),
                command: command.clone(),
                reason: reason.clone(),
            },
            TransportError::NotSsh { hop, sent, .. } => TransportError::NotSsh {
                ship,
                hop: hop.clone(),
                sent: sent.clone(),
            },
            TransportError::DroppedBeforeLogin { hop, attempts, .. } => {
                TransportError::DroppedBeforeLogin {
                    ship,
                    hop: hop.clone(),
                    attempts: *attempts,
                }
            }
            TransportError::Ssh { hop, source, .. } => TransportError::Ssh {
                ship,
                hop: hop.clone(),
                source: Box::new(russh::Error::IO(std::io::Error::other(source.to_string()))),
            },
            TransportError::Auth {
                hop, user, tried, ..
            } => TransportError::Auth {
                ship,
                hop: hop.clone(),
                user: user.clone(),
                tried: tried.clone(),
            },
            TransportError::HostKeyUnknown {
                hop,
                fingerprint,
                hint,
                ..
            } => TransportError::HostKeyUnknown {
                ship,
                hop: hop.clone(),
                fingerprint: fingerprint.clone(),
                hint: hint.clone(),
            },
            TransportError::HostKeyChanged {
                hop,
                found,
                expected,
                record,
                ..
            } => TransportError::HostKeyChanged {
                ship,
                hop: hop.clone(),
                found: found.clone(),
                expected: expected.clone(),
                record: record.clone(),
            },
            TransportError::HostKeyRevoked {
                hop,
                fingerprint,
                file,
                ..
            } => TransportError::HostKeyRevoked {
                ship,
                hop: hop.clone(),
                fingerprint: fingerprint.clone(),
                file: file.clone(),
            },
            TransportError::HostCertificate {
                hop,
                problem,
                fingerprint,
                ..
            } => TransportError::HostCertificate {
                ship,
                hop: hop.clone(),
                problem: problem.clone(),
                fingerprint: fingerprint.clone(),
            },
            TransportError::HostCaRevoked { hop, ca, file, .. } => TransportError::HostCaRevoked {
                ship,
                hop: hop.clone(),
                ca: ca.clone(),
                file: file.clone(),
            },
            TransportError::KnownHosts { path, reason, .. } => TransportError::KnownHosts {
                ship,
                path: path.clone(),
                reason: reason.clone(),
            },
            TransportError::SocketMissing { hop, path, .. } => TransportError::SocketMissing {
                ship,
                hop: hop.clone(),
                path: path.clone(),
            },
            TransportError::SocketPermission { hop, path, .. } => {
                TransportError::SocketPermission {
                    ship,
                    hop: hop.clone(),
                    path: path.clone(),
                }
            }
            TransportError::DockerUnreachable {
                hop,
                target,
                reason,
                ..
            } => TransportError::DockerUnreachable {
                ship,
                hop: hop.clone(),
                target: target.clone(),
                reason: reason.clone(),
            },
            TransportError::Jump { hop, source, .. } => TransportError::Jump {
                ship: ship.clone(),
                hop: hop.clone(),
                source: Box::new(source.for_ship(&ship)),
            },
            TransportError::AfterLogin { reached, source } => TransportError::AfterLogin {
                reached: reached.clone(),
                source: Box::new(source.for_ship(&ship)),
            },
            TransportError::Docker { source, .. } => TransportError::Settings {
                ship,
                message: format!("Docker API: {source}"),
            },
            TransportError::Settings { message, .. } => TransportError::Settings {
                ship,
                message: message.clone(),
            },
            TransportError::Relayed { kind, message, .. } => TransportError::Relayed {
                ship,
                kind,
                message: message.clone(),
            },
        }
    }
}
