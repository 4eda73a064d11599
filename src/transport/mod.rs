//! How we reach a ship's Docker daemon: through one SSH session per ship (the default), a
//! local unix socket, or plain TCP / TLS. The result is a [`Connection`] holding a
//! `bollard::Docker` handle; see docs/transport.md for the route a request takes.
//!
//! This layer knows nothing of the environment file: the caller maps a ship's settings
//! into an [`Endpoint`].

mod api_version;
mod banner;
mod connector;
mod error;
mod http;
mod known_hosts;
mod patterns;
mod session;
mod ssh;
mod ssh_config;
mod tls;
mod warm;
mod warm_daemon;

use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bollard::{ClientVersion, Docker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use api_version::default_cache_dir;
pub use error::{ChangedKeyRecord, TransportError, TransportErrorKind};
pub use http::{HttpAnswer, HttpError, HttpRequest, direct as http_direct};
pub use known_hosts::HostKeyPolicy;
pub use session::{PtyRequest, SessionInput, SessionOutput, SessionRequest, ShipSession};
pub use ssh::{PassphrasePrompt, SessionPool, install_passphrase_prompt};
pub use tls::{TlsClient, TlsFailure, TlsSetupError, TlsTrust};
pub use warm::{
    PersistStatus, SessionStatus, runtime_dir as persist_runtime_dir, status as persist_status,
    stop as persist_stop,
};
pub use warm_daemon::serve as persist_serve;

/// Entry points for the fuzz targets in fuzz/ (`known_hosts`, `ssh_config`): the parsers of
/// text that comes from files the operator may not have written. Not an API; they change
/// with the parsers. Each must return, whatever the input: never panic, hang or touch the
/// system.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads `text` as a known_hosts file: its marker lines, every host field matched
    /// against fixed hosts and ports, every key parsed, and a verdict for a fixed key.
    pub fn known_hosts(text: &str) {
        super::known_hosts::fuzz_text(text);
    }

    /// Reads `text` as an ssh_config for a few fixed aliases (no `Include` is read, no
    /// `Match exec` runs), then expands the known-hosts file lists it gives.
    pub fn ssh_config(text: &str) {
        for alias in ["web", "10.0.0.1", "*"] {
            if let Ok(settings) = super::ssh_config::parse_offline(text, alias) {
                let tokens = super::ssh_config::FileTokens {
                    home: Some(std::path::Path::new("/nonexistent-maestro-fuzz")),
                    local_user: "fuzz",
                    host: settings.host_name.as_deref().unwrap_or(alias),
                    original_host: alias,
                    port: settings.port.unwrap_or(22),
                    remote_user: settings.user.as_deref().unwrap_or("fuzz"),
                };
                for (value, keyword) in [
                    (&settings.user_known_hosts_files, "UserKnownHostsFile"),
                    (&settings.global_known_hosts_files, "GlobalKnownHostsFile"),
                ] {
                    for word in super::ssh_config::split_file_list(value.as_deref().unwrap_or("")) {
                        let _ = super::ssh_config::expand_file(&word, keyword, &tokens);
                    }
                }
            }
        }
    }
}

/// The default connect timeout, per network step (TCP connect, SSH handshake, each
/// authentication attempt, opening the Docker channel).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default interval between SSH keep-alives.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// The default timeout of one Docker API request, in seconds (bollard's).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 120;

/// Everything needed to reach one ship's Docker daemon.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The ship's name, used in every message.
    pub ship: String,
    pub route: Route,
    /// Where the daemon listens on the ship (SSH routes only).
    pub docker: DockerTarget,
    /// Force a Docker API version ("1.41") instead of negotiating it with the daemon.
    pub api_version: Option<String>,
    /// Where the API version agreed with each daemon is remembered between commands
    /// (SSH routes; see `api_version.rs`); None: negotiate on every connection.
    pub api_version_cache: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// SSH routes: stop after the login, for a shell on the ship (`maestro ssh`), which must
    /// work while its Docker daemon is down. The connection's Docker handle is then unchecked
    /// and its API version the default.
    pub login_only: bool,
    /// SSH routes: keep the session in the persist daemon for this long after its last use
    /// and take channels from it (see `warm.rs`); `None`: connect directly. Ignored with
    /// `login_only`, whose shell needs a session channel of its own.
    pub persist: Option<Duration>,
}

