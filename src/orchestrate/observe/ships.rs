//! `ships`' sequence: connect to every ship of a fleet at once and report how each was
//! reached (route with jumps, the login that worked, the host key) and what its Docker engine
//! answered. A login that worked before the Docker socket failed is still reported: it is
//! what an operator needs to tell "cannot log in" from "Docker is not there".

use std::sync::Arc;

use serde::Serialize;

use crate::orchestrate::engine::fleet::Fleet;
use crate::transport::{ConnectionInfo, ProbeReport, TransportError};

/// One ship's line of the report: `connection` when the login worked (even if Docker then
/// failed), `engine` when Docker answered, `error` when something failed.
#[derive(Debug, Serialize)]
pub struct ShipReport {
    pub ship: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<ProbeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ShipFailure>,
}

#[derive(Debug, Serialize)]
pub struct ShipFailure {
    /// A short word for the cause (`refused`, `timeout`, `auth`, `host-key-unknown`, ...).
    pub cause: &'static str,
    pub message: String,
}

/// Every ship of `fleet`, probed at once.
pub async fn probe(fleet: &Arc<Fleet>) -> Vec<ShipReport> {
    let probes = fleet.names().map(|ship| async {
        let ship = ship.to_string();
        let connected = fleet.ship(&ship).await;
        let failure = |err: &TransportError| ShipFailure {
            cause: err.code(),
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
}
