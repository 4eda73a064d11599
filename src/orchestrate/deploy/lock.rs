//! The deploy lock: one per environment per ship, so that two operators never change the
//! same ships at once.
//!
//! Decisions (see docs/security.md, "The deploy lock"):
//! - In the ship's Docker daemon, not on its filesystem: the lock is a container that is
//!   created and never started, named `maestro-lock.ENV.SHIP`, with its holder's record in a
//!   label (see `docker::Ship::claim_lock`). A name is unique in a daemon, so of concurrent
//!   creates exactly one wins. It reaches every ship a deploy reaches (SSH to the socket or a
//!   port, TCP, TLS, a local socket), needs no shell, no login shell of a given kind and no
//!   session channel, and only who may use the daemon can see or touch it: a user of the ship
//!   without Docker access cannot plant or forge it.
//! - One round trip per ship to take it and one to release it, on every ship at once, each
//!   as soon as that ship's connection is up. All or nothing, and nobody ever waits: a ship
//!   whose lock is held makes the command release what it took and fail, so two operators
//!   never deadlock.
//! - Released by container id, never by name: a release removes only the lock it took, and
//!   `lock release --force` only the lock it read.
//! - Who holds it: `MAESTRO_LOCK_HOLDER` if set, else `user@host` of this machine. A
//!   command's own lock admits nobody, not even its own operator's next command; a
//!   maintenance lock (`maestro lock acquire`) admits its holder's commands, which then take
//!   and release nothing.
//! - A holder is dead only on proof: its record names this kernel's boot and this pid
//!   namespace (Linux: `/proc/sys/kernel/random/boot_id` and `/proc/self/ns/pid`), and its
//!   pid is gone there or belongs to a process started at another time. A host name proves
//!   nothing (two CI machines, two containers), so anything less is `lock release --force`'s,
//!   the operator's decision. A command's lock whose holder is proven dead protects nothing
//!   and is taken over by the next command, with a warning.
//! - The record came from another operator or from whoever can use the daemon: every text of
//!   it is made printable before it is shown.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use crate::clock::{format_unix_time, now_secs};
use crate::config::{Environment, LOCK_CONTAINER_PREFIX};
use crate::docker::{self, DockerError, LockClaim};
use crate::orchestrate::engine::executor::Cancel;
use crate::orchestrate::engine::fleet::Fleet;
use crate::printable::printable;
use crate::transport::TransportError;

/// The environment variable that names the holder instead of `user@host`.
pub const HOLDER_ENV: &str = "MAESTRO_LOCK_HOLDER";

/// What a lock protects the ships from: a command's own run, or a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    Command,
    Maintenance,
}

/// The record of a lock's holder, kept in the lock container's label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host`, or `MAESTRO_LOCK_HOLDER`.
    pub holder: String,
    /// The machine the holder's process runs on (its uname nodename), for people to read.
    pub host: String,
    /// What proves the holder's process is on this machine: this boot of its kernel and its
    /// pid namespace (`BOOT_ID/pid:[INODE]`); `None` where that cannot be known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub pid: u32,
    /// When that process started, in clock ticks since boot: a pid reused by another
    /// process has another start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// The command that took it: `start`, `restart`, `lock acquire`.
    pub command: String,
    /// Unix seconds.
    pub since: u64,
    pub kind: LockKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unique per acquisition: a create whose answer was lost is recognised by it.
    pub token: String,
}

impl Holder {
    /// This process as the holder of a lock taken for `command`.
    pub fn ours(command: &str, kind: LockKind, message: Option<String>) -> Holder {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let pid = std::process::id();
        Holder {
            holder: operator(),
            host: this_host(),
            machine: identity::this_machine(),
            pid,
            started: identity::process_start(pid),
            command: command.to_string(),
            since: now.as_secs(),
            kind,
            message,
            token: format!("{pid:x}-{:x}", now.as_nanos()),
        }
    }

    /// The record as a lock label holds it; `None` when it is not one.
    pub fn parse(record: &str) -> Option<Holder> {
        serde_json::from_str(record).ok()
    }

