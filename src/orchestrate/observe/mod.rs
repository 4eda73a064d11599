//! The read-only commands: what runs ([`status`]), what `start` would do ([`preview`]),
//! each instance's deployments ([`history`]), container logs ([`logs`]) and the ships'
//! connections ([`ships`]). Nothing here changes a ship.
//!
//! May import: [`super::engine`], [`super::plan`], `docker`, `transport`, `config`,
//! `secrets`. Not deploy or session.

pub mod history;
pub mod logs;
pub mod preview;
pub mod ships;
pub mod status;
