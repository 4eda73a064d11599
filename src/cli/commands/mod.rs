//! One module per group of commands; `run` dispatches.

mod inspect;
mod lifecycle;
mod observe;
mod ships;

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliError, Command};
use crate::config::{self, Environment};

pub(super) fn run(cli: &Cli) -> Result<i32, CliError> {
    match &cli.command {
        Command::Validate => inspect::validate(cli),
        Command::Deptree { things, recursive } => inspect::deptree(cli, things, *recursive),
        Command::Dump {
            containers,
            show_secrets,
        } => inspect::dump(cli, *containers, *show_secrets),
        Command::Ships { ships } => ships::ships(cli, ships),
        Command::Status { .. } | Command::Logs { .. } | Command::Plan { .. } => observe::run(cli),
        Command::Start { .. }
        | Command::Up { .. }
        | Command::Stop { .. }
        | Command::Down { .. }
        | Command::Kill { .. }
        | Command::Restart { .. }
        | Command::Pull { .. }
        | Command::Clean { .. } => lifecycle::run(cli),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "maestro",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
            Ok(0)
        }
    }
}

/// Loads the environment file named by `-f`, reporting errors against the user's text.
fn load(cli: &Cli) -> Result<Environment, CliError> {
    let env = config::load(&cli.file)?;
    crate::orchestrate::secrets::add_environment(&env);
    Ok(env)
}

/// The async runtime for commands that talk to ships.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
