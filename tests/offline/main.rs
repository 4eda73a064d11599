//! The offline integration tests: one binary (`cargo test --test offline`) that needs neither
//! root nor the test bed nor the network, and runs in seconds as any user. The configuration
//! loader's messages, the command line, shell completion, the documentation's claims, the
//! executor's properties, hostile input against local listeners, and the terminal output
//! (golden files, a pseudo-terminal through util-linux `script`).
//!
//! One binary with modules, not a binary per file: the library is linked once, not once per
//! file. What needs root and the bed is in tests/bed/ (`cargo test --test bed`); see
//! docs/testing.md. The helpers in tests/common/ are shared by both.

#[path = "../common/mod.rs"]
mod common;

mod cli_selection;
mod completion;
mod config_errors;
mod config_examples;
mod docs;
mod executor_props;
mod hostile_input;
mod ui_golden;
