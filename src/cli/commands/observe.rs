//! status, logs, plan, history: the commands that look at ships without changing them.
//!
//! Each connects only to the ships its selection involves, asks each of them at the same time,
//! and prints a table (or one JSON document with `--json`).

use std::sync::Arc;

use super::super::{Cli, CliError, Command, EXIT_FAILED, EXIT_INTERRUPTED, Things};
use super::{load, runtime};
use crate::config::Environment;
use crate::orchestrate::engine::cancel;
use crate::orchestrate::engine::fleet::{ConnectOptions, Fleet};
use crate::orchestrate::observe::history;
use crate::orchestrate::observe::logs::{FanOut, LogOptions};
use crate::orchestrate::observe::preview::{self, PlannedAction};
use crate::orchestrate::observe::status::{self, InstanceState};
use crate::orchestrate::plan::select::{self, Direction, Graph, Plan, Selection};
use crate::ui::logs::LogPrinter;
use crate::ui::report::{self, HistoryReport, PlanReport, StatusReport};
use crate::ui::{self, Palette};

pub(super) fn run(cli: &Cli) -> Result<i32, CliError> {
    match &cli.command {
        Command::Status {
            things,
            full,
            show_hosts,
        } => status_command(cli, things, *full, *show_hosts),
        Command::Logs {
            things,
            follow,
            lines,
            since,
            until,
            timestamps,
        } => {
            let options = LogOptions {
                tail: *lines,
                follow: *follow,
                since: *since,
                until: *until,
                ..LogOptions::default()
            };
            logs_command(cli, things, options, *timestamps)
        }
        Command::Plan { things } => plan_command(cli, things),
        Command::History { things } => history_command(cli, things),
        _ => Err(CliError::Usage(
            "not a status, logs, plan or history command".into(),
        )),
    }
}

/// The ships that run the instances of `plan`, not yet connected.
fn fleet_of(cli: &Cli, env: &Environment, plan: &Plan) -> Arc<Fleet> {
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
        persist: cli.persist,
        ..ConnectOptions::default()
    };
    Arc::new(Fleet::for_plans(env, [plan], options))
}

/// The instances `things` names, in dependency order. `status` also shows `omit` services.
fn selected(env: &Environment, things: &Things, include_omitted: bool) -> Result<Plan, CliError> {
    let graph = Graph::new(env);
    let selection = Selection {
        names: things.names.clone(),
        container_filter: things.container_filter.clone(),
        ship_filter: things.ship_filter.clone(),
        with_dependencies: things.with_dependencies,
        ignore_dependencies: things.ignore_dependencies,
        direction: Direction::Forward,
        include_omitted,
    };
    Ok(select::select(env, &graph, &selection)?)
}

// ---------------------------------------------------------------------------------------
// status

fn stdout_palette() -> Palette {
    Palette::new(ui::colors_wanted(console::Term::stdout().is_term()))
}

fn status_command(
    cli: &Cli,
    things: &Things,
    full: bool,
    show_hosts: bool,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    let plan = selected(&env, things, true)?;
    let fleet = fleet_of(cli, &env, &plan);
    let rows = runtime()?.block_on(fleet.run(status::what_runs(&env, &plan, &fleet, full)));
    let Some(rows) = rows else {
        return Ok(EXIT_INTERRUPTED);
    };
    let ok = rows
        .iter()
        .all(|r| r.is_running() && !r.ports.iter().any(|p| p.check.is_failure()));
    for row in &rows {
        for kept in &row.kept_running {
            ui::eprintln(&format!(
                "warning: ship {}: {kept}, kept for `maestro rollback`, is running beside {}\n  \
                 = help: stop it (`docker stop {kept}` on the ship): a kept container runs only \
                 when a rollback brings it back",
                row.ship, row.instance
            ));
        }
    }
    if cli.json {
        let status = StatusReport {
            environment: &env.name,
            ok,
            instances: &rows,
        };
        ui::println_fields(&report::json(&status).map_err(CliError::Failed)?);
    } else {
        ui::print_fields(&report::status_table(
            &rows,
            full,
            show_hosts,
            stdout_palette(),
        ));
        for row in &rows {
            if let InstanceState::HostDown { message, .. } = &row.state {
                // One explanation per ship is enough.
                if rows
                    .iter()
                    .find(|r| r.ship == row.ship)
                    .is_some_and(|r| r.index == row.index)
                {
                    ui::eprintln(message);
                }
            }
        }
    }
    Ok(if ok { 0 } else { EXIT_FAILED })
}

