//! start, up, stop, down, kill, restart, pull, clean, rollback: the commands that change
//! ships.
//!
//! Glue: each reads what was asked into an [`orchestrate::deploy::lifecycle::Request`] and a
//! selection, checks the guards that MaestroNG users expect (`-a` for everything, `-s` for a
//! whole service), and hands the sequence to `orchestrate::deploy::lifecycle` while a renderer shows
//! its events. A ship that cannot be reached fails its own instances (and skips what waits on
//! them); the rest of the run goes on. The run holds the environment's deploy lock on the
//! ships it touches (see `orchestrate::deploy::lock`): a lock held by someone else fails the command
//! before it changes anything, and so does an auditor of the environment file that cannot
//! hear the command begin (unless it has `ignore_errors`; see `orchestrate::deploy::audit`).
//!
//! [`orchestrate::deploy::lifecycle::Request`]: crate::orchestrate::deploy::lifecycle::Request

use std::sync::Arc;

use super::super::{Cli, CliError, Command, Output, Things};
use super::{load, runtime};
use crate::config::Environment;
use crate::orchestrate::deploy::audit::AuditError;
use crate::orchestrate::deploy::lifecycle::{self, Finished, Request};
use crate::orchestrate::deploy::lock::LockError;
use crate::orchestrate::deploy::ops::Action;
use crate::orchestrate::engine::events::EventSink;
use crate::orchestrate::engine::executor::{self, Concurrency};
use crate::orchestrate::engine::fleet::ConnectOptions;
use crate::orchestrate::plan::select::{Direction, Graph, Plan, Selection};
use crate::ui::{self, RenderMode};

/// stop, kill and restart act on everything only when asked to with `-a`, as in MaestroNG;
/// so does rollback.
fn require_names_or_all(command: &str, things: &Things) -> Result<(), CliError> {
    if things.names.is_empty() && !things.all {
        return Err(CliError::Usage(format!(
            "`{command}` needs the names of the services or instances to {command}, \
             or -a/--all to {command} everything"
        )));
    }
    Ok(())
}

/// stop, kill and restart take a service name for all its instances only with
/// `-s/--expand-services` (or `-a`), as in MaestroNG: a service named where one instance was
/// meant would otherwise take the whole service down. Instance names always work.
fn require_expansion(command: &str, things: &Things, env: &Environment) -> Result<(), CliError> {
    if things.expand_services || things.all {
        return Ok(());
    }
    let mut refused = Vec::new();
    for name in &things.names {
        let Some(service) = env.service(name) else {
            continue;
        };
        let instances: Vec<&str> = service.instances.iter().map(|i| i.name.as_str()).collect();
        // A service whose only instance has its name means the same thing either way.
        if instances.is_empty() || instances == [name.as_str()] {
            continue;
        }
        let (listed, whole) = match instances.as_slice() {
            [one] => (format!("instance {one}"), "it"),
            many => (format!("instances {}", many.join(", ")), "all of them"),
        };
        refused.push(format!(
            "`{name}` is a service ({listed}): pass -s/--expand-services to {command} {whole}, \
             or name the instances"
        ));
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CliError::Usage(refused.join("\n")))
    }
}

/// The commands that refuse a service name without `-s`.
fn guarded_command(command: &Command) -> Option<&'static str> {
    match command {
        Command::Stop { .. } => Some("stop"),
        Command::Kill { .. } => Some("kill"),
        Command::Restart { .. } => Some("restart"),
        _ => None,
    }
}

/// The commands that act on everything only with `-a`.
fn needs_names_or_all(command: &Command) -> bool {
    matches!(
        command,
        Command::Stop { .. }
            | Command::Kill { .. }
            | Command::Restart { .. }
            | Command::Rollback { .. }
    )
}

fn request(cli: &Cli) -> Result<(Things, Request), CliError> {
    let adopt = cli.adopt();
    let single = |things: &Things, command, action, direction| {
        let request = Request::Single {
            command,
            action,
            direction,
            ignore_dependencies: false,
            adopt,
        };
        (things.clone(), request)
    };
    let (things, request) = match &cli.command {
        Command::Start {
            things,
            refresh_images,
            reuse,
            ..
        } => {
            let action = Action::Start {
                refresh_images: *refresh_images,
                reuse: *reuse,
            };
            single(things, "start", action, Direction::Forward)
        }
        Command::Up {
            things,
            refresh_images,
            reuse,
            ..
        } => {
            let action = Action::Start {
                refresh_images: *refresh_images,
                reuse: *reuse,
            };
            single(things, "up", action, Direction::Forward)
        }
        Command::Stop { things, .. } => single(things, "stop", Action::Stop, Direction::Reverse),
        Command::Down { things, .. } => single(things, "down", Action::Stop, Direction::Reverse),
        Command::Kill { things, .. } => single(things, "kill", Action::Kill, Direction::Reverse),
        Command::Clean { things, .. } => single(things, "clean", Action::Clean, Direction::Forward),
        Command::Rollback { things } => {
            single(things, "rollback", Action::Rollback, Direction::Forward)
        }
        Command::Pull { things } => (
            things.clone(),
            Request::Single {
                command: "pull",
                action: Action::Pull,
                direction: Direction::Forward,
                ignore_dependencies: true,
                adopt: false,
            },
        ),
        Command::Push { things } => (
            things.clone(),
            Request::Single {
                command: "push",
                action: Action::Push,
                direction: Direction::Forward,
                ignore_dependencies: true,
                adopt: false,
            },
        ),
        Command::Restart {
            things,
            step_delay,
            stop_start_delay,
            only_if_changed,
            refresh_images,
            ..
        } => (
            things.clone(),
            Request::Restart {
                step_delay: *step_delay,
                stop_start_delay: *stop_start_delay,
                only_if_changed: *only_if_changed,
                refresh_images: *refresh_images,
                adopt,
            },
        ),
        _ => return Err(CliError::Usage("not a lifecycle command".into())),
    };
    if needs_names_or_all(&cli.command) {
        require_names_or_all(request.command(), &things)?;
    }
    Ok((things, request))
}

