//! forward: glue between the command line and `orchestrate::session::forward`, which owns the
//! sequence (see its header for the decisions). Ctrl-C is how a forward ends: exit code 0
//! once it listens, 130 while its ship is still being connected.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::super::{Cli, CliError, EXIT_INTERRUPTED};
use super::{load, runtime};
use crate::orchestrate::engine::cancel;
use crate::orchestrate::engine::fleet::{ConnectOptions, Fleet};
use crate::orchestrate::session::forward::{self, ForwardEvent, ForwardRequest, PortSpec};
use crate::ui;

pub(super) fn forward(
    cli: &Cli,
    target: &str,
    port: &PortSpec,
    bind: IpAddr,
) -> Result<i32, CliError> {
    let env = load(cli)?;
    let request = ForwardRequest::resolve(&env, target, port.clone())?;
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
        persist: cli.persist,
        login_only: false,
    };
    let fleet = Arc::new(Fleet::new(&env, &[request.ship.as_str()], options));
    runtime()?.block_on(async {
        // Bound before any ship is contacted: a port in use is the user's to fix.
        let listener = forward::listen(bind, request.port.local).await?;
        let (events, mut received) = mpsc::unbounded_channel();
        // Boxed, so that it can be dropped (its connections with it) before the sessions close.
        let mut work = Box::pin(forward::run(&env, &fleet, &request, listener, events));
        let interrupted = cancel::ctrl_c();
        tokio::pin!(interrupted);
        let outcome = loop {
            tokio::select! {
                Some(event) = received.recv() => print(cli, &event),
                ended = &mut work => break ended.map(|()| 0).map_err(CliError::from),
                _ = &mut interrupted => {
                    break Ok(if fleet.connecting() > 0 { EXIT_INTERRUPTED } else { 0 });
                }
            }
        };
        drop(work);
        fleet.close().await;
        outcome
    })
}

fn print(cli: &Cli, event: &ForwardEvent) {
    match event {
        ForwardEvent::Listening { local, to } => {
            if cli.json {
                let line = serde_json::json!({
                    "event": "listening",
                    "local": local.to_string(),
                    "remote": format!("{}:{}", to.host, to.port),
                    "to": to.describe,
                });
                ui::println(&line.to_string());
            } else {
                ui::println(&format!(
                    "forwarding {local} -> {}; Ctrl-C to stop",
                    to.describe
                ));
            }
        }
        ForwardEvent::Failed { peer, message } => {
            ui::eprintln(&format!("connection from {peer}: {message}"));
        }
    }
}
