//! The persist daemon (see `warm.rs` for the protocol and the decisions): holds the SSH
//! sessions of the routes commands asked for, opens channels on them, and relays each
//! channel's bytes to the command's unix-socket connection.
//!
//! Sessions come from a [`SessionPool`] per login context (identity files' contents, agent,
//! HOME, batch mode: what the pool's own key, the hops, does not hold), kept for the
//! daemon's life, so ships behind the same jump host share its login across commands too. A session found dead (closed, or a
//! channel open failing on it) is forgotten and logged in again, once per request. The
//! daemon exits after the idle time with no channel open (the latest request's `persist`
//! sets it), on `persist stop`, and closes every session when it does.
//!
//! Spare channels: per route, [`SPARES`] channels to the Docker target are kept open ahead
//! of the next command (refilled after each use), so a warm command's first requests do
//! not wait for a channel open: a warm `status` is one round trip, its list. A spare is
//! checked before it is handed out (one the ship closed, as when dockerd restarted, reads as
//! ended and is dropped); spares of a session that is replaced go with it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::error::{TransportError, TransportErrorKind};
use super::ssh::{self, SessionPool, SshChain};
use super::warm::{
    self, Answer, CapturedExec, ChannelTarget, DaemonRequest, RouteSpec, SessionStatus,
};

/// Channels kept open ahead, per route: as many as a command opens at once.
const SPARES: usize = super::connector::FIRST_CHANNELS;

/// How long a new daemon waits for the lock of one that is going away.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The idle time until a request says otherwise.
const DEFAULT_IDLE: Duration = Duration::from_secs(600);

struct RouteEntry {
    label: String,
    ships: Mutex<BTreeSet<String>>,
    created: Instant,
    last_used: Mutex<Instant>,
    chain: tokio::sync::Mutex<Option<Arc<SshChain>>>,
    /// Channels opened ahead on the current chain, with their target.
    spares: Mutex<Vec<(super::DockerTarget, super::connector::SpareChannel)>>,
    /// Channels being opened to join `spares` (see [`refill`]).
    opening: AtomicUsize,
}

/// A channel opened on a route's session, or why not (with the session, when the login
/// worked).
type Opened = Result<
    (super::connector::SpareChannel, Arc<SshChain>),
    (TransportError, Option<Arc<SshChain>>),
>;

struct Daemon {
    uid: u32,
    socket: Option<std::path::PathBuf>,
    pools: Mutex<HashMap<String, SessionPool>>,
    routes: Mutex<HashMap<String, Arc<RouteEntry>>>,
    /// Connections being served (channels relayed included).
    active: AtomicUsize,
    last_activity: Mutex<Instant>,
    idle: Mutex<Duration>,
    stop: tokio::sync::Notify,
}

/// Runs the daemon in `dir` until it is idle or stopped. Returns the exit code.
pub async fn serve(dir: &Path) -> i32 {
    let Some((lock, listener, socket)) = listen(dir).await else {
        return 1;
    };
    let daemon = Arc::new(Daemon {
        uid: rustix::process::getuid().as_raw(),
        socket: Some(socket.clone()),
        pools: Mutex::new(HashMap::new()),
        routes: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        last_activity: Mutex::new(Instant::now()),
        idle: Mutex::new(DEFAULT_IDLE),
        stop: tokio::sync::Notify::new(),
    });
    eprintln_log(&format!(
        "listening at {} (maestro {}, protocol {})",
        socket.display(),
        warm::VERSION,
        warm::PROTOCOL
    ));
    daemon.accept_until_done(&listener).await;
    // No new command finds a daemon that is going away, and the next one may start now.
    let _ = std::fs::remove_file(&socket);
    drop(lock);
    daemon.close_all().await;
    0
}

/// The daemon's lock (held for its life), its listener and socket path; None when another
/// daemon serves `dir` (or is starting there), or on an error, which is logged.
async fn listen(dir: &Path) -> Option<(std::fs::File, UnixListener, std::path::PathBuf)> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(warm::LOCK))
        .inspect_err(|err| eprintln_log(&format!("cannot open {}: {err}", warm::LOCK)))
        .ok()?;
    let socket = dir.join(warm::SOCKET);
    // Another daemon holds the lock: it is serving (it answers the commands), or starting,
    // or closing its sessions after its socket went (it lets go of the lock at once then).
    let began = Instant::now();
    while lock.try_lock().is_err() {
        if UnixStream::connect(&socket).await.is_ok() || began.elapsed() > LOCK_WAIT {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .inspect_err(|err| eprintln_log(&format!("cannot listen at {}: {err}", socket.display())))
        .ok()?;
    if let Err(err) = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)) {
        eprintln_log(&format!("cannot make {} private: {err}", socket.display()));
        let _ = std::fs::remove_file(&socket);
        return None;
    }
    Some((lock, listener, socket))
}

