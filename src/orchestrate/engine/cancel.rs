//! The two-level cancellation of a run: the first request (Ctrl-C) lets what is in flight
//! finish or clean up and starts nothing new, the second drops what is in flight, and a
//! third Ctrl-C exits the process. Shared by the executor, the operations and every
//! sequence that must hear Ctrl-C (the deploy lock, the auditors, the read-only commands).

use std::sync::Arc;

use tokio::sync::watch;

/// How far a cancellation has gone; ordered so that "at least" comparisons read naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CancelLevel {
    Running,
    Graceful,
    Abort,
}

/// A two-level cancellation signal shared by the run, its operations and whoever triggers it
/// (the Ctrl-C handler or a test).
///
/// A `watch` channel rather than a plain flag so that waiters wake up instead of polling.
#[derive(Debug, Clone)]
pub struct Cancel {
    level: Arc<watch::Sender<CancelLevel>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(CancelLevel::Running);
        Cancel {
            level: Arc::new(tx),
        }
    }

    /// The first request: start nothing new, let in-flight operations finish or clean up.
    pub fn cancel(&self) {
        self.raise(CancelLevel::Graceful);
    }

    /// The second request: drop in-flight operations now.
    pub fn abort(&self) {
        self.raise(CancelLevel::Abort);
    }

    /// One more request, as from one more Ctrl-C: the first cancels, the next aborts.
    pub fn escalate(&self) {
        let next = match *self.level.borrow() {
            CancelLevel::Running => CancelLevel::Graceful,
            _ => CancelLevel::Abort,
        };
        self.raise(next);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.level.borrow() >= CancelLevel::Graceful
    }

    pub fn is_aborted(&self) -> bool {
        *self.level.borrow() >= CancelLevel::Abort
    }

    pub async fn cancelled(&self) {
        self.reached(CancelLevel::Graceful).await
    }

    pub async fn aborted(&self) {
        self.reached(CancelLevel::Abort).await
    }

    fn raise(&self, to: CancelLevel) {
        // send_modify never fails, even without receivers, unlike send.
        self.level.send_modify(|level| {
            if *level < to {
                *level = to;
            }
        });
    }

    async fn reached(&self, wanted: CancelLevel) {
        let mut rx = self.level.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait; an error
        // could only mean that, and then there is nothing left to wait for.
        let _ = rx.wait_for(|level| *level >= wanted).await;
    }
}

/// A [`Cancel`] driven by SIGINT: the first Ctrl-C cancels, the second aborts, and a third
/// exits the process with 130 — installing a handler disables the default "Ctrl-C kills
/// the program", and an operator must always have a way out even if some operation
/// ignores cancellation. Must be called inside a tokio runtime.
pub fn interrupt_on_ctrl_c() -> Cancel {
    let cancel = Cancel::new();
    let handle = cancel.clone();
    tokio::spawn(async move {
        let mut received = 0u32;
        while tokio::signal::ctrl_c().await.is_ok() {
            received += 1;
            if received >= 3 {
                std::process::exit(130);
            }
            handle.escalate();
        }
    });
    cancel
}

/// Resolves on SIGINT; never, where no handler can be installed. For the commands that only
/// read, which stop at the first Ctrl-C.
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
