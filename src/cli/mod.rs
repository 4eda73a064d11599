//! Command-line interface: parses arguments, runs the command, and is the one place where
//! errors are reported to the user and turned into exit codes.

mod args;
mod commands;

use clap::Parser;

pub use args::{Cli, Command, Output, Things};

/// Exit code for input the user must fix (bad file, bad arguments); no ship was contacted.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code when some instance or ship failed.
pub const EXIT_FAILED: i32 = 1;

/// Runs maestro with the process arguments and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with code 0, usage errors with code 2.
            let _ = err.print();
            return err.exit_code();
        }
    };
    match commands::run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{err}");
            err.exit_code()
        }
    }
}

/// An error that ends the command. Its message is complete (it starts with `error:`), and
/// each knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Plan(#[from] crate::orchestrate::plan::PlanError),
    #[error("error: {0}")]
    Io(#[from] std::io::Error),
    /// A usage error that clap cannot see (e.g. `stop` without names or `-a`).
    #[error("error: {0}")]
    Usage(String),
    #[error("error: {0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(err) => err.exit_code(),
            CliError::Plan(err) => err.exit_code(),
            CliError::Usage(_) => EXIT_BAD_INPUT,
            CliError::Io(_) | CliError::Failed(_) => EXIT_FAILED,
        }
    }
}
