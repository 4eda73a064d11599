//! docker layer (see src/lib.rs).
