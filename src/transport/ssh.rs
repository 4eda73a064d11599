//! SSH sessions: through zero or more jump hosts (each hop a `direct-tcpip` channel of the
//! previous session carrying the next session), with host key verification and the
//! authentication order of OpenSSH.
//!
//! Sessions are shared through a [`SessionPool`]: ships whose routes begin with the same
//! logins (same host, port, user, identities, host-key rules and the same hops before) ride
//! the same sessions, so 100 ships behind one bastion log in to it once. A stock sshd drops
//! new connections past `MaxStartups` (10 unauthenticated at once); each sshd we dial is
//! therefore behind a [`Gate`] that bounds the logins in flight toward it, shrinks when the
//! server drops one anyway, and a dropped login is retried with jittered backoff.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{
    Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate,
};
use russh::{ChannelMsg, ChannelOpenFailure};
use tokio::io::{AsyncRead, AsyncWrite};

use super::banner::{Recorded, foreign_greeting};
use super::error::TransportError;
use super::known_hosts::{self, HostKeyPolicy, Verdict};
use super::ssh_config::{self, HostSettings, valid_hostname, valid_user};
use super::{HopInfo, JumpSpec, SshRoute};

/// One hop after resolution through ssh_config: where we connect and as whom. Serialized
/// for the persist daemon (see `warm`): the client resolves, the daemon logs in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Hop {
    pub label: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: agent keys are offered only when they are one of
    /// `identity_files` (by the public key beside the file).
    pub identities_only: bool,
    /// ssh_config's `ProxyCommand`, tokens expanded: its stdin/stdout carry the session
    /// instead of a TCP connection (first hop only; later hops ride the previous session).
    pub proxy_command: Option<String>,
    /// Every known_hosts file read, the user's first, then the global ones.
    pub known_hosts_files: Vec<PathBuf>,
    /// Where a new key is recorded under accept-new: the first user file, if any.
    pub record_file: Option<PathBuf>,
    pub policy: HostKeyPolicy,
    /// ssh_config's `CASignatureAlgorithms` (`None`: OpenSSH's default, without `ssh-rsa`).
    pub ca_signature_algorithms: Option<String>,
}

/// The established chain; the last session is the ship's own. Each session keeps the one
/// it travels through alive, and the pool keeps all of them until it is closed.
pub(crate) struct SshChain {
    sessions: Vec<Arc<Session>>,
    pub hops: Vec<HopInfo>,
    pub warnings: Vec<String>,
    pub channels_opened: AtomicU64,
    ship_label: String,
    closed: AtomicBool,
}

impl SshChain {
    fn ship_session(&self) -> Option<&Handle<HostKeyCheck>> {
        self.sessions.last().map(|s| &s.handle)
    }

    pub fn ship_label(&self) -> &str {
        &self.ship_label
    }

    /// Every session of the chain is still up (as far as we know without asking).
    pub fn is_alive(&self) -> bool {
        !self.sessions.is_empty() && self.sessions.iter().all(|s| !s.handle.is_closed())
    }

    pub fn session_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| !s.handle.is_closed())
            .count()
    }

    pub async fn open_streamlocal(
        &self,
        path: &str,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        self.opened(path, session.channel_open_direct_streamlocal(path))
            .await
    }

    pub async fn open_tcpip(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        let target = format!("{host}:{port}");
        self.opened(
            &target,
            session.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0),
        )
        .await
    }

    /// A channel being opened to `target`, counted and logged (`-v`) with its time.
    async fn opened(
        &self,
        target: &str,
        open: impl std::future::Future<Output = Result<russh::Channel<client::Msg>, russh::Error>>,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let started = Instant::now();
        let channel = open.await.inspect_err(|err| {
            tracing::debug!("{}: channel to {target}: {err}", self.ship_label);
        })?;
        tracing::debug!(
            "{}: channel to {target} opened in {} ms",
            self.ship_label,
            started.elapsed().as_millis()
        );
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        Ok(channel.into_stream())
    }

    /// A `session` channel on the ship's own session, for a login shell or a command.
    pub async fn open_session(&self) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        let channel = session.channel_open_session().await?;
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        Ok(channel)
    }

    /// Runs a shell command on the ship and returns its standard output. Used only to tell
    /// a missing Docker socket from an inaccessible one after sshd refused the channel.
    pub async fn run(&self, command: &str) -> Option<String> {
        let session = self.ship_session()?;
        let mut channel = session.channel_open_session().await.ok()?;
        channel.exec(true, command).await.ok()?;
        let mut out = Vec::new();
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        String::from_utf8(out).ok()
    }

    /// Runs a shell command on the ship to its end: its exit status (`None` when sshd sent
    /// none, e.g. the command was killed by a signal), standard output and standard error.
    pub async fn exec(
        &self,
        command: &str,
    ) -> Result<(Option<u32>, Vec<u8>, Vec<u8>), russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        let mut channel = session.channel_open_session().await?;
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        channel.exec(true, command).await?;
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        // The exit status may come after EOF: read until the channel closes.
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok((status, out, err))
    }

    /// Asks the ship's sshd to listen on its loopback at a port of its choosing and to send
    /// each connection there back to us (`tcpip-forward`). The connections arrive on the
    /// receiver; [`SshChain::cancel_forward`] ends the listener.
    pub async fn remote_forward(
        &self,
    ) -> Result<
        (
            u16,
            tokio::sync::mpsc::UnboundedReceiver<russh::Channel<client::Msg>>,
        ),
        russh::Error,
    > {
        let session = self.sessions.last().ok_or(russh::Error::Disconnect)?;
        let port = session.handle.tcpip_forward("127.0.0.1", 0).await?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        session
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port, sender);
        tracing::debug!(
            "{}: listening on its 127.0.0.1:{port} for us",
            self.ship_label
        );
        let port = u16::try_from(port).map_err(|_| russh::Error::RequestDenied)?;
        Ok((port, receiver))
    }

    /// Ends a forward of [`SshChain::remote_forward`]: sshd closes the listener, and a
    /// connection still arriving is refused.
    pub async fn cancel_forward(&self, port: u16) -> Result<(), russh::Error> {
        let session = self.sessions.last().ok_or(russh::Error::Disconnect)?;
        session
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&u32::from(port));
        let cancelled = session
            .handle
            .cancel_tcpip_forward("127.0.0.1", u32::from(port))
            .await;
        tracing::debug!(
            "{}: forward of 127.0.0.1:{port} cancelled: {cancelled:?}",
            self.ship_label
        );
        cancelled
    }

    /// Closes the sessions that no other chain still uses (a shared jump host stays up
    /// for the ships behind it; the pool closes it at the end of the run).
    pub async fn disconnect(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        for session in self.sessions.iter().rev() {
            if session.users.fetch_sub(1, Ordering::SeqCst) == 1 {
                session.disconnect().await;
            }
        }
    }
}

/// One logged-in SSH session, possibly shared by several chains.
pub(crate) struct Session {
    handle: Handle<HostKeyCheck>,
    info: HopInfo,
    /// Said once per session, reported by every chain that uses it.
    warnings: Vec<String>,
    /// The ProxyCommand carrying it, killed when the session goes.
    _proxy: Option<tokio::process::Child>,
    /// The session this one's bytes travel through: it must live as long as this one.
    _via: Option<Arc<Session>>,
    /// Chains that use it and have not closed.
    users: AtomicUsize,
    /// Its remote forwards (see [`SshChain::remote_forward`]).
    forwards: ForwardTable,
}

