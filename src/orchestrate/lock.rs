//! The deploy lock: one per environment per ship, so that two operators never change the
//! same ships at once.
//!
//! Decisions (see docs/security.md, "The deploy lock"):
//! - Agentless: the lock is a directory on the ship, `/tmp/maestro-lock.<env>.<ship>`,
//!   made with `mkdir` over the ship's SSH session (on this machine for a local-socket
//!   ship). `mkdir` is atomic on POSIX: of two concurrent calls exactly one creates the
//!   directory, the other fails with EEXIST. The holder's record (`holder.json`) is written
//!   inside only by the one that made it. The ship's name is in the path because several
//!   ships may share one filesystem (daemons side by side on one host, the test bed).
//! - Several ships: taken one at a time in ship-name order and all-or-nothing (one held by
//!   someone else releases those taken and fails), so two operators never wait on each
//!   other: there is no waiting at all.
//! - Who holds it: `MAESTRO_LOCK_HOLDER` if set, else `user@host` of this machine. A
//!   command's own lock admits nobody, not even its own operator's next command; a
//!   maintenance lock (`maestro lock acquire`) admits its holder's commands, which then take
//!   and release nothing.
//! - A dead holder is recognised: the record has the host and the pid, and `lock status`
//!   says whether that pid is alive when the host is this one. A command's lock whose pid
//!   on this machine is gone is taken over by the next command (it protects nothing: its
//!   holder provably ended); one from another machine is cleared by the operator's choice
//!   (`lock release --force`), as nothing here can tell whether it lives.
//! - Ships reached over TCP run no commands: they cannot be locked and are skipped (see
//!   [`Skipped`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::executor::Cancel;
use super::fleet::Fleet;
use crate::clock::{format_unix_time, now_secs};
use crate::config::Environment;
use crate::transport::{Connection, TransportError};

/// The environment variable that names the holder instead of `user@host`.
pub const HOLDER_ENV: &str = "MAESTRO_LOCK_HOLDER";

/// What a lock protects the ships from: a command's own run, or a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    Command,
    Maintenance,
}

/// The record of a lock's holder, kept in `holder.json` on the ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host`, or `MAESTRO_LOCK_HOLDER`.
    pub holder: String,
    /// The machine the holder's process runs on (its uname nodename).
    pub host: String,
    pub pid: u32,
    /// The command that took it: `start`, `restart`, `lock acquire`.
    pub command: String,
    /// Unix seconds.
    pub since: u64,
    pub kind: LockKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unique per acquisition: a release removes only the lock it took.
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
            pid,
            command: command.to_string(),
            since: now.as_secs(),
            kind,
            message,
            token: format!("{pid:x}-{:x}", now.as_nanos()),
        }
    }

    /// Whether the holder's process is alive: `None` when it runs on another host, or for a
    /// maintenance lock, which outlives the `lock acquire` that took it.
    pub fn alive(&self) -> Option<bool> {
        (self.kind == LockKind::Command && self.host == this_host()).then(|| pid_alive(self.pid))
    }

    /// `alice@host (`start`, pid 42 on host, since 2026-12-01 03:40:12 UTC, 5s ago)`.
    pub fn describe(&self) -> String {
        let age = now_secs().saturating_sub(self.since);
        let pid = match (self.kind, self.alive()) {
            (LockKind::Maintenance, _) => format!("from {}", self.host),
            (_, Some(true)) => format!("pid {} alive on this host", self.pid),
            (_, Some(false)) => format!("pid {} on this host is DEAD", self.pid),
            (_, None) => format!("pid {} on {}", self.pid, self.host),
        };
        let mut text = format!(
            "{} (`{}`, {pid}, since {}, {} ago)",
            self.holder,
            self.command,
            format_unix_time(self.since),
            age_text(age)
        );
        if let Some(message) = &self.message {
            text.push_str(&format!(": \"{message}\""));
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

#[cfg(unix)]
fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM: it exists, as another user's process.
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(err) => err == rustix::io::Errno::PERM,
    }
}

#[cfg(not(unix))]
fn pid_alive(_pid: u32) -> bool {
    true
}

/// The state of one ship's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Free,
    /// `None`: the directory is there but its record is not (yet, or it is unreadable).
    Held(Option<Holder>),
}

