//! `maestro persist status|stop` (and the hidden `serve`, the background maestro itself).

use super::super::{Cli, CliError, PersistAction};
use super::runtime;
use crate::orchestrate::session::persist;
use crate::ui;

pub(in crate::cli) fn run(cli: &Cli, action: &PersistAction) -> Result<i32, CliError> {
    let rt = runtime()?;
    match action {
        PersistAction::Serve => rt.block_on(persist::serve()).map_err(CliError::Failed),
        PersistAction::Stop => {
            let stopped = rt.block_on(persist::stop()).map_err(CliError::Failed)?;
            if cli.json {
                ui::println(&serde_json::json!({ "stopped": stopped }).to_string());
            } else if stopped {
                ui::println("persist: stopped; its SSH sessions are closed");
            } else {
                ui::println("persist: not running");
            }
            Ok(0)
        }
        PersistAction::Status => {
            let status = rt.block_on(persist::status()).map_err(CliError::Failed)?;
            if cli.json {
                let doc = serde_json::to_string(&status)
                    .map_err(|err| CliError::Failed(err.to_string()))?;
                ui::println(&doc);
                return Ok(0);
            }
            ui::print(&status_text(&status));
            Ok(0)
        }
    }
}

fn status_text(status: &persist::PersistStatus) -> String {
    let dir = status.runtime_dir.display();
    let Some(sessions) = &status.sessions else {
        return format!("persist: not running ({dir})\n");
    };
    let mut out = format!(
        "persist: running ({dir}), {} session{}\n",
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" }
    );
    if sessions.is_empty() {
        return out;
    }
    let rows: Vec<[String; 5]> = sessions
        .iter()
        .map(|s| {
            [
                s.ships.join(","),
                s.route.clone(),
                format!("{}s", s.age_secs),
                format!("{}s", s.idle_secs),
                if s.alive { "up" } else { "down" }.to_string(),
            ]
        })
        .collect();
    let header = ["SHIP", "ROUTE", "AGE", "IDLE", "STATE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.push('\n');
        text
    };
    out.push_str(&line(header));
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out
}
