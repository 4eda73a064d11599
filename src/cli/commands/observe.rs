//! status, logs, plan: the commands that look at ships without changing them.
//!
//! Each connects only to the ships its selection involves, asks each of them at the same time,
//! and prints a table (or one JSON document with `--json`).

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use console::Style;
use futures_util::future::join_all;
use serde::Serialize;

use super::super::{Cli, CliError, Command, EXIT_FAILED, EXIT_INTERRUPTED, Things};
use super::{load, runtime};
use crate::config::Environment;
use crate::docker::{self, LogSource};
use crate::orchestrate::fleet::{self, ConnectOptions, Fleet};
use crate::orchestrate::logs::{FanOut, LogEvent, LogOptions};
use crate::orchestrate::plan::{self, Direction, Graph, Plan, Selection};
use crate::orchestrate::secrets;
use crate::orchestrate::status::{
    self, InstanceState, PlanRow, PlannedAction, PortCheck, ShipListing, StatusRow,
};
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
        } => logs_command(cli, things, *follow, *lines),
        Command::Plan { things } => plan_command(cli, things),
        _ => Err(CliError::Usage("not a status, logs or plan command".into())),
    }
}

/// The ships that run the instances of `plan`, not yet connected.
fn fleet_of(cli: &Cli, env: &Environment, plan: &Plan) -> Arc<Fleet> {
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
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
    Ok(plan::select(env, &graph, &selection)?)
}

fn encode<T: Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|err| CliError::Failed(format!("cannot encode the report: {err}")))
}

fn stdout_palette() -> Palette {
    Palette::new(ui::colors_wanted(console::Term::stdout().is_term()))
}

/// Columns padded to the widest cell; `colour` styles a cell (row, column) after its width is
/// measured, so that escape codes do not upset the alignment.
fn table(
    header: &[&str],
    rows: &[Vec<String>],
    colour: impl Fn(usize, usize, &str) -> String,
) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (k, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(k) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String], style: &dyn Fn(usize, &str) -> String| {
        let mut text = String::new();
        for (k, cell) in cells.iter().enumerate() {
            text.push_str(&style(k, cell));
            if k + 1 < cells.len() {
                let pad = widths
                    .get(k)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count());
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        format!("{}\n", text.trim_end())
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = line(&header, &|_, cell| cell.to_string());
    for (r, row) in rows.iter().enumerate() {
        out.push_str(&line(row, &|k, cell| colour(r, k, cell)));
    }
    out
}

// ---------------------------------------------------------------------------------------
// status

/// Ages from the list call are rounded by the daemon: show them at its precision.
fn age_text(age: Option<status::Age>) -> String {
    let Some(age) = age else {
        return String::new();
    };
    let s = age.seconds;
    let text = if age.approximate {
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m", s / 60),
            3600..86_400 => format!("{}h", s / 3600),
            _ => format!("{}d", s / 86_400),
        }
    } else {
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m{:02}s", s / 60, s % 60),
            _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        }
    };
    format!(" for {text}")
}

/// The STATUS column: `running for 3m02s`, `down for 1h (exit 137)`, `absent`,
/// `host down: refused`.
pub(crate) fn status_text(state: &InstanceState) -> String {
    match state {
        InstanceState::Running {
            age,
            paused,
            health,
        } => {
            let word = if *paused { "paused" } else { "running" };
            let health = health
                .map(|h| format!(" ({})", format!("{h:?}").to_lowercase()))
                .unwrap_or_default();
            format!("{word}{}{health}", age_text(*age))
        }
        InstanceState::Down {
            age,
            container_state,
            exit_code,
        } => {
            let word = match container_state {
                docker::ContainerStatus::Exited => "down".to_string(),
                other => format!("{other:?}").to_lowercase(),
            };
            let code = exit_code
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default();
            format!("{word}{}{code}", age_text(*age))
        }
        InstanceState::Absent => "absent".to_string(),
        InstanceState::HostDown { cause, .. } => format!("host down: {cause}"),
    }
}

