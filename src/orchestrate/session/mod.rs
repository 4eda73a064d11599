//! The operator's live connection to what maestro deployed: a command or shell in a
//! container, a shell on a ship ([`exec`]), a local port forwarded to an instance or a ship
//! ([`forward`]), through the same sessions and host-key rules as every command.
//!
//! May import: [`super::engine`], [`super::plan`], `docker`, `transport`, `config`, and
//! [`super::observe::logs`]'s line type alone (exec on several instances prints its lines
//! through the one log pipeline). Not deploy.

pub mod exec;
pub mod forward;
pub mod persist;
