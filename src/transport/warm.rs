//! Warm commands: SSH sessions kept between commands by a background maestro process (the
//! persist daemon, `warm_daemon.rs`), which later commands ask for channels over a unix
//! socket. Opt-in (`ssh: {persist: 10m}`, `--persist`, `MAESTRO_PERSIST`).
//!
//! Decisions:
//! - One unix-socket connection per channel. The client writes one request line (JSON), the
//!   daemon answers one line (ok, or the transport error's kind and text), then the
//!   connection is the channel's raw byte stream. The client speaks HTTP over it itself,
//!   with the same hyper/bollard connector as for its own SSH channels: the daemon never
//!   parses Docker traffic.
//! - The client resolves the route (ssh_config, identities, known_hosts files, host-key
//!   policy) with its own environment and sends the resolved hops: the daemon logs in with
//!   exactly what this command would have used, and host keys are checked by the daemon
//!   when it connects, with the same code. The route key is a hash of all of it, the
//!   identity files' contents, the agent socket and HOME included: a changed file never
//!   reuses a session made for another route.
//! - Runtime directory: `MAESTRO_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/maestro`, else
//!   `maestro-$UID` in the temporary directory; created 0700, refused when it is not ours or has group/other
//!   bits. Socket 0600, and the peer's uid is checked on every connection (SO_PEERCRED on
//!   Linux, getpeereid on macOS, through tokio). Whoever can reach the socket can reach the
//!   ships' Docker daemons, as with OpenSSH's ControlPath (docs/security.md).
//! - The daemon is this binary, re-run as the hidden `maestro persist serve`, in a process
//!   group of its own (a Ctrl-C in the operator's terminal never reaches it), stdin and
//!   stdout null, stderr to `daemon.log` in the runtime directory.
//! - A command first says hello: a daemon of another maestro version or [`PROTOCOL`] (the
//!   operator upgraded maestro while one ran) is stopped and replaced, never spoken to; a
//!   daemon from before the hello existed answers it as a request it does not understand,
//!   which is another version too. Once per process: the ships of one command share the
//!   answer, so that they do not stop each other's new daemon.
//! - `maestro ssh` (a login shell, pty) connects directly: a session channel's requests
//!   and exit status do not fit a raw byte stream.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::error::{TransportError, TransportErrorKind};
use super::ssh::Hop;
use super::{DockerTarget, HopInfo};

/// The socket's file name in the runtime directory.
pub(crate) const SOCKET: &str = "persist.sock";
/// Held (flock) by the daemon for its whole life: one daemon per runtime directory.
pub(crate) const LOCK: &str = "persist.lock";
/// The daemon's standard error.
pub(crate) const LOG: &str = "daemon.log";
/// Bumped whenever a request or an answer changes meaning.
pub(crate) const PROTOCOL: u32 = 1;
/// The maestro version a daemon and its commands must share.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The longest a command waits for a daemon it started to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Everything that decides how a ship is logged in to; its hash is the route key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RouteSpec {
    pub hops: Vec<Hop>,
    pub timeout_ms: u64,
    pub keepalive_ms: u64,
    pub batch_mode: bool,
    pub agent_socket: Option<PathBuf>,
    /// Default identity files are looked for under HOME.
    pub home: Option<PathBuf>,
    /// SHA-256 of the contents of every identity file named (a key replaced at the same
    /// path is another route).
    pub identities_digest: String,
}

impl RouteSpec {
    pub(crate) fn key(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"));
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
    }

    pub(crate) fn label(&self) -> String {
        self.hops
            .last()
            .map(|h| h.label.clone())
            .unwrap_or_default()
    }
}