fn ports_text(row: &StatusRow) -> String {
    row.ports
        .iter()
        .map(|p| {
            let port = p
                .external
                .map_or_else(|| p.exposed.to_string(), |e| e.to_string());
            let result = match &p.check {
                PortCheck::Open { .. } => "ok".to_string(),
                PortCheck::Failed { reason } => format!("FAILED ({reason})"),
                PortCheck::Skipped { reason } => format!("- ({reason})"),
            };
            format!("{}:{port} {result}", p.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Serialize)]
struct StatusReport<'a> {
    environment: &'a str,
    /// Every selected instance runs (and, with `-F`, every checked port answered).
    ok: bool,
    instances: &'a [StatusRow],
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
    let rows = runtime()?.block_on(fleet.run(async {
        let observed = status::gather(&env, &fleet).await;
        let mut rows = status::rows(&env, &plan, &observed.listings, SystemTime::now());
        if full {
            for row in rows.iter_mut() {
                let listing = match observed.listings.get(&row.ship) {
                    Some(ShipListing::Listed(containers)) => Some(containers.as_slice()),
                    _ => None,
                };
                row.ports = status::port_targets(&env, row, listing);
            }
            let checks = rows.iter_mut().filter_map(|row| {
                let handle = observed.ships.get(&row.ship)?;
                Some(status::check_ports(
                    &handle.connection,
                    &mut row.ports,
                    status::PORT_CHECK_TIMEOUT,
                ))
            });
            join_all(checks).await;
        }
        rows
    }));
    let Some(rows) = rows else {
        return Ok(EXIT_INTERRUPTED);
    };
    let ok = rows
        .iter()
        .all(|r| r.is_running() && !r.ports.iter().any(|p| p.check.is_failure()));
    if cli.json {
        println!(
            "{}",
            secrets::mask(&encode(&StatusReport {
                environment: &env.name,
                ok,
                instances: &rows,
            })?)
        );
    } else {
        print!(
            "{}",
            secrets::mask(&render_status(&rows, full, show_hosts, stdout_palette()))
        );
        for row in &rows {
            if let InstanceState::HostDown { message, .. } = &row.state {
                // One explanation per ship is enough.
                if rows
                    .iter()
                    .find(|r| r.ship == row.ship)
                    .is_some_and(|r| r.index == row.index)
                {
                    eprintln!("{}", secrets::mask(message));
                }
            }
        }
    }
    Ok(if ok { 0 } else { EXIT_FAILED })
}

fn render_status(rows: &[StatusRow], full: bool, show_hosts: bool, palette: Palette) -> String {
    let mut header = vec!["#", "INSTANCE", "SERVICE", "SHIP"];
    if show_hosts {
        header.push("HOST");
    }
    header.push("CONTAINER");
    if full {
        header.extend(["IMAGE", "IMAGE ID"]);
    }
    header.push("STATUS");
    if full {
        header.push("PORTS");
    }
    let status_column = header.iter().position(|h| *h == "STATUS").unwrap_or(0);
    let ports_column = header.iter().position(|h| *h == "PORTS");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                row.index.to_string(),
                row.instance.clone(),
                row.service.clone(),
                row.ship.clone(),
            ];
            if show_hosts {
                cells.push(row.ship_address.clone());
            }
            let container = row.container.as_ref();
            cells.push(container.map_or_else(|| "-".into(), |c| c.tag_and_short_id()));
            if full {
                cells.push(container.map_or_else(|| "-".into(), |c| c.image.clone()));
                cells.push(
                    container
                        .map_or_else(|| "-".into(), |c| status::short_id(&c.image_id).to_string()),
                );
            }
            cells.push(status_text(&row.state));
            if full {
                cells.push(ports_text(row));
            }
            cells
        })
        .collect();
    table(&header, &cells, |r, k, cell| {
        let row = &rows[r];
        if k == status_column {
            match row.state {
                InstanceState::Running { .. } => palette.good(cell),
                InstanceState::Absent => palette.warn(cell),
                _ => palette.bad(cell),
            }
        } else if Some(k) == ports_column && row.ports.iter().any(|p| p.check.is_failure()) {
            palette.bad(cell)
        } else {
            cell.to_string()
        }
    })
}

// ---------------------------------------------------------------------------------------
// logs

/// Colours for instance prefixes; an instance keeps its colour from run to run.
const PREFIX_COLOURS: [fn(Style) -> Style; 6] = [
    Style::cyan,
    Style::magenta,
    Style::green,
    Style::yellow,
    Style::blue,
    Style::red,
];

