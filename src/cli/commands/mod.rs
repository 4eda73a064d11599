//! One module per group of commands; `run` dispatches.

mod exec;
mod forward;
mod inspect;
mod lifecycle;
mod lock;
mod man;
mod observe;
mod persist;
mod ships;

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliError, Command};
use crate::config::{self, Environment};

pub(super) fn run(cli: &Cli) -> Result<i32, CliError> {
    match &cli.command {
        Command::Validate => inspect::validate(cli),
        Command::Deptree { names, recursive } => inspect::deptree(cli, names, *recursive),
        Command::Dump {
            containers,
            show_secrets,
        } => inspect::dump(cli, *containers, *show_secrets),
        Command::Ships { ships, .. } => ships::ships(cli, ships),
        Command::Forward {
            target, port, bind, ..
        } => forward::forward(cli, target, port, *bind),
        Command::Status { .. }
        | Command::Logs { .. }
        | Command::Plan { .. }
        | Command::History { .. } => observe::run(cli),
        Command::Start { .. }
        | Command::Up { .. }
        | Command::Stop { .. }
        | Command::Down { .. }
        | Command::Kill { .. }
        | Command::Restart { .. }
        | Command::Pull { .. }
        | Command::Push { .. }
        | Command::Clean { .. }
        | Command::Rollback { .. } => lifecycle::run(cli),
        Command::Lock { action, .. } => lock::run(cli, action),
        Command::Persist { action } => persist::run(cli, action),
        Command::Exec(args) => exec::exec(cli, args),
        Command::Ssh(args) => exec::ssh(cli, args),
        Command::Completions { shell } => {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let _ = crate::ui::output::stdout().write_all(&super::complete::script(*shell)?);
            Ok(0)
        }
        Command::Man => {
            crate::ui::output::stdout().write_all(&man::render(Cli::command())?)?;
            Ok(0)
        }
        Command::Version => {
            let command = Cli::command();
            crate::ui::println(&format!(
                "{} {}",
                command.get_name(),
                command.get_version().unwrap_or_default()
            ));
            Ok(0)
        }
    }
}

/// Loads the environment file named by `-f`, reporting errors against the user's text.
fn load(cli: &Cli) -> Result<Environment, CliError> {
    let env = config::load(&environment_file(cli)?).map_err(|err| follow_hint(cli, err))?;
    crate::secrets::add_environment(&env);
    Ok(env)
}

/// `logs -f web` from docker's habit reads `web` as the environment file: say so.
fn follow_hint(cli: &Cli, err: config::ConfigError) -> CliError {
    let missing = matches!(&err, config::ConfigError::Read { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound);
    if missing && matches!(cli.command, super::Command::Logs { .. }) {
        return CliError::Usage(format!(
            "{}\n  = help: `-f` names the environment file; `logs -F` (or --follow) follows the \
             logs",
            err.to_string().trim_start_matches("error: ")
        ));
    }
    err.into()
}

/// The file `-f` (or `MAESTRO_FILE`) names; without either, `maestro.yaml` or `maestro.yml` in
/// the current directory, the way compose looks for its file.
fn environment_file(cli: &Cli) -> Result<std::path::PathBuf, CliError> {
    if let Some(file) = &cli.file {
        return Ok(file.clone());
    }
    if let Some(found) = super::DEFAULT_FILES
        .iter()
        .find(|name| std::path::Path::new(name).is_file())
    {
        return Ok(found.into());
    }
    let here = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|_| "the current directory".to_owned());
    Err(CliError::Usage(format!(
        "no environment file: neither maestro.yaml nor maestro.yml is in {here}\n  \
         = help: name one with -f FILE (or MAESTRO_FILE=FILE); -f - reads it from standard input"
    )))
}

/// The async runtime for commands that talk to ships.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