/// What a channel goes to, on the ship's side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Target {
    Docker(DockerTarget),
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Request {
    /// A channel to `target` on the ship's session for `route` (logging in first when
    /// there is none, or it died).
    Open {
        ship: String,
        key: String,
        route: RouteSpec,
        target: Target,
        idle_ms: u64,
        /// `MAESTRO_SSH_PASSPHRASE` of the command, for a login it causes (not in the route
        /// key, never logged).
        #[serde(default)]
        passphrase: Option<String>,
    },
    /// `sh -c` a command on the ship, to its end.
    Exec {
        ship: String,
        key: String,
        route: RouteSpec,
        command: String,
        idle_ms: u64,
        #[serde(default)]
        passphrase: Option<String>,
    },
    /// Answered with the daemon's [`PROTOCOL`] and [`VERSION`].
    Hello,
    Status,
    Stop,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub ok: bool,
    /// The hops as established (on success, and on failures past the login).
    #[serde(default)]
    pub hops: Vec<HopInfo>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// On failure: the transport error's kind and its text without the `ship NAME: `.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// The login worked and what came after failed.
    #[serde(default)]
    pub after_login: bool,
    #[serde(default)]
    pub exec: Option<ExecOutput>,
    #[serde(default)]
    pub sessions: Vec<SessionStatus>,
    /// The daemon's, in answer to [`Request::Hello`].
    #[serde(default)]
    pub protocol: Option<u32>,
    #[serde(default)]
    pub version: Option<String>,
}

impl Answer {
    /// The answer to a hello from a daemon that speaks as this binary does.
    fn is_ours(&self) -> bool {
        self.ok && self.protocol == Some(PROTOCOL) && self.version.as_deref() == Some(VERSION)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExecOutput {
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// One session the daemon holds, for `maestro persist status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionStatus {
    /// The ships that used it, in name order.
    pub ships: Vec<String>,
    /// `user@host:port -> ...`, jump hosts first.
    pub route: String,
    pub age_secs: u64,
    pub idle_secs: u64,
    /// Its SSH sessions are all up.
    pub alive: bool,
}

/// The daemon's state as `maestro persist status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistStatus {
    pub runtime_dir: PathBuf,
    /// None: no daemon listens there.
    pub sessions: Option<Vec<SessionStatus>>,
}

/// The runtime directory, created when missing, and checked: ours, no group or other bits,
/// not a symlink.
pub fn runtime_dir() -> Result<PathBuf, String> {
    let uid = rustix::process::getuid().as_raw();
    let dir = match std::env::var_os("MAESTRO_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(base) => PathBuf::from(base).join("maestro"),
            None => std::env::temp_dir().join(format!("maestro-{uid}")),
        },
    };
    check_private_dir(&dir, uid)?;
    Ok(dir)
}

fn check_private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let shown = dir.display();
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(format!(
                "cannot create the persist runtime directory {shown}: {err} (set \
                 MAESTRO_RUNTIME_DIR to a directory of yours)"
            ));
        }
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|err| format!("cannot read the persist runtime directory {shown}: {err}"))?;
    if !meta.is_dir() {
        return Err(format!(
            "the persist runtime directory {shown} is not a directory (a symlink or a file): \
             remove it, or set MAESTRO_RUNTIME_DIR to a directory of yours"
        ));
    }
    if meta.uid() != uid {
        return Err(format!(
            "the persist runtime directory {shown} belongs to uid {}, not to you (uid {uid}): \
             someone else may be listening there; remove it, or set MAESTRO_RUNTIME_DIR to a \
             directory of yours",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the persist runtime directory {shown} has mode {:o}, open to others: whoever can \
             reach its socket reaches your ships' Docker daemons; run `chmod 700 {shown}`",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Sends `request` on a new connection to the daemon and reads its answer line; the
/// connection, past the answer, is the channel (for `Open`).
pub(crate) async fn ask(
    socket: &Path,
    request: &Request,
) -> std::io::Result<(Answer, BufReader<UnixStream>)> {
    let stream = UnixStream::connect(socket).await?;
    let mut stream = BufReader::new(stream);
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.get_mut().write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_line(&mut answer).await?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the persist daemon closed the connection without an answer",
        ));
    }
    let answer = serde_json::from_str(&answer).map_err(|err| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the persist daemon's answer is not understood ({err}): {answer}"),
        )
    })?;
    Ok((answer, stream))
}

