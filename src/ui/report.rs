//! The printer of the commands' reports: `status`, `plan` and `ships` as text tables or
//! JSON documents, and the one table renderer, which the run summary uses too. Commands hand
//! their rows here and print what comes back with `ui::print_fields`: it is masked field by
//! field here (names as the file wrote them, free text masked wherever a secret appears).

use console::measure_text_width;
use serde::Serialize;

use super::Palette;
use crate::docker;
use crate::orchestrate::observe::history::{DeploymentRow, InstanceHistory, Role};
use crate::orchestrate::observe::preview::{PlanRow, PlannedAction};
use crate::orchestrate::observe::ships::ShipReport;
use crate::orchestrate::observe::status::{self, InstanceState, PortCheck, StatusRow};
use crate::secrets;

/// A report as one pretty-printed JSON document, masked field by field (names as written,
/// free text masked wherever a secret appears): print it with `ui::println_fields`.
pub fn json<T: Serialize>(report: &T) -> Result<String, String> {
    let mut value =
        serde_json::to_value(report).map_err(|err| format!("cannot encode the report: {err}"))?;
    secrets::global().mask_json(&mut value);
    serde_json::to_string_pretty(&value).map_err(|err| format!("cannot encode the report: {err}"))
}

/// `status --json`.
#[derive(Serialize)]
pub struct StatusReport<'a> {
    pub environment: &'a str,
    /// Every selected instance runs (and, with `-F`, every checked port answered).
    pub ok: bool,
    pub instances: &'a [StatusRow],
}