impl Session {
    async fn disconnect(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

type SessionCell = Arc<tokio::sync::OnceCell<Result<Arc<Session>, Arc<TransportError>>>>;

/// How many logins may be in flight toward one sshd at first: well under OpenSSH's default
/// `MaxStartups` of 10, which also counts other clients' connections.
const LOGINS_IN_FLIGHT: usize = 4;
/// Attempts of one login that the server drops before it completes.
const LOGIN_ATTEMPTS: u32 = 6;

/// The sessions of one run, shared between the ships whose routes begin alike, and the
/// pacing of logins toward each sshd. Cheap to clone.
#[derive(Clone, Default)]
pub struct SessionPool {
    inner: Arc<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    /// Keyed by the route up to and including the session's hop (see [`route_key`]).
    sessions: Mutex<HashMap<String, SessionCell>>,
    /// Keyed by the route before the hop and the hop's address: one gate per sshd as seen
    /// from where we dial it.
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    logins: AtomicU64,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("logins", &self.logins())
            .finish()
    }
}

/// Everything that makes the logins of `hops` different from others' (the hop's `Debug`
/// holds every field: address, user, identities, host-key rules, proxy).
fn route_key(hops: &[Hop]) -> String {
    format!("{hops:?}")
}

impl SessionPool {
    pub fn new() -> SessionPool {
        SessionPool::default()
    }

    /// Successful SSH logins made through this pool (jump hosts included).
    pub fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    fn cell(&self, route: &[Hop]) -> SessionCell {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions.entry(route_key(route)).or_default().clone()
    }

    fn gate(&self, before: &[Hop], hop: &Hop) -> Arc<Gate> {
        let key = format!("{} -> {}:{}", route_key(before), hop.host, hop.port);
        let mut gates = self.inner.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry(key)
            .or_insert_with(|| Arc::new(Gate::new(LOGINS_IN_FLIGHT)))
            .clone()
    }

    /// Forgets the sessions that have closed (the server ended them, the network dropped),
    /// so that the next chain along their route logs in again: for the persist daemon,
    /// whose pool outlives any one command.
    pub(crate) fn forget_closed(&self) {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, cell| match cell.get() {
            Some(Ok(session)) => !session.handle.is_closed(),
            // A failed login is not remembered: the next command tries again.
            Some(Err(_)) => false,
            None => true,
        });
    }

    /// Forgets the session of `route`'s last hop, so that the next chain logs in to it
    /// again (it failed to open a channel although it looked alive).
    pub(crate) fn forget(&self, route: &[Hop]) {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&route_key(route));
    }

    /// Closes every session of the run, the innermost first.
    pub async fn close(&self) {
        let cells: Vec<(String, SessionCell)> = {
            let mut sessions = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            sessions.drain().collect()
        };
        let mut established: Vec<(usize, Arc<Session>)> = cells
            .into_iter()
            .filter_map(|(key, cell)| match cell.get() {
                Some(Ok(session)) => Some((key.len(), session.clone())),
                _ => None,
            })
            .collect();
        // A longer route key is a session further down a chain.
        established.sort_by_key(|(depth, _)| std::cmp::Reverse(*depth));
        for (_, session) in established {
            session.disconnect().await;
        }
    }
}

/// Bounds the logins in flight toward one sshd. Starts at [`LOGINS_IN_FLIGHT`] and gives up
/// one place each time the server drops a login anyway (it is busier than we knew, or set
/// to a lower `MaxStartups`), down to one.
struct Gate {
    places: tokio::sync::Semaphore,
    size: AtomicUsize,
}

impl Gate {
    fn new(size: usize) -> Gate {
        Gate {
            places: tokio::sync::Semaphore::new(size),
            size: AtomicUsize::new(size),
        }
    }

    async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this only fails if that changes: then run unpaced.
        self.places.acquire().await.ok()
    }

    /// The server dropped a login made with `place`: keep that place closed.
    fn shrink(&self, place: Option<tokio::sync::SemaphorePermit<'_>>) {
        let shrunk = self
            .size
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |size| {
                (size > 1).then(|| size - 1)
            })
            .is_ok();
        if let (true, Some(place)) = (shrunk, place) {
            place.forget();
        }
    }
}

/// The wait before attempt `attempt + 1` of a dropped login: doubling from 250 ms, capped at
/// 2 s, each scaled by a random 0.5-1.5 so that logins dropped together do not return
/// together.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(3)).min(2000);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let scale = 500 + random % 1000;
    Duration::from_millis(base * scale / 1000)
}

/// Resolves the chain of hops for `route` (explicit jumps win over ProxyJump; settings of
/// the environment win over ssh_config).
pub(crate) fn resolve_hops(ship: &str, route: &SshRoute) -> Result<Vec<Hop>, TransportError> {
    let settings_err = |message: String| TransportError::Settings {
        ship: ship.to_string(),
        message,
    };
    let config_path = ssh_config::config_path(route.ssh_config_file.as_deref());
    let target_settings = ssh_config::lookup(
        config_path.as_deref(),
        &route.host,
        ssh_config::Given {
            user: route.user.as_deref(),
            port: route.port,
        },
    )
    .map_err(settings_err)?;

    let jumps: Vec<JumpSpec> = if !route.jumps.is_empty() {
        route.jumps.clone()
    } else if let Some(proxy_jump) = &target_settings.proxy_jump {
        proxy_jump
            .split(',')
            .map(|spec| spec.trim().parse::<JumpSpec>())
            .collect::<Result<_, _>>()
            .map_err(|err| settings_err(format!("ProxyJump in ssh config: {err}")))?
    } else {
        Vec::new()
    };

    let mut hops = Vec::with_capacity(jumps.len() + 1);
    for jump in &jumps {
        let settings = ssh_config::lookup(
            config_path.as_deref(),
            &jump.host,
            ssh_config::Given {
                user: jump.user.as_deref(),
                port: jump.port,
            },
        )
        .map_err(settings_err)?;
        hops.push(
            make_hop(route, &jump.host, jump.user.clone(), jump.port, &settings)
                .map_err(settings_err)?,
        );
    }
    hops.push(
        make_hop(
            route,
            &route.host,
            route.user.clone(),
            route.port,
            &target_settings,
        )
        .map_err(settings_err)?,
    );
    Ok(hops)
}