/// Why a lock could not be taken, read or released.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "ship {ship}: the deploy lock of environment `{env}` is held by {}; nothing was \
         changed\n  = help: see `maestro lock status`; wait for it to be released, or if its \
         holder died, `maestro lock release --force`",
        holder.as_ref().map_or_else(|| "someone whose record is not written (yet)".to_string(), Holder::describe)
    )]
    Held {
        ship: String,
        env: String,
        holder: Option<Holder>,
    },
    #[error("{0}")]
    Ship(Arc<TransportError>),
    #[error(
        "ship {ship}: the lock command failed (exit {status}): {stderr}\n  = help: the lock is \
         the directory {dir} on the ship: its SSH user must be able to create it"
    )]
    Script {
        ship: String,
        dir: String,
        status: String,
        stderr: String,
    },
    #[error("interrupted while taking the deploy locks; those taken were released")]
    Interrupted,
}

/// A ship left out of locking, and why (reached over TCP, or unreachable).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub ship: String,
    pub reason: String,
}

/// The locks one run took: released with [`Locks::release`].
#[derive(Debug, Default)]
pub struct Locks {
    token: String,
    /// Ship, its lock directory, its connection.
    taken: Vec<(String, String, Connection)>,
    pub skipped: Vec<Skipped>,
}

impl Locks {
    /// The ships whose lock this run took (not those it runs under a maintenance lock).
    pub fn ships(&self) -> impl Iterator<Item = &str> {
        self.taken.iter().map(|(ship, _, _)| ship.as_str())
    }

    /// Releases every lock taken, in reverse order; returns what could not be released.
    pub async fn release(self) -> Vec<LockError> {
        let mut failed = Vec::new();
        for (ship, dir, connection) in self.taken.iter().rev() {
            if let Err(err) = release_own(connection, dir, ship, &self.token).await {
                failed.push(err);
            }
        }
        failed
    }
}

/// `'text'` for sh, whatever `text` holds.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The lock directory of `env` on `ship`: `/tmp/maestro-lock.ENV.SHIP.ADDRESS`. The address
/// is in it because ships of different environment files (or test beds) may share one
/// filesystem under the same names; what is not a plain file-name character becomes `_`.
pub fn lock_dir(env: &Environment, ship: &str) -> String {
    let address = env
        .ships
        .iter()
        .find(|s| s.name == ship)
        .map_or("", |s| s.endpoint.as_str());
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "/tmp/maestro-lock.{}.{}.{}",
        safe(&env.name),
        safe(ship),
        safe(address)
    )
}

fn acquire_script(dir: &str, record: &str) -> String {
    let d = quote(dir);
    let r = quote(record);
    // The record is written aside and renamed, so a reader sees all of it or none.
    format!(
        "d={d}; if mkdir -m 755 \"$d\" 2>/dev/null; then \
         if printf '%s\\n' {r} > \"$d/holder.json.new\" && mv -f \"$d/holder.json.new\" \"$d/holder.json\"; \
         then echo taken; else rm -rf \"$d\"; exit 3; fi; \
         elif [ -d \"$d\" ]; then echo held; cat \"$d/holder.json\" 2>/dev/null; \
         else mkdir \"$d\"; exit 3; fi"
    )
}

/// Takes over a lock whose holder is dead, if its record still has `stale` (the dead
/// holder's token). `mkdir takeover` inside it admits one taker at a time, and the token is
/// checked after that claim: a late taker finds the new holder's token and backs off.
fn takeover_script(dir: &str, stale: &str, record: &str) -> String {
    let d = quote(dir);
    let r = quote(record);
    let needle = quote(&format!("\"token\":\"{stale}\""));
    format!(
        "d={d}; if mkdir \"$d/takeover\" 2>/dev/null; then \
         if grep -qF {needle} \"$d/holder.json\" 2>/dev/null && printf '%s\\n' {r} > \"$d/holder.json.new\" \
         && mv -f \"$d/holder.json.new\" \"$d/holder.json\"; then rmdir \"$d/takeover\"; echo taken; \
         else rmdir \"$d/takeover\"; echo held; cat \"$d/holder.json\" 2>/dev/null; fi; \
         else echo held; cat \"$d/holder.json\" 2>/dev/null; fi"
    )
}

fn status_script(dir: &str) -> String {
    let d = quote(dir);
    format!(
        "d={d}; if [ -d \"$d\" ]; then echo held; cat \"$d/holder.json\" 2>/dev/null; \
         else echo free; fi"
    )
}

/// Removes the lock only if its record has `token` (compact JSON, as serde_json writes it).
fn release_script(dir: &str, token: Option<&str>) -> String {
    let d = quote(dir);
    let remove = "rm -f \"$d/holder.json\" \"$d/holder.json.new\" && rmdir \"$d\" && echo released";
    match token {
        Some(token) => {
            let needle = quote(&format!("\"token\":\"{token}\""));
            format!(
                "d={d}; if grep -qF {needle} \"$d/holder.json\" 2>/dev/null; then {remove}; \
                 elif [ -d \"$d\" ]; then echo other; else echo free; fi"
            )
        }
        // Forced: whatever is inside, a half-done takeover included.
        None => format!(
            "d={d}; if [ -d \"$d\" ]; then rm -rf \"$d\" && echo released; else echo free; fi"
        ),
    }
}