fn selection(things: &Things, request: &Request) -> Selection {
    Selection {
        names: things.names.clone(),
        container_filter: things.container_filter.clone(),
        ship_filter: things.ship_filter.clone(),
        with_dependencies: things.with_dependencies,
        ignore_dependencies: things.ignore_dependencies || request.ignores_dependencies(),
        direction: request.direction(),
        include_omitted: false,
    }
}

fn render_mode(cli: &Cli) -> RenderMode {
    match cli.output_mode() {
        Output::Json => RenderMode::Json,
        Output::Plain => RenderMode::Plain,
        Output::Progress => RenderMode::Progress,
        // Diagnostics and the live display would both write stderr: plain lines then.
        Output::Auto => RenderMode::choose(false, crate::ui::diagnostics::wanted(cli.verbose)),
    }
}

fn limits(env: &Environment, things: &Things) -> Concurrency {
    Concurrency {
        global: things.concurrency,
        per_ship: env
            .ships
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.max_concurrency?)))
            .collect(),
    }
}

pub(super) fn run(cli: &Cli) -> Result<i32, CliError> {
    let (things, request) = request(cli)?;
    let env = Arc::new(load(cli)?);
    if let Some(command) = guarded_command(&cli.command) {
        require_expansion(command, &things, &env)?;
    }
    let graph = Graph::new(&env);
    graph.topological_order()?;
    let plans: Vec<Plan> = lifecycle::plan(&env, &graph, &request, &selection(&things, &request))?;
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
        persist: cli.persist,
        ..ConnectOptions::default()
    };
    let limits = limits(&env, &things);
    let mode = render_mode(cli);
    runtime()?.block_on(run_async(env, request, plans, limits, options, mode))
}

async fn run_async(
    env: Arc<Environment>,
    request: Request,
    plans: Vec<Plan>,
    limits: Concurrency,
    options: ConnectOptions,
    mode: RenderMode,
) -> Result<i32, CliError> {
    let cancel = executor::interrupt_on_ctrl_c();
    let (sink, events) = EventSink::new();
    let renderer = tokio::spawn(ui::render(events, mode, std::io::stdout()));
    // The sequence owns the sink: when it returns, the event stream ends and the renderer
    // finishes.
    let outcome = lifecycle::run(env, request, plans, limits, options, sink, cancel).await;
    let rendered = renderer.await;
    let Finished {
        summaries,
        unreleased,
        taken_over,
        audit,
    } = match outcome {
        Ok(done) => done,
        Err(lifecycle::RunError::Lock(LockError::Interrupted, unreleased)) => {
            ui::eprintln(if unreleased.is_empty() {
                "interrupted before anything changed; no lock is left"
            } else {
                "interrupted before anything changed"
            });
            warn_unreleased(&unreleased);
            return Ok(super::super::EXIT_INTERRUPTED);
        }
        Err(lifecycle::RunError::Lock(err, unreleased)) => {
            warn_unreleased(&unreleased);
            return Err(CliError::Failed(err.to_string()));
        }
        Err(lifecycle::RunError::Audit(err, unreleased)) => {
            warn_unreleased(&unreleased);
            if err == AuditError::Interrupted {
                ui::eprintln(&err.to_string());
                return Ok(super::super::EXIT_INTERRUPTED);
            }
            return Err(CliError::Failed(err.to_string()));
        }
        Err(err) => return Err(CliError::Failed(err.to_string())),
    };
    rendered.map_err(std::io::Error::other)??;
    for took in &taken_over {
        ui::eprintln(&format!(
            "warning: took over the deploy lock of ship {took}: its holder ended without \
             releasing it"
        ));
    }
    warn_unreleased(&unreleased);
    for note in &audit {
        ui::eprintln(&format!("warning: {note}"));
    }
    Ok(executor::combined_exit_code(&summaries))
}

fn warn_unreleased(unreleased: &[LockError]) {
    for err in unreleased {
        ui::eprintln(&format!(
            "warning: {err}\n  = help: `maestro lock status` shows it; `maestro lock release \
             --force` clears it"
        ));
    }
}
