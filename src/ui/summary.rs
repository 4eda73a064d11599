//! The end-of-run table shared by the progress and plain renderers: one row per job with
//! its time and result, then a line of totals.

use std::fmt::Write as _;

use super::{Palette, format_duration};
use crate::orchestrate::engine::executor::{JobState, Summary};

const HEADERS: [&str; 6] = ["#", "INSTANCE", "SERVICE", "SHIP", "TIME", "RESULT"];

/// The table as text, each line ending in a newline. The result column is last and not
/// padded, so long reasons do not push the other columns about and lines carry no
/// trailing spaces.
pub fn render_table(summary: &Summary, palette: Palette) -> String {
    let rows: Vec<Vec<String>> = summary
        .jobs
        .iter()
        .enumerate()
        .map(|(n, report)| {
            let time = report
                .elapsed_ms()
                .map(format_duration)
                .unwrap_or_else(|| "-".into());
            let result = match &report.state {
                JobState::Done { outcome } => outcome.as_str().to_string(),
                JobState::Failed { reason, .. } => format!("failed: {reason}"),
                JobState::Skipped { reason } => format!("skipped: {reason}"),
                JobState::Cancelled { reason } => format!("cancelled: {reason}"),
            };
            vec![
                (n + 1).to_string(),
                report.instance.clone(),
                report.service.clone(),
                report.ship.clone(),
                time,
                result,
            ]
        })
        .collect();
    // Numbers and times read better right-aligned.
    let mut table = super::report::table(
        &HEADERS,
        &rows,
        &[0, 4],
        |header| palette.strong(header),
        |r, k, cell| match (k, summary.jobs.get(r).map(|job| &job.state)) {
            (5, Some(JobState::Done { .. })) => palette.good(cell),
            (5, Some(JobState::Failed { .. })) => palette.bad(cell),
            (5, Some(JobState::Skipped { .. } | JobState::Cancelled { .. })) => palette.warn(cell),
            _ => cell.to_string(),
        },
    );
    let _ = writeln!(table, "{}", totals_line(summary, palette));
    table
}

/// e.g. `start: 5 jobs, 3 done, 1 failed, 1 skipped in 4.2s`, plus what an interruption
/// did, so the last line of any log says whether the environment is as asked.
pub fn totals_line(summary: &Summary, palette: Palette) -> String {
    let counts = summary.counts();
    let mut parts = vec![palette.good(&format!("{} done", counts.done))];
    if counts.failed > 0 {
        parts.push(palette.bad(&format!("{} failed", counts.failed)));
    }
    if counts.skipped > 0 {
        parts.push(palette.warn(&format!("{} skipped", counts.skipped)));
    }
    if counts.cancelled > 0 {
        parts.push(palette.warn(&format!("{} cancelled", counts.cancelled)));
    }
    let jobs = summary.jobs.len();
    let mut line = format!(
        "{}: {} job{}, {} in {}",
        summary.command,
        jobs,
        if jobs == 1 { "" } else { "s" },
        parts.join(", "),
        format_duration(summary.elapsed_ms())
    );
    if summary.aborted {
        line.push_str(
            &palette.bad(" (aborted: operations in progress were dropped, their state is unknown)"),
        );
    } else if summary.interrupted {
        line.push_str(&palette.warn(" (interrupted: nothing new was started)"));
    }
    line
}