fn make_hop(
    route: &SshRoute,
    alias: &str,
    user: Option<String>,
    port: Option<u16>,
    settings: &HostSettings,
) -> Result<Hop, String> {
    let host = settings
        .host_name
        .clone()
        .unwrap_or_else(|| alias.to_string());
    let port = port.or(settings.port).unwrap_or(22);
    let user = user
        .or_else(|| settings.user.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".to_string());

    let mut identity_files: Vec<PathBuf> = route
        .identity_files
        .iter()
        .map(|p| ssh_config::expand_home(p))
        .collect();
    identity_files.extend(settings.identity_files.iter().cloned());

    let local_user = std::env::var("USER").unwrap_or_default();
    let home = ssh_config::home_dir();
    let tokens = ssh_config::FileTokens {
        home: home.as_deref(),
        local_user: &local_user,
        host: &host,
        original_host: alias,
        port,
        remote_user: &user,
    };
    let (known_hosts_files, record_file) = known_hosts_files(
        route.known_hosts_file.as_deref(),
        settings,
        &tokens,
        GLOBAL_KNOWN_HOSTS,
    )?;
    let policy = match (route.host_key_policy, settings.strict_host_key_checking) {
        (Some(policy), _) => policy,
        (None, Some(false)) => HostKeyPolicy::AcceptNew,
        (None, _) => HostKeyPolicy::Strict,
    };
    // OpenSSH: a route's explicit jumps or ProxyJump win over ProxyCommand.
    let proxy_command = settings
        .proxy_command
        .as_ref()
        .filter(|_| route.jumps.is_empty() && settings.proxy_jump.is_none())
        .map(|command| expand_proxy_tokens(command, &host, port, &user, alias))
        .transpose()?;
    Ok(Hop {
        label: format!("{user}@{host}:{port}"),
        host,
        port,
        user,
        identity_files,
        identities_only: settings.identities_only,
        proxy_command,
        known_hosts_files,
        record_file,
        policy,
        ca_signature_algorithms: settings.ca_signature_algorithms.clone(),
    })
}

/// OpenSSH's default `GlobalKnownHostsFile`.
const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2";
/// OpenSSH's default `UserKnownHostsFile`.
const USER_KNOWN_HOSTS: &str = "~/.ssh/known_hosts ~/.ssh/known_hosts2";

/// The known_hosts files of a hop, and the one new keys go to. The ship's
/// `known_hosts_file` is then the only file read (the operator named it for this ship;
/// tests and CI rely on nothing else being trusted). Otherwise OpenSSH's rule: every file of
/// `UserKnownHostsFile` (default `~/.ssh/known_hosts ~/.ssh/known_hosts2`), then every file
/// of `GlobalKnownHostsFile` (default `global_default`, injected so that tests never read
/// this machine's /etc/ssh), new keys recorded in the first user file.
fn known_hosts_files(
    explicit: Option<&Path>,
    settings: &HostSettings,
    tokens: &ssh_config::FileTokens,
    global_default: &str,
) -> Result<(Vec<PathBuf>, Option<PathBuf>), String> {
    if let Some(explicit) = explicit {
        let file = ssh_config::expand_home(explicit);
        return Ok((vec![file.clone()], Some(file)));
    }
    let expand_all = |value: &str, keyword: &str| {
        ssh_config::split_file_list(value)
            .iter()
            .map(|word| ssh_config::expand_file(word, keyword, tokens))
            .collect::<Result<Vec<_>, _>>()
    };
    let user = match (&settings.user_known_hosts_files, tokens.home) {
        (Some(value), _) => expand_all(value, "UserKnownHostsFile")?,
        (None, Some(_)) => expand_all(USER_KNOWN_HOSTS, "UserKnownHostsFile")?,
        // No home and nothing configured: no user file, as before; nothing to record into.
        (None, None) => Vec::new(),
    };
    let global = expand_all(
        settings
            .global_known_hosts_files
            .as_deref()
            .unwrap_or(global_default),
        "GlobalKnownHostsFile",
    )?;
    let record_file = user.first().cloned();
    let mut files = user;
    for file in global {
        if !files.contains(&file) {
            files.push(file);
        }
    }
    Ok((files, record_file))
}

/// ssh_config's `%` tokens of a ProxyCommand: `%h` host, `%p` port, `%r` user, `%n` the
/// name as given, `%%` a percent sign. The command runs through `sh -c`, so a value holding
/// shell metacharacters is refused, as OpenSSH 9.6 refuses it (CVE-2023-51385): host names
/// and user names may come from templates, inventories or ssh_config's `HostName`.
fn expand_proxy_tokens(
    command: &str,
    host: &str,
    port: u16,
    user: &str,
    alias: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    let checked = |token: char, value: &str, valid: fn(&str) -> bool| {
        if valid(value) {
            Ok(value.to_string())
        } else {
            Err(format!(
                "refusing to run the ProxyCommand `{command}`: %{token} would be `{value}`, \
                 which holds characters a shell interprets (OpenSSH refuses it too)"
            ))
        }
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&checked('h', host, valid_hostname)?),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(&checked('r', user, valid_user)?),
            Some('n') => out.push_str(&checked('n', alias, valid_hostname)?),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    Ok(out)
}

/// Why the host key check refused, kept beside the handler so that the error russh
/// reports can be turned into ours.
#[derive(Debug, Default)]
struct HostKeyOutcome {
    fingerprint: Option<String>,
    verdict: Option<Verdict>,
    /// A host certificate that failed while its plain key was accepted.
    certificate_problem: Option<known_hosts::CertProblem>,
}

/// The remote forwards of one session (`tcpip-forward`): where the connections sshd opens
/// back to us are handed, by the port it listens on. A connection to a port nobody waits on
/// (a forward being cancelled) is refused.
pub(crate) type ForwardTable =
    Arc<Mutex<HashMap<u32, tokio::sync::mpsc::UnboundedSender<russh::Channel<client::Msg>>>>>;

pub(crate) struct HostKeyCheck {
    forwards: ForwardTable,
    host: String,
    port: u16,
    files: Vec<PathBuf>,
    record_file: Option<PathBuf>,
    policy: HostKeyPolicy,
    ca_signature_algorithms: Option<String>,
    outcome: Arc<Mutex<HostKeyOutcome>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (key, verdict, certificate_problem) = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                let verdict = known_hosts::verify(
                    &self.host,
                    self.port,
                    key,
                    &self.files,
                    known_hosts::accept_new_into(self.policy, self.record_file.as_deref()),
                );
                (key.clone(), verdict, None)
            }
            PublicKeyOrCertificate::Certificate(cert) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|since| since.as_secs())
                    .unwrap_or(0);
                let (verdict, problem) = known_hosts::verify_certificate(
                    &self.host,
                    self.port,
                    cert,
                    &self.files,
                    known_hosts::accept_new_into(self.policy, self.record_file.as_deref()),
                    self.ca_signature_algorithms.as_deref(),
                    now,
                );
                (
                    russh::keys::PublicKey::from(cert.public_key().clone()),
                    verdict,
                    problem,
                )
            }
        };
        let accepted = matches!(
            verdict,
            Verdict::Known | Verdict::Recorded { .. } | Verdict::Certified
        );
        tracing::debug!(
            "{}:{}: host key {} ({}): {verdict:?}{}",
            self.host,
            self.port,
            known_hosts::fingerprint(&key),
            key.algorithm(),
            certificate_problem
                .as_ref()
                .map(|p| format!(" (host certificate {p})"))
                .unwrap_or_default()
        );
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        outcome.fingerprint = Some(known_hosts::fingerprint(&key));
        outcome.verdict = Some(verdict);
        outcome.certificate_problem = certificate_problem;
        Ok(accepted)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let waiting = self
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&connected_port)
            .cloned();
        tracing::debug!(
            "{}:{}: forwarded connection to port {connected_port} from \
             {originator_address}:{originator_port}{}",
            self.host,
            self.port,
            if waiting.is_some() {
                ""
            } else {
                ": refused (no forward of ours)"
            }
        );
        match waiting {
            Some(sender) => {
                reply.accept().await;
                let _ = sender.send(channel);
            }
            None => {
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await
            }
        }
        Ok(())
    }
}

pub(crate) struct ConnectOptions {
    pub ship: String,
    pub timeout: Duration,
    pub keepalive: Duration,
    pub batch_mode: bool,
    /// The ssh-agent's socket (`SSH_AUTH_SOCK` of the command; the persist daemon is told
    /// the one of the command that asked, not its own).
    pub agent_socket: Option<PathBuf>,
    /// `MAESTRO_SSH_PASSPHRASE` of the command (the persist daemon is told the one of the
    /// command that asked).
    pub passphrase: Option<String>,
}