/// FNV-1a: stable across runs and platforms, unlike the standard library's hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `instance | ` padded to `width`, in the instance's colour when `colours`.
fn log_prefix(instance: &str, width: usize, colours: bool) -> String {
    let text = format!("{instance:<width$} | ");
    if !colours {
        return text;
    }
    let pick = PREFIX_COLOURS[(stable_hash(instance) % PREFIX_COLOURS.len() as u64) as usize];
    pick(Style::new())
        .force_styling(true)
        .apply_to(text)
        .to_string()
}

fn logs_command(
    cli: &Cli,
    things: &Things,
    follow: bool,
    lines: Option<usize>,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    let plan = selected(&env, things, false)?;
    let several = plan.steps.len() > 1;
    let width = plan
        .instances()
        .map(|i| i.chars().count())
        .max()
        .unwrap_or(0);
    let out_colours = ui::colors_wanted(console::Term::stdout().is_term());
    let err_colours = ui::colors_wanted(console::Term::stderr().is_term());
    let palette = Palette::new(err_colours);

    let fleet = fleet_of(cli, &env, &plan);
    let options = LogOptions {
        tail: lines,
        follow,
        ..LogOptions::default()
    };
    runtime()?.block_on(async {
        let instances = plan
            .steps
            .iter()
            .map(|s| (s.ship.clone(), s.instance.clone()));
        let mut logs = FanOut::start(&fleet, instances, options);
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        let print = |event: LogEvent| {
            let (instance, text, to_stderr, notice) = match event {
                LogEvent::Line {
                    instance,
                    source,
                    text,
                } => (instance, text, source == LogSource::Stderr, false),
                LogEvent::Notice { instance, text } => (instance, text, true, true),
                LogEvent::Unreachable { instance, text } => {
                    // A container may print its own secrets; so may a daemon's error.
                    let _ = writeln!(
                        stderr.lock(),
                        "{}",
                        secrets::mask(&format!("{instance}: {text}"))
                    );
                    return;
                }
            };
            let colours = if to_stderr { err_colours } else { out_colours };
            let prefix = if several {
                log_prefix(&instance, width, colours)
            } else {
                String::new()
            };
            let text = if notice {
                let who = if several {
                    String::new()
                } else {
                    format!("{instance}: ")
                };
                palette.dim(&format!("[maestro] {who}{text}"))
            } else {
                text
            };
            // A closed pipe (`| head`) ends the output, not the program with a panic.
            // A container may print its own secrets (its environment, a config file).
            let text = secrets::mask(&text);
            let _ = if to_stderr {
                writeln!(stderr.lock(), "{prefix}{text}")
            } else {
                writeln!(stdout.lock(), "{prefix}{text}")
            };
        };
        let interrupted = fleet::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                event = logs.next() => match event {
                    Some(event) => print(event),
                    None => break,
                },
                _ = &mut interrupted => {
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
            let _ = writeln!(
                stderr.lock(),
                "{}",
                secrets::mask(&format!("error: {failure}"))
            );
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

#[derive(Serialize)]
struct PlanReport<'a> {
    environment: &'a str,
    instances: &'a [PlanRow],
}

fn plan_command(cli: &Cli, things: &Things) -> Result<i32, CliError> {
    let env = load(cli)?;
    let plan = selected(&env, things, false)?;
    let fleet = fleet_of(cli, &env, &plan);
    let rows = runtime()?.block_on(fleet.run(status::what_start_would_do(&env, &plan, &fleet)));
    let Some((rows, lookup_errors)) = rows else {
        return Ok(EXIT_INTERRUPTED);
    };
    for err in &lookup_errors {
        eprintln!("{}", secrets::mask(&format!("warning: {err}")));
    }
    let mut explained = std::collections::BTreeSet::new();
    for row in &rows {
        if let PlannedAction::Unknown { message, .. } = &row.action
            && explained.insert(message.clone())
        {
            eprintln!("{}", secrets::mask(message));
        }
    }
    let unknown = rows
        .iter()
        .any(|r| matches!(r.action, PlannedAction::Unknown { .. }));
    // The spec diff shows environment values, which may be secrets.
    if cli.json {
        println!(
            "{}",
            secrets::mask(&encode(&PlanReport {
                environment: &env.name,
                instances: &rows,
            })?)
        );
    } else {
        print!("{}", secrets::mask(&render_plan(&rows, stdout_palette())));
    }
    Ok(if unknown { EXIT_FAILED } else { 0 })
}

fn action_word(action: &PlannedAction) -> String {
    match action {
        PlannedAction::Create { pull: true } => "create (pull the image first)".into(),
        PlannedAction::Create { pull: false } => "create".into(),
        PlannedAction::Recreate { reasons, .. } => format!("recreate: {}", reasons.join("; ")),
        PlannedAction::Start => "start".into(),
        PlannedAction::Nothing => "nothing".into(),
        PlannedAction::Unknown { cause, .. } => format!("unknown: host down: {cause}"),
    }
}

fn render_plan(rows: &[PlanRow], palette: Palette) -> String {
    let mut out = String::new();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.index.to_string(),
                r.instance.clone(),
                r.service.clone(),
                r.ship.clone(),
                action_word(&r.action),
            ]
        })
        .collect();
    let table_text = table(
        &["#", "INSTANCE", "SERVICE", "SHIP", "ACTION"],
        &cells,
        |r, k, cell| {
            if k != 4 {
                return cell.to_string();
            }
            match rows[r].action {
                PlannedAction::Nothing => palette.dim(cell),
                PlannedAction::Create { .. } | PlannedAction::Start => palette.good(cell),
                PlannedAction::Recreate { .. } => palette.warn(cell),
                PlannedAction::Unknown { .. } => palette.bad(cell),
            }
        },
    );
    // The field-by-field diff goes under its row.
    let indent = " ".repeat(4);
    for (line, row) in table_text
        .lines()
        .zip(std::iter::once(None).chain(rows.iter().map(Some)))
    {
        out.push_str(line);
        out.push('\n');
        if let Some(PlanRow {
            action: PlannedAction::Recreate { changes, .. },
            ..
        }) = row
        {
            for change in changes {
                let show = |v: &Option<String>| {
                    v.as_ref()
                        .map_or_else(|| "(absent)".to_string(), |v| format!("{v:?}"))
                };
                out.push_str(&format!(
                    "{indent}{}: {} -> {}\n",
                    change.field,
                    palette.bad(&show(&change.old)),
                    palette.good(&show(&change.new))
                ));
            }
        }
    }
    let count = |f: fn(&PlannedAction) -> bool| rows.iter().filter(|r| f(&r.action)).count();
    out.push_str(&format!(
        "{} to create, {} to re-create, {} to start, {} unchanged{}\n",
        count(|a| matches!(a, PlannedAction::Create { .. })),
        count(|a| matches!(a, PlannedAction::Recreate { .. })),
        count(|a| matches!(a, PlannedAction::Start)),
        count(|a| matches!(a, PlannedAction::Nothing)),
        match count(|a| matches!(a, PlannedAction::Unknown { .. })) {
            0 => String::new(),
            n => format!(", {n} unknown (ship down)"),
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::status::Age;

    #[test]
    fn status_texts_read_like_maestrong() {
        let running = InstanceState::Running {
            age: Some(Age {
                seconds: 182,
                approximate: false,
            }),
            paused: false,
            health: None,
        };
        assert_eq!(status_text(&running), "running for 3m02s");
        let down = InstanceState::Down {
            age: Some(Age {
                seconds: 3600,
                approximate: true,
            }),
            container_state: docker::ContainerStatus::Exited,
            exit_code: Some(137),
        };
        assert_eq!(status_text(&down), "down for 1h (exit 137)");
        assert_eq!(status_text(&InstanceState::Absent), "absent");
        let host_down = InstanceState::HostDown {
            cause: "refused".into(),
            message: String::new(),
        };
        assert_eq!(status_text(&host_down), "host down: refused");
    }

    #[test]
    fn prefixes_are_padded_and_plain_without_colour() {
        assert_eq!(log_prefix("web-1", 7, false), "web-1   | ");
        let coloured = log_prefix("web-1", 7, true);
        assert!(coloured.contains("\u{1b}["));
        assert_eq!(coloured, log_prefix("web-1", 7, true), "stable colour");
    }

    #[test]
    fn tables_align_on_plain_width() {
        let text = table(
            &["#", "NAME"],
            &[vec!["1".into(), "a".into()], vec!["10".into(), "bb".into()]],
            |_, _, cell| cell.to_string(),
        );
        assert_eq!(text, "#   NAME\n1   a\n10  bb\n");
    }
}
