//! config layer (see src/lib.rs): the environment file, rendered as a Jinja2 template, parsed
//! as YAML into a node tree that keeps positions, converted into the resolved [`Environment`]
//! and validated. Every error points at the user's text.

mod convert;
mod error;
pub mod graph;
mod load;
mod map_reader;
mod model;
mod node;
mod ports;
mod pycompat;
mod reader;
mod template;
mod validate;
mod write;
mod yaml11;

pub use error::{CONFIG_ERROR_EXIT_CODE, ConfigError, Diagnostic, did_you_mean};
pub use load::{load, load_str, load_str_with_vars};
pub use model::*;
pub use reader::parse_duration;
pub use write::{Document, Reveal, WriteError, to_schema2, to_schema2_json, to_schema2_yaml};

/// Environment files (and what templates render) are refused above this size.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