    /// Whether the holder's process is alive, when that can be proven either way: `None`
    /// for a maintenance lock (it outlives the `lock acquire` that took it) and for a
    /// process that is not provably on this machine and in this pid namespace.
    pub fn alive(&self) -> Option<bool> {
        if self.kind != LockKind::Command {
            return None;
        }
        let here = identity::this_machine()?;
        (self.machine.as_deref() == Some(here.as_str()))
            .then(|| identity::running(self.pid, self.started))
    }

    /// `alice@host (`start`, pid 42 on host, since 2026-12-01 03:40:12 UTC, 5s ago)`, every
    /// text of the record made printable.
    pub fn describe(&self) -> String {
        let age = now_secs().saturating_sub(self.since);
        let host = printable(&self.host);
        let pid = match (self.kind, self.alive()) {
            (LockKind::Maintenance, _) => format!("from {host}"),
            (_, Some(true)) => format!("pid {} alive on this host", self.pid),
            (_, Some(false)) => format!("pid {} on this host is DEAD", self.pid),
            (_, None) if self.host == this_host() => format!(
                "pid {} on {host}, which is another machine or pid namespace by this host's \
                 name",
                self.pid
            ),
            (_, None) => format!("pid {} on {host}", self.pid),
        };
        let mut text = format!(
            "{} (`{}`, {pid}, since {}, {} ago)",
            printable(&self.holder),
            printable(&self.command),
            format_unix_time(self.since),
            age_text(age)
        );
        if let Some(message) = &self.message {
            text.push_str(&format!(": \"{}\"", printable(message)));
        }
        text
    }
}

/// `5s`, `3m12s`, `2h05m`, `3d04h`.
pub fn age_text(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Who takes locks from this process: `MAESTRO_LOCK_HOLDER`, else `user@host`.
pub fn operator() -> String {
    if let Some(name) = std::env::var(HOLDER_ENV)
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        return name;
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(uid_name);
    format!("{user}@{}", this_host())
}

#[cfg(unix)]
fn uid_name() -> String {
    format!("uid{}", rustix::process::getuid().as_raw())
}

#[cfg(not(unix))]
fn uid_name() -> String {
    "unknown".to_string()
}

#[cfg(unix)]
fn this_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(not(unix))]
fn this_host() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".to_string())
}

/// What proves that a holder's process is this machine's, and whether it still runs.
#[cfg(target_os = "linux")]
mod identity {
    /// This boot of this kernel (random per boot, shared by every container on it) and this
    /// process's pid namespace (unique among that kernel's namespaces): two processes with
    /// the same value see the same pids.
    pub fn this_machine() -> Option<String> {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let pid_namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
        Some(format!("{}/{}", boot.trim(), pid_namespace.display()))
    }

    /// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub fn process_start(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces and parentheses.
        let (_, fields) = stat.rsplit_once(')')?;
        fields.split_whitespace().nth(19)?.parse().ok()
    }

    /// Whether `pid` still runs here as the process that started at `started`.
    pub fn running(pid: u32, started: Option<u64>) -> bool {
        match (process_start(pid), started) {
            (None, _) => false,
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
        }
    }
}

/// Elsewhere no holder is provably this machine's: a lock left behind is `--force`'s.
#[cfg(not(target_os = "linux"))]
mod identity {
    pub fn this_machine() -> Option<String> {
        None
    }

    pub fn process_start(_pid: u32) -> Option<u64> {
        None
    }

    pub fn running(_pid: u32, _started: Option<u64>) -> bool {
        true
    }
}

/// The state of one ship's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Free,
    /// `None`: a lock whose record is missing or not one of ours.
    Held(Option<Holder>),
}

