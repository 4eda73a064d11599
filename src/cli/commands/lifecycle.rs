//! start, up, stop, down, kill, restart, pull, clean: the commands that change ships.
//!
//! Each loads the environment, selects the instances (dependencies widened or ignored as
//! asked, in the command's direction), connects to every ship the selection touches at once,
//! and runs the executor with the matching operation while a renderer shows the events.
//! A ship that cannot be reached fails its own instances (and skips what waits on them); the
//! rest of the run goes on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::super::{Cli, CliError, Command, Output, Things};
use super::{load, runtime};
use crate::config::Environment;
use crate::orchestrate::events::EventSink;
use crate::orchestrate::executor::{self, Limits, RunSpec, Summary};
use crate::orchestrate::fleet::{ConnectOptions, Fleet};
use crate::orchestrate::ops::{self, Action, LifecycleOp};
use crate::orchestrate::plan::{self, Direction, Graph, Plan, Selection};
use crate::ui::{self, RenderMode};

/// What the command line asked for, reduced to what the runs need.
#[derive(Debug, Clone)]
enum Request {
    /// One run of one action over one plan.
    Single {
        command: &'static str,
        action: Action,
        direction: Direction,
        /// Pull has no ordering to respect.
        ignore_dependencies: bool,
    },
    Restart {
        step_delay: Option<Duration>,
        stop_start_delay: Option<Duration>,
        only_if_changed: bool,
        refresh_images: bool,
    },
}

/// stop, kill and restart act on everything only when asked to with `-a`, as in MaestroNG.
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

fn request(cli: &Cli) -> Result<(Things, Request), CliError> {
    let single = |command, action, direction| Request::Single {
        command,
        action,
        direction,
        ignore_dependencies: false,
    };
    Ok(match &cli.command {
        Command::Start {
            things,
            refresh_images,
            reuse,
        } => (
            things.clone(),
            single(
                "start",
                Action::Start {
                    refresh_images: *refresh_images,
                    reuse: *reuse,
                },
                Direction::Forward,
            ),
        ),
        Command::Up {
            things,
            refresh_images,
        } => (
            things.clone(),
            single(
                "up",
                Action::Start {
                    refresh_images: *refresh_images,
                    reuse: false,
                },
                Direction::Forward,
            ),
        ),
        Command::Stop { things } => {
            require_names_or_all("stop", things)?;
            (
                things.clone(),
                single("stop", Action::Stop, Direction::Reverse),
            )
        }
        Command::Down { things } => (
            things.clone(),
            single("down", Action::Stop, Direction::Reverse),
        ),
        Command::Kill { things } => {
            require_names_or_all("kill", things)?;
            (
                things.clone(),
                single("kill", Action::Kill, Direction::Reverse),
            )
        }
        Command::Clean { things } => (
            things.clone(),
            single("clean", Action::Clean, Direction::Forward),
        ),
        Command::Pull { things } => (
            things.clone(),
            Request::Single {
                command: "pull",
                action: Action::Pull,
                direction: Direction::Forward,
                ignore_dependencies: true,
            },
        ),
        Command::Restart {
            things,
            step_delay,
            stop_start_delay,
            only_if_changed,
            refresh_images,
        } => {
            require_names_or_all("restart", things)?;
            (
                things.clone(),
                Request::Restart {
                    step_delay: *step_delay,
                    stop_start_delay: *stop_start_delay,
                    only_if_changed: *only_if_changed,
                    refresh_images: *refresh_images,
                },
            )
        }
        _ => return Err(CliError::Usage("not a lifecycle command".into())),
    })
}

fn selection(things: &Things, direction: Direction, ignore_dependencies: bool) -> Selection {
    Selection {
        names: things.names.clone(),
        container_filter: things.container_filter.clone(),
        ship_filter: things.ship_filter.clone(),
        with_dependencies: things.with_dependencies,
        ignore_dependencies: things.ignore_dependencies || ignore_dependencies,
        direction,
        include_omitted: false,
    }
}

fn render_mode(cli: &Cli) -> RenderMode {
    match cli.output_mode() {
        Output::Json => RenderMode::Json,
        Output::Plain => RenderMode::Plain,
        Output::Progress => RenderMode::Progress,
        Output::Auto => RenderMode::choose(false, false),
    }
}