fn lock_of<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The daemon's stderr is its log file.
fn eprintln_log(text: &str) {
    use std::io::Write;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = writeln!(std::io::stderr(), "{stamp} maestro persist: {text}");
}

impl Daemon {
    /// The pool of `route`'s login context.
    fn pool(&self, route: &RouteSpec) -> SessionPool {
        let context = serde_json::json!([
            route.identities_digest,
            route.agent_socket,
            route.home,
            route.batch_mode,
        ])
        .to_string();
        lock_of(&self.pools).entry(context).or_default().clone()
    }

    /// Serves connections until `persist stop`, or the idle time with none open.
    async fn accept_until_done(self: &Arc<Self>, listener: &UnixListener) {
        loop {
            let deadline = {
                let last = *lock_of(&self.last_activity);
                let idle = *lock_of(&self.idle);
                last + idle
            };
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        self.touch();
                        self.active.fetch_add(1, Ordering::SeqCst);
                        let daemon = self.clone();
                        tokio::spawn(async move {
                            daemon.serve_one(stream).await;
                            daemon.touch();
                            daemon.active.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                }
                _ = self.stop.notified() => {
                    eprintln_log("stopped by `maestro persist stop`");
                    return;
                }
                // Wakes at least every second: the idle time may have changed.
                _ = tokio::time::sleep_until(
                    tokio::time::Instant::from_std(deadline.min(Instant::now() + Duration::from_secs(1)))
                ) => {
                    let idle = *lock_of(&self.idle);
                    let quiet = lock_of(&self.last_activity).elapsed() >= idle;
                    if quiet && self.active.load(Ordering::SeqCst) == 0 {
                        eprintln_log(&format!("idle for {}s: exiting", idle.as_secs_f32()));
                        return;
                    }
                }
            }
        }
    }