/// Why a lock could not be taken, read or released.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "ship {ship}: the deploy lock of environment `{env}` is held by {}; nothing was \
         changed\n  = help: see `maestro lock status`; wait for it to be released, or if its \
         holder died, `maestro lock release --force`",
        holder.as_ref().map_or_else(|| "someone whose record is missing".to_string(), Holder::describe)
    )]
    Held {
        ship: String,
        env: String,
        holder: Option<Holder>,
    },
    #[error("{0}")]
    Ship(Arc<TransportError>),
    /// The daemon refused or failed a lock call: the ship is reachable but cannot be locked.
    #[error(
        "{source}\n  = help: the deploy lock is the container `{name}` on the ship's Docker \
         daemon: the user maestro reaches the daemon as must be able to create and remove it"
    )]
    Daemon {
        ship: String,
        name: String,
        source: Arc<DockerError>,
    },
    #[error("interrupted while taking the deploy locks")]
    Interrupted,
}

/// Why [`acquire`] took nothing: the error, and the locks it had taken meanwhile that could
/// not be given back (each names its ship).
#[derive(Debug)]
pub struct Refusal {
    pub error: LockError,
    pub unreleased: Vec<LockError>,
}

/// A ship left out of locking because it could not be reached: the run cannot change it.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub ship: String,
    pub reason: String,
}

/// One ship's lock that this run took.
#[derive(Debug)]
struct Taken {
    ship: String,
    name: String,
    id: String,
    docker: docker::Ship,
}

/// The locks one run took: released with [`Locks::release`].
#[derive(Debug, Default)]
pub struct Locks {
    taken: Vec<Taken>,
    /// To reach a ship again whose connection was lost before the release.
    fleet: Option<Arc<Fleet>>,
    pub skipped: Vec<Skipped>,
    /// Dead holders' locks taken over, as `ship: holder`, for the operator to be told.
    pub taken_over: Vec<String>,
}

impl Locks {
    /// The ships whose lock this run took (not those it runs under a maintenance lock), in
    /// name order.
    pub fn ships(&self) -> Vec<&str> {
        let mut ships: Vec<&str> = self.taken.iter().map(|t| t.ship.as_str()).collect();
        ships.sort_unstable();
        ships
    }

    /// Releases every lock taken, all at once, one round trip each; returns those that could
    /// not be released, each naming its ship. A ship whose connection was lost meanwhile
    /// is connected again, once, for its release.
    pub async fn release(self) -> Vec<LockError> {
        let fleet = self.fleet.as_ref();
        let removals = self.taken.iter().map(|t| async move {
            let lost = match t.docker.remove_lock(&t.id).await {
                Ok(_) => return Ok(()),
                // The daemon answered: no new connection would change its answer.
                Err(err) if err.status.is_some() => {
                    return Err(daemon_error(&t.ship, &t.name, err));
                }
                Err(err) => err,
            };
            let Some(fleet) = fleet else {
                return Err(daemon_error(&t.ship, &t.name, lost));
            };
            tracing::info!(
                "{}: connection lost ({lost}); reconnecting to release the lock",
                t.ship
            );
            let handle = fleet
                .reconnect(&t.ship)
                .await
                .map_err(|_| daemon_error(&t.ship, &t.name, lost))?;
            let removed = handle.docker.remove_lock(&t.id).await;
            handle.connection.close().await;
            removed
                .map(|_| ())
                .map_err(|err| daemon_error(&t.ship, &t.name, err))
        });
        join_all(removals)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }
}

fn daemon_error(ship: &str, name: &str, err: DockerError) -> LockError {
    LockError::Daemon {
        ship: ship.to_string(),
        name: name.to_string(),
        source: Arc::new(err),
    }
}

/// The lock container of `env` on `ship`: `maestro-lock.ENV.SHIP`. The ship is in it
/// because several ships of a file may share one daemon (names for one host, the test bed).
/// Characters a container name cannot have become `_`, and then a hash of the real names
/// keeps two environments apart that differ only there.
pub fn lock_name(env: &Environment, ship: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| if plain(c) { c } else { '_' })
            .collect()
    };
    // No instance may be named so (config::LOCK_CONTAINER_PREFIX).
    let mut name = format!("{LOCK_CONTAINER_PREFIX}{}.{}", safe(&env.name), safe(ship));
    if !env.name.chars().chain(ship.chars()).all(plain) {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\n{ship}", env.name).as_bytes());
        name.push('.');
        name.push_str(&hex::encode(&digest[..4]));
    }
    name
}