/// Establishes the whole chain, taking from `pool` the sessions that other ships of the run
/// already opened (or are opening) along the same route. Errors at a jump host are wrapped
/// in [`TransportError::Jump`] naming that hop.
pub(crate) async fn connect_chain(
    hops: &[Hop],
    options: &ConnectOptions,
    pool: &SessionPool,
) -> Result<SshChain, TransportError> {
    let mut sessions: Vec<Arc<Session>> = Vec::with_capacity(hops.len());
    let last = hops.len().saturating_sub(1);
    for (index, hop) in hops.iter().enumerate() {
        let before = &hops[..index];
        let previous = sessions.last().cloned();
        let cell = pool.cell(&hops[..=index]);
        let result = cell
            .get_or_init(|| async {
                let gate = pool.gate(before, hop);
                let via = before.last().map(|prev| prev.label.clone());
                let session = paced_login(hop, previous, via, options, &gate).await;
                if session.is_ok() {
                    pool.inner.logins.fetch_add(1, Ordering::Relaxed);
                }
                session.map(Arc::new).map_err(Arc::new)
            })
            .await;
        match result {
            Ok(session) => sessions.push(session.clone()),
            // A shared hop failed once for every ship behind it: each is told in its name.
            Err(err) if index < last => {
                return Err(TransportError::Jump {
                    ship: options.ship.clone(),
                    hop: hop.label.clone(),
                    source: Box::new(err.for_ship(&options.ship)),
                });
            }
            Err(err) => return Err(err.for_ship(&options.ship)),
        }
    }
    for session in &sessions {
        session.users.fetch_add(1, Ordering::SeqCst);
    }
    let mut warnings: Vec<String> = Vec::new();
    for warning in sessions.iter().flat_map(|s| s.warnings.iter()) {
        if !warnings.contains(warning) {
            warnings.push(warning.clone());
        }
    }
    let ship_label = hops.last().map(|h| h.label.clone()).unwrap_or_default();
    Ok(SshChain {
        hops: sessions.iter().map(|s| s.info.clone()).collect(),
        sessions,
        warnings,
        channels_opened: AtomicU64::new(0),
        ship_label,
        closed: AtomicBool::new(false),
    })
}

/// One login toward `hop`'s sshd, inside its gate, retried when the server drops it before
/// it completes (see [`Gate`]).
async fn paced_login(
    hop: &Hop,
    previous: Option<Arc<Session>>,
    via: Option<String>,
    options: &ConnectOptions,
    gate: &Gate,
) -> Result<Session, TransportError> {
    let mut attempt = 1;
    loop {
        let place = gate.enter().await;
        match connect_hop(hop, previous.clone(), via.clone(), options).await {
            Err(TransportError::DroppedBeforeLogin { .. }) if attempt < LOGIN_ATTEMPTS => {
                gate.shrink(place);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(TransportError::DroppedBeforeLogin { ship, hop, .. }) => {
                return Err(TransportError::DroppedBeforeLogin {
                    ship,
                    hop,
                    attempts: attempt,
                });
            }
            other => return other,
        }
    }
}

/// The host key algorithms to ask for, those of the key types on record first, so that a
/// host known by its ECDSA key is not refused because it also offers Ed25519 (a type not on
/// record is CHANGED, see `known_hosts`). known_hosts records an RSA key as `ssh-rsa`
/// whatever the server signs with; OpenSSH 8.8+ servers no longer sign with SHA-1
/// `ssh-rsa`, so an RSA key on record asks for `rsa-sha2-512` and `rsa-sha2-256` first, as
/// OpenSSH does. `ssh-rsa` stays last of them, for old servers, as it always was here.
fn host_key_order(
    default: &[russh::keys::Algorithm],
    recorded: &[russh::keys::Algorithm],
) -> Vec<russh::keys::Algorithm> {
    use russh::keys::Algorithm::Rsa;
    let on_record = |alg: &russh::keys::Algorithm| {
        recorded
            .iter()
            .any(|rec| rec == alg || (matches!(rec, Rsa { .. }) && matches!(alg, Rsa { .. })))
    };
    let mut order: Vec<_> = default.iter().filter(|a| on_record(a)).cloned().collect();
    order.extend(default.iter().filter(|a| !on_record(a)).cloned());
    order
}

fn client_config(hop: &Hop, options: &ConnectOptions) -> client::Config {
    let mut preferred = russh::Preferred::default();
    let recorded = known_hosts::recorded_algorithms(&hop.host, hop.port, &hop.known_hosts_files);
    preferred.key = host_key_order(&preferred.key, &recorded).into();
    // OpenSSH asks for certificates first when a CA is listed for the host; russh asks for
    // none unless told, and a certificate nobody trusts would only be judged by its key.
    if known_hosts::trusts_cas_for(&hop.host, hop.port, &hop.known_hosts_files) {
        preferred.host_key_certificates = preferred.key.clone();
    }
    client::Config {
        preferred,
        keepalive_interval: Some(options.keepalive),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

async fn connect_hop(
    hop: &Hop,
    previous: Option<Arc<Session>>,
    via: Option<String>,
    options: &ConnectOptions,
) -> Result<Session, TransportError> {
    let timeout = options.timeout;
    let outcome = Arc::new(Mutex::new(HostKeyOutcome::default()));
    let forwards = ForwardTable::default();
    let handler = HostKeyCheck {
        forwards: forwards.clone(),
        host: hop.host.clone(),
        port: hop.port,
        files: hop.known_hosts_files.clone(),
        record_file: hop.record_file.clone(),
        policy: hop.policy,
        ca_signature_algorithms: hop.ca_signature_algorithms.clone(),
        outcome: outcome.clone(),
    };
    let config = Arc::new(client_config(hop, options));
    let link = open_link(hop, previous.as_ref(), via, options).await?;
    // What the server sent, for when the handshake fails (see `banner`).
    let (stream, greeting) = Recorded::new(link.stream);
    tracing::debug!("{}: {}: SSH handshake", options.ship, hop.label);
    let started = Instant::now();
    let handshake =
        tokio::time::timeout(timeout, client::connect_stream(config, stream, handler)).await;
    match &handshake {
        Ok(Ok(_)) => tracing::debug!(
            "{}: {}: SSH handshake done in {} ms",
            options.ship,
            hop.label,
            started.elapsed().as_millis()
        ),
        Ok(Err(err)) => {
            tracing::debug!(
                "{}: {}: SSH handshake failed: {err}",
                options.ship,
                hop.label
            )
        }
        Err(_) => tracing::debug!("{}: {}: SSH handshake timed out", options.ship, hop.label),
    }
    let mut handle = match handshake {
        Err(_) => {
            return Err(TransportError::Timeout {
                ship: options.ship.clone(),
                hop: hop.label.clone(),
                after: timeout,
            });
        }
        Ok(Ok(handle)) => handle,
        Ok(Err(err)) => {
            let greeting = greeting.lock().map(|seen| seen.clone()).unwrap_or_default();
            return Err(handshake_failure(
                hop,
                options,
                &outcome,
                link.proxy_stderr,
                &greeting,
                err,
            )
            .await);
        }
    };
    let (fingerprint, mut warnings) = host_key_notes(hop, &outcome);
    let auth_method = authenticate(&mut handle, hop, options, &mut warnings).await?;
    Ok(Session {
        handle,
        info: HopInfo {
            address: hop.label.clone(),
            auth_method,
            host_key_fingerprint: fingerprint,
        },
        warnings,
        _proxy: link.proxy,
        _via: previous,
        users: AtomicUsize::new(0),
        forwards,
    })
}

/// How a hop's bytes travel before SSH starts: a ProxyCommand's pipes, a TCP connection, or a
/// `direct-tcpip` channel of the hop before it.
struct HopLink {
    stream: Box<dyn Duplex>,
    /// The ProxyCommand, which lives as long as the session.
    proxy: Option<tokio::process::Child>,
    /// What the ProxyCommand prints on stderr, read until it exits.
    proxy_stderr: Option<tokio::task::JoinHandle<String>>,
}

async fn open_link(
    hop: &Hop,
    previous: Option<&Arc<Session>>,
    via: Option<String>,
    options: &ConnectOptions,
) -> Result<HopLink, TransportError> {
    let ship = &options.ship;
    let link = |stream: Box<dyn Duplex>| HopLink {
        stream,
        proxy: None,
        proxy_stderr: None,
    };
    match (previous, &hop.proxy_command) {
        (None, Some(command)) => {
            tracing::debug!("{ship}: {}: ProxyCommand `{command}`", hop.label);
            let spawned =
                ProxyCommand::spawn(command).map_err(|err| TransportError::ProxyCommand {
                    ship: ship.clone(),
                    hop: hop.label.clone(),
                    command: command.clone(),
                    reason: format!("cannot start it: {err}"),
                })?;
            Ok(HopLink {
                stream: Box::new(spawned.stream),
                proxy: Some(spawned.child),
                proxy_stderr: Some(spawned.stderr),
            })
        }
        (None, None) => Ok(link(Box::new(tcp_link(hop, options).await?))),
        (Some(previous), _) => Ok(link(Box::new(
            channel_link(hop, previous, via, options).await?,
        ))),
    }
}

/// A hop reached directly: its name resolved, then a TCP connection.
async fn tcp_link(
    hop: &Hop,
    options: &ConnectOptions,
) -> Result<tokio::net::TcpStream, TransportError> {
    let (ship, timeout) = (&options.ship, options.timeout);
    let timed_out = || TransportError::Timeout {
        ship: ship.clone(),
        hop: hop.label.clone(),
        after: timeout,
    };
    let addresses = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((hop.host.as_str(), hop.port)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|source| TransportError::Dns {
        ship: ship.clone(),
        hop: hop.label.clone(),
        source,
    })?
    .collect::<Vec<_>>();
    tracing::debug!("{ship}: {}: TCP connect to {addresses:?}", hop.label);
    let started = Instant::now();
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addresses[..]))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| io_error(ship, &hop.label, timeout, source))
        .inspect_err(|err| tracing::debug!("{ship}: {}: TCP connect: {err}", hop.label))?;
    tracing::debug!(
        "{ship}: {}: TCP connected to {} in {} ms",
        hop.label,
        stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        started.elapsed().as_millis()
    );
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A hop reached through the one before it: a `direct-tcpip` channel of its session.
async fn channel_link(
    hop: &Hop,
    previous: &Arc<Session>,
    via: Option<String>,
    options: &ConnectOptions,
) -> Result<russh::ChannelStream<client::Msg>, TransportError> {
    let ship = &options.ship;
    tracing::debug!(
        "{ship}: {}: direct-tcpip channel through {}",
        hop.label,
        previous.info.address
    );
    let channel = tokio::time::timeout(
        options.timeout,
        previous.handle.channel_open_direct_tcpip(
            hop.host.as_str(),
            u32::from(hop.port),
            "127.0.0.1",
            0,
        ),
    )
    .await
    .map_err(|_| TransportError::Timeout {
        ship: ship.clone(),
        hop: hop.label.clone(),
        after: options.timeout,
    })?
    .map_err(|err| match err {
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed) => {
            TransportError::Refused {
                ship: ship.clone(),
                hop: hop.label.clone(),
                via,
            }
        }
        other => TransportError::Ssh {
            ship: ship.clone(),
            hop: hop.label.clone(),
            source: Box::new(other),
        },
    })?;
    Ok(channel.into_stream())
}