async fn run(
    connection: &Connection,
    ship: &str,
    dir: &str,
    script: &str,
) -> Result<String, LockError> {
    let out = connection
        .run_shell(script)
        .await
        .map_err(|err| LockError::Ship(Arc::new(err)))?;
    if out.status != Some(0) {
        return Err(LockError::Script {
            ship: ship.to_string(),
            dir: dir.to_string(),
            status: out.status.map_or("none".to_string(), |s| s.to_string()),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parse_state(text: &str) -> State {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("free") => State::Free,
        _ => State::Held(
            lines
                .find(|l| !l.trim().is_empty())
                .and_then(|l| serde_json::from_str(l).ok()),
        ),
    }
}

/// What taking one ship's lock gave.
enum Outcome {
    Taken,
    /// Under the caller's own maintenance lock: nothing taken, nothing to release.
    Admitted,
}

async fn acquire_one(
    connection: &Connection,
    env: &Environment,
    ship: &str,
    ours: &Holder,
) -> Result<Outcome, LockError> {
    let dir = lock_dir(env, ship);
    let record = serde_json::to_string(ours).map_err(|err| LockError::Script {
        ship: ship.to_string(),
        dir: dir.clone(),
        status: "none".into(),
        stderr: err.to_string(),
    })?;
    let taken = |out: &str| out.lines().next().map(str::trim) == Some("taken");
    let mut out = run(connection, ship, &dir, &acquire_script(&dir, &record)).await?;
    if taken(&out) {
        return Ok(Outcome::Taken);
    }
    // A command's lock whose process ran on this machine and is gone protects nothing (a
    // kill -9, or a ship lost before the release): taken over. Another machine's holder
    // cannot be checked from here: that is `lock release --force`'s.
    if let State::Held(Some(dead)) = parse_state(&out)
        && dead.alive() == Some(false)
    {
        out = run(
            connection,
            ship,
            &dir,
            &takeover_script(&dir, &dead.token, &record),
        )
        .await?;
        if taken(&out) {
            tracing::warn!("{ship}: took over the lock of {}", dead.describe());
            return Ok(Outcome::Taken);
        }
    }
    match parse_state(&out) {
        State::Held(Some(holder))
            if holder.kind == LockKind::Maintenance && holder.holder == ours.holder =>
        {
            Ok(Outcome::Admitted)
        }
        State::Held(holder) => Err(LockError::Held {
            ship: ship.to_string(),
            env: env.name.clone(),
            holder,
        }),
        // Released between our mkdir and our read: someone else's run just ended; report
        // it as held rather than retry, so that the operator sees the contention.
        State::Free => Err(LockError::Held {
            ship: ship.to_string(),
            env: env.name.clone(),
            holder: None,
        }),
    }
}

async fn release_own(
    connection: &Connection,
    dir: &str,
    ship: &str,
    token: &str,
) -> Result<(), LockError> {
    run(connection, ship, dir, &release_script(dir, Some(token))).await?;
    Ok(())
}

/// Takes the lock of `env` on each of `ships` (sorted here), all or nothing.
///
/// With `skip_unlockable`, a ship that cannot be reached or runs no commands (TCP) is left
/// out and listed in [`Locks::skipped`]: the run cannot change it either way. Without it
/// (a maintenance window), such a ship fails the whole acquisition.
pub async fn acquire(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ours: &Holder,
    ships: &[&str],
    skip_unlockable: bool,
    cancel: &Cancel,
) -> Result<Locks, LockError> {
    let mut sorted: Vec<&str> = ships.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut locks = Locks {
        token: ours.token.clone(),
        ..Locks::default()
    };
    for ship in sorted {
        // Ctrl-C is heard while waiting for a ship's connection, never inside a lock
        // command (a few round trips): a lock taken is always known, to be released.
        let connected = tokio::select! {
            connected = fleet.ship(ship) => connected,
            _ = cancel.cancelled() => {
                let _ = locks.release().await;
                return Err(LockError::Interrupted);
            }
        };
        let outcome = match connected {
            Ok(handle) => acquire_one(&handle.connection, env, ship, ours)
                .await
                .map(|o| (o, handle.connection)),
            Err(err) => Err(LockError::Ship(err)),
        };
        match outcome {
            Ok((Outcome::Taken, connection)) => {
                locks
                    .taken
                    .push((ship.to_string(), lock_dir(env, ship), connection));
            }
            Ok((Outcome::Admitted, _)) => {}
            Err(LockError::Ship(err)) if skip_unlockable => locks.skipped.push(Skipped {
                ship: ship.to_string(),
                reason: err.to_string(),
            }),
            Err(err) => {
                // All or nothing: what was taken goes back before the failure is told.
                let _ = locks.release().await;
                return Err(err);
            }
        }
    }
    Ok(locks)
}

/// The lock of `env` on one ship.
pub async fn status(fleet: &Arc<Fleet>, env: &Environment, ship: &str) -> Result<State, LockError> {
    let handle = fleet.ship(ship).await.map_err(LockError::Ship)?;
    let dir = lock_dir(env, ship);
    let out = run(&handle.connection, ship, &dir, &status_script(&dir)).await?;
    Ok(parse_state(&out))
}

/// Releases the lock of `env` on `ship`: with `token`, only if it is that acquisition's;
/// without, whoever holds it (`--force`). Returns whether a lock was removed.
pub async fn release(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ship: &str,
    token: Option<&str>,
) -> Result<bool, LockError> {
    let handle = fleet.ship(ship).await.map_err(LockError::Ship)?;
    let dir = lock_dir(env, ship);
    let out = run(&handle.connection, ship, &dir, &release_script(&dir, token)).await?;
    Ok(out.lines().next().map(str::trim) == Some("released"))
}

/// The lock of `env` on each of `ships`, in name order.
pub async fn status_all(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ships: &[&str],
) -> Vec<(String, Result<State, LockError>)> {
    let mut sorted: Vec<&str> = ships.to_vec();
    sorted.sort_unstable();
    let mut states = Vec::new();
    for ship in sorted {
        states.push((ship.to_string(), status(fleet, env, ship).await));
    }
    states
}

/// What `lock release` did on one ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The lock was removed; its holder, when recorded.
    Removed(Option<Holder>),
    NotHeld,
}

/// Releases the lock of `env` on each of `ships`: without `force`, only the maintenance lock
/// of `operator` (a command's lock ends with its command; another's is theirs to end).
pub async fn release_all(
    fleet: &Arc<Fleet>,
    env: &Environment,
    ships: &[&str],
    operator: &str,
    force: bool,
) -> Vec<(String, Result<Released, LockError>)> {
    let mut sorted: Vec<&str> = ships.to_vec();
    sorted.sort_unstable();
    let mut results = Vec::new();
    for ship in sorted {
        let result = async {
            let holder = match status(fleet, env, ship).await? {
                State::Free => return Ok(Released::NotHeld),
                State::Held(holder) => holder,
            };
            let token = match (&holder, force) {
                (_, true) => None,
                (Some(h), false) if h.kind == LockKind::Maintenance && h.holder == operator => {
                    Some(h.token.clone())
                }
                _ => {
                    return Err(LockError::Held {
                        ship: ship.to_string(),
                        env: env.name.clone(),
                        holder,
                    });
                }
            };
            Ok(if release(fleet, env, ship, token.as_deref()).await? {
                Released::Removed(holder)
            } else {
                Released::NotHeld
            })
        }
        .await;
        results.push((ship.to_string(), result));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_single_quotes_and_shell_syntax_inert() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn a_holder_record_round_trips_and_a_release_finds_its_token() {
        let ours = Holder::ours("start", LockKind::Command, Some("it's \"done\"".into()));
        let record = serde_json::to_string(&ours).expect("json");
        assert!(record.contains(&format!("\"token\":\"{}\"", ours.token)));
        assert_eq!(
            parse_state(&format!("held\n{record}\n")),
            State::Held(Some(ours))
        );
        assert_eq!(parse_state("held\n"), State::Held(None));
        assert_eq!(parse_state("free\n"), State::Free);
    }

    #[test]
    fn this_process_is_alive_and_ages_read_as_durations() {
        let ours = Holder::ours("start", LockKind::Command, None);
        assert_eq!(ours.alive(), Some(true));
        assert!(
            ours.describe().contains("alive on this host"),
            "{}",
            ours.describe()
        );
        assert_eq!(age_text(5), "5s");
        assert_eq!(age_text(192), "3m12s");
        assert_eq!(age_text(7500), "2h05m");
    }

    #[test]
    fn the_holder_override_names_the_operator() {
        // Read-only check of the default's shape: user@host.
        if std::env::var_os(HOLDER_ENV).is_none() {
            assert!(operator().contains('@'), "{}", operator());
        }
    }
}