impl Endpoint {
    pub fn new(ship: impl Into<String>, route: Route) -> Endpoint {
        Endpoint {
            ship: ship.into(),
            route,
            docker: DockerTarget::default(),
            api_version: None,
            api_version_cache: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            login_only: false,
            persist: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Route {
    Ssh(SshRoute),
    /// A daemon on the operator's own machine.
    Local {
        socket: PathBuf,
    },
    /// A daemon's TCP port, reached directly (MaestroNG's `ip` + `docker_port`).
    Tcp {
        host: String,
        port: u16,
        tls: Option<TlsFiles>,
    },
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerTarget {
    /// A unix socket on the ship, reached with a `direct-streamlocal` channel.
    Socket(String),
    /// A TCP port on the ship's loopback (127.0.0.1), reached with a `direct-tcpip` channel.
    Tcp(u16),
}

impl Default for DockerTarget {
    fn default() -> Self {
        DockerTarget::Socket("/var/run/docker.sock".into())
    }
}

impl std::fmt::Display for DockerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerTarget::Socket(path) => write!(f, "unix:{path}"),
            DockerTarget::Tcp(port) => write!(f, "tcp:127.0.0.1:{port}"),
        }
    }
}

/// SSH settings of a ship. `None`s fall back to ssh_config, then to OpenSSH's defaults.
#[derive(Debug, Clone, Default)]
pub struct SshRoute {
    /// The host to connect to: an address, a DNS name or an ssh_config `Host` alias.
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// Tried after the ssh-agent, before ssh_config's `IdentityFile` and the defaults.
    pub identity_files: Vec<PathBuf>,
    /// Jump hosts, outermost first. Non-empty overrides ssh_config's `ProxyJump`.
    pub jumps: Vec<JumpSpec>,
    /// `None`: from ssh_config's `StrictHostKeyChecking` (`no` means accept-new), else strict.
    pub host_key_policy: Option<HostKeyPolicy>,
    /// The only known_hosts file read when set: overrides ssh_config's `UserKnownHostsFile`
    /// and `GlobalKnownHostsFile` and their defaults.
    pub known_hosts_file: Option<PathBuf>,
    /// Default: `MAESTRO_SSH_CONFIG` if set, else `~/.ssh/config`.
    pub ssh_config_file: Option<PathBuf>,
    /// Default [`DEFAULT_KEEPALIVE`].
    pub keepalive: Option<Duration>,
    /// Never ask on the terminal (OpenSSH `BatchMode`): an encrypted key without
    /// `MAESTRO_SSH_PASSPHRASE` then fails at once.
    pub batch_mode: bool,
}

impl SshRoute {
    pub fn new(host: impl Into<String>) -> SshRoute {
        SshRoute {
            host: host.into(),
            ..Default::default()
        }
    }
}

/// One jump host: `[user@]host[:port]` (host may be an ssh_config alias, IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
}

impl FromStr for JumpSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        let spec = spec.strip_prefix("ssh://").unwrap_or(spec);
        let (user, rest) = match spec.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
            Some(_) => return Err(format!("jump host `{spec}`: empty user")),
            None => (None, spec),
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("jump host `{spec}`: unclosed `[`"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("jump host `{spec}`: unexpected `{after}`")),
            };
            (host.to_string(), port)
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("jump host `{spec}`: empty host"));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("jump host `{spec}`: bad port `{p}`"))
            })
            .transpose()?;
        Ok(JumpSpec { host, port, user })
    }
}

impl std::fmt::Display for JumpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Ssh,
    Local,
    Tcp,
    Tls,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Ssh => "ssh",
            TransportKind::Local => "local",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        })
    }
}