/// Why a handshake failed, in the order that explains it best: a refused host key, then what
/// a failed ProxyCommand printed, then a server that is not sshd (it sent `greeting`), then a
/// busy sshd, then the SSH error itself.
async fn handshake_failure(
    hop: &Hop,
    options: &ConnectOptions,
    outcome: &Mutex<HostKeyOutcome>,
    proxy_stderr: Option<tokio::task::JoinHandle<String>>,
    greeting: &[u8],
    err: russh::Error,
) -> TransportError {
    let ship = &options.ship;
    let refused = {
        let outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
        host_key_error(ship, hop, &outcome)
    };
    if let Some(refused) = refused {
        return refused;
    }
    // A proxy that fails usually just exits: say what it printed, not "EOF".
    if let (Some(command), Some(stderr)) = (&hop.proxy_command, proxy_stderr) {
        // Its stderr closes when it exits; one still running says nothing more.
        let said = tokio::time::timeout(Duration::from_secs(1), stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return TransportError::ProxyCommand {
            ship: ship.clone(),
            hop: hop.label.clone(),
            command: command.clone(),
            reason: last_lines(&said).unwrap_or_else(|| err.to_string()),
        };
    }
    if let Some(sent) = foreign_greeting(greeting) {
        return TransportError::NotSsh {
            ship: ship.clone(),
            hop: hop.label.clone(),
            sent,
        };
    }
    if dropped_before_login(&err) {
        return TransportError::DroppedBeforeLogin {
            ship: ship.clone(),
            hop: hop.label.clone(),
            attempts: 1,
        };
    }
    ssh_error(ship, &hop.label, options.timeout, err)
}

/// The host key's fingerprint, and the warnings its check left: a broken host certificate
/// accepted as a plain key, or a new key recorded (accept-new).
fn host_key_notes(hop: &Hop, outcome: &Mutex<HostKeyOutcome>) -> (String, Vec<String>) {
    let outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
    let fingerprint = outcome.fingerprint.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    if let Some(problem) = &outcome.certificate_problem {
        // OpenSSH says so too: the CA setup is broken even though this connection is fine.
        warnings.push(format!(
            "host certificate of {} {problem}; accepted its key {fingerprint} as a plain host key",
            hop.label
        ));
    }
    if let Some(Verdict::Recorded { file }) = &outcome.verdict {
        warnings.push(format!(
            "host key of {} ({fingerprint}) was not known; recorded it in {} (accept-new)",
            hop.label,
            file.display()
        ));
    }
    (fingerprint, warnings)
}

/// sshd past its `MaxStartups` accepts the connection and closes it at once: before the
/// host key, the client sees the connection reset or closed. (A host key refusal or a
/// server that is not sshd at all fail differently.)
fn dropped_before_login(err: &russh::Error) -> bool {
    use std::io::ErrorKind;
    match err {
        russh::Error::IO(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::BrokenPipe
        ),
        russh::Error::Disconnect | russh::Error::HUP => true,
        _ => false,
    }
}

/// A running ProxyCommand: its stdout and stdin joined into the stream the session runs
/// over, and the tail of what it writes on stderr (ready when the pipe closes) for the error
/// message.
struct ProxyCommand {
    child: tokio::process::Child,
    stream: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    stderr: tokio::task::JoinHandle<String>,
}

impl ProxyCommand {
    /// Runs `command` with `sh -c`, as OpenSSH runs it with the user's shell.
    fn spawn(command: &str) -> std::io::Result<Self> {
        use tokio::io::AsyncReadExt;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let missing = || std::io::Error::other("the command's pipes are missing");
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let mut pipe = child.stderr.take().ok_or_else(missing)?;
        let stderr = tokio::spawn(async move {
            const KEPT: usize = 16 * 1024;
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                // Bounded, keeping the end: only the last lines are ever shown.
                if tail.len() > 2 * KEPT {
                    tail.drain(..tail.len() - KEPT);
                }
            }
            String::from_utf8_lossy(&tail).into_owned()
        });
        Ok(ProxyCommand {
            child,
            stream: tokio::io::join(stdout, stdin),
            stderr,
        })
    }
}

/// The last three non-empty lines of `text`, joined; `None` when there are none.
fn last_lines(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    (!lines.is_empty()).then(|| lines[start..].join(" / "))
}

