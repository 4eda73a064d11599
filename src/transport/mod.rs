//! transport layer (see src/lib.rs).