fn limits(env: &Environment, things: &Things) -> Limits {
    Limits {
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
    let plans: Vec<Plan> = match &request {
        Request::Single {
            direction,
            ignore_dependencies,
            ..
        } => vec![plan::select(
            &env,
            &graph,
            &selection(&things, *direction, *ignore_dependencies),
        )?],
        Request::Restart { step_delay, .. } => {
            // -d widens a restart to the dependents, whichever half runs.
            let (stop, start) =
                plan::select_restart(&env, &graph, &selection(&things, Direction::Reverse, false))?;
            // Nothing to stop means nothing to restart (the start half's names would be empty,
            // which selects everything).
            let start = if stop.is_empty() {
                Plan::default()
            } else {
                start
            };
            if step_delay.is_some() {
                vec![start]
            } else {
                vec![stop, start]
            }
        }
    };
    let options = ConnectOptions {
        accept_new_host_keys: cli.accept_new_host_keys(),
    };
    let mode = render_mode(cli);
    runtime()?.block_on(run_async(env, &things, request, plans, options, mode))
}

/// The ships the plans touch; each connects when the run first needs a ship.
fn fleet(env: &Environment, plans: &[Plan], options: ConnectOptions) -> Fleet {
    let ships: BTreeSet<&str> = plans
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| s.ship.as_str()))
        .collect();
    let names: Vec<&str> = ships.into_iter().collect();
    Fleet::new(env, &names, options)
}

async fn run_async(
    env: Arc<Environment>,
    things: &Things,
    request: Request,
    plans: Vec<Plan>,
    options: ConnectOptions,
    mode: RenderMode,
) -> Result<i32, CliError> {
    let cancel = executor::interrupt_on_ctrl_c();
    let (sink, events) = EventSink::new();
    let fleet = Arc::new(fleet(&env, &plans, options).with_events(sink.clone()));
    let renderer = tokio::spawn(ui::render(events, mode, std::io::stdout()));
    let limits = limits(&env, things);
    let mut summaries: Vec<Summary> = Vec::new();
    let run = |command: &str, plan: &Plan, action: Action, limits: Limits| {
        let (jobs, direction) = ops::jobs_of(plan);
        let op = Arc::new(LifecycleOp::new(
            Arc::clone(&env),
            Arc::clone(&fleet),
            &jobs,
            action,
        ));
        let spec = RunSpec {
            command: command.to_string(),
            jobs,
            direction,
            limits,
        };
        executor::run(spec, op, sink.clone(), cancel.clone())
    };
    let outcome: Result<(), CliError> = async {
        match request {
            Request::Single {
                command, action, ..
            } => {
                if let Some(plan) = plans.first() {
                    summaries.push(run(command, plan, action, limits).await.map_err(failed)?);
                }
            }
            Request::Restart {
                step_delay: Some(step_delay),
                stop_start_delay,
                only_if_changed,
                refresh_images,
            } => {
                // Rolling: one instance at a time, each stopped then started.
                if let Some(plan) = plans.first() {
                    let action = Action::RestartUnit {
                        refresh_images,
                        only_if_changed,
                        stop_start_delay: stop_start_delay.unwrap_or_default(),
                        step_delay,
                    };
                    let one_at_a_time = Limits {
                        global: 1,
                        ..limits
                    };
                    summaries.push(
                        run("restart", plan, action, one_at_a_time)
                            .await
                            .map_err(failed)?,
                    );
                }
            }
            Request::Restart {
                step_delay: None,
                stop_start_delay,
                only_if_changed,
                refresh_images,
            } => {
                let (Some(stop), Some(start)) = (plans.first(), plans.get(1)) else {
                    return Ok(());
                };
                let stop_action = if only_if_changed {
                    Action::StopIfChanged { refresh_images }
                } else {
                    Action::Stop
                };
                let stopped = run("restart (stop)", stop, stop_action, limits.clone())
                    .await
                    .map_err(failed)?;
                let interrupted = stopped.interrupted;
                summaries.push(stopped);
                if interrupted {
                    return Ok(());
                }
                if let Some(delay) = stop_start_delay {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                }
                let start_action = Action::Start {
                    // The stop half already pulled when it compared images.
                    refresh_images: refresh_images && !only_if_changed,
                    reuse: false,
                };
                summaries.push(
                    run("restart (start)", start, start_action, limits)
                        .await
                        .map_err(failed)?,
                );
            }
        }
        Ok(())
    }
    .await;
    fleet.close().await;
    drop(sink);
    let rendered = renderer.await;
    outcome?;
    rendered.map_err(std::io::Error::other)??;
    Ok(executor::combined_exit_code(&summaries))
}

fn failed(err: executor::ExecError) -> CliError {
    CliError::Failed(err.to_string())
}
