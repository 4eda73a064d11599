//! orchestrate layer (see src/lib.rs).
pub mod plan;
