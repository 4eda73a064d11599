//! Why a ship could not be reached: [`TransportError`] is the ship and the cause
//! ([`TransportErrorKind`]), kept apart because one cause is often told for several
//! ships: a session shared by the ships behind one bastion fails once, and each of them
//! reports it in its own name (the SSH pool keeps the cause alone, and
//! [`TransportErrorKind::for_ship`] tells it for each ship).
//!
//! Every message reads `ship NAME: CAUSE`; through a jump host, `ship NAME: through jump
//! host HOP: ship NAME: CAUSE`, as it always read (tests and scripts match these texts).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
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

/// Why a ship could not be reached, told without the ship: [`TransportError`] puts the
/// ship's name in front. For SSH each names the hop (`user@host:port`, with the jump hosts
/// it was reached through) where it went wrong. Sources are shared (`Arc`), so that one
/// failure can be told for every ship behind it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportErrorKind {
    #[error("cannot resolve the address of {hop}: {source}")]
    Dns {
        hop: String,
        #[source]
        source: Arc<std::io::Error>,
    },

    #[error(
        "connection to {hop} refused. With no `ssh:` block (nor `ssh_tunnel`), \
         maestro reaches the Docker daemon on its {} TCP port, as MaestroNG does; to reach the \
         ship's Docker socket through SSH instead, give the ship an `ssh:` block (for example \
         `ssh: {{user: deploy}}`)",
        if *tls { "TLS" } else { "unencrypted" }
    )]
    DockerTcpRefused { hop: String, tls: bool },

    #[error("connection to {hop} refused{}", via_text(via))]
    Refused {
        hop: String,
        /// The jump host that tried to reach `hop`, when there is one (it cannot tell us
        /// whether the port was closed or the address unreachable).
        via: Option<String>,
    },

    #[error("{hop} did not answer within {}s", after.as_secs_f32())]
    Timeout { hop: String, after: Duration },

    #[error("network error talking to {hop}: {source}")]
    Io {
        hop: String,
        #[source]
        source: Arc<std::io::Error>,
    },

    #[error("ProxyCommand `{command}` for {hop} failed: {reason}")]
    ProxyCommand {
        hop: String,
        command: String,
        /// What the command said on stderr (its last lines), or why it could not start.
        reason: String,
    },

    #[error(
        "{hop} is not an SSH server (it sent `{sent}`): check the address and the \
         SSH port (`ssh.port`, or Port in ~/.ssh/config)"
    )]
    NotSsh {
        hop: String,
        /// The first line it sent, printable.
        sent: String,
    },

    #[error(
        "{hop} closed the connection before login, without an SSH greeting \
         ({attempts} attempt{}). An sshd does this while too many logins are being set up at \
         once (its MaxStartups, 10:30:100 by default, counts every client's): raise \
         MaxStartups in that host's sshd_config, or try again when fewer logins are under \
         way. If it keeps happening, check that this address and port is an SSH server",
        if *attempts == 1 { "" } else { "s" }
    )]
    DroppedBeforeLogin { hop: String, attempts: u32 },

    #[error("SSH protocol error with {hop}: {source}")]
    Ssh {
        hop: String,
        #[source]
        source: Arc<russh::Error>,
    },

    #[error(
        "authentication as {user} at {hop} failed; tried: {}",
        if tried.is_empty() { "nothing (no ssh-agent, no key file)".to_string() } else { tried.join("; ") }
    )]
    Auth {
        hop: String,
        user: String,
        /// Each method tried, with why it did not work.
        tried: Vec<String>,
    },

    #[error("host key of {hop} is not known ({fingerprint}); refusing to connect. {hint}")]
    HostKeyUnknown {
        hop: String,
        fingerprint: String,
        hint: String,
    },

    #[error(
        "HOST KEY OF {hop} HAS CHANGED: it presented the {} key {found}, but \
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
        hop: String,
        found: String,
        expected: Box<[String]>,
        /// Boxed: kept out of the size of every `Result` that carries this error.
        record: Box<ChangedKeyRecord>,
    },

    #[error(
        "host key of {hop} ({fingerprint}) is marked @revoked in {}; refusing to connect",
        file.display()
    )]
    HostKeyRevoked {
        hop: String,
        fingerprint: String,
        file: PathBuf,
    },

    #[error(
        "host certificate of {hop} {problem}, and its key {fingerprint} is not \
         in known_hosts either; refusing to connect"
    )]
    HostCertificate {
        hop: String,
        /// What is wrong with the certificate, worded to follow "host certificate of HOP".
        problem: String,
        fingerprint: String,
    },

    #[error(
        "host certificate of {hop} is signed by CA key {ca}, which is marked \
         @revoked in {}; refusing to connect",
        file.display()
    )]
    HostCaRevoked {
        hop: String,
        ca: String,
        file: PathBuf,
    },

    #[error("cannot use known_hosts file {}: {reason}", path.display())]
    KnownHosts { path: PathBuf, reason: String },

    #[error("no Docker socket at {path} on {hop}")]
    SocketMissing { hop: String, path: String },

    #[error(
        "permission denied on the Docker socket {path} on {hop}: the login user \
         cannot read and write it (add that user to the socket's group, usually `docker`, or \
         log in as a user who is in it)"
    )]
    SocketPermission { hop: String, path: String },

    #[error("{hop} could not open a channel to the Docker daemon at {target}: {reason}")]
    DockerUnreachable {
        hop: String,
        target: String,
        reason: String,
    },

    #[error("through jump host {hop}: {source}")]
    Jump {
        hop: String,
        #[source]
        source: Box<TransportErrorKind>,
    },

    /// The SSH login worked, and what came after it failed: the route, login and host key
    /// that were found stay known (`maestro ships` reports them).
    #[error("{source}")]
    AfterLogin {
        reached: Box<super::ConnectionInfo>,
        source: Box<TransportErrorKind>,
    },

    #[error("Docker API: {source}")]
    Docker {
        #[source]
        source: Arc<bollard::errors::Error>,
    },

    #[error("{message}")]
    Settings { message: String },

    /// An error the persist daemon met for this ship, with its kind and text there.
    #[error("{message}")]
    Relayed { code: &'static str, message: String },
}