fn host_key_error(ship: &str, hop: &Hop, outcome: &HostKeyOutcome) -> Option<TransportError> {
    let fingerprint = outcome.fingerprint.clone().unwrap_or_default();
    match outcome.verdict.as_ref()? {
        Verdict::Unknown => Some(TransportError::HostKeyUnknown {
            ship: ship.to_string(),
            hop: hop.label.clone(),
            hint: match &hop.record_file {
                Some(file) => format!(
                    "If {fingerprint} is the right key for {}:{}, accept it with \
                     --accept-new-host-keys or the ship setting `ssh: {{known_hosts: accept-new}}` \
                     (it is then recorded in {}), or add it with `ssh-keyscan -p {} {} >> {}`",
                    hop.host,
                    hop.port,
                    file.display(),
                    hop.port,
                    hop.host,
                    shell_word(&file.display().to_string()),
                ),
                // `UserKnownHostsFile none`: accept-new has nowhere to record it.
                None => format!(
                    "If {fingerprint} is the right key for {}:{}, add it to a known_hosts file \
                     with `ssh-keyscan -p {} {}` (ssh_config's UserKnownHostsFile is none, so \
                     --accept-new-host-keys has nowhere to record it), or name one with the \
                     ship setting `ssh: {{known_hosts_file: FILE}}`",
                    hop.host, hop.port, hop.port, hop.host,
                ),
            },
            fingerprint,
        }),
        Verdict::Changed {
            expected,
            recorded_types,
            offered_type,
            file,
            line,
        } => Some(TransportError::HostKeyChanged {
            ship: ship.to_string(),
            hop: hop.label.clone(),
            found: fingerprint,
            expected: expected.clone().into(),
            record: Box::new(super::error::ChangedKeyRecord {
                at: format!("{}:{line}", file.display()),
                // known_hosts names a host on another port than 22 `[host]:port`.
                forget: format!(
                    "ssh-keygen -f {} -R {}",
                    shell_word(&file.display().to_string()),
                    if hop.port == 22 {
                        hop.host.clone()
                    } else {
                        format!("'[{}]:{}'", hop.host, hop.port)
                    }
                ),
                offered_type: offered_type.clone(),
                types_on_record: recorded_types.clone(),
            }),
        }),
        Verdict::Revoked { file } => Some(TransportError::HostKeyRevoked {
            ship: ship.to_string(),
            hop: hop.label.clone(),
            fingerprint,
            file: file.clone(),
        }),
        Verdict::FileError { file, reason } => Some(TransportError::KnownHosts {
            ship: ship.to_string(),
            path: file.clone(),
            reason: reason.clone(),
        }),
        Verdict::CaRevoked { ca, file } => Some(TransportError::HostCaRevoked {
            ship: ship.to_string(),
            hop: hop.label.clone(),
            ca: ca.clone(),
            file: file.clone(),
        }),
        Verdict::BadCertificate { problem } => Some(TransportError::HostCertificate {
            ship: ship.to_string(),
            hop: hop.label.clone(),
            problem: problem.to_string(),
            fingerprint,
        }),
        Verdict::Known | Verdict::Recorded { .. } | Verdict::Certified => None,
    }
}

/// `text` as one word of a shell command the operator may paste: as is when it is plain,
/// else in single quotes (a known_hosts path may hold blanks, e.g. from UserKnownHostsFile).
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=~".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn io_error(ship: &str, hop: &str, timeout: Duration, source: std::io::Error) -> TransportError {
    match source.kind() {
        std::io::ErrorKind::ConnectionRefused => TransportError::Refused {
            ship: ship.to_string(),
            hop: hop.to_string(),
            via: None,
        },
        std::io::ErrorKind::TimedOut => TransportError::Timeout {
            ship: ship.to_string(),
            hop: hop.to_string(),
            after: timeout,
        },
        _ => TransportError::Io {
            ship: ship.to_string(),
            hop: hop.to_string(),
            source,
        },
    }
}

fn ssh_error(ship: &str, hop: &str, timeout: Duration, err: russh::Error) -> TransportError {
    match err {
        russh::Error::IO(source) => io_error(ship, hop, timeout, source),
        other => TransportError::Ssh {
            ship: ship.to_string(),
            hop: hop.to_string(),
            source: Box::new(other),
        },
    }
}

/// The passphrase source: the environment, else the terminal, else none.
async fn passphrase_for(path: &Path, batch_mode: bool, given: Option<&str>) -> Option<String> {
    if let Some(passphrase) = given {
        return Some(passphrase.to_string());
    }
    use std::io::IsTerminal;
    if batch_mode || !std::io::stdin().is_terminal() {
        return None;
    }
    static PROMPT_LOCK: tokio::sync::Mutex<Vec<(PathBuf, String)>> =
        tokio::sync::Mutex::const_new(Vec::new());
    // Ships connect concurrently: one prompt at a time, and one per key for the whole run.
    let mut cache = PROMPT_LOCK.lock().await;
    if let Some((_, known)) = cache.iter().find(|(p, _)| p == path) {
        return Some(known.clone());
    }
    let prompt = format!("Enter passphrase for key {}: ", path.display());
    let answer = tokio::task::spawn_blocking(move || read_hidden(&prompt))
        .await
        .ok()
        .flatten()?;
    cache.push((path.to_path_buf(), answer.clone()));
    Some(answer)
}

fn read_hidden(prompt: &str) -> Option<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(
                tty.try_clone()
                    .ok()
                    .map(std::process::Stdio::from)
                    .unwrap_or_else(std::process::Stdio::null),
            )
            .status()
    };
    let mut writer = tty.try_clone().ok()?;
    let _ = write!(writer, "{prompt}");
    let _ = writer.flush();
    let _ = stty("-echo");
    let mut line = String::new();
    let read = std::io::BufReader::new(tty.try_clone().ok()?).read_line(&mut line);
    let _ = stty("echo");
    let _ = writeln!(writer);
    read.ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = ssh_config::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .collect()
}

/// OpenSSH refuses private keys that others can read; we use them but say so.
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "private key {} is accessible by others (mode {:o}); OpenSSH would refuse it: chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    hop: &Hop,
    options: &ConnectOptions,
    warnings: &mut Vec<String>,
) -> Result<String, TransportError> {
    let mut tried: Vec<String> = Vec::new();
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    // 1. ssh-agent.
    if options.agent_socket.is_some()
        && let Some(method) = try_agent(handle, hop, options, rsa_hash, &mut tried).await?
    {
        return Ok(method);
    }
    // 2. Key files named in the settings or ssh_config, 3. the defaults.
    let explicit = hop.identity_files.clone();
    let defaults: Vec<PathBuf> = default_identity_files()
        .into_iter()
        .filter(|path| !explicit.contains(path))
        .collect();
    for (path, named) in explicit
        .iter()
        .map(|p| (p, true))
        .chain(defaults.iter().map(|p| (p, false)))
    {
        let key = KeyAttempt {
            path,
            named,
            rsa_hash,
        };
        if let Some(method) = try_key_file(handle, hop, options, key, &mut tried, warnings).await? {
            return Ok(method);
        }
    }
    Err(auth_error(&options.ship, hop, tried))
}

