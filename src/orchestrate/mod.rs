//! orchestrate layer (see src/lib.rs).