/// Starts the daemon in `dir` (this binary, `persist serve`), detached.
fn spawn_daemon(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(LOG))?;
    std::process::Command::new(exe)
        .args(["persist", "serve"])
        .env("MAESTRO_RUNTIME_DIR", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        // Not the command's directory, which may go away while the daemon runs.
        .current_dir("/")
        // Its own process group: the terminal's Ctrl-C (SIGINT to the foreground group)
        // never reaches it.
        .process_group(0)
        .spawn()?;
    Ok(())
}

/// The daemon's socket, as [`ensure_daemon`] found it, once per process and directory.
async fn daemon_socket(dir: &Path) -> Result<PathBuf, String> {
    static FOUND: tokio::sync::Mutex<Option<PathBuf>> = tokio::sync::Mutex::const_new(None);
    let mut found = FOUND.lock().await;
    if let Some(socket) = found.as_ref()
        && socket.parent() == Some(dir)
    {
        return Ok(socket.clone());
    }
    let socket = ensure_daemon(dir).await?;
    *found = Some(socket.clone());
    Ok(socket)
}

/// The daemon's socket: the daemon listening there when it is of this version, else a new
/// one started (the other one stopped first).
async fn ensure_daemon(dir: &Path) -> Result<PathBuf, String> {
    let socket = dir.join(SOCKET);
    match ask(&socket, &Request::Hello).await {
        Ok((answer, _)) if answer.is_ours() => return Ok(socket),
        Ok((answer, _)) => {
            tracing::debug!(
                "the persist daemon at {} is maestro {} (protocol {}), not {VERSION} \
                 (protocol {PROTOCOL}): stopping it",
                socket.display(),
                answer.version.as_deref().unwrap_or("older"),
                answer
                    .protocol
                    .map_or("older".to_string(), |p| p.to_string()),
            );
            let _ = ask(&socket, &Request::Stop).await;
        }
        // None listens (or one was going away).
        Err(_) => {}
    }
    spawn_daemon(dir).map_err(|err| {
        format!(
            "cannot start the persist daemon: {err}; run without --persist (and without \
             `persist` in the file) to connect directly"
        )
    })?;
    let began = std::time::Instant::now();
    // Polls for the daemon's listener: it binds within milliseconds of starting.
    while began.elapsed() < START_LIMIT {
        if UnixStream::connect(&socket).await.is_ok() {
            return Ok(socket);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!(
        "the persist daemon did not start listening at {} within {}s; see {}",
        socket.display(),
        START_LIMIT.as_secs(),
        dir.join(LOG).display()
    ))
}

/// Asks the daemon (without starting one) what it holds.
pub async fn status() -> Result<PersistStatus, String> {
    let dir = runtime_dir()?;
    let socket = dir.join(SOCKET);
    match ask(&socket, &Request::Status).await {
        Ok((answer, _)) => Ok(PersistStatus {
            runtime_dir: dir,
            sessions: Some(answer.sessions),
        }),
        Err(_) => Ok(PersistStatus {
            runtime_dir: dir,
            sessions: None,
        }),
    }
}

/// Ends the daemon (its sessions closed); false when none was running.
pub async fn stop() -> Result<bool, String> {
    let dir = runtime_dir()?;
    let socket = dir.join(SOCKET);
    Ok(ask(&socket, &Request::Stop).await.is_ok())
}

/// One ship's route through the daemon: what a [`super::Connection`] holds to ask for its
/// channels.
pub(crate) struct WarmRoute {
    ship: String,
    label: String,
    key: String,
    spec: RouteSpec,
    idle: Duration,
    dir: PathBuf,
    socket: PathBuf,
    pub channels_opened: AtomicU64,
}

/// A channel relayed by the daemon.
pub(crate) type WarmStream = BufReader<UnixStream>;

impl WarmRoute {
    /// Finds (or starts) the daemon for `spec`.
    pub(crate) async fn new(
        ship: &str,
        spec: RouteSpec,
        idle: Duration,
    ) -> Result<WarmRoute, TransportError> {
        let settings = |message: String| TransportErrorKind::Settings { message }.for_ship(ship);
        let dir = runtime_dir().map_err(settings)?;
        let socket = daemon_socket(&dir).await.map_err(settings)?;
        Ok(WarmRoute {
            ship: ship.to_string(),
            label: spec.label(),
            key: spec.key(),
            spec,
            idle,
            dir,
            socket,
            channels_opened: AtomicU64::new(0),
        })
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn idle_ms(&self) -> u64 {
        u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX)
    }

    /// A channel to `target`, with the daemon's answer (the hops as established).
    pub(crate) async fn open(
        &self,
        target: Target,
    ) -> Result<(WarmStream, Answer), TransportError> {
        let request = Request::Open {
            ship: self.ship.clone(),
            key: self.key.clone(),
            route: self.spec.clone(),
            target,
            idle_ms: self.idle_ms(),
            passphrase: passphrase(),
        };
        let (answer, stream) = self.ask(&request).await?;
        if !answer.ok {
            let err = relayed(&self.ship, &answer);
            if !answer.after_login || answer.hops.is_empty() {
                return Err(err);
            }
            // Past the login: the route, login and host key found stay known, as for a
            // direct connection (`maestro ships` reports them).
            let mut route = String::from("ssh ");
            for hop in &answer.hops {
                route.push_str(&hop.address);
                route.push_str(" -> ");
            }
            route.push_str(&request_target_text(&request));
            let ship_hop = answer.hops.last();
            let reached = super::ConnectionInfo {
                ship: self.ship.clone(),
                transport: super::TransportKind::Ssh,
                route,
                auth_method: ship_hop.map(|h| h.auth_method.clone()),
                host_key_fingerprint: ship_hop.map(|h| h.host_key_fingerprint.clone()),
                hops: answer.hops.clone(),
                warnings: answer.warnings.clone(),
            };
            return Err(TransportErrorKind::AfterLogin {
                reached: Box::new(reached),
                source: Box::new(err.kind),
            }
            .for_ship(err.ship));
        }
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        Ok((stream, answer))
    }

    pub(crate) async fn open_docker(
        &self,
        target: &DockerTarget,
    ) -> Result<WarmStream, TransportError> {
        self.open(Target::Docker(target.clone()))
            .await
            .map(|(stream, _)| stream)
    }

    pub(crate) async fn open_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<WarmStream, TransportError> {
        self.open(Target::Tcp {
            host: host.to_string(),
            port,
        })
        .await
        .map(|(stream, _)| stream)
    }

    pub(crate) async fn exec(&self, command: &str) -> Result<ExecOutput, TransportError> {
        let request = Request::Exec {
            ship: self.ship.clone(),
            key: self.key.clone(),
            route: self.spec.clone(),
            command: command.to_string(),
            idle_ms: self.idle_ms(),
            passphrase: passphrase(),
        };
        let (answer, _) = self.ask(&request).await?;
        match answer.exec {
            Some(out) if answer.ok => Ok(out),
            _ => Err(relayed(&self.ship, &answer)),
        }
    }

    /// [`ask`], once more on a daemon started anew when this one is gone (it exited, idle or
    /// stopped, between our finding it and asking).
    async fn ask(
        &self,
        request: &Request,
    ) -> Result<(Answer, BufReader<UnixStream>), TransportError> {
        match ask(&self.socket, request).await {
            Ok(answered) => Ok(answered),
            Err(first) => {
                tracing::debug!(
                    "{}: the persist daemon did not answer ({first}); starting it again",
                    self.ship
                );
                ensure_daemon(&self.dir).await.map_err(|message| {
                    TransportErrorKind::Settings { message }.for_ship(&self.ship)
                })?;
                ask(&self.socket, request)
                    .await
                    .map_err(|source| self.lost(source))
            }
        }
    }

    fn lost(&self, source: std::io::Error) -> TransportError {
        TransportErrorKind::Io {
            hop: format!("the persist daemon at {}", self.socket.display()),
            source: source.into(),
        }
        .for_ship(&self.ship)
    }
}

fn request_target_text(request: &Request) -> String {
    match request {
        Request::Open {
            target: Target::Docker(docker),
            ..
        } => docker.to_string(),
        Request::Open {
            target: Target::Tcp { host, port },
            ..
        } => format!("tcp:{host}:{port}"),
        _ => String::new(),
    }
}

fn passphrase() -> Option<String> {
    std::env::var("MAESTRO_SSH_PASSPHRASE").ok()
}

/// The daemon's error, in the ship's name, with the kind it had there.
pub(crate) fn relayed(ship: &str, answer: &Answer) -> TransportError {
    TransportErrorKind::Relayed {
        code: static_kind(answer.kind.as_deref().unwrap_or("persist")),
        message: answer
            .message
            .clone()
            .unwrap_or_else(|| "the persist daemon refused, without a reason".into()),
    }
    .for_ship(ship)
}

/// `TransportError::code`'s words, back from the daemon's text.
fn static_kind(kind: &str) -> &'static str {
    const KINDS: [&str; 21] = [
        "dns",
        "refused",
        "proxy-command",
        "timeout",
        "network",
        "dropped-before-login",
        "not-ssh",
        "ssh",
        "auth",
        "host-key-unknown",
        "host-key-changed",
        "host-key-revoked",
        "host-certificate",
        "known-hosts",
        "socket-missing",
        "socket-permission",
        "docker-unreachable",
        "docker-api",
        "settings",
        "persist",
        "refused-peer",
    ];
    KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("persist")
}