// ---------------------------------------------------------------------------------------
// logs

fn logs_command(
    cli: &Cli,
    things: &Things,
    options: LogOptions,
    timestamps: bool,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    let plan = selected(&env, things, false)?;
    let fleet = fleet_of(cli, &env, &plan);
    runtime()?.block_on(async {
        let instances = plan
            .steps
            .iter()
            .map(|s| (s.ship.clone(), s.instance.clone()));
        let mut logs = FanOut::start(&fleet, instances, options);
        let mut printer = LogPrinter::new(plan.instances(), timestamps);
        let interrupted = cancel::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                event = logs.next() => match event {
                    Some(event) => printer.print(event),
                    None => break,
                },
                _ = &mut interrupted => {
                    for event in logs.held() {
                        printer.print(event);
                    }
                    // Following ends with Ctrl-C by design: that is success, not failure;
                    // while ships are still connecting, it is an interruption.
                    let code = if fleet.connecting() > 0 {
                        EXIT_INTERRUPTED
                    } else if logs.any_unreachable() {
                        EXIT_FAILED
                    } else {
                        0
                    };
                    fleet.close().await;
                    return Ok::<i32, CliError>(code);
                }
            }
        }
        let unreachable = logs.any_unreachable();
        let failures = logs.finish().await;
        for failure in &failures {
            printer.error(&failure.to_string());
        }
        fleet.close().await;
        Ok(if unreachable || !failures.is_empty() {
            EXIT_FAILED
        } else {
            0
        })
    })
}

// ---------------------------------------------------------------------------------------
// plan

fn plan_command(cli: &Cli, things: &Things) -> Result<i32, CliError> {
    let env = load(cli)?;
    let plan = selected(&env, things, false)?;
    let fleet = fleet_of(cli, &env, &plan);
    let rows = runtime()?.block_on(fleet.run(preview::what_start_would_do(&env, &plan, &fleet)));
    let Some((rows, lookup_errors)) = rows else {
        return Ok(EXIT_INTERRUPTED);
    };
    for err in &lookup_errors {
        ui::eprintln(&format!("warning: {err}"));
    }
    let mut explained = std::collections::BTreeSet::new();
    for row in &rows {
        let explanation = match &row.action {
            PlannedAction::Unknown { message, .. } => message,
            PlannedAction::Refused { reason } => reason,
            _ => continue,
        };
        if explained.insert(explanation.clone()) {
            ui::eprintln(explanation);
        }
    }
    // `start` would not do what was asked of these.
    let unknown = rows.iter().any(|r| {
        matches!(
            r.action,
            PlannedAction::Unknown { .. } | PlannedAction::Refused { .. }
        )
    });
    // The spec diff shows environment values, which may be secrets.
    if cli.json {
        let planned = PlanReport {
            environment: &env.name,
            instances: &rows,
        };
        ui::println_fields(&report::json(&planned).map_err(CliError::Failed)?);
    } else {
        ui::print_fields(&report::plan_table(&rows, stdout_palette()));
    }
    Ok(if unknown { EXIT_FAILED } else { 0 })
}

// ---------------------------------------------------------------------------------------
// history

fn history_command(cli: &Cli, things: &Things) -> Result<i32, CliError> {
    let env = load(cli)?;
    let plan = selected(&env, things, true)?;
    let fleet = fleet_of(cli, &env, &plan);
    let histories = runtime()?.block_on(fleet.run(history::deployments(&env, &plan, &fleet)));
    let Some(histories) = histories else {
        return Ok(EXIT_INTERRUPTED);
    };
    if cli.json {
        let report = HistoryReport {
            environment: &env.name,
            instances: &histories,
        };
        ui::println_fields(&report::json(&report).map_err(CliError::Failed)?);
    } else {
        ui::print_fields(&report::history_table(&histories, stdout_palette()));
    }
    let unreachable: Vec<&str> = histories
        .iter()
        .filter_map(|h| h.unreachable.as_deref())
        .collect();
    if !cli.json {
        let mut said = std::collections::BTreeSet::new();
        for message in &unreachable {
            if said.insert(*message) {
                ui::eprintln(message);
            }
        }
    }
    Ok(if unreachable.is_empty() {
        0
    } else {
        EXIT_FAILED
    })
}
