//! maestro: bring up multi-host Docker environments from a laptop, over SSH, with no agent on
//! the hosts.
//!
//! The layers, each knowing only the ones below it:
//!
//! - [`cli`]: argument parsing and the one place where errors are reported to the user;
//! - [`orchestrate`]: the plan (dependency graph, target selection), the executor that runs it
//!   and the lifecycle checks; it emits typed events;
//! - [`docker`]: what we ask of one ship's Docker daemon;
//! - [`transport`]: how we reach that daemon (SSH, local socket, TCP/TLS);
//! - [`config`]: loading, templating and validating the environment file into a typed model,
//!   which feeds `orchestrate`;
//! - [`ui`]: renderers of the executor's event stream (progress bars, plain lines, JSON); it
//!   never drives work.

pub mod cli;
pub mod config;
pub mod docker;
pub mod orchestrate;
pub mod transport;
pub mod ui;
