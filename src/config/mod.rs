//! config layer (see src/lib.rs).