/// What taking one ship's lock gave.
enum Claimed {
    /// `took_over`: the dead holder whose lock was removed first, described.
    Taken {
        lock: Box<Taken>,
        took_over: Option<String>,
    },
    /// Under the caller's own maintenance lock: nothing taken, nothing to release.
    Admitted,
}

/// Takes the lock of `env` on one ship: one create; on a clash, one read to learn who holds
/// it; and for a holder proven dead, its removal (by id) and one more create.
async fn claim(
    docker: &docker::Ship,
    env: &Environment,
    ship: &str,
    ours: &Holder,
    record: &str,
) -> Result<Claimed, LockError> {
    let name = lock_name(env, ship);
    let daemon = |err| daemon_error(ship, &name, err);
    let taken = |id: String, took_over: Option<String>| Claimed::Taken {
        lock: Box::new(Taken {
            ship: ship.to_string(),
            name: name.clone(),
            id,
            docker: docker.clone(),
        }),
        took_over,
    };
    let mut took_over = None;
    loop {
        if let LockClaim::Taken { id } = docker.claim_lock(&name, record).await.map_err(daemon)? {
            return Ok(taken(id, took_over));
        }
        let Some(found) = docker.read_lock(&name).await.map_err(daemon)? else {
            // Released between our create and our read: someone's run just ended. Told as
            // held rather than tried again, so that the operator sees the contention.
            return Err(held(env, ship, None));
        };
        let holder = found.record.as_deref().and_then(Holder::parse);
        match holder {
            // A create of ours whose answer was lost.
            Some(h) if h.token == ours.token => return Ok(taken(found.id, took_over)),
            Some(h) if h.kind == LockKind::Maintenance && h.holder == ours.holder => {
                return Ok(Claimed::Admitted);
            }
            Some(h) if took_over.is_none() && h.alive() == Some(false) => {
                docker.remove_lock(&found.id).await.map_err(daemon)?;
                took_over = Some(h.describe());
            }
            holder => return Err(held(env, ship, holder)),
        }
    }
}

fn held(env: &Environment, ship: &str, holder: Option<Holder>) -> LockError {
    LockError::Held {
        ship: ship.to_string(),
        env: env.name.clone(),
        holder,
    }
}

/// How one ship's attempt ended: `None` when it gave up before anything was sent, as the
/// outcome was decided elsewhere.
type Attempt = Option<Result<Claimed, LockError>>;

