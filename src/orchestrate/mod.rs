//! The orchestration layer, in five wings by kind of work. Each wing's `mod.rs` says what it
//! is for and what it may import; the arrows between wings all point one way:
//!
//! ```text
//!   deploy ─────────────────────┐
//!   observe ────────────────────┼──> engine ──> plan ──> docker | transport | config
//!   session ──(observe::logs)───┘
//! ```
//!
//! - [`plan`]: what to do, from the environment file alone (selection and dependency order,
//!   container specs, auto-configuration, what a container is to an instance); no ship is
//!   contacted.
//! - [`engine`]: running jobs over a dependency graph on a fleet of connected ships,
//!   cancellably, as a stream of events; knows nothing of what a job does.
//! - [`deploy`]: the commands that change ships, under the deploy lock and the audit.
//! - [`observe`]: the read-only commands (status, plan's preview, history, logs, ships).
//! - [`session`]: the operator's live connection to a container or a ship (exec, ssh,
//!   forward).
//!
//! deploy imports neither observe nor session; observe nor session imports deploy; session
//! uses observe's log line type only (the one log pipeline). Secrets masking is a leaf beside
//! them ([`crate::secrets`]), used by every layer above it.
//!
//! It never prints: `ui` renders what it reports.

pub mod deploy;
pub mod engine;
pub mod observe;
pub mod plan;
pub mod session;
