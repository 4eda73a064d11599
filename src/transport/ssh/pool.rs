//! The sessions of a run, shared between the ships whose routes begin alike, and the pacing
//! of logins toward each sshd (see the `ssh` module header): [`connect_chain`] takes each
//! hop's session from the pool or logs in, inside that sshd's [`Gate`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::connect::{ConnectOptions, connect_hop};
use super::{Hop, Session, SshChain};
use crate::transport::error::{TransportError, TransportErrorKind};

/// A session of the pool, or why its login failed: the cause alone, told for each ship
/// that meets it.
type SessionCell = Arc<tokio::sync::OnceCell<Result<Arc<Session>, Arc<TransportErrorKind>>>>;

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
pub(super) struct Gate {
    pub(super) places: tokio::sync::Semaphore,
    pub(super) size: AtomicUsize,
}

impl Gate {
    pub(super) fn new(size: usize) -> Gate {
        Gate {
            places: tokio::sync::Semaphore::new(size),
            size: AtomicUsize::new(size),
        }
    }

    pub(super) async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this only fails if that changes: then run unpaced.
        self.places.acquire().await.ok()
    }

    /// The server dropped a login made with `place`: keep that place closed.
    pub(super) fn shrink(&self, place: Option<tokio::sync::SemaphorePermit<'_>>) {
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
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(3)).min(2000);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let scale = 500 + random % 1000;
    Duration::from_millis(base * scale / 1000)
}

/// Establishes the whole chain, taking from `pool` the sessions that other ships of the run
/// already opened (or are opening) along the same route. Errors at a jump host are wrapped
/// in [`TransportErrorKind::Jump`] naming that hop.
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
            Err(cause) if index < last => {
                return Err(TransportErrorKind::Jump {
                    hop: hop.label.clone(),
                    source: Box::new(TransportErrorKind::clone(cause)),
                }
                .for_ship(&options.ship));
            }
            Err(cause) => return Err(TransportErrorKind::clone(cause).for_ship(&options.ship)),
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
) -> Result<Session, TransportErrorKind> {
    let mut attempt = 1;
    loop {
        let place = gate.enter().await;
        match connect_hop(hop, previous.clone(), via.clone(), options).await {
            Err(TransportErrorKind::DroppedBeforeLogin { .. }) if attempt < LOGIN_ATTEMPTS => {
                gate.shrink(place);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(TransportErrorKind::DroppedBeforeLogin { hop, .. }) => {
                return Err(TransportErrorKind::DroppedBeforeLogin {
                    hop,
                    attempts: attempt,
                });
            }
            other => return other,
        }
    }
}