/// Every identity of the ssh-agent (those of `IdentitiesOnly`'s files only, when set): the
/// method that worked, or None with what was tried added to `tried`.
async fn try_agent(
    handle: &mut Handle<HostKeyCheck>,
    hop: &Hop,
    options: &ConnectOptions,
    rsa_hash: Option<HashAlg>,
    tried: &mut Vec<String>,
) -> Result<Option<String>, TransportError> {
    let ship = &options.ship;
    let connected = match &options.agent_socket {
        Some(path) => AgentClient::connect_uds(path).await,
        None => AgentClient::connect_env().await,
    };
    match connected {
        Ok(mut agent) => {
            let mut identities = agent.request_identities().await.unwrap_or_default();
            if identities.is_empty() {
                tried.push("ssh-agent (no keys)".into());
            } else if hop.identities_only {
                let allowed = public_keys_beside(&hop.identity_files);
                identities.retain(|identity| match identity {
                    AgentIdentity::PublicKey { key, .. } => allowed
                        .iter()
                        .any(|allowed| allowed.key_data() == key.key_data()),
                    AgentIdentity::Certificate { .. } => false,
                });
                if identities.is_empty() {
                    tried.push(
                        "ssh-agent (IdentitiesOnly: none of its keys is a configured key file)"
                            .into(),
                    );
                }
            }
            for identity in identities {
                let (described, result) = match &identity {
                    AgentIdentity::PublicKey { key, comment } => {
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash
                        } else {
                            None
                        };
                        (
                            format!("ssh-agent key {} {comment}", known_hosts::fingerprint(key)),
                            tokio::time::timeout(
                                options.timeout,
                                handle.authenticate_publickey_with(
                                    &hop.user,
                                    key.clone(),
                                    hash,
                                    &mut agent,
                                ),
                            )
                            .await,
                        )
                    }
                    AgentIdentity::Certificate {
                        certificate,
                        comment,
                    } => (
                        format!("ssh-agent certificate {comment}"),
                        tokio::time::timeout(
                            options.timeout,
                            handle.authenticate_certificate_with(
                                &hop.user,
                                certificate.clone(),
                                rsa_hash,
                                &mut agent,
                            ),
                        )
                        .await,
                    ),
                };
                let answer = match &result {
                    Err(_) => "no answer".to_string(),
                    Ok(Ok(AuthResult::Success)) => "accepted".to_string(),
                    Ok(Ok(_)) => "rejected".to_string(),
                    Ok(Err(err)) => err.to_string(),
                };
                tracing::debug!(
                    "{}: login as {}: {described}: {answer}",
                    hop.label,
                    hop.user
                );
                match result {
                    Err(_) => return Err(timeout_err(ship, hop, options)),
                    Ok(Ok(AuthResult::Success)) => return Ok(Some(described)),
                    Ok(Ok(_)) => tried.push(format!("{described}: rejected")),
                    Ok(Err(err)) => tried.push(format!("{described}: {err}")),
                }
                if handle.is_closed() {
                    return Err(auth_error(ship, hop, std::mem::take(tried)));
                }
            }
        }
        Err(err) => {
            tracing::debug!("{}: ssh-agent: {err}", hop.label);
            tried.push(format!("ssh-agent: {err}"));
        }
    }
    Ok(None)
}

/// What the server said to one login attempt, for the diagnostic log.
fn answer_text(result: &Result<AuthResult, russh::Error>) -> String {
    match result {
        Ok(result) if result.success() => "accepted".to_string(),
        Ok(_) => "rejected".to_string(),
        Err(err) => err.to_string(),
    }
}

/// One key file to log in with.
struct KeyAttempt<'a> {
    path: &'a PathBuf,
    /// Named in the settings or ssh_config (a missing default file is not worth a word).
    named: bool,
    rsa_hash: Option<HashAlg>,
}

/// One key file: its certificate beside it first, if any, then the key itself. The method
/// that worked, or None with what was tried added to `tried`.
async fn try_key_file(
    handle: &mut Handle<HostKeyCheck>,
    hop: &Hop,
    options: &ConnectOptions,
    key: KeyAttempt<'_>,
    tried: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, TransportError> {
    let KeyAttempt {
        path,
        named,
        rsa_hash,
    } = key;
    let ship = &options.ship;
    let network = |err: russh::Error| ssh_error(ship, &hop.label, options.timeout, err);
    if !path.exists() {
        if named {
            tried.push(format!("key {}: no such file", path.display()));
        }
        return Ok(None);
    }
    let key = match load_key(path, options).await {
        Ok(key) => key,
        Err(reason) => {
            tracing::debug!("{}: key {}: {reason}", hop.label, path.display());
            tried.push(format!("key {}: {reason}", path.display()));
            return Ok(None);
        }
    };
    if let Some(warning) = permission_warning(path)
        && !warnings.contains(&warning)
    {
        warnings.push(warning);
    }
    let key = Arc::new(key);
    if let Some(cert) = certificate_beside(path) {
        let result = tokio::time::timeout(
            options.timeout,
            handle.authenticate_openssh_cert(&hop.user, key.clone(), cert),
        )
        .await
        .map_err(|_| timeout_err(ship, hop, options))?;
        tracing::debug!(
            "{}: login as {}: certificate {}-cert.pub: {}",
            hop.label,
            hop.user,
            path.display(),
            answer_text(&result)
        );
        match result {
            Ok(result) if result.success() => {
                return Ok(Some(format!("certificate {}-cert.pub", path.display())));
            }
            Ok(_) => tried.push(format!("certificate {}-cert.pub: rejected", path.display())),
            Err(err) => {
                give_up_if_closed(handle, ship, hop, tried, err, &network)?;
            }
        }
    }
    let hash = if key.algorithm().is_rsa() {
        rsa_hash
    } else {
        None
    };
    let result = tokio::time::timeout(
        options.timeout,
        handle.authenticate_publickey(&hop.user, PrivateKeyWithHashAlg::new(key, hash)),
    )
    .await
    .map_err(|_| timeout_err(ship, hop, options))?;
    tracing::debug!(
        "{}: login as {}: key {}: {}",
        hop.label,
        hop.user,
        path.display(),
        answer_text(&result)
    );
    match result {
        Ok(result) if result.success() => return Ok(Some(format!("key {}", path.display()))),
        Ok(_) => tried.push(format!("key {}: rejected", path.display())),
        Err(err) => give_up_if_closed(handle, ship, hop, tried, err, &network)?,
    }
    Ok(None)
}

/// The public keys of `files`, read from the `.pub` beside each (the private key may be
/// encrypted); files without one are left out.
fn public_keys_beside(files: &[PathBuf]) -> Vec<russh::keys::PublicKey> {
    files
        .iter()
        .filter_map(|path| {
            let mut public = path.clone().into_os_string();
            public.push(".pub");
            let text = std::fs::read_to_string(public).ok()?;
            russh::keys::PublicKey::from_openssh(text.trim()).ok()
        })
        .collect()
}

/// sshd drops the connection after `MaxAuthTries` failures: that is an authentication
/// failure (with the list of what was tried), not a network one.
fn give_up_if_closed(
    handle: &Handle<HostKeyCheck>,
    ship: &str,
    hop: &Hop,
    tried: &mut Vec<String>,
    err: russh::Error,
    network: &dyn Fn(russh::Error) -> TransportError,
) -> Result<(), TransportError> {
    if handle.is_closed() || matches!(err, russh::Error::Disconnect) {
        tried.push(format!(
            "the server closed the connection ({err}; too many attempts for its MaxAuthTries?)"
        ));
        return Err(auth_error(ship, hop, std::mem::take(tried)));
    }
    Err(network(err))
}

fn timeout_err(ship: &str, hop: &Hop, options: &ConnectOptions) -> TransportError {
    TransportError::Timeout {
        ship: ship.to_string(),
        hop: hop.label.clone(),
        after: options.timeout,
    }
}

fn auth_error(ship: &str, hop: &Hop, tried: Vec<String>) -> TransportError {
    TransportError::Auth {
        ship: ship.to_string(),
        hop: hop.label.clone(),
        user: hop.user.clone(),
        tried,
    }
}

async fn load_key(path: &Path, options: &ConnectOptions) -> Result<PrivateKey, String> {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let Some(passphrase) =
                passphrase_for(path, options.batch_mode, options.passphrase.as_deref()).await
            else {
                return Err(
                    "encrypted, and no passphrase: set MAESTRO_SSH_PASSPHRASE or run \
                            from a terminal to be asked"
                        .into(),
                );
            };
            russh::keys::load_secret_key(path, Some(&passphrase))
                .map_err(|err| format!("cannot decrypt it (wrong passphrase?): {err}"))
        }
        Err(err) => Err(format!("unreadable: {err}")),
    }
}

fn certificate_beside(path: &Path) -> Option<Certificate> {
    let mut cert_path = path.as_os_str().to_owned();
    cert_path.push("-cert.pub");
    russh::keys::load_openssh_certificate(PathBuf::from(cert_path)).ok()
}

/// A boxed bidirectional byte stream.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

