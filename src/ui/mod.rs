//! ui layer (see src/lib.rs).
