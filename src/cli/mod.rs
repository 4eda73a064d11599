//! Command-line interface: parses arguments, runs the command, and is the one place where
//! errors are reported to the user and turned into exit codes.

mod args;

use std::io::Write;

use clap::{CommandFactory, Parser};

pub use args::{Cli, Command, Output, Things};

/// Exit code for input the user must fix (bad file, bad arguments); no ship was contacted.
pub const EXIT_BAD_INPUT: i32 = 2;

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
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

/// An error that ends the command; each knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("`{0}` is not implemented yet")]
    NotImplemented(&'static str),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Io(_) => 1,
            CliError::NotImplemented(_) => EXIT_BAD_INPUT,
        }
    }
}

fn run(cli: Cli) -> Result<i32, CliError> {
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "maestro", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
            Ok(0)
        }
        _ => Err(CliError::NotImplemented("this command")),
    }
}
