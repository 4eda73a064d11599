//! The integration tests on the test bed: one binary (`cargo test --test bed`, as root) whose
//! tests run maestro against real sshd and dockerd in network namespaces (testbed/bed.sh).
//! The bed named by `MAESTRO_TESTBED` is used when set (test.sh sets it); otherwise the first
//! test that asks brings one up for this process (`TestBed::shared`), removed once it ends.
//!
//! One binary with modules, not a binary per file: the library is linked once and the bed
//! brought up once. The modules' tests run in parallel threads of one process, so those that
//! use the shared bed take turns by file (tests/common/turn.rs): a file's tests run together
//! as they always did, never beside another file's, since faults injected on a shared ship and
//! counts of logins in its sshd log assume that. tests/bed/parity.rs needs no root but the
//! package registry on its first run (MaestroNG in a virtualenv), so it is here, not offline.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod checks;
mod docker_ship;
mod examples;
mod exec;
mod faults;
mod fleet;
mod forward;
mod host_certificates;
mod lock;
mod observe;
mod orchestrate;
mod parity;
mod persist;
mod push;
mod readme;
mod rollback;
mod security;
mod ships;
mod ssh_config_match;
mod testbed;
mod transport;