#[cfg(test)]
mod tests {
    use russh::keys::Algorithm;
    use russh::keys::ssh_key::EcdsaCurve;

    #[test]
    fn every_user_and_global_known_hosts_file_is_read_and_new_keys_go_to_the_first_user_file() {
        use super::{HostKeyPolicy, HostSettings, Verdict, known_hosts, ssh_config};
        use std::path::PathBuf;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path();
        let tokens = ssh_config::FileTokens {
            home: Some(home),
            local_user: "me",
            host: "10.0.0.1",
            original_host: "web",
            port: 22,
            remote_user: "deploy",
        };
        // Injected: the real /etc/ssh of the machine running the tests is never read.
        let global_default = format!("{0}/global1 {0}/global2", home.display());
        let settings = HostSettings {
            user_known_hosts_files: Some("~/kh_%n_%h \"%d/second file\"".into()),
            ..HostSettings::default()
        };
        let (files, record) =
            super::known_hosts_files(None, &settings, &tokens, &global_default).expect("files");
        assert_eq!(
            files,
            vec![
                home.join("kh_web_10.0.0.1"),
                home.join("second file"),
                home.join("global1"),
                home.join("global2"),
            ]
        );
        assert_eq!(record, Some(home.join("kh_web_10.0.0.1")));

        // A key only in a global file is known; a new key is recorded in the first user file.
        let key = |b64: &str| russh::keys::parse_public_key_base64(b64).expect("key");
        let known = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
        let new = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
        std::fs::write(
            home.join("global2"),
            format!("10.0.0.1 ssh-ed25519 {known}\n"),
        )
        .expect("write");
        let verify = |b64: &str, host: &str| {
            known_hosts::verify(
                host,
                22,
                &key(b64),
                &files,
                known_hosts::accept_new_into(HostKeyPolicy::AcceptNew, record.as_deref()),
            )
        };
        assert!(matches!(verify(known, "10.0.0.1"), Verdict::Known));
        assert!(matches!(verify(new, "10.0.0.1"), Verdict::Changed { .. }));
        match verify(new, "10.0.0.9") {
            Verdict::Recorded { file } => assert_eq!(file, home.join("kh_web_10.0.0.1")),
            other => panic!("expected Recorded, got {other:?}"),
        }

        // `UserKnownHostsFile none`: globals still read, nothing to record into.
        let none = HostSettings {
            user_known_hosts_files: Some("none".into()),
            global_known_hosts_files: Some("%d/site_known_hosts".into()),
            ..HostSettings::default()
        };
        let (files, record) =
            super::known_hosts_files(None, &none, &tokens, &global_default).expect("files");
        assert_eq!(files, vec![home.join("site_known_hosts")]);
        assert_eq!(record, None);

        // OpenSSH's defaults, and the ship's own file alone when it names one.
        let (files, record) =
            super::known_hosts_files(None, &HostSettings::default(), &tokens, &global_default)
                .expect("files");
        assert_eq!(
            files[..2],
            [
                home.join(".ssh/known_hosts"),
                home.join(".ssh/known_hosts2")
            ]
        );
        assert_eq!(files.len(), 4);
        assert_eq!(record, Some(home.join(".ssh/known_hosts")));
        let explicit = PathBuf::from("/ship/kh");
        let (files, record) =
            super::known_hosts_files(Some(&explicit), &settings, &tokens, &global_default)
                .expect("files");
        assert_eq!(files, vec![explicit.clone()]);
        assert_eq!(record, Some(explicit));

        let bad = HostSettings {
            user_known_hosts_files: Some("~/kh_%C".into()),
            ..HostSettings::default()
        };
        let err = super::known_hosts_files(None, &bad, &tokens, &global_default)
            .expect_err("unknown token");
        assert!(err.contains("UserKnownHostsFile `~/kh_%C`"), "{err}");
    }

    #[test]
    fn paths_in_pasted_commands_are_quoted_when_they_need_it() {
        assert_eq!(
            super::shell_word("/root/.ssh/known_hosts"),
            "/root/.ssh/known_hosts"
        );
        assert_eq!(
            super::shell_word("/home/me/first kh"),
            "'/home/me/first kh'"
        );
        assert_eq!(super::shell_word("/a'b"), "'/a'\\''b'");
    }

    #[test]
    fn an_rsa_key_on_record_asks_for_sha2_rsa_signatures_first() {
        let default = russh::Preferred::default().key;
        let rsa_first = super::host_key_order(&default, &[Algorithm::Rsa { hash: None }]);
        assert_eq!(
            rsa_first[..3],
            [
                Algorithm::Rsa {
                    hash: Some(russh::keys::HashAlg::Sha512)
                },
                Algorithm::Rsa {
                    hash: Some(russh::keys::HashAlg::Sha256)
                },
                Algorithm::Rsa { hash: None },
            ]
        );
        assert_eq!(rsa_first.len(), default.len());
        let ecdsa = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        let ecdsa_first = super::host_key_order(&default, std::slice::from_ref(&ecdsa));
        assert_eq!(ecdsa_first[0], ecdsa);
        assert_eq!(ecdsa_first[1], Algorithm::Ed25519);
        assert_eq!(super::host_key_order(&default, &[]), default.to_vec());
    }

    use super::*;

    #[test]
    fn backoff_doubles_to_two_seconds_with_jitter() {
        for attempt in 1..10 {
            let base = 250u64 * (1 << attempt.min(3));
            let base = base.min(2000);
            let wait = backoff(attempt).as_millis() as u64;
            assert!(
                (base / 2..=base * 3 / 2).contains(&wait),
                "attempt {attempt}: {wait} ms"
            );
        }
    }

    #[tokio::test]
    async fn a_gate_shrinks_by_one_per_drop_down_to_one_place() {
        let gate = Gate::new(3);
        for _ in 0..5 {
            let place = gate.enter().await;
            gate.shrink(place);
        }
        assert_eq!(gate.size.load(Ordering::SeqCst), 1);
        assert_eq!(gate.places.available_permits(), 1);
        let place = gate.enter().await;
        assert!(place.is_some());
        assert_eq!(gate.places.available_permits(), 0);
    }

    #[test]
    fn a_shared_failure_is_told_in_each_ships_name() {
        let first = TransportError::Jump {
            ship: "a".into(),
            hop: "root@bastion:22".into(),
            source: Box::new(TransportError::Ssh {
                ship: "a".into(),
                hop: "root@bastion:22".into(),
                source: Box::new(russh::Error::Kex),
            }),
        };
        let text = first.for_ship("b").to_string();
        assert!(!text.contains("ship a"), "{text}");
        assert_eq!(
            text,
            "ship b: through jump host root@bastion:22: ship b: SSH protocol error with \
             root@bastion:22: Key exchange failed"
        );
        assert_eq!(first.for_ship("b").kind(), first.kind());
    }

    #[test]
    fn proxy_command_tokens() {
        assert_eq!(
            expand_proxy_tokens(
                "ssh -l %r -W %h:%p %n 100%% %x %",
                "10.0.0.1",
                2222,
                "ops",
                "web"
            ),
            Ok("ssh -l ops -W 10.0.0.1:2222 web 100% %x %".to_string())
        );
        let refused = expand_proxy_tokens("nc %h %p", "10.0.0.1$(touch /tmp/x)", 22, "ops", "w");
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("%h would be `10.0.0.1$(touch /tmp/x)`")),
            "{refused:?}"
        );
        assert!(
            expand_proxy_tokens("nc %h %p", "h", 22, "a;b", "w").is_ok(),
            "%r unused"
        );
        assert!(expand_proxy_tokens("ssh -l %r -W %h:%p g", "h", 22, "a;b", "w").is_err());
        assert!(expand_proxy_tokens("nc %n %p", "h", 22, "u", "-oProxyCommand=x").is_err());
    }
}
