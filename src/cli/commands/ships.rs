//! `maestro ships`: connect to every ship at once and report how each was reached: route
//! (with jumps), the authentication that worked, the host key, the engine, the round trip.

use std::sync::Arc;

use globset::{Glob, GlobSetBuilder};

use super::super::{Cli, CliError, EXIT_FAILED, EXIT_INTERRUPTED};
use super::{load, runtime};
use crate::orchestrate::engine::fleet::{ConnectOptions, Fleet};
use crate::orchestrate::observe::ships;
use crate::ui::{self, report};

pub(in crate::cli) fn ships(cli: &Cli, patterns: &[String]) -> Result<i32, CliError> {
    let env = load(cli)?;
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern)
            .map_err(|err| CliError::Usage(format!("invalid ship pattern `{pattern}`: {err}")))?;
        builder.add(glob);
    }
    let filter = builder
        .build()
        .map_err(|err| CliError::Usage(format!("invalid ship patterns: {err}")))?;
    let names: Vec<&str> = env
        .ships
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| patterns.is_empty() || filter.is_match(name))
        .collect();
    if names.is_empty() {
        return Err(CliError::Usage(format!(
            "no ship matches {}",
            patterns.join(", ")
        )));
    }
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
        persist: cli.persist,
        ..ConnectOptions::default()
    };

    let fleet = Arc::new(Fleet::new(&env, &names, options));
    let reports = runtime()?.block_on(fleet.run(ships::probe(&fleet)));
    let Some(mut reports) = reports else {
        return Ok(EXIT_INTERRUPTED);
    };

    // In the file's order, as the operator wrote the ships.
    reports.sort_by_key(|r| names.iter().position(|n| *n == r.ship));
    if cli.json {
        ui::println_fields(&report::json(&reports).map_err(CliError::Failed)?);
    } else {
        ui::print_fields(&report::ships_text(&reports));
    }
    Ok(if reports.iter().all(|r| r.ok) {
        0
    } else {
        EXIT_FAILED
    })
}