/// One SSH hop as established.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HopInfo {
    /// `user@host:port`.
    pub address: String,
    /// The method that worked: `ssh-agent key SHA256:...`, `key /path`, `certificate ...`.
    pub auth_method: String,
    /// `SHA256:...`.
    pub host_key_fingerprint: String,
}

/// How a ship was reached, for `maestro ships` and the logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionInfo {
    pub ship: String,
    pub transport: TransportKind,
    /// E.g. `ssh root@10.0.0.2:22 -> root@10.1.0.11:22 -> unix:/var/run/docker.sock`.
    pub route: String,
    /// The SSH hops, jump hosts first, the ship last (empty for other transports).
    pub hops: Vec<HopInfo>,
    /// The ship's own hop's authentication method.
    pub auth_method: Option<String>,
    pub host_key_fingerprint: Option<String>,
    /// Things the operator should know (world-readable key, host key just recorded).
    pub warnings: Vec<String>,
}

/// What `probe` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    pub engine_version: String,
    /// The API version the daemon speaks at most.
    pub api_version: String,
    /// The API version this connection uses (negotiated or forced).
    pub client_api_version: String,
    pub os: String,
    pub arch: String,
    /// Round trip of a `GET /_ping` over the established connection.
    #[serde(serialize_with = "serialize_millis")]
    pub round_trip: Duration,
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Counters of the SSH session, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportStats {
    /// Open SSH sessions (jump hosts included); 0 for non-SSH transports.
    pub sessions: usize,
    /// Channels opened on the ship's session since connecting.
    pub channels_opened: u64,
    /// `GET /version` requests sent (negotiating the API version; SSH routes only).
    pub version_requests: u64,
}

#[derive(Clone)]
enum Link {
    Ssh(Arc<ssh::SshChain>, Arc<connector::ApiVersionState>),
    /// Channels of the persist daemon's session.
    Warm(Arc<warm::WarmRoute>, Arc<connector::ApiVersionState>),
    Direct,
}

/// A connected ship: cheap to clone; the SSH session lives as long as any clone (or any
/// `Docker` handle taken from it).
#[derive(Clone)]
pub struct Connection {
    docker: Docker,
    info: ConnectionInfo,
    link: Link,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .finish()
    }
}

/// A listener on a ship's loopback whose connections arrive here (see
/// [`Connection::remote_forward`]). Dropped without [`RemoteForward::close`], its listener
/// is cancelled in the background; the end of the session ends it in any case.
pub struct RemoteForward {
    chain: Arc<ssh::SshChain>,
    port: u16,
    incoming: tokio::sync::mpsc::UnboundedReceiver<russh::Channel<russh::client::Msg>>,
    closed: bool,
}

impl std::fmt::Debug for RemoteForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteForward")
            .field("port", &self.port)
            .finish()
    }
}

impl RemoteForward {
    /// The port it listens on, on the ship's 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next connection made to it on the ship; `None` once the session is gone.
    pub async fn accept(&mut self) -> Option<ShipStream> {
        let channel = self.incoming.recv().await?;
        Some(ShipStream(Box::new(channel.into_stream())))
    }

    /// Stops listening on the ship. Connections already made are not cut.
    pub async fn close(mut self) {
        self.closed = true;
        let _ = self.chain.cancel_forward(self.port).await;
    }
}

impl Drop for RemoteForward {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let (chain, port) = (self.chain.clone(), self.port);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = chain.cancel_forward(port).await;
            });
        }
    }
}

/// What a command run on a ship ([`Connection::run_shell`]) ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// `None` when the command ended without one (killed by a signal).
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A byte stream opened from the ship's side (see [`Connection::open_tcp`]).
pub struct ShipStream(Box<dyn ssh::Duplex>);

impl std::fmt::Debug for ShipStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShipStream")
    }
}

