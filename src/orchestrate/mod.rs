//! orchestrate layer (see src/lib.rs).

pub mod events;
pub mod executor;