    /// Closes every session held (their channels with them), and the pools' jump sessions.
    async fn close_all(&self) {
        let routes: Vec<Arc<RouteEntry>> = lock_of(&self.routes).values().cloned().collect();
        for route in routes {
            let chain = route.chain.lock().await.take();
            if let Some(chain) = chain {
                chain.disconnect().await;
            }
        }
        let pools: Vec<SessionPool> = lock_of(&self.pools).drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.close().await;
        }
    }

    fn touch(&self) {
        *lock_of(&self.last_activity) = Instant::now();
    }

    async fn serve_one(&self, stream: UnixStream) {
        let mut stream = BufReader::new(stream);
        let Some(request) = self.read_request(&mut stream).await else {
            return;
        };
        match request {
            DaemonRequest::Hello => {
                let answer = Answer {
                    ok: true,
                    protocol: Some(warm::PROTOCOL),
                    version: Some(warm::VERSION.to_string()),
                    ..Answer::default()
                };
                let _ = reply(&mut stream, &answer).await;
            }
            DaemonRequest::Status => {
                let answer = Answer {
                    ok: true,
                    sessions: self.sessions().await,
                    ..Answer::default()
                };
                let _ = reply(&mut stream, &answer).await;
            }
            DaemonRequest::Stop => {
                // Gone before the answer: the command after `persist stop` starts a new one.
                if let Some(socket) = &self.socket {
                    let _ = std::fs::remove_file(socket);
                }
                let ok = Answer {
                    ok: true,
                    ..Answer::default()
                };
                let _ = reply(&mut stream, &ok).await;
                self.stop.notify_one();
            }
            DaemonRequest::Open {
                ship,
                key,
                route,
                target,
                idle_ms,
                passphrase,
            } => {
                *lock_of(&self.idle) = Duration::from_millis(idle_ms);
                let entry = self.entry(&key, &ship, &route);
                let opened = self
                    .open(&entry, &ship, &route, &target, passphrase.as_deref())
                    .await;
                relay(stream, &entry, &ship, &target, opened).await;
            }
            DaemonRequest::Exec {
                ship,
                key,
                route,
                command,
                idle_ms,
                passphrase,
            } => {
                *lock_of(&self.idle) = Duration::from_millis(idle_ms);
                let entry = self.entry(&key, &ship, &route);
                let answer = self
                    .exec(&entry, &ship, &route, &command, passphrase.as_deref())
                    .await;
                *lock_of(&entry.last_used) = Instant::now();
                let _ = reply(&mut stream, &answer).await;
            }
        }
    }

    /// The connection's request, when it comes from our own uid (the socket reaches the
    /// ships' Docker daemons) and is understood; else it is answered with why not.
    async fn read_request(&self, stream: &mut BufReader<UnixStream>) -> Option<DaemonRequest> {
        let peer = stream.get_ref().peer_cred().map(|cred| cred.uid());
        if peer.as_ref().ok() != Some(&self.uid) {
            eprintln_log(&format!("refused a connection from uid {peer:?}"));
            let answer = Answer {
                ok: false,
                kind: Some("refused-peer".into()),
                message: Some(format!("this persist daemon serves uid {} only", self.uid)),
                ..Answer::default()
            };
            let _ = reply(stream, &answer).await;
            return None;
        }
        let mut line = String::new();
        stream.read_line(&mut line).await.ok()?;
        match serde_json::from_str(&line) {
            Ok(request) => Some(request),
            Err(err) => {
                let answer = Answer {
                    ok: false,
                    kind: Some("persist".into()),
                    message: Some(format!(
                        "a request not understood ({err}): is the background maestro of another \
                         version? run `maestro persist stop` and try again"
                    )),
                    ..Answer::default()
                };
                let _ = reply(stream, &answer).await;
                None
            }
        }
    }

    /// Runs `command` on the route's session, to its end.
    async fn exec(
        &self,
        entry: &RouteEntry,
        ship: &str,
        route: &RouteSpec,
        command: &str,
        passphrase: Option<&str>,
    ) -> Answer {
        let chain = match self.chain(entry, ship, route, false, passphrase).await {
            Ok(chain) => chain,
            Err(err) => return failure(ship, &err, None),
        };
        match chain.exec(command).await {
            Ok((status, stdout, stderr)) => Answer {
                ok: true,
                exec: Some(CapturedExec {
                    status,
                    stdout,
                    stderr,
                }),
                ..Answer::default()
            },
            Err(source) => failure(
                ship,
                &TransportErrorKind::Ssh {
                    hop: chain.ship_label().to_string(),
                    source: Arc::new(source),
                }
                .for_ship(ship),
                Some(&chain),
            ),
        }
    }

    fn entry(&self, key: &str, ship: &str, route: &RouteSpec) -> Arc<RouteEntry> {
        let entry = lock_of(&self.routes)
            .entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(RouteEntry {
                    label: route
                        .hops
                        .iter()
                        .map(|h| format!("{}@{}:{}", h.user, h.host, h.port))
                        .collect::<Vec<_>>()
                        .join(" -> "),
                    ships: Mutex::new(BTreeSet::new()),
                    created: Instant::now(),
                    last_used: Mutex::new(Instant::now()),
                    chain: tokio::sync::Mutex::new(None),
                    spares: Mutex::new(Vec::new()),
                    opening: AtomicUsize::new(0),
                })
            })
            .clone();
        lock_of(&entry.ships).insert(ship.to_string());
        *lock_of(&entry.last_used) = Instant::now();
        entry
    }

    /// The route's chain: the one held when it is alive (and `fresh` is not asked), else a
    /// new login, with the dead sessions forgotten.
    async fn chain(
        &self,
        entry: &RouteEntry,
        ship: &str,
        route: &RouteSpec,
        fresh: bool,
        passphrase: Option<&str>,
    ) -> Result<Arc<SshChain>, TransportError> {
        let pool = self.pool(route);
        let mut held = entry.chain.lock().await;
        if let Some(chain) = held.as_ref()
            && chain.is_alive()
            && !fresh
        {
            return Ok(chain.clone());
        }
        lock_of(&entry.spares).clear();
        if let Some(old) = held.take() {
            eprintln_log(&format!(
                "{}: session lost; logging in again",
                old.ship_label()
            ));
            old.disconnect().await;
            pool.forget(&route.hops);
        }
        pool.forget_closed();
        let options = ssh::LoginOptions {
            ship: ship.to_string(),
            timeout: Duration::from_millis(route.timeout_ms),
            keepalive: Duration::from_millis(route.keepalive_ms),
            // Never a passphrase prompt: the daemon is in a background process group of the
            // operator's terminal, where reading it would stop the daemon (SIGTTIN). An
            // encrypted key needs MAESTRO_SSH_PASSPHRASE or the agent, and says so.
            batch_mode: true,
            agent_socket: route.agent_socket.clone(),
            passphrase: passphrase
                .map(str::to_string)
                .or_else(|| std::env::var("MAESTRO_SSH_PASSPHRASE").ok()),
            prompt: None,
        };
        let chain = Arc::new(ssh::connect_chain(&route.hops, &options, &pool).await?);
        *held = Some(chain.clone());
        Ok(chain)
    }

    /// A channel to `target`; a session that fails to open one is logged in again, once.
    async fn open(
        &self,
        entry: &RouteEntry,
        ship: &str,
        route: &RouteSpec,
        target: &ChannelTarget,
        passphrase: Option<&str>,
    ) -> Opened {
        let timeout = Duration::from_millis(route.timeout_ms);
        let mut fresh = false;
        loop {
            let chain = self
                .chain(entry, ship, route, fresh, passphrase)
                .await
                .map_err(|err| (err, None))?;
            if let ChannelTarget::Docker(docker) = target
                && let Some(spare) = take_spare(entry, docker)
            {
                return Ok((spare, chain));
            }
            let opened = tokio::time::timeout(timeout, open_on(&chain, target)).await;
            match opened {
                Ok(Ok(channel)) => return Ok((channel, chain)),
                // The session may be dead without our knowing yet: once more, on a new one.
                Ok(Err(_)) if !fresh && !chain.is_alive() => fresh = true,
                Ok(Err(err))
                    if !fresh
                        && matches!(
                            err,
                            russh::Error::Disconnect
                                | russh::Error::SendError
                                | russh::Error::RecvError
                        ) =>
                {
                    fresh = true
                }
                Ok(Err(err)) => {
                    return Err((
                        diagnose(ship, &chain, target, timeout, err).await,
                        Some(chain),
                    ));
                }
                Err(_) => {
                    return Err((
                        TransportErrorKind::Timeout {
                            hop: format!("{} on {}", target_text(target), chain.ship_label()),
                            after: timeout,
                        }
                        .for_ship(ship),
                        Some(chain),
                    ));
                }
            }
        }
    }

    async fn sessions(&self) -> Vec<SessionStatus> {
        let routes: Vec<Arc<RouteEntry>> = lock_of(&self.routes).values().cloned().collect();
        let mut out = Vec::new();
        for route in routes {
            let alive = route
                .chain
                .lock()
                .await
                .as_ref()
                .is_some_and(|chain| chain.is_alive());
            out.push(SessionStatus {
                ships: lock_of(&route.ships).iter().cloned().collect(),
                route: route.label.clone(),
                age_secs: route.created.elapsed().as_secs(),
                idle_secs: lock_of(&route.last_used).elapsed().as_secs(),
                alive,
            });
        }
        out.sort_by(|a, b| a.ships.cmp(&b.ships));
        out
    }
}

