//! Turns on the shared bed: which tests of the one bed binary (tests/bed/) may run at once.
//!
//! Until every test file became a module of one binary, each file was a binary of its own and
//! `cargo test` ran them one after another: tests of different files never overlapped, and each
//! file was written for that. Its tests agree among themselves (tests/bed/lock.rs holds one
//! mutex for the tests that restart ship3's sshd, tests/bed/push.rs one for its byte counters,
//! tests/bed/persist.rs counts logins one test at a time), but not with the tests of other
//! files: a fault injected on a shared ship (sshd stopped, packets dropped, `MaxSessions 0`, a
//! dockerd restarted, sessions cut with `pkill`) or a count of logins in an sshd log would be
//! disturbed by any other file's test on the same ship.
//!
//! Decision: a test that uses the shared bed takes a turn for its file (`TestBed::shared` does
//! it, keyed by the caller's source file, and the returned `SharedBed` holds it). Any number
//! of tests of one file run at once, as before; tests of two files never do. This keeps the
//! guarantee every file was written for, without auditing and re-proving each pair of files,
//! and a new file gets it without doing anything. Tests that bring up beds of their own
//! (`TestBed::up*`) take no turn: nothing else touches those beds, so they run beside the
//! others. A test that changes what the whole process sees (tests/bed/transport.rs sets HOME
//! and SSH variables, which the library reads) takes the whole process (`Turn::whole`): no
//! other turn is held meanwhile.
//!
//! Waiting favours the file already running: a turn of the same file enters at once (so a
//! test that takes a second turn, or a thread it spawns that asks for the bed, never waits
//! on itself). A file that waits goes next once the running file's tests have all ended.
#![allow(dead_code)]

use std::sync::{Condvar, Mutex};

/// Who holds the bed: nobody, the tests of one file (how many), or one test alone.
#[derive(Debug, Default)]
struct Holders {
    /// The file (or [`WHOLE`]) whose tests hold turns now; `None` when nobody does.
    key: Option<String>,
    count: usize,
}

static HOLDERS: Mutex<Holders> = Mutex::new(Holders {
    key: None,
    count: 0,
});
static CHANGED: Condvar = Condvar::new();

/// The key of a turn that excludes every other, itself included.
const WHOLE: &str = "<whole process>";

/// A turn on the shared bed; given back on drop (also when the test panics).
#[derive(Debug)]
pub struct Turn {
    key: String,
}

impl Turn {
    /// A turn for the tests of source file `file`: waits while another file's tests hold one.
    pub fn file(file: &str) -> Turn {
        let mut holders = lock();
        while holders.key.as_deref().is_some_and(|k| k != file) {
            holders = CHANGED.wait(holders).unwrap_or_else(|e| e.into_inner());
        }
        holders.key = Some(file.to_string());
        holders.count += 1;
        Turn {
            key: file.to_string(),
        }
    }

    /// The whole process for one test: waits until no turn is held, and holds every other off.
    pub fn whole() -> Turn {
        let mut holders = lock();
        while holders.key.is_some() {
            holders = CHANGED.wait(holders).unwrap_or_else(|e| e.into_inner());
        }
        holders.key = Some(WHOLE.to_string());
        holders.count = 1;
        Turn {
            key: WHOLE.to_string(),
        }
    }

    /// One more turn of the same file, entered at once (for a copy of a `SharedBed`).
    pub fn again(&self) -> Turn {
        assert!(
            self.key != WHOLE,
            "a whole-process turn cannot be shared (it would wait on itself)"
        );
        let mut holders = lock();
        holders.count += 1;
        Turn {
            key: self.key.clone(),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut holders = lock();
        holders.count -= 1;
        if holders.count == 0 {
            holders.key = None;
            CHANGED.notify_all();
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Holders> {
    HOLDERS.lock().unwrap_or_else(|e| e.into_inner())
}