/// `plan --json`.
#[derive(Serialize)]
pub struct PlanReport<'a> {
    pub environment: &'a str,
    pub instances: &'a [PlanRow],
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
pub fn status_text(state: &InstanceState) -> String {
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

/// `status`'s table; `full` adds the image and the port checks, `show_hosts` the ships' addresses.
pub fn status_table(rows: &[StatusRow], full: bool, show_hosts: bool, palette: Palette) -> String {
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
    table(
        &header,
        &cells,
        &[],
        |h| h.to_string(),
        |r, k, cell| {
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
        },
    )
}

// ---------------------------------------------------------------------------------------
// plan

fn action_word(action: &PlannedAction) -> String {
    match action {
        PlannedAction::Create { pull: true } => "create (pull the image first)".into(),
        PlannedAction::Create { pull: false } => "create".into(),
        PlannedAction::Recreate { reasons, .. } => format!("recreate: {}", reasons.join("; ")),
        PlannedAction::Start => "start".into(),
        PlannedAction::Nothing => "nothing".into(),
        PlannedAction::Unknown { cause, .. } => format!("unknown: host down: {cause}"),
        PlannedAction::Refused { .. } => "refused: not this environment's container".into(),
    }
}

/// `plan`'s table, each re-creation's field-by-field diff under its row, then the totals.
pub fn plan_table(rows: &[PlanRow], palette: Palette) -> String {
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
        &[],
        |h| h.to_string(),
        |r, k, cell| {
            if k != 4 {
                return cell.to_string();
            }
            match rows[r].action {
                PlannedAction::Nothing => palette.dim(cell),
                PlannedAction::Create { .. } | PlannedAction::Start => palette.good(cell),
                PlannedAction::Recreate { .. } => palette.warn(cell),
                PlannedAction::Unknown { .. } | PlannedAction::Refused { .. } => palette.bad(cell),
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
                let masker = secrets::global();
                let secret = change
                    .field
                    .rsplit(['.', ' '])
                    .next()
                    .is_some_and(|name| masker.is_secret_name(name));
                let show = |v: &Option<String>| match v {
                    None => "(absent)".to_string(),
                    Some(_) if secret => format!("{:?}", secrets::MASK),
                    Some(v) => format!("{:?}", masker.mask(v)),
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
        [
            (
                count(|a| matches!(a, PlannedAction::Unknown { .. })),
                "unknown (ship down)"
            ),
            (
                count(|a| matches!(a, PlannedAction::Refused { .. })),
                "refused (not this environment's)"
            ),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!(", {n} {what}"))
        .collect::<String>()
    ));
    out
}

// ---------------------------------------------------------------------------------------
// history

/// `history --json`.
#[derive(Serialize)]
pub struct HistoryReport<'a> {
    pub environment: &'a str,
    pub instances: &'a [InstanceHistory],
}

/// What a deployment is now, in the WHAT column.
fn role_text(row: &DeploymentRow) -> String {
    let mut text = match row.role {
        Role::Current => match row.state {
            Some(state) => format!("current, {}", state.as_str()),
            None => "current".to_string(),
        },
        Role::RollbackTarget => "kept: rollback returns here".to_string(),
        Role::Older => "kept, older (clean removes it)".to_string(),
        Role::Removed => "removed".to_string(),
    };
    if row.record.as_ref().is_some_and(|r| !r.succeeded) {
        text.push_str(", did not succeed");
    }
    text
}

/// `history`: one line per deployment of each instance, newest first.
pub fn history_table(histories: &[InstanceHistory], palette: Palette) -> String {
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut roles: Vec<Option<Role>> = Vec::new();
    for history in histories {
        let mut line = |deployed: String, by: String, image: String, spec: String, what: String| {
            cells.push(vec![
                history.instance.clone(),
                history.ship.clone(),
                deployed,
                by,
                image,
                spec,
                what,
            ]);
        };
        let dash = || "-".to_string();
        if history.unreachable.is_some() {
            line(dash(), dash(), dash(), dash(), "unknown (ship down)".into());
            roles.push(None);
            continue;
        }
        if history.deployments.is_empty() {
            line(dash(), dash(), dash(), dash(), "no container".into());
            roles.push(None);
        }
        for row in &history.deployments {
            let (by, when) = match &row.record {
                Some(record) => (record.by.clone(), record.at),
                None => ("(not recorded)".to_string(), row.at()),
            };
            let image = format!("{} ({})", row.image, status::short_id(&row.image_id));
            let spec = row
                .spec_hash
                .as_deref()
                .map_or_else(dash, |h| status::short_id(h).to_string());
            line(
                crate::clock::format_unix_time(when),
                by,
                image,
                spec,
                role_text(row),
            );
            roles.push(Some(row.role));
        }
    }
    table(
        &[
            "INSTANCE", "SHIP", "DEPLOYED", "BY", "IMAGE", "SPEC", "WHAT",
        ],
        &cells,
        &[],
        |h| h.to_string(),
        |r, k, cell| {
            if k != 6 {
                return cell.to_string();
            }
            match roles.get(r).copied().flatten() {
                Some(Role::Current) => palette.good(cell),
                Some(Role::RollbackTarget) => palette.warn(cell),
                Some(Role::Older | Role::Removed) => palette.dim(cell),
                None => palette.bad(cell),
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// ships

/// `ships`' report: each ship's engine or failure, then how it was reached.
pub fn ships_text(reports: &[ShipReport]) -> String {
    let mut out = String::new();
    for report in reports {
        if let Some(engine) = &report.engine {
            out.push_str(&format!(
                "{}: ok, Docker {} (API {}, using {}) {}/{}, round trip {:.1} ms\n",
                report.ship,
                engine.engine_version,
                engine.api_version,
                engine.client_api_version,
                engine.os,
                engine.arch,
                engine.round_trip.as_secs_f64() * 1000.0
            ));
        }
        if let Some(failure) = &report.error {
            out.push_str(&format!(
                "{}: FAILED ({})\n  {}\n",
                report.ship,
                failure.cause,
                secrets::mask(&failure.message).replace('\n', "\n  ")
            ));
        }
        // How the ship was reached, also when what came after the login failed.
        if let Some(conn) = &report.connection {
            out.push_str(&format!(
                "  route:    {} ({})\n",
                conn.route, conn.transport
            ));
            for hop in &conn.hops {
                out.push_str(&format!(
                    "  hop:      {} auth {} host key {}\n",
                    hop.address, hop.auth_method, hop.host_key_fingerprint
                ));
            }
            for warning in &conn.warnings {
                out.push_str(&format!("  warning:  {}\n", secrets::mask(warning)));
            }
        }
    }
    let ok = reports.iter().filter(|r| r.ok).count();
    out.push_str(&format!("{ok} of {} ships reachable\n", reports.len()));
    out
}

// ---------------------------------------------------------------------------------------
// tables

/// The one table renderer: columns padded to the widest cell, two spaces apart; the last
/// column is not padded, so a long last cell does not push the others about and lines carry
/// no trailing spaces. Cells are measured before they are styled, so escape codes do not
/// upset the alignment: `header` styles the header line, `colour` a cell (row, column).
pub fn table(
    header: &[&str],
    rows: &[Vec<String>],
    right_aligned: &[usize],
    header_style: impl Fn(&str) -> String,
    colour: impl Fn(usize, usize, &str) -> String,
) -> String {
    // Columns of names show them as written; every other cell is free text, masked wherever
    // a secret appears (before it is measured, so the padding fits what is shown).
    let masker = secrets::global();
    let masked: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(k, cell)| match header.get(k) {
                    Some(h) if secrets::NAME_COLUMNS.contains(h) => cell.clone(),
                    _ => masker.mask(cell),
                })
                .collect()
        })
        .collect();
    let rows = &masked;
    let mut widths: Vec<usize> = header.iter().map(|h| measure_text_width(h)).collect();
    for row in rows {
        for (k, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(k) {
                *w = (*w).max(measure_text_width(cell));
            }
        }
    }
    let line = |cells: &[String], style: &dyn Fn(usize, &str) -> String| {
        let mut text = String::new();
        for (k, cell) in cells.iter().enumerate() {
            let last = k + 1 == cells.len();
            let pad = widths
                .get(k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(measure_text_width(cell));
            if right_aligned.contains(&k) && !last {
                text.push_str(&" ".repeat(pad));
            }
            text.push_str(&style(k, cell));
            if !last {
                if !right_aligned.contains(&k) {
                    text.push_str(&" ".repeat(pad));
                }
                text.push_str("  ");
            }
        }
        text.trim_end().to_string()
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = header_style(&line(&header, &|_, cell| cell.to_string()));
    out.push('\n');
    for (r, row) in rows.iter().enumerate() {
        out.push_str(&line(row, &|k, cell| colour(r, k, cell)));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::observe::status::Age;

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
    fn tables_align_on_plain_width() {
        let rows = [vec!["1".into(), "a".into()], vec!["10".into(), "bb".into()]];
        let text = table(
            &["#", "NAME"],
            &rows,
            &[],
            |h| h.to_string(),
            |_, _, c| c.to_string(),
        );
        assert_eq!(text, "#   NAME\n1   a\n10  bb\n");
        let right = table(
            &["#", "NAME"],
            &rows,
            &[0],
            |h| h.to_string(),
            |_, _, c| c.to_string(),
        );
        assert_eq!(right, " #  NAME\n 1  a\n10  bb\n");
    }
}
