//! `exec` and `ssh`: a command in an instance's container (Docker's exec API over the ship's
//! connection), or a shell on a ship itself (a session channel of its SSH session), relayed
//! to and from the operator.
//!
//! Both kinds become one [`Remote`]: a task owns the remote end and turns it into
//! [`RemoteEvent`]s (output, then the exit code or the failure) and takes [`SessionInput`]
//! (bytes, end of file, a new window size). [`relay`] joins a `Remote` to the operator's side
//! ([`Local`], which `cli` builds from `ui::terminal`): orchestrate never touches the
//! terminal. Dropping a `Remote` (Ctrl-C drops the work, see `Fleet::run`) ends its task,
//! which closes the remote end: nothing is left streaming behind us.
//!
//! Several instances run at once without a terminal ([`fan_out`]); their output is cut into
//! lines and tagged with the instance, as `logs` shows it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::config::{Environment, did_you_mean};
use crate::docker::{self, DockerError, ExecOutput, ExecRequest, LogSource};
use crate::orchestrate::engine::fleet::{Fleet, ShipError};
use crate::orchestrate::observe::logs::LogEvent;
use crate::transport::{Route, SessionInput, SessionOutput, TransportError};

pub use crate::transport::{PtyRequest, SessionRequest};

/// What to run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The command and its arguments; empty: [`DEFAULT_SHELL`].
    pub command: Vec<String>,
    /// A terminal of this size (rows, columns) for the command; `None`: plain streams.
    pub tty: Option<(u16, u16)>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// The environment the container must belong to (its labels say so, as `start` checks).
    pub environment: String,
}

/// The shell when no command is given: every image with a shell has this one (busybox
/// images have no bash).
pub const DEFAULT_SHELL: &str = "/bin/sh";

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("error: {0}")]
    Unreachable(ShipError),
    #[error(
        "error: there is no container {instance} on ship {ship}\n  = help: `maestro start \
         {instance}` creates and starts it"
    )]
    Absent { instance: String, ship: String },
    #[error(
        "error: {instance} on ship {ship} is not running (its container is {state})\n  = \
         help: `maestro start {instance}` starts it; `maestro logs {instance}` shows why it \
         stopped"
    )]
    NotRunning {
        instance: String,
        ship: String,
        state: String,
    },
    #[error(
        "error: {}\n  = help: `maestro exec` runs commands only in this environment's own \
         containers; `maestro start --adopt {instance}` takes the container over",
        crate::orchestrate::plan::container::refusal(instance, ship, reason)
    )]
    Foreign {
        instance: String,
        ship: String,
        reason: String,
    },
    #[error("error: {instance}: {source}")]
    Docker {
        instance: String,
        #[source]
        source: Box<DockerError>,
    },
    #[error("error: {0}")]
    Transport(#[from] TransportError),
    #[error("error: unknown ship `{name}`{}\n  = help: the file's ships: {known}", .help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnknownShip {
        name: String,
        help: Option<String>,
        known: String,
    },
    #[error(
        "error: ship {ship} is not reached over SSH ({route}), so maestro has no shell to \
         open there\n  = help: give it an `ssh:` block (user, key, jump) in the environment \
         file"
    )]
    NotSsh { ship: String, route: String },
    #[error("error: ship {ship} refused to run {what} (its sshd's reply)")]
    Refused { ship: String, what: String },
    #[error(
        "error: the connection to {place} was lost before the command ended; its exit code is \
         unknown"
    )]
    Lost { place: String },
}

impl ExecError {
    /// Names that are not in the file are usage errors (2), like plan's; the rest failed (1).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::UnknownShip { .. } | ExecError::NotSsh { .. } => 2,
            _ => 1,
        }
    }
}

/// What the remote side sends; `Exit` or `Failed` comes last.
#[derive(Debug)]
pub enum RemoteEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Failed(ExecError),
}

