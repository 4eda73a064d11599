//! `maestro lock status|acquire|release`: the environment's deploy lock on its ships.
//!
//! Glue: the lock's sequences (all or nothing, every ship at once, who may release) are
//! `orchestrate::deploy::lock`'s; this prints them. Every ship of the environment is covered: a
//! maintenance window is about the environment, not about one command's instances.

use std::sync::Arc;

use super::super::args::LockAction;
use super::super::{Cli, CliError, EXIT_FAILED, EXIT_INTERRUPTED};
use super::{load, runtime};
use crate::orchestrate::deploy::lock::{
    self, Holder, LockError, LockKind, Locks, Refusal, Released, State,
};
use crate::orchestrate::engine::executor;
use crate::orchestrate::engine::fleet::{ConnectOptions, Fleet};
use crate::ui;

pub(in crate::cli) fn run(cli: &Cli, action: &LockAction) -> Result<i32, CliError> {
    let env = load(cli)?;
    let names: Vec<&str> = env.ships.iter().map(|s| s.name.as_str()).collect();
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
        persist: cli.persist,
        ..ConnectOptions::default()
    };
    let fleet = Arc::new(Fleet::new(&env, &names, options));
    let rt = runtime()?;
    let done = match action {
        LockAction::Status => rt.block_on(fleet.run(async {
            let states = lock::status_all(&fleet, &env, &names).await;
            status(cli, &env.name, states)
        })),
        LockAction::Acquire { message } => rt.block_on(async {
            let ours = Holder::ours("lock acquire", LockKind::Maintenance, Some(message.clone()));
            // Not `fleet.run`, which drops its work on Ctrl-C: the acquisition hears Ctrl-C
            // itself and gives back what it took before it returns.
            let cancel = executor::interrupt_on_ctrl_c();
            let acquired = lock::acquire(&fleet, &env, &ours, &names, false, &cancel).await;
            fleet.close().await;
            Some(acquired_report(&env.name, &ours, message, acquired))
        }),
        LockAction::Release { force } => rt.block_on(fleet.run(async {
            let results = lock::release_all(&fleet, &env, &names, &lock::operator(), *force).await;
            let mut code = 0;
            for (ship, result) in results {
                match result {
                    Ok(Released::Removed(holder)) => ui::println(&format!(
                        "{ship}: released{}",
                        holder.map_or(String::new(), |h| format!(" (held by {})", h.describe()))
                    )),
                    Ok(Released::NotHeld) => ui::println(&format!("{ship}: not locked")),
                    Err(err) => {
                        code = EXIT_FAILED;
                        ui::eprintln(&format!("error: {err}"));
                    }
                }
            }
            Ok(code)
        })),
    };
    done.unwrap_or(Ok(EXIT_INTERRUPTED))
}

fn acquired_report(
    env: &str,
    ours: &Holder,
    message: &str,
    acquired: Result<Locks, Refusal>,
) -> Result<i32, CliError> {
    let locks = match acquired {
        Ok(locks) => locks,
        Err(Refusal { error, unreleased }) => {
            for err in &unreleased {
                ui::eprintln(&format!(
                    "warning: {err}\n  = help: `maestro lock release --force` clears it"
                ));
            }
            if let LockError::Interrupted = error {
                ui::eprintln(if unreleased.is_empty() {
                    "interrupted; the locks taken were released"
                } else {
                    "interrupted; the locks above could not be released"
                });
                return Ok(EXIT_INTERRUPTED);
            }
            return Err(CliError::Failed(error.to_string()));
        }
    };
    for took in &locks.taken_over {
        ui::eprintln(&format!(
            "warning: took over the deploy lock of ship {took}"
        ));
    }
    let ships = locks.ships();
    ui::println(&format!(
        "locked environment `{env}` for {} on {}: \"{message}\"\n  release it with \
         `maestro lock release`",
        ours.holder,
        if ships.is_empty() {
            "no ship (you held it already)".to_string()
        } else {
            ships.join(", ")
        }
    ));
    Ok(0)
}

fn status(
    cli: &Cli,
    env: &str,
    states: Vec<(String, Result<State, lock::LockError>)>,
) -> Result<i32, CliError> {
    let mut code = 0;
    if cli.json {
        let rows: Vec<serde_json::Value> = states
            .iter()
            .map(|(ship, state)| match state {
                Ok(State::Free) => serde_json::json!({"ship": ship, "state": "free"}),
                Ok(State::Held(holder)) => serde_json::json!({
                    "ship": ship,
                    "state": "held",
                    "holder": holder,
                    "alive": holder.as_ref().and_then(Holder::alive),
                }),
                Err(err) => {
                    serde_json::json!({"ship": ship, "state": "unknown", "error": err.to_string()})
                }
            })
            .collect();
        let doc = serde_json::json!({"environment": env, "locks": rows});
        ui::println(
            &serde_json::to_string_pretty(&doc).map_err(|e| CliError::Failed(e.to_string()))?,
        );
        if states.iter().any(|(_, s)| s.is_err()) {
            code = EXIT_FAILED;
        }
        return Ok(code);
    }
    for (ship, state) in states {
        match state {
            Ok(State::Free) => ui::println(&format!("{ship}: free")),
            Ok(State::Held(Some(holder))) => {
                let kind = match holder.kind {
                    LockKind::Command => "held by a command",
                    LockKind::Maintenance => "held for maintenance",
                };
                ui::println(&format!("{ship}: {kind}: {}", holder.describe()));
            }
            Ok(State::Held(None)) => ui::println(&format!(
                "{ship}: held, but its record is missing (being taken right now, or left \
                 half-written): `maestro lock release --force` clears it"
            )),
            Err(err) => {
                code = EXIT_FAILED;
                ui::eprintln(&format!("error: {err}"));
            }
        }
    }
    Ok(code)
}
