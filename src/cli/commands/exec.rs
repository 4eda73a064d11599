//! exec and ssh: the operator's terminal (`ui::terminal`) joined to a command on the remote
//! side (`orchestrate::session::exec`).
//!
//! Raw mode begins only once the remote command runs: connecting may still ask for a key's
//! passphrase on the terminal, and an error before then prints on a terminal as it was.

use std::sync::Arc;

use super::super::{Cli, CliError, EXIT_FAILED, EXIT_INTERRUPTED, ExecArgs, SshArgs};
use super::{load, runtime};
use crate::orchestrate::engine::fleet::{ConnectOptions, Fleet};
use crate::orchestrate::plan::select::{self, Graph, Selection};
use crate::orchestrate::session::exec::{
    self, ExecOptions, Local, PtyRequest, Remote, SessionRequest,
};
use crate::ui::logs::LogPrinter;
use crate::ui::{self, output, terminal};

pub(super) fn exec(cli: &Cli, args: &ExecArgs) -> Result<i32, CliError> {
    if args.names.is_empty() && args.container_filter.is_empty() && args.ship_filter.is_empty() {
        return Err(CliError::Usage(
            "exec needs an instance: maestro exec INSTANCE [-- CMD ...]\n  = help: `maestro \
             status` lists the instances; a service name, -C or -S select several"
                .into(),
        ));
    }
    let env = load(cli)?;
    let selection = Selection {
        names: args.names.clone(),
        container_filter: args.container_filter.clone(),
        ship_filter: args.ship_filter.clone(),
        ignore_dependencies: true,
        include_omitted: true,
        ..Selection::default()
    };
    let plan = select::select(&env, &Graph::new(&env), &selection).map_err(|err| {
        // `exec web-1 ls`: the command was taken for a second instance.
        match &err {
            select::PlanError::UnknownName { name, .. }
                if args.command.is_empty() && args.names.len() > 1 =>
            {
                CliError::Usage(format!(
                    "{}\n  = help: the command comes after `--`: maestro exec {} -- {name} ...",
                    err.to_string().trim_start_matches("error: "),
                    args.names.first().map_or("INSTANCE", String::as_str)
                ))
            }
            _ => err.into(),
        }
    })?;
    let fleet = Arc::new(Fleet::for_plans(&env, [&plan], connect_options(cli)));
    let mut options = ExecOptions {
        command: args.command.clone(),
        tty: None,
        user: args.user.clone(),
        working_dir: args.workdir.clone(),
        env: local_values(&args.env),
        environment: env.name.clone(),
    };
    if let [step] = plan.steps.as_slice() {
        let tty = wants_tty(args.tty, args.no_tty, true);
        options.tty = tty.then(|| terminal::size().unwrap_or((24, 80)));
        let runtime = runtime()?;
        let work = async {
            let remote = exec::start_exec(&fleet, &step.ship, &step.instance, &options).await?;
            attach(remote, tty).await
        };
        return finish(runtime.block_on(fleet.run(work)));
    }
    if args.tty {
        return Err(CliError::Usage(format!(
            "-t gives one instance a terminal, and {} are selected\n  = help: name one \
             instance, or leave -t out to run the command in each without one",
            plan.steps.len()
        )));
    }
    let instances = plan
        .steps
        .iter()
        .map(|s| (s.ship.clone(), s.instance.clone()));
    let mut printer = LogPrinter::new(plan.instances(), false);
    let exits = runtime()?.block_on(fleet.run(async {
        let (mut lines, all) = exec::fan_out(&fleet, instances.collect(), &options);
        while let Some(line) = lines.recv().await {
            printer.print(line);
        }
        all.await.unwrap_or_default()
    }));
    let Some(exits) = exits else {
        return Ok(EXIT_INTERRUPTED);
    };
    let mut worst = 0;
    for exit in exits {
        let code = exit.result.unwrap_or_else(|err| {
            ui::eprintln(&err.to_string());
            EXIT_FAILED
        });
        worst = worst.max(code);
    }
    Ok(worst)
}

pub(super) fn ssh(cli: &Cli, args: &SshArgs) -> Result<i32, CliError> {
    let env = load(cli)?;
    let ship = exec::ssh_ship(&env, &args.ship)?;
    // A shell on the ship must not depend on its Docker daemon.
    let options = ConnectOptions {
        login_only: true,
        ..connect_options(cli)
    };
    let fleet = Arc::new(Fleet::new(&env, &[&ship.name], options));
    // As OpenSSH: a terminal for a login shell, none for a command unless -t.
    let tty = wants_tty(args.tty, args.no_tty, args.command.is_empty());
    let request = SessionRequest {
        command: (!args.command.is_empty()).then(|| args.command.join(" ")),
        pty: tty.then(|| {
            let (rows, cols) = terminal::size().unwrap_or((24, 80));
            PtyRequest {
                term: terminal::term_name(),
                rows,
                cols,
            }
        }),
    };
    let runtime = runtime()?;
    let work = async {
        let remote = exec::start_ssh(&fleet, &ship.name, &request).await?;
        attach(remote, tty).await
    };
    finish(runtime.block_on(fleet.run(work)))
}

fn connect_options(cli: &Cli) -> ConnectOptions {
    ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
        persist: cli.persist,
        ..ConnectOptions::default()
    }
}

/// A terminal unless `-T`; with `-t` always; otherwise when both ends are terminals and the
/// command is one that wants one.
fn wants_tty(force: bool, never: bool, by_default: bool) -> bool {
    !never && (force || (by_default && terminal::is_interactive()))
}

/// Relays between the operator and `remote`, the terminal raw while it runs when `tty`.
async fn attach(remote: Remote, tty: bool) -> Result<i32, CliError> {
    // Dropped on every way out of this function, and with it when Ctrl-C drops the work.
    let _raw = if tty && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Some(terminal::RawMode::enter()?)
    } else {
        None
    };
    let local = Local {
        input: Some(terminal::input()),
        resizes: terminal::resizes(),
        stdout: output::stdout_passthrough(),
        stderr: output::stderr_passthrough(),
    };
    Ok(exec::relay(remote, local, terminal::ended_by_signal()).await?)
}

/// The command's exit code; Ctrl-C (while connecting, or of a command without a terminal)
/// is 130.
fn finish(outcome: Option<Result<i32, CliError>>) -> Result<i32, CliError> {
    outcome.unwrap_or(Ok(EXIT_INTERRUPTED))
}

/// `-e NAME=value` as given; `-e NAME` takes NAME's value from this machine's environment, as
/// `docker exec -e NAME` does (and is left out when NAME is not set here).
fn local_values(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|entry| {
            if entry.contains('=') {
                return Some(entry.clone());
            }
            std::env::var(entry)
                .ok()
                .map(|value| format!("{entry}={value}"))
        })
        .collect()
}
