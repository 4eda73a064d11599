//! `maestro ships`: connect to every ship at once and report how each was reached: route
//! (with jumps), the authentication that worked, the host key, the engine, the round trip.

use std::sync::Arc;

use globset::{Glob, GlobSetBuilder};
use serde::Serialize;

use super::super::{Cli, CliError, EXIT_FAILED, EXIT_INTERRUPTED};
use super::{load, runtime};
use crate::orchestrate::fleet::{ConnectOptions, Fleet};
use crate::transport::{ConnectionInfo, ProbeReport};

/// One ship's line of the report: `connection` when the login worked (even if Docker then
/// failed), `engine` when Docker answered, `error` when something failed.
#[derive(Debug, Serialize)]
struct ShipReport {
    ship: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<ProbeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ShipFailure>,
}

#[derive(Debug, Serialize)]
struct ShipFailure {
    /// A short word for the cause (`refused`, `timeout`, `auth`, `host-key-unknown`, ...).
    cause: &'static str,
    message: String,
}

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
    };

    let fleet = Arc::new(Fleet::new(&env, &names, options));
    let reports = runtime()?.block_on(fleet.run(async {
        let probes = fleet.names().map(|ship| async {
            let ship = ship.to_string();
            let connected = fleet.ship(&ship).await;
            let failure = |err: &crate::transport::TransportError| ShipFailure {
                cause: err.kind(),
                message: err.to_string(),
            };
            match connected {
                Err(err) => ShipReport {
                    ship,
                    ok: false,
                    // A login that worked before the Docker socket failed is still reported.
                    connection: err.reached().cloned(),
                    engine: None,
                    error: Some(failure(&err)),
                },
                Ok(handle) => {
                    let probe = handle.connection.probe().await;
                    let info = Some(handle.connection.info().clone());
                    match probe {
                        Ok(engine) => ShipReport {
                            ship,
                            ok: true,
                            connection: info,
                            engine: Some(engine),
                            error: None,
                        },
                        Err(err) => ShipReport {
                            ship,
                            ok: false,
                            connection: info,
                            engine: None,
                            error: Some(failure(&err)),
                        },
                    }
                }
            }
        });
        futures_util::future::join_all(probes).await
    }));
    let Some(mut reports) = reports else {
        return Ok(EXIT_INTERRUPTED);
    };

    // In the file's order, as the operator wrote the ships.
    reports.sort_by_key(|r| names.iter().position(|n| *n == r.ship));
    if cli.json {
        let text = serde_json::to_string_pretty(&reports)
            .map_err(|err| CliError::Failed(format!("cannot encode the report: {err}")))?;
        println!("{}", crate::orchestrate::secrets::mask(&text));
    } else {
        print!("{}", crate::orchestrate::secrets::mask(&render(&reports)));
    }
    Ok(if reports.iter().all(|r| r.ok) {
        0
    } else {
        EXIT_FAILED
    })
}

fn render(reports: &[ShipReport]) -> String {
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
                failure.message.replace('\n', "\n  ")
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
                out.push_str(&format!("  warning:  {warning}\n"));
            }
        }
    }
    let ok = reports.iter().filter(|r| r.ok).count();
    out.push_str(&format!("{ok} of {} ships reachable\n", reports.len()));
    out
}
