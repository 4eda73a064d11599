//! What to do, from the environment file alone: which instances and in which order
//! ([`select`]), the container each instance should be ([`spec`], with [`autoconf`]'s
//! variables), and what a container found on a ship is to an instance ([`container`]: kept
//! for a rollback, someone else's, changed). No ship is contacted here.
//!
//! May import: `config`, `docker` (its types, not its calls). Nothing else of orchestrate.

pub mod autoconf;
pub mod container;
pub mod select;
pub mod spec;