/// A spare channel to `docker` that is still open (the ship has not ended it).
fn take_spare(
    entry: &RouteEntry,
    docker: &super::DockerTarget,
) -> Option<super::connector::SpareChannel> {
    use futures_util::FutureExt;
    use tokio::io::AsyncReadExt;
    loop {
        let mut spare = {
            let mut spares = lock_of(&entry.spares);
            let at = spares.iter().position(|(target, _)| target == docker)?;
            spares.swap_remove(at).1
        };
        // dockerd never speaks first: anything ready to read (its end, or bytes) means the
        // channel is not a fresh HTTP connection any more.
        let mut byte = [0u8; 1];
        if spare.read(&mut byte).now_or_never().is_none() {
            return Some(spare);
        }
    }
}

/// Opens channels to `docker` on `chain` until the route has [`SPARES`] of them, counting
/// those being opened: called at each handout, so a command that takes every spare at once
/// has them all replaced at once, one round trip later, not one round after another.
fn refill(entry: Arc<RouteEntry>, chain: Arc<SshChain>, docker: super::DockerTarget) {
    let wanted = {
        // Under the spares' lock, so that two handouts never both open the same shortfall.
        let spares = lock_of(&entry.spares);
        let have = spares
            .iter()
            .filter(|(target, _)| *target == docker)
            .count()
            + entry.opening.load(Ordering::SeqCst);
        let wanted = SPARES.saturating_sub(have);
        entry.opening.fetch_add(wanted, Ordering::SeqCst);
        wanted
    };
    if wanted == 0 {
        return;
    }
    tokio::spawn(async move {
        let target = ChannelTarget::Docker(docker.clone());
        let opened = if chain.is_alive() {
            futures_util::future::join_all((0..wanted).map(|_| open_on(&chain, &target))).await
        } else {
            Vec::new()
        };
        let mut spares = lock_of(&entry.spares);
        for channel in opened.into_iter().flatten() {
            spares.push((docker.clone(), channel));
        }
        entry.opening.fetch_sub(wanted, Ordering::SeqCst);
    });
}