/// A command running on the remote side; see the module header.
#[derive(Debug)]
pub struct Remote {
    events: mpsc::Receiver<RemoteEvent>,
    input: mpsc::Sender<SessionInput>,
}

/// The operator's side of a [`relay`].
pub struct Local<O: Write, E: Write> {
    /// Standard input, chunk by chunk; `None`: none is passed (end of file at once).
    pub input: Option<mpsc::Receiver<Vec<u8>>>,
    /// New window sizes, (rows, columns).
    pub resizes: mpsc::Receiver<(u16, u16)>,
    pub stdout: O,
    pub stderr: E,
}

/// Passes input, window sizes and output between `remote` and `local` until the command
/// ends, or `end` resolves first (a signal that ends maestro: its exit code); gives the
/// command's exit code.
pub async fn relay<O: Write, E: Write>(
    mut remote: Remote,
    mut local: Local<O, E>,
    end: impl std::future::Future<Output = i32>,
) -> Result<i32, ExecError> {
    tokio::pin!(end);
    if local.input.is_none() {
        let _ = remote.input.send(SessionInput::Eof).await;
    }
    loop {
        tokio::select! {
            event = remote.events.recv() => match event {
                // A closed pipe on our side (`| head`) ends nothing: the command runs on.
                Some(RemoteEvent::Stdout(bytes)) => {
                    let _ = local.stdout.write_all(&bytes);
                    let _ = local.stdout.flush();
                }
                Some(RemoteEvent::Stderr(bytes)) => {
                    let _ = local.stderr.write_all(&bytes);
                    let _ = local.stderr.flush();
                }
                Some(RemoteEvent::Exit(code)) => return Ok(code),
                Some(RemoteEvent::Failed(err)) => return Err(err),
                None => {
                    return Err(ExecError::Lost {
                        place: "the remote command".into(),
                    });
                }
            },
            chunk = next_input(&mut local.input) => {
                let message = match chunk {
                    Some(bytes) => SessionInput::Data(bytes),
                    None => {
                        local.input = None;
                        SessionInput::Eof
                    }
                };
                let _ = remote.input.send(message).await;
            }
            Some((rows, cols)) = local.resizes.recv() => {
                let _ = remote.input.send(SessionInput::Resize { rows, cols }).await;
            }
            code = &mut end => return Ok(code),
        }
    }
}