impl AsyncRead for ShipStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ShipStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl Connection {
    /// The Docker API of the ship (clones share the connection pool).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    pub fn stats(&self) -> TransportStats {
        match &self.link {
            Link::Ssh(chain, api) => TransportStats {
                sessions: chain.session_count(),
                channels_opened: chain
                    .channels_opened
                    .load(std::sync::atomic::Ordering::Relaxed),
                version_requests: api.version_requests(),
            },
            Link::Warm(route, api) => TransportStats {
                sessions: 0,
                channels_opened: route
                    .channels_opened
                    .load(std::sync::atomic::Ordering::Relaxed),
                version_requests: api.version_requests(),
            },
            Link::Direct => TransportStats {
                sessions: 0,
                channels_opened: 0,
                version_requests: 0,
            },
        }
    }

    /// Opens a TCP connection to `host:port` as seen from the ship (a `direct-tcpip`
    /// channel of its SSH session; for local and TCP routes, from this machine). Used by
    /// lifecycle checks on ports that are only reachable on the ship's network.
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<ShipStream, TransportError> {
        match &self.link {
            Link::Ssh(chain, _) => chain
                .open_tcpip(host, port)
                .await
                .map(|stream| ShipStream(Box::new(stream)))
                .map_err(|err| match err {
                    russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed) => {
                        TransportErrorKind::Refused {
                            hop: format!("{host}:{port}"),
                            via: Some(chain.ship_label().to_string()),
                        }
                        .for_ship(&self.info.ship)
                    }
                    other => TransportErrorKind::Ssh {
                        hop: chain.ship_label().to_string(),
                        source: Arc::new(other),
                    }
                    .for_ship(&self.info.ship),
                }),
            Link::Warm(route, _) => route
                .open_tcp(host, port)
                .await
                .map(|stream| ShipStream(Box::new(stream))),
            Link::Direct => tokio::net::TcpStream::connect((host, port))
                .await
                .map(|stream| ShipStream(Box::new(stream)))
                .map_err(|source| match source.kind() {
                    std::io::ErrorKind::ConnectionRefused => TransportErrorKind::Refused {
                        hop: format!("{host}:{port}"),
                        via: None,
                    }
                    .for_ship(&self.info.ship),
                    _ => TransportErrorKind::Io {
                        hop: format!("{host}:{port}"),
                        source: source.into(),
                    }
                    .for_ship(&self.info.ship),
                }),
        }
    }

    /// A listener on the ship's loopback (`127.0.0.1`, a port sshd picks) whose connections
    /// come back to this process through the ship's own SSH session: a remote port forward.
    /// It lives until [`RemoteForward::close`] (or until the session ends). Only for ships
    /// reached over SSH: others are refused, naming the ship.
    pub async fn remote_forward(&self) -> Result<RemoteForward, TransportError> {
        let Link::Ssh(chain, _) = &self.link else {
            return Err(TransportErrorKind::Settings {
                message: format!(
                    "is not reached over SSH (its route: {}), so nothing can be served to it \
                     through its session; give the ship an `ssh:` block",
                    self.info.route
                ),
            }
            .for_ship(&self.info.ship));
        };
        let (port, incoming) = chain.remote_forward().await.map_err(|source| {
            TransportErrorKind::Ssh {
                hop: format!(
                    "{} (remote port forward; is AllowTcpForwarding enabled in its \
                         sshd_config?)",
                    chain.ship_label()
                ),
                source: Arc::new(source),
            }
            .for_ship(&self.info.ship)
        })?;
        Ok(RemoteForward {
            chain: chain.clone(),
            port,
            incoming,
            closed: false,
        })
    }

    /// Opens a login session on the ship, over its own SSH session (its jump hosts crossed as
    /// for Docker): a command or the login shell, with a terminal when `request.pty` asks.
    /// Only for ships reached over SSH.
    pub async fn open_session(
        &self,
        request: &SessionRequest,
    ) -> Result<ShipSession, TransportError> {
        let chain = match &self.link {
            Link::Ssh(chain, _) => chain,
            Link::Warm(..) => {
                return Err(TransportErrorKind::Settings {
                    message: "was reached through the persist daemon, which relays no login \
                              sessions; connect without --persist for a shell"
                        .into(),
                }
                .for_ship(&self.info.ship));
            }
            Link::Direct => {
                return Err(TransportErrorKind::Settings {
                    message: format!(
                        "is not reached over SSH (its route: {}), so there is no shell to \
                         open on it; give the ship an `ssh:` block to reach it over SSH",
                        self.info.route
                    ),
                }
                .for_ship(&self.info.ship));
            }
        };
        let channel = chain.open_session().await.map_err(|source| {
            TransportErrorKind::Ssh {
                hop: chain.ship_label().to_string(),
                source: Arc::new(source),
            }
            .for_ship(&self.info.ship)
        })?;
        session::start(channel, request, &self.info.ship, chain.ship_label()).await
    }

    /// Runs `script` with `sh -c` on the ship and waits for its end: over the ship's own SSH
    /// session, or on this machine for a ship whose daemon is a local socket (this machine
    /// is that ship). A ship reached over TCP has no shell to run it in: refused, naming it.
    /// The caller quotes what it puts in `script`.
    pub async fn run_shell(&self, script: &str) -> Result<CommandOutput, TransportError> {
        match &self.link {
            Link::Ssh(chain, _) => {
                let (status, stdout, stderr) = chain.exec(script).await.map_err(|source| {
                    TransportErrorKind::Ssh {
                        hop: chain.ship_label().to_string(),
                        source: Arc::new(source),
                    }
                    .for_ship(&self.info.ship)
                })?;
                Ok(CommandOutput {
                    status,
                    stdout,
                    stderr,
                })
            }
            Link::Warm(route, _) => {
                let out = route.exec(script).await?;
                Ok(CommandOutput {
                    status: out.status,
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            }
            Link::Direct if self.info.transport == TransportKind::Local => {
                let out = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(script)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .map_err(|source| {
                        TransportErrorKind::Io {
                            hop: "sh on this machine".into(),
                            source: source.into(),
                        }
                        .for_ship(&self.info.ship)
                    })?;
                Ok(CommandOutput {
                    status: out.status.code().and_then(|c| u32::try_from(c).ok()),
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            }
            Link::Direct => Err(TransportErrorKind::Settings {
                message: format!(
                    "is reached over {} ({}), which runs no commands on it; give the ship an \
                     `ssh:` block to reach it over SSH",
                    self.info.transport, self.info.route
                ),
            }
            .for_ship(&self.info.ship)),
        }
    }

    /// Asks the daemon its versions and measures the round trip of one ping.
    pub async fn probe(&self) -> Result<ProbeReport, TransportError> {
        let api_err = |source| TransportError::docker(&self.info.ship, source);
        let version = self.docker.version().await.map_err(api_err)?;
        let started = Instant::now();
        self.docker.ping().await.map_err(api_err)?;
        let round_trip = started.elapsed();
        let client = match &self.link {
            Link::Ssh(_, api) | Link::Warm(_, api) => api.current(),
            Link::Direct => None,
        }
        .unwrap_or_else(|| self.docker.client_version());
        Ok(ProbeReport {
            engine_version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            client_api_version: format!("{}.{}", client.major_version, client.minor_version),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            round_trip,
        })
    }

    /// Closes the SSH sessions politely (dropping the last clone closes them too).
    pub async fn close(&self) {
        if let Link::Ssh(chain, _) = &self.link {
            chain.disconnect().await;
        }
    }
}

/// Connects to one ship and agrees on the Docker API version with its daemon.
pub async fn connect(endpoint: &Endpoint) -> Result<Connection, TransportError> {
    connect_in(endpoint, &SessionPool::new()).await
}

/// [`connect`], sharing SSH sessions with the other ships connected through `pool`: ships
/// whose routes begin with the same logins (a bastion, a ProxyJump chain) use one session
/// for them.
pub async fn connect_in(
    endpoint: &Endpoint,
    pool: &SessionPool,
) -> Result<Connection, TransportError> {
    let forced_version = match &endpoint.api_version {
        Some(text) => Some(parse_api_version(&endpoint.ship, text)?),
        None => None,
    };
    let initial_version = forced_version.unwrap_or(*bollard::API_DEFAULT_VERSION);
    let (docker, info, link) = match &endpoint.route {
        Route::Ssh(route) => {
            return match endpoint.persist {
                Some(idle) if !endpoint.login_only => {
                    connect_warm(endpoint, route, forced_version, idle).await
                }
                _ => connect_ssh(endpoint, route, forced_version, pool).await,
            };
        }
        Route::Local { socket } => {
            connector::check_local_socket(&endpoint.ship, socket).await?;
            let path = socket.to_string_lossy();
            let docker =
                Docker::connect_with_unix(&path, DEFAULT_REQUEST_TIMEOUT_SECS, &initial_version)
                    .map_err(|source| TransportError::docker(&endpoint.ship, source))?;
            let info = ConnectionInfo {
                ship: endpoint.ship.clone(),
                transport: TransportKind::Local,
                route: format!("local unix:{path}"),
                hops: Vec::new(),
                auth_method: None,
                host_key_fingerprint: None,
                warnings: Vec::new(),
            };
            (docker, info, Link::Direct)
        }
        Route::Tcp { host, port, tls } => {
            connector::check_tcp(&endpoint.ship, host, *port, endpoint.connect_timeout)
                .await
                .map_err(|err| match err.kind {
                    TransportErrorKind::Refused { hop, .. } => {
                        TransportErrorKind::DockerTcpRefused {
                            hop,
                            tls: tls.is_some(),
                        }
                        .for_ship(err.ship)
                    }
                    _ => err,
                })?;
            let (docker, kind) =
                connector::tcp_docker(&endpoint.ship, host, *port, tls.as_ref(), &initial_version)?;
            let info = ConnectionInfo {
                ship: endpoint.ship.clone(),
                transport: kind,
                route: format!("{kind} {host}:{port}"),
                hops: Vec::new(),
                auth_method: None,
                host_key_fingerprint: None,
                warnings: Vec::new(),
            };
            (docker, info, Link::Direct)
        }
    };
    let docker = if forced_version.is_some() {
        docker
    } else {
        negotiate(endpoint, docker).await?
    };
    Ok(Connection { docker, info, link })
}

async fn negotiate(endpoint: &Endpoint, docker: Docker) -> Result<Docker, TransportError> {
    let limit = endpoint.connect_timeout.max(Duration::from_secs(5));
    tokio::time::timeout(limit, docker.negotiate_version())
        .await
        .map_err(|_| {
            TransportErrorKind::Timeout {
                hop: "the Docker daemon".into(),
                after: limit,
            }
            .for_ship(&endpoint.ship)
        })?
        .map_err(|source| TransportError::docker(&endpoint.ship, source))
}

/// Connects to every ship at once, sharing sessions along common routes; one result per
/// endpoint, in order. A ship that fails does not hold up the others.
pub async fn connect_all(endpoints: &[Endpoint]) -> Vec<Result<Connection, TransportError>> {
    let pool = SessionPool::new();
    futures_util::future::join_all(endpoints.iter().map(|e| connect_in(e, &pool))).await
}

fn parse_api_version(ship: &str, text: &str) -> Result<ClientVersion, TransportError> {
    let bad = || {
        TransportErrorKind::Settings {
            message: format!("API version `{text}` is not of the form 1.41"),
        }
        .for_ship(ship)
    };
    let text = text.trim().trim_start_matches('v');
    let (major, minor) = text.split_once('.').ok_or_else(bad)?;
    Ok(ClientVersion {
        major_version: major.parse().map_err(|_| bad())?,
        minor_version: minor.parse().map_err(|_| bad())?,
    })
}

/// Over SSH the API version is forced, remembered from an earlier command, or negotiated
/// (one round trip, then remembered); see `connector::ApiVersionState`.
async fn connect_ssh(
    endpoint: &Endpoint,
    route: &SshRoute,
    forced_version: Option<ClientVersion>,
    pool: &SessionPool,
) -> Result<Connection, TransportError> {
    let hops = ssh::resolve_hops(&endpoint.ship, route)?;
    let (api, known) = api_state(endpoint, &hops, forced_version);
    let options = ssh::LoginOptions {
        ship: endpoint.ship.clone(),
        timeout: endpoint.connect_timeout,
        keepalive: route.keepalive.unwrap_or(DEFAULT_KEEPALIVE),
        batch_mode: route.batch_mode,
        agent_socket: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
        passphrase: std::env::var("MAESTRO_SSH_PASSPHRASE").ok(),
        prompt: ssh::installed_prompt(),
    };
    let chain = Arc::new(ssh::connect_chain(&hops, &options, pool).await?);
    let info = ssh_info(endpoint, chain.hops.clone(), chain.warnings.clone());
    if endpoint.login_only {
        let docker = connector::ssh_docker(
            &endpoint.ship,
            connector::Opener::Chain(chain.clone()),
            endpoint.docker.clone(),
            Vec::new(),
            &known.unwrap_or(*bollard::API_DEFAULT_VERSION),
            api.clone(),
        )
        .map_err(|source| TransportError::docker(&endpoint.ship, source))?;
        return Ok(Connection {
            docker,
            info,
            link: Link::Ssh(chain, api),
        });
    }
    // Past the login, what was found (route, login, host key) is kept with the error.
    let after_login = |source: TransportError| {
        TransportErrorKind::AfterLogin {
            reached: Box::new(info.clone()),
            source: Box::new(source.kind),
        }
        .for_ship(source.ship)
    };
    let spare = connector::check_docker_channel(
        &endpoint.ship,
        &chain,
        &endpoint.docker,
        endpoint.connect_timeout,
    )
    .await
    .map_err(after_login)?;
    let opener = connector::Opener::Chain(chain.clone());
    let docker = docker_over_ssh(endpoint, opener, spare, known, &api, &after_login).await?;
    Ok(Connection {
        docker,
        info,
        link: Link::Ssh(chain, api),
    })
}

/// What a connection over SSH reports: the route through `hops` to the Docker target.
fn ssh_info(endpoint: &Endpoint, hops: Vec<HopInfo>, warnings: Vec<String>) -> ConnectionInfo {
    let mut route_text = String::from("ssh ");
    for hop in &hops {
        route_text.push_str(&hop.address);
        route_text.push_str(" -> ");
    }
    route_text.push_str(&endpoint.docker.to_string());
    let ship_hop = hops.last();
    ConnectionInfo {
        ship: endpoint.ship.clone(),
        transport: TransportKind::Ssh,
        route: route_text,
        auth_method: ship_hop.map(|h| h.auth_method.clone()),
        host_key_fingerprint: ship_hop.map(|h| h.host_key_fingerprint.clone()),
        hops,
        warnings,
    }
}

/// The Docker handle over channels `opener` opens (`spare` ones already open), its API version
/// forced, remembered, or negotiated once and then remembered.
async fn docker_over_ssh(
    endpoint: &Endpoint,
    opener: connector::Opener,
    spare: Vec<connector::SpareChannel>,
    known: Option<ClientVersion>,
    api: &Arc<connector::ApiVersionState>,
    after_login: &(dyn Fn(TransportError) -> TransportError + Sync),
) -> Result<Docker, TransportError> {
    let docker = connector::ssh_docker(
        &endpoint.ship,
        opener,
        endpoint.docker.clone(),
        spare,
        &known.unwrap_or(*bollard::API_DEFAULT_VERSION),
        api.clone(),
    )
    .map_err(|source| TransportError::docker(&endpoint.ship, source))?;
    if known.is_some() {
        return Ok(docker);
    }
    let docker = negotiate(endpoint, docker).await.map_err(after_login)?;
    api.set(docker.client_version(), true);
    Ok(docker)
}

/// The API version state of an SSH route: forced, remembered from an earlier command (the
/// cache is keyed by the hops and the Docker target), or to be negotiated (`None`).
fn api_state(
    endpoint: &Endpoint,
    hops: &[ssh::Hop],
    forced_version: Option<ClientVersion>,
) -> (Arc<connector::ApiVersionState>, Option<ClientVersion>) {
    let api = Arc::new(connector::ApiVersionState::new(
        endpoint.api_version_cache.as_ref().map(|dir| {
            let mut key = String::from("ssh");
            for hop in hops {
                key.push_str(&format!(" {}@{}:{} ->", hop.user, hop.host, hop.port));
            }
            key.push_str(&format!(" {}", endpoint.docker));
            api_version::VersionCache::new(dir, &key)
        }),
    ));
    let known = match forced_version {
        Some(version) => {
            api.set(version, false);
            Some(version)
        }
        None => api.cached().inspect(|version| api.set(*version, true)),
    };
    (api, known)
}

/// [`connect_ssh`] through the persist daemon: the route is resolved here, the login (or the
/// session kept from an earlier command) is the daemon's, and the first Docker channels are
/// opened at once, as `check_docker_channel` does.
async fn connect_warm(
    endpoint: &Endpoint,
    route: &SshRoute,
    forced_version: Option<ClientVersion>,
    idle: Duration,
) -> Result<Connection, TransportError> {
    let hops = ssh::resolve_hops(&endpoint.ship, route)?;
    let (api, known) = api_state(endpoint, &hops, forced_version);
    let spec = warm::RouteSpec {
        identities_digest: warm::identities_digest(&hops),
        timeout_ms: u64::try_from(endpoint.connect_timeout.as_millis()).unwrap_or(u64::MAX),
        keepalive_ms: u64::try_from(route.keepalive.unwrap_or(DEFAULT_KEEPALIVE).as_millis())
            .unwrap_or(u64::MAX),
        batch_mode: route.batch_mode,
        agent_socket: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
        home: std::env::var_os("HOME").map(PathBuf::from),
        hops,
    };
    let warm = Arc::new(warm::WarmRoute::new(&endpoint.ship, spec, idle).await?);
    let target = warm::ChannelTarget::Docker(endpoint.docker.clone());
    let (first, more) = tokio::join!(
        warm.open(target.clone()),
        futures_util::future::join_all(
            (1..connector::FIRST_CHANNELS).map(|_| warm.open_docker(&endpoint.docker))
        )
    );
    let (stream, answer) = match first {
        Ok(opened) => opened,
        Err(err) => return Err(err),
    };
    let info = ssh_info(endpoint, answer.hops, answer.warnings);
    let mut spare: Vec<connector::SpareChannel> = vec![Box::new(stream)];
    for stream in more.into_iter().flatten() {
        spare.push(Box::new(stream));
    }
    let after_login = |source: TransportError| {
        TransportErrorKind::AfterLogin {
            reached: Box::new(info.clone()),
            source: Box::new(source.kind),
        }
        .for_ship(source.ship)
    };
    let opener = connector::Opener::Warm(warm.clone());
    let docker = docker_over_ssh(endpoint, opener, spare, known, &api, &after_login).await?;
    Ok(Connection {
        docker,
        info,
        link: Link::Warm(warm, api),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_specs_parse() {
        assert_eq!(
            "root@bastion:2222".parse::<JumpSpec>(),
            Ok(JumpSpec {
                host: "bastion".into(),
                port: Some(2222),
                user: Some("root".into())
            })
        );
        assert_eq!(
            "bastion".parse::<JumpSpec>(),
            Ok(JumpSpec {
                host: "bastion".into(),
                port: None,
                user: None
            })
        );
        assert_eq!(
            "me@[fe80::1]:22".parse::<JumpSpec>().map(|j| j.to_string()),
            Ok("me@[fe80::1]:22".to_string())
        );
        assert!("root@bastion:http".parse::<JumpSpec>().is_err());
        assert!("@bastion".parse::<JumpSpec>().is_err());
    }

    #[test]
    fn api_versions_parse() {
        let v = parse_api_version("s", "1.41").expect("parse");
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(parse_api_version("s", "141").is_err());
    }
}