/// Answers an `open` request and, when the channel opened, relays its bytes until either
/// side closes: the command's HTTP client, or the ship's end of the channel.
async fn relay(
    mut stream: BufReader<UnixStream>,
    entry: &Arc<RouteEntry>,
    ship: &str,
    target: &ChannelTarget,
    opened: Opened,
) {
    let (mut channel, chain) = match opened {
        Ok(opened) => opened,
        Err((err, chain)) => {
            let _ = reply(&mut stream, &failure(ship, &err, chain.as_deref())).await;
            return;
        }
    };
    if let ChannelTarget::Docker(docker) = target {
        refill(entry.clone(), chain.clone(), docker.clone());
    }
    let answer = Answer {
        ok: true,
        hops: chain.hops.clone(),
        warnings: chain.warnings.clone(),
        ..Answer::default()
    };
    if reply(&mut stream, &answer).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut channel).await;
    *lock_of(&entry.last_used) = Instant::now();
}

async fn open_on(
    chain: &SshChain,
    target: &ChannelTarget,
) -> Result<super::connector::SpareChannel, russh::Error> {
    let stream = match target {
        ChannelTarget::Docker(super::DockerTarget::Socket(path)) => {
            chain.open_streamlocal(path).await?
        }
        ChannelTarget::Docker(super::DockerTarget::Tcp(port)) => {
            chain.open_tcpip("127.0.0.1", *port).await?
        }
        ChannelTarget::Tcp { host, port } => chain.open_tcpip(host, *port).await?,
    };
    Ok(Box::new(stream))
}

fn target_text(target: &ChannelTarget) -> String {
    match target {
        ChannelTarget::Docker(docker) => docker.to_string(),
        ChannelTarget::Tcp { host, port } => format!("{host}:{port}"),
    }
}

/// The error a command connecting directly would have met for this failed channel.
async fn diagnose(
    ship: &str,
    chain: &SshChain,
    target: &ChannelTarget,
    timeout: Duration,
    err: russh::Error,
) -> TransportError {
    match target {
        ChannelTarget::Docker(docker) => {
            match super::connector::check_docker_channel(ship, chain, docker, timeout).await {
                Err(err) => err,
                // It opened this time: report the first failure as it was.
                Ok(_) => TransportErrorKind::Ssh {
                    hop: chain.ship_label().to_string(),
                    source: Arc::new(err),
                }
                .for_ship(ship),
            }
        }
        ChannelTarget::Tcp { host, port } => match err {
            russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed) => {
                TransportErrorKind::Refused {
                    hop: format!("{host}:{port}"),
                    via: Some(chain.ship_label().to_string()),
                }
                .for_ship(ship)
            }
            other => TransportErrorKind::Ssh {
                hop: chain.ship_label().to_string(),
                source: Arc::new(other),
            }
            .for_ship(ship),
        },
    }
}

fn failure(ship: &str, err: &TransportError, chain: Option<&SshChain>) -> Answer {
    let text = err.to_string();
    let message = text
        .strip_prefix(&format!("ship {ship}: "))
        .unwrap_or(&text)
        .to_string();
    Answer {
        ok: false,
        kind: Some(err.code().to_string()),
        message: Some(message),
        after_login: chain.is_some(),
        hops: chain.map(|c| c.hops.clone()).unwrap_or_default(),
        warnings: chain.map(|c| c.warnings.clone()).unwrap_or_default(),
        ..Answer::default()
    }
}

async fn reply(stream: &mut BufReader<UnixStream>, answer: &Answer) -> std::io::Result<()> {
    let mut line = serde_json::to_string(answer).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.get_mut().write_all(line.as_bytes()).await
}