/// Takes the lock of `env` on each of `ships`, all or nothing, every ship at once, each as
/// soon as its connection is up.
///
/// With `skip_unreachable`, a ship that cannot be connected is left out and listed in
/// [`Locks::skipped`]: the run cannot change it either way. Without it (a maintenance
/// window), such a ship fails the whole acquisition. A ship that is reached but cannot be
/// locked always fails it.
///
/// Once the outcome is decided (a refusal, a failure, Ctrl-C), ships still connecting are
/// not asked; a request already sent is waited for, so that every lock taken is known and
/// given back before this returns.
pub async fn acquire(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ours: &Holder,
    ships: &[&str],
    skip_unreachable: bool,
    cancel: &Cancel,
) -> Result<Locks, Refusal> {
    let record = serde_json::to_string(ours).unwrap_or_default();
    let mut sorted: Vec<&str> = ships.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let decided = Cancel::new();
    let mut attempts: FuturesUnordered<_> = sorted
        .into_iter()
        .map(|ship| {
            let (decided, record) = (&decided, &record);
            async move {
                let connected = tokio::select! {
                    biased;
                    _ = decided.cancelled() => return (ship, None),
                    _ = cancel.cancelled() => return (ship, None),
                    connected = fleet.ship(ship) => connected,
                };
                let claimed = match connected {
                    Ok(handle) => claim(&handle.docker, env, ship, ours, record).await,
                    Err(err) => Err(LockError::Ship(err)),
                };
                (ship, Some(claimed))
            }
        })
        .collect();
    let mut locks = Locks {
        fleet: Some(Arc::clone(fleet)),
        ..Locks::default()
    };
    let mut failure: Option<LockError> = None;
    loop {
        let next = tokio::select! {
            next = attempts.next() => next,
            _ = cancel.cancelled(), if failure.is_none() => {
                failure = Some(LockError::Interrupted);
                decided.cancel();
                continue;
            }
        };
        let Some((ship, attempt)): Option<(&str, Attempt)> = next else {
            break;
        };
        match attempt {
            // An attempt gives up only once the outcome is decided or on Ctrl-C; the latter
            // may reach it before this loop's own select hears it, and must not be lost.
            None if failure.is_none() => {
                failure = Some(LockError::Interrupted);
                decided.cancel();
            }
            None | Some(Ok(Claimed::Admitted)) => {}
            Some(Ok(Claimed::Taken { lock, took_over })) => {
                if let Some(dead) = took_over {
                    locks.taken_over.push(format!("{ship}: {dead}"));
                }
                locks.taken.push(*lock);
            }
            Some(Err(LockError::Ship(err))) if skip_unreachable => {
                locks.skipped.push(Skipped {
                    ship: ship.to_string(),
                    reason: err.to_string(),
                });
            }
            Some(Err(err)) => {
                if failure.is_none() {
                    failure = Some(err);
                    decided.cancel();
                }
            }
        }
    }
    match failure {
        None => Ok(locks),
        Some(error) => Err(Refusal {
            error,
            unreleased: locks.release().await,
        }),
    }
}

/// The lock of `env` on one ship as the daemon has it: `None` when free.
async fn read(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ship: &str,
) -> Result<Option<(docker::Ship, docker::LockObject)>, LockError> {
    let handle = fleet.ship(ship).await.map_err(LockError::Ship)?;
    let name = lock_name(env, ship);
    let found = handle
        .docker
        .read_lock(&name)
        .await
        .map_err(|err| daemon_error(ship, &name, err))?;
    Ok(found.map(|found| (handle.docker, found)))
}

fn state_of(found: Option<&docker::LockObject>) -> State {
    match found {
        None => State::Free,
        Some(found) => State::Held(found.record.as_deref().and_then(Holder::parse)),
    }
}

/// The lock of `env` on each of `ships`, in name order, read on all of them at once.
pub async fn status_all(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ships: &[&str],
) -> Vec<(String, Result<State, LockError>)> {
    let mut sorted: Vec<&str> = ships.to_vec();
    sorted.sort_unstable();
    join_all(sorted.into_iter().map(|ship| async move {
        let state = read(fleet, env, ship)
            .await
            .map(|found| state_of(found.as_ref().map(|(_, f)| f)));
        (ship.to_string(), state)
    }))
    .await
}

/// What `lock release` did on one ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The lock was removed; its holder, when recorded.
    Removed(Option<Holder>),
    NotHeld,
}

/// Releases the lock of `env` on each of `ships`, all at once: without `force`, only the
/// maintenance lock of `operator` (a command's lock ends with its command; another's is
/// theirs to end). Each removes the lock it read, by id: if the lock changed hands between
/// the read and the removal, the new holder's lock stays.
pub async fn release_all(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ships: &[&str],
    operator: &str,
    force: bool,
) -> Vec<(String, Result<Released, LockError>)> {
    let mut sorted: Vec<&str> = ships.to_vec();
    sorted.sort_unstable();
    join_all(sorted.into_iter().map(|ship| async move {
        let result = async {
            let Some((docker, found)) = read(fleet, env, ship).await? else {
                return Ok(Released::NotHeld);
            };
            release_read(&docker, env, ship, &found, operator, force).await
        }
        .await;
        (ship.to_string(), result)
    }))
    .await
}