/// SHA-256 over the identity files' contents (unreadable ones by their error), for the
/// route key.
pub(crate) fn identities_digest(hops: &[Hop]) -> String {
    let mut hash = sha2::Sha256::new();
    for hop in hops {
        for path in &hop.identity_files {
            hash.update(path.as_os_str().as_encoded_bytes());
            match std::fs::read(path) {
                Ok(bytes) => hash.update(&bytes),
                Err(err) => hash.update(err.kind().to_string().as_bytes()),
            }
        }
    }
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn uid() -> u32 {
        rustix::process::getuid().as_raw()
    }

    #[test]
    fn a_new_runtime_dir_is_made_private() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("rt");
        check_private_dir(&dir, uid()).expect("created");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_runtime_dir_open_to_others_is_refused_with_the_fix() {
        let base = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let err = check_private_dir(base.path(), uid()).expect_err("refused");
        assert!(
            err.contains("mode 755") && err.contains("chmod 700"),
            "{err}"
        );
    }

    #[test]
    fn a_runtime_dir_of_another_uid_is_refused() {
        let base = tempfile::tempdir().expect("tempdir");
        let err = check_private_dir(base.path(), uid() + 1).expect_err("refused");
        assert!(err.contains("not to you"), "{err}");
    }

    #[test]
    fn a_symlinked_runtime_dir_is_refused() {
        let base = tempfile::tempdir().expect("tempdir");
        let real = base.path().join("real");
        std::fs::create_dir(&real).expect("dir");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let err = check_private_dir(&link, uid()).expect_err("refused");
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn kinds_come_back_as_themselves_and_unknown_ones_as_persist() {
        assert_eq!(static_kind("auth"), "auth");
        assert_eq!(static_kind("whatever"), "persist");
    }
}