/// Why `ship` could not be reached. Every message names the ship and, for SSH, the hop where
/// it went wrong, so that a per-ship report needs nothing else.
#[derive(Debug, Clone)]
pub struct TransportError {
    pub ship: String,
    pub kind: TransportErrorKind,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.tell(&self.ship, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

fn via_text(via: &Option<String>) -> String {
    match via {
        Some(via) => format!(" (or unreachable from {via})"),
        None => String::new(),
    }
}

impl TransportErrorKind {
    /// This cause, told for `ship`.
    pub(crate) fn for_ship(self, ship: impl Into<String>) -> TransportError {
        TransportError {
            ship: ship.into(),
            kind: self,
        }
    }

    /// The message for `ship`: a jump names the ship again before its cause, and the error
    /// after a login is told as its cause.
    fn tell(&self, ship: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportErrorKind::Jump { hop, source } => {
                write!(f, "ship {ship}: through jump host {hop}: ")?;
                source.tell(ship, f)
            }
            TransportErrorKind::AfterLogin { source, .. } => source.tell(ship, f),
            cause => write!(f, "ship {ship}: {cause}"),
        }
    }

    /// A short word for the cause, for tables and JSON (`dns`, `refused`, `timeout`, `auth`,
    /// `host-key`, `socket-missing`, `socket-permission`, ...).
    pub fn code(&self) -> &'static str {
        use TransportErrorKind as K;
        match self {
            K::Dns { .. } => "dns",
            K::Refused { .. } | K::DockerTcpRefused { .. } => "refused",
            K::ProxyCommand { .. } => "proxy-command",
            K::Timeout { .. } => "timeout",
            K::Io { .. } => "network",
            K::DroppedBeforeLogin { .. } => "dropped-before-login",
            K::NotSsh { .. } => "not-ssh",
            K::Ssh { .. } => "ssh",
            K::Auth { .. } => "auth",
            K::HostKeyUnknown { .. } => "host-key-unknown",
            K::HostKeyChanged { .. } => "host-key-changed",
            K::HostKeyRevoked { .. } | K::HostCaRevoked { .. } => "host-key-revoked",
            K::HostCertificate { .. } => "host-certificate",
            K::KnownHosts { .. } => "known-hosts",
            K::SocketMissing { .. } => "socket-missing",
            K::SocketPermission { .. } => "socket-permission",
            K::DockerUnreachable { .. } => "docker-unreachable",
            K::Jump { source, .. } | K::AfterLogin { source, .. } => source.code(),
            K::Docker { .. } => "docker-api",
            K::Settings { .. } => "settings",
            K::Relayed { code, .. } => code,
        }
    }

    /// The cause at the end of a chain of jumps (the cause itself).
    pub fn root(&self) -> &TransportErrorKind {
        match self {
            TransportErrorKind::Jump { source, .. }
            | TransportErrorKind::AfterLogin { source, .. } => source.root(),
            other => other,
        }
    }
}

impl TransportError {
    pub(crate) fn docker(ship: &str, source: bollard::errors::Error) -> TransportError {
        TransportErrorKind::Docker {
            source: Arc::new(source),
        }
        .for_ship(ship)
    }

    /// A short word for the cause, for tables and JSON (see [`TransportErrorKind::code`]).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// How far the connection got when the login worked and something after it failed.
    pub fn reached(&self) -> Option<&super::ConnectionInfo> {
        match &self.kind {
            TransportErrorKind::AfterLogin { reached, .. } => Some(reached),
            _ => None,
        }
    }

    /// The cause at the end of a chain of jumps (the cause itself).
    pub fn root(&self) -> &TransportErrorKind {
        self.kind.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_failure_is_told_in_each_ships_name() {
        let cause = TransportErrorKind::Jump {
            hop: "root@bastion:22".into(),
            source: Box::new(TransportErrorKind::Ssh {
                hop: "root@bastion:22".into(),
                source: Arc::new(russh::Error::Kex),
            }),
        };
        let first = cause.clone().for_ship("a");
        let second = cause.for_ship("b");
        let text = second.to_string();
        assert!(!text.contains("ship a"), "{text}");
        assert_eq!(
            text,
            "ship b: through jump host root@bastion:22: ship b: SSH protocol error with \
             root@bastion:22: Key exchange failed"
        );
        assert_eq!(second.code(), first.code());
        assert_eq!(second.code(), "ssh");
    }
}