/// Removes `found`, the lock read on `ship`, if `operator` may (see [`release_all`]).
pub async fn release_read(
    docker: &docker::Ship,
    env: &Environment,
    ship: &str,
    found: &docker::LockObject,
    operator: &str,
    force: bool,
) -> Result<Released, LockError> {
    let holder = found.record.as_deref().and_then(Holder::parse);
    let theirs = match &holder {
        Some(h) => h.kind == LockKind::Maintenance && h.holder == operator,
        None => false,
    };
    if !force && !theirs {
        return Err(held(env, ship, holder));
    }
    let name = lock_name(env, ship);
    let removed = docker
        .remove_lock(&found.id)
        .await
        .map_err(|err| daemon_error(ship, &name, err))?;
    Ok(if removed {
        Released::Removed(holder)
    } else {
        Released::NotHeld
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_holder_record_round_trips() {
        let ours = Holder::ours("start", LockKind::Command, Some("it's \"done\"".into()));
        let record = serde_json::to_string(&ours).expect("json");
        assert_eq!(Holder::parse(&record), Some(ours));
        assert_eq!(Holder::parse("not json"), None);
        // A record without the newer fields still reads, and is never provably dead.
        let old = r#"{"holder":"a@b","host":"b","pid":1,"command":"start","since":0,"kind":"command","token":"t"}"#;
        let old = Holder::parse(old).expect("old record");
        assert_eq!(old.machine, None);
        assert_eq!(old.alive(), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_and_a_holder_elsewhere_is_never_dead() {
        let ours = Holder::ours("start", LockKind::Command, None);
        assert_eq!(ours.alive(), Some(true));
        assert!(
            ours.describe().contains("alive on this host"),
            "{}",
            ours.describe()
        );
        // The same pid started at another time: a reused pid, so the holder is dead.
        let reused = Holder {
            started: ours.started.map(|s| s + 1),
            ..ours.clone()
        };
        assert_eq!(reused.alive(), Some(false));
        // The same host name and a dead pid, but another boot or pid namespace: unknown.
        let elsewhere = Holder {
            machine: Some("0-0-0/pid:[4026531836]".into()),
            pid: u32::MAX - 1,
            ..ours.clone()
        };
        assert_eq!(elsewhere.alive(), None);
        assert!(
            elsewhere
                .describe()
                .contains("another machine or pid namespace"),
            "{}",
            elsewhere.describe()
        );
        let maintenance = Holder {
            kind: LockKind::Maintenance,
            ..reused
        };
        assert_eq!(maintenance.alive(), None);
    }

    #[test]
    fn ages_read_as_durations() {
        assert_eq!(age_text(5), "5s");
        assert_eq!(age_text(192), "3m12s");
        assert_eq!(age_text(7500), "2h05m");
    }

    #[test]
    fn a_record_from_a_ship_is_shown_without_its_control_characters() {
        let mut forged = Holder::ours("start\x1b]0;pwned\x07", LockKind::Command, None);
        forged.holder = "eve\x1b[2J@ship".into();
        forged.message = Some("line\nbreak".into());
        let shown = forged.describe();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("eve?[2J@ship"), "{shown}");
    }

    #[test]
    fn lock_names_are_container_names_and_keep_environments_apart() {
        let env = |name: &str| {
            crate::config::load_str(
                &format!("name: {name}\nships:\n  a: {{ip: 10.0.0.1}}\nservices: {{}}\n"),
                "test.yaml",
                Path::new("."),
            )
            .expect("valid environment")
        };
        assert_eq!(lock_name(&env("shop"), "a"), "maestro-lock.shop.a");
        let odd = lock_name(&env("shop x"), "a");
        assert!(odd.starts_with("maestro-lock.shop_x.a."), "{odd}");
        assert_ne!(odd, lock_name(&env("shop/x"), "a"));
    }

    #[test]
    fn the_holder_override_names_the_operator() {
        if std::env::var_os(HOLDER_ENV).is_none() {
            assert!(operator().contains('@'), "{}", operator());
        }
    }
}
