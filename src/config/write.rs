//! The resolved [`Environment`] written back as an environment file (schema 2): what `maestro
//! dump` prints. STUB: to be replaced by the real writer.

use super::Environment;

/// Whether secret values (registry passwords, secret variables) are written or masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// `***` in their place.
    Masks,
    /// The values themselves.
    Secrets,
}

/// `env` as a schema 2 environment file.
pub fn to_schema2_yaml(env: &Environment, _reveal: Reveal) -> String {
    serde_saphyr::to_string(env).unwrap_or_default()
}