async fn next_input(input: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match input {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Starts `options` in `instance`'s container on `ship`, attached to its standard input.
pub async fn start_exec(
    fleet: &Arc<Fleet>,
    ship: &str,
    instance: &str,
    options: &ExecOptions,
) -> Result<Remote, ExecError> {
    let docker = running_container(fleet, ship, instance, &options.environment).await?;
    let request = exec_request(options, true);
    let session = docker
        .exec_attach(instance, &request)
        .await
        .map_err(|source| docker_error(instance, source))?;
    let (events_tx, events) = mpsc::channel(64);
    let (input, input_rx) = mpsc::channel(64);
    let instance = instance.to_string();
    let initial_size = options.tty;
    tokio::spawn(pump_exec(
        docker,
        instance,
        session,
        initial_size,
        events_tx,
        input_rx,
    ));
    Ok(Remote { events, input })
}

fn exec_request(options: &ExecOptions, stdin: bool) -> ExecRequest {
    let command = if options.command.is_empty() {
        vec![DEFAULT_SHELL.to_string()]
    } else {
        options.command.clone()
    };
    ExecRequest {
        command,
        tty: options.tty.is_some(),
        stdin,
        user: options.user.clone(),
        working_dir: options.working_dir.clone(),
        env: options.env.clone(),
    }
}

fn docker_error(instance: &str, source: DockerError) -> ExecError {
    ExecError::Docker {
        instance: instance.to_string(),
        source: Box::new(source),
    }
}

/// The ship's Docker API, once `instance`'s container is known to be running there and to
/// be that instance of `environment` (by its labels, as `start` checks before it touches
/// one): a container that merely has the name is someone else's.
async fn running_container(
    fleet: &Arc<Fleet>,
    ship: &str,
    instance: &str,
    environment: &str,
) -> Result<docker::Ship, ExecError> {
    let handle = fleet.ship(ship).await.map_err(ExecError::Unreachable)?;
    let details = handle
        .docker
        .inspect(instance)
        .await
        .map_err(|source| docker_error(instance, source))?;
    match details {
        None => Err(ExecError::Absent {
            instance: instance.to_string(),
            ship: ship.to_string(),
        }),
        Some(details)
            if let Some(reason) =
                crate::orchestrate::plan::container::foreign(&details, environment, instance) =>
        {
            Err(ExecError::Foreign {
                instance: instance.to_string(),
                ship: ship.to_string(),
                reason,
            })
        }
        Some(details) if !details.running => Err(ExecError::NotRunning {
            instance: instance.to_string(),
            ship: ship.to_string(),
            state: format!("{:?}", details.state).to_lowercase(),
        }),
        Some(_) => Ok(handle.docker),
    }
}

async fn pump_exec(
    docker: docker::Ship,
    instance: String,
    mut session: docker::ExecSession,
    initial_size: Option<(u16, u16)>,
    events: mpsc::Sender<RemoteEvent>,
    mut input: mpsc::Receiver<SessionInput>,
) {
    if let Some((rows, cols)) = initial_size {
        // The daemon refuses a resize until the process runs, a moment after the start: the
        // docker CLI tries again too.
        for _ in 0..10 {
            if docker.exec_resize(&session.id, rows, cols).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut input_open = true;
    loop {
        tokio::select! {
            chunk = session.output.next() => {
                let event = match chunk {
                    Some(Ok(ExecOutput::Stdout(bytes))) => RemoteEvent::Stdout(bytes.to_vec()),
                    Some(Ok(ExecOutput::Stderr(bytes))) => RemoteEvent::Stderr(bytes.to_vec()),
                    Some(Err(source)) => {
                        let _ = events.send(RemoteEvent::Failed(docker_error(&instance, source))).await;
                        return;
                    }
                    None => break,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            message = input.recv(), if input_open => match message {
                Some(SessionInput::Data(bytes)) => {
                    if session.input.write_all(&bytes).await.is_err() {
                        input_open = false;
                    }
                    let _ = session.input.flush().await;
                }
                // The daemon closes the command's stdin when our side of the stream ends.
                Some(SessionInput::Eof) => {
                    let _ = session.input.shutdown().await;
                    input_open = false;
                }
                Some(SessionInput::Resize { rows, cols }) => {
                    let _ = docker.exec_resize(&session.id, rows, cols).await;
                }
                None => return,
            },
        }
    }
    let last = match docker.exec_exit_code(&instance, &session.id).await {
        Ok(code) => RemoteEvent::Exit(i32::try_from(code).unwrap_or(1)),
        Err(source) => RemoteEvent::Failed(docker_error(&instance, source)),
    };
    let _ = events.send(last).await;
}

/// The result of one instance of a [`fan_out`].
#[derive(Debug)]
pub struct InstanceExit {
    pub instance: String,
    pub result: Result<i32, ExecError>,
}

/// Runs `options` (never with a terminal or input) in every `(ship, instance)` at once. The
/// output comes on the returned channel as `logs` lines; the task gives each one's result,
/// in the order given.
pub fn fan_out(
    fleet: &Arc<Fleet>,
    instances: Vec<(String, String)>,
    options: &ExecOptions,
) -> (
    mpsc::Receiver<LogEvent>,
    tokio::task::JoinHandle<Vec<InstanceExit>>,
) {
    let (lines_tx, lines) = mpsc::channel(1024);
    let request = exec_request(
        &ExecOptions {
            tty: None,
            ..options.clone()
        },
        false,
    );
    let runs: Vec<_> = instances
        .into_iter()
        .map(|(ship, instance)| {
            let (fleet, request, lines_tx) = (Arc::clone(fleet), request.clone(), lines_tx.clone());
            let environment = options.environment.clone();
            tokio::spawn(async move {
                let target = (ship.as_str(), instance.as_str(), environment.as_str());
                let result = exec_lines(&fleet, target, &request, &lines_tx).await;
                InstanceExit { instance, result }
            })
        })
        .collect();
    drop(lines_tx);
    let all = tokio::spawn(async move {
        let mut exits = Vec::new();
        for run in runs {
            if let Ok(exit) = run.await {
                exits.push(exit);
            }
        }
        exits
    });
    (lines, all)
}

/// `request` in the container of `(ship, instance, environment)`, its output as lines.
async fn exec_lines(
    fleet: &Arc<Fleet>,
    (ship, instance, environment): (&str, &str, &str),
    request: &ExecRequest,
    lines: &mpsc::Sender<LogEvent>,
) -> Result<i32, ExecError> {
    let docker = running_container(fleet, ship, instance, environment).await?;
    let mut session = docker
        .exec_attach(instance, request)
        .await
        .map_err(|source| docker_error(instance, source))?;
    let mut splitter = LineSplitter::default();
    while let Some(chunk) = session.output.next().await {
        let chunk = chunk.map_err(|source| docker_error(instance, source))?;
        for (source, text) in splitter.push(&chunk) {
            let line = LogEvent::Line {
                instance: instance.to_string(),
                source,
                text,
                time: None,
            };
            let _ = lines.send(line).await;
        }
    }
    for (source, text) in splitter.finish() {
        let instance = instance.to_string();
        let _ = lines
            .send(LogEvent::Line {
                instance,
                source,
                text,
                time: None,
            })
            .await;
    }
    let code = docker
        .exec_exit_code(instance, &session.id)
        .await
        .map_err(|source| docker_error(instance, source))?;
    Ok(i32::try_from(code).unwrap_or(1))
}

/// Chunks into lines, per stream, holding a partial line until its end comes.
#[derive(Debug, Default)]
struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, chunk: &ExecOutput) -> Vec<(LogSource, String)> {
        let (source, buffer) = match chunk {
            ExecOutput::Stdout(_) => (LogSource::Stdout, &mut self.stdout),
            ExecOutput::Stderr(_) => (LogSource::Stderr, &mut self.stderr),
        };
        buffer.extend_from_slice(chunk.bytes());
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            lines.push((source, text.trim_end_matches('\r').to_string()));
        }
        lines
    }

    fn finish(self) -> Vec<(LogSource, String)> {
        [
            (LogSource::Stdout, self.stdout),
            (LogSource::Stderr, self.stderr),
        ]
        .into_iter()
        .filter(|(_, rest)| !rest.is_empty())
        .map(|(source, rest)| (source, String::from_utf8_lossy(&rest).into_owned()))
        .collect()
    }
}

/// The ship `name` of `env`, checked to be reached over SSH, before anything connects.
pub fn ssh_ship<'a>(
    env: &'a Environment,
    name: &str,
) -> Result<&'a crate::config::Ship, ExecError> {
    let Some(ship) = env.ships.iter().find(|s| s.name == name) else {
        let names = env.ships.iter().map(|s| s.name.as_str());
        return Err(ExecError::UnknownShip {
            name: name.to_string(),
            help: did_you_mean(name, names.clone()),
            known: names.collect::<Vec<_>>().join(", "),
        });
    };
    let endpoint = crate::orchestrate::engine::fleet::endpoint(
        env,
        ship,
        crate::orchestrate::engine::fleet::ConnectOptions::default(),
    );
    match endpoint.route {
        Route::Ssh(_) => Ok(ship),
        Route::Local { socket } => Err(ExecError::NotSsh {
            ship: name.to_string(),
            route: format!("its Docker daemon is the local socket {}", socket.display()),
        }),
        Route::Tcp { host, port, tls } => Err(ExecError::NotSsh {
            ship: name.to_string(),
            route: format!(
                "its Docker daemon is reached at {}{host}:{port}",
                if tls.is_some() { "tls://" } else { "tcp://" }
            ),
        }),
    }
}

/// Opens a shell on `ship` (or runs `request.command` there) through its SSH chain.
pub async fn start_ssh(
    fleet: &Arc<Fleet>,
    ship: &str,
    request: &SessionRequest,
) -> Result<Remote, ExecError> {
    let handle = fleet.ship(ship).await.map_err(ExecError::Unreachable)?;
    let mut session = handle.connection.open_session(request).await?;
    let (events_tx, events) = mpsc::channel(64);
    let ship = ship.to_string();
    let what = match &request.command {
        Some(command) => format!("`{command}`"),
        None => "a shell".to_string(),
    };
    tokio::spawn(async move {
        let last = loop {
            let event = match session.output.recv().await {
                Some(SessionOutput::Stdout(bytes)) => RemoteEvent::Stdout(bytes),
                Some(SessionOutput::Stderr(bytes)) => RemoteEvent::Stderr(bytes),
                Some(SessionOutput::Exit(code)) => {
                    break RemoteEvent::Exit(i32::try_from(code).unwrap_or(255));
                }
                Some(SessionOutput::Signal(name)) => {
                    let text =
                        format!("[maestro] the command on {ship} was killed by SIG{name}\r\n");
                    let _ = events_tx.send(RemoteEvent::Stderr(text.into_bytes())).await;
                    break RemoteEvent::Exit(128 + signal_number(&name));
                }
                Some(SessionOutput::Refused) => {
                    break RemoteEvent::Failed(ExecError::Refused { ship, what });
                }
                None => {
                    break RemoteEvent::Failed(ExecError::Lost {
                        place: format!("ship {ship}"),
                    });
                }
            };
            if events_tx.send(event).await.is_err() {
                return;
            }
        };
        let _ = events_tx.send(last).await;
    });
    Ok(Remote {
        events,
        input: session.input,
    })
}

/// The number of a signal named as SSH names them (POSIX numbers, the same on Linux and
/// macOS for these), for the shell's 128 + N; the others give 255, OpenSSH's code.
fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_per_stream_and_the_rest_comes_last() {
        let mut splitter = LineSplitter::default();
        let out = |text: &str| ExecOutput::Stdout(bytes::Bytes::from(text.to_string()));
        let err = |text: &str| ExecOutput::Stderr(bytes::Bytes::from(text.to_string()));
        assert_eq!(
            splitter.push(&out("a\nb")),
            vec![(LogSource::Stdout, "a".into())]
        );
        assert_eq!(splitter.push(&err("oops")), vec![]);
        assert_eq!(
            splitter.push(&out("c\r\nd")),
            vec![(LogSource::Stdout, "bc".into())]
        );
        assert_eq!(
            splitter.finish(),
            vec![
                (LogSource::Stdout, "d".into()),
                (LogSource::Stderr, "oops".into())
            ]
        );
    }

    #[test]
    fn an_unknown_ship_is_named_with_the_closest_one() {
        let env = crate::config::load_str(
            "name: t\nships:\n  alpha: {ip: 10.0.0.1, ssh: {user: root}}\n  beta: {ip: 10.0.0.2}\nservices: {}\n",
            "t.yaml",
            std::path::Path::new("."),
        )
        .expect("valid");
        let err = ssh_ship(&env, "alpah").expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("unknown ship `alpah`; did you mean `alpha`?"),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
        let err = ssh_ship(&env, "beta").expect_err("not over SSH");
        let text = err.to_string();
        assert!(text.contains("ship beta is not reached over SSH"), "{text}");
        assert!(text.contains("tcp://10.0.0.2:2375"), "{text}");
        assert!(ssh_ship(&env, "alpha").is_ok());
    }
}
