//! maestro: bring up multi-host Docker environments from a laptop, over SSH, with no agent on
//! the hosts.
//!
//! The layers, each knowing only the ones below it:
//!
//! - [`cli`]: argument parsing and the one place where errors are reported to the user;
//! - [`ui`]: between `cli` and `orchestrate`: the renderers of the executor's event stream
//!   (progress bars, plain lines, JSON), the printers of the commands' reports (tables, JSON,
//!   logs), and the one way out of the process, a writer that masks secrets. It reads
//!   `orchestrate`'s types, is driven by `cli`, and never drives work;
//! - [`orchestrate`]: the plan (dependency graph, target selection), the executor that runs it
//!   and the lifecycle checks; it emits typed events and never prints;
//! - [`docker`]: what we ask of one ship's Docker daemon;
//! - [`transport`]: how we reach that daemon (SSH, local socket, TCP/TLS);
//! - [`config`]: beside them all: loading, templating and validating the environment file
//!   into a typed model, which feeds `orchestrate`;
//! - [`clock`]: a leaf any layer may use: the calendar arithmetic of UTC times;
//! - [`printable`]: a leaf any layer may use: text from ships and other operators made safe
//!   to print;
//! - [`secrets`]: a leaf any layer may use: which values are secret, and their masking.

// Every path of the library can be reached by user input or the network: no unwrap there
// (tests, compiled with cfg(test), may).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// Every byte of output goes through `ui::output`, which masks secrets: a print macro elsewhere
// would be a way out that forgets to.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod cli;
pub mod clock;
pub mod config;
pub mod docker;
pub mod orchestrate;
pub mod printable;
pub mod secrets;
pub mod transport;
pub mod ui;
