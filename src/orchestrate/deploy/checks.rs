//! Lifecycle checks: what must hold before a container starts, once it runs, before it stops
//! and once it stopped.
//!
//! `tcp` and `http` checks connect from the ship's side, through the ship's connection (a
//! `direct-tcpip` channel of its SSH session), so they work where only SSH is open; an
//! `https` check runs TLS over that same channel, verifying the certificate against the
//! system's roots, a CA file, or not at all (`requests_options.verify`); `exec`
//! runs on the operator's machine with the container's environment; `rexec` runs inside the
//! container; `sleep` waits. All checks of a state run at once and all must pass. One attempt
//! a second, as MaestroNG: `tcp` makes `max_wait` attempts, `http` tries for `max_wait`
//! seconds, `exec`/`rexec` make `attempts` attempts.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;

use crate::config::{Check, EnvFrom, TlsVerify};
use crate::docker::{ContainerStatus, HealthState, Ship};
use crate::transport::{
    Connection, HttpError, HttpRequest, TlsClient, TlsFailure, TlsSetupError, TlsTrust,
};

use crate::orchestrate::engine::events::Step;
use crate::orchestrate::engine::executor::StepContext;
use crate::orchestrate::plan::spec::split_command;

/// Time between two attempts of a check.
const ATTEMPT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest an HTTP check waits for one answer.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long we wait for a Docker HEALTHCHECK to settle when its settings do not say.
const DEFAULT_HEALTH_WAIT: Duration = Duration::from_secs(300);

/// Why the checks of a state did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("{check} check failed: {reason}")]
    Failed { check: String, reason: String },
    #[error("the container stopped during the {state} checks{}", .exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default())]
    ContainerStopped {
        state: &'static str,
        exit_code: Option<i64>,
    },
    #[error("interrupted during the {state} checks")]
    Cancelled { state: &'static str },
}

/// The four moments of a container's life that have checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    PreStart,
    Running,
    PreStop,
    Stopped,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::PreStart => "pre-start",
            CheckState::Running => "running",
            CheckState::PreStop => "pre-stop",
            CheckState::Stopped => "stopped",
        }
    }
}

/// What a check needs to know about the container it checks.
pub struct CheckTarget<'a> {
    /// The ship's connection, to open TCP streams from its side.
    pub connection: &'a Connection,
    pub ship: &'a Ship,
    /// The ship's `ip`: where the container's published ports are.
    pub ship_ip: &'a str,
    pub container: &'a str,
    /// Named port -> the port published on the ship.
    pub ports: &'a BTreeMap<String, u16>,
    /// The container's environment (for `exec`).
    pub env: &'a BTreeMap<String, String>,
    /// Whether the container has its own Docker HEALTHCHECK, when already known from its
    /// details; `None`: asked of the daemon when needed.
    pub has_healthcheck: Option<bool>,
}

/// The name a check is shown with: its type and its port, e.g. `tcp:client`.
pub fn check_name(check: &Check) -> String {
    match check {
        Check::Tcp { port, .. } => format!("tcp:{port}"),
        Check::Http { port, .. } => format!("http:{port}"),
        Check::Exec { .. } => "exec".to_string(),
        Check::Rexec { .. } => "rexec".to_string(),
        Check::Sleep { .. } => "sleep".to_string(),
    }
}

/// Runs every check of `state` at once; all must pass. With `watch_container`, the
/// container's state is re-checked every second meanwhile and the checks fail as soon as it
/// stops; when the container has its own Docker HEALTHCHECK, being healthy is one more check.
pub async fn run_checks(
    target: &CheckTarget<'_>,
    state: CheckState,
    checks: &[Check],
    watch_container: bool,
    ctx: &StepContext,
) -> Result<(), CheckError> {
    let health = if watch_container {
        has_healthcheck(target).await
    } else {
        false
    };
    if checks.is_empty() && !health {
        return Ok(());
    }
    let mut all: Vec<futures_util::future::BoxFuture<'_, Result<(), CheckError>>> = checks
        .iter()
        .map(|c| {
            let fut: futures_util::future::BoxFuture<'_, Result<(), CheckError>> =
                Box::pin(run_one(target, c, ctx));
            fut
        })
        .collect();
    if health {
        all.push(Box::pin(wait_healthy(target, ctx)));
    }
    let together = async {
        for result in join_all(all).await {
            result?;
        }
        Ok(())
    };
    let watcher = async {
        if !watch_container {
            return std::future::pending::<CheckError>().await;
        }
        loop {
            tokio::time::sleep(ATTEMPT_INTERVAL).await;
            if let Ok(Some(details)) = target.ship.inspect(target.container).await
                && matches!(
                    details.state,
                    ContainerStatus::Exited | ContainerStatus::Dead
                )
            {
                return CheckError::ContainerStopped {
                    state: state.as_str(),
                    exit_code: details.exit_code,
                };
            }
        }
    };
    tokio::select! {
        result = together => result,
        stopped = watcher => Err(stopped),
        _ = ctx.cancelled() => Err(CheckError::Cancelled { state: state.as_str() }),
    }
}

async fn has_healthcheck(target: &CheckTarget<'_>) -> bool {
    match target.has_healthcheck {
        Some(known) => known,
        None => matches!(target.ship.health(target.container).await, Ok(Some(_))),
    }
}

/// How long to wait for the container's HEALTHCHECK: its start period plus as many rounds as
/// it needs to declare a result, with a margin; 300 s when it does not say.
async fn health_wait(target: &CheckTarget<'_>) -> Duration {
    let Ok(Some(details)) = target.ship.inspect(target.container).await else {
        return DEFAULT_HEALTH_WAIT;
    };
    let Some(health) = details.raw.config.and_then(|c| c.healthcheck) else {
        return DEFAULT_HEALTH_WAIT;
    };
    let nanos = |n: Option<i64>, default: u64| {
        Duration::from_nanos(
            n.and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default),
        )
    };
    let interval = nanos(health.interval, 30_000_000_000);
    let timeout = nanos(health.timeout, 30_000_000_000);
    let start = nanos(health.start_period, 0);
    let retries = u32::try_from(health.retries.unwrap_or(3).max(1)).unwrap_or(3);
    (start + (interval + timeout) * (retries + 1) + Duration::from_secs(5))
        .min(Duration::from_secs(3600))
}

async fn wait_healthy(target: &CheckTarget<'_>, ctx: &StepContext) -> Result<(), CheckError> {
    let wait = health_wait(target).await;
    let max = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).max(1);
    let fail = |reason: String| CheckError::Failed {
        check: "health".into(),
        reason,
    };
    for attempt in 1..=max {
        ctx.step(Step::Checking {
            check: "health".into(),
            attempt,
            max,
        });
        match target.ship.health(target.container).await {
            Ok(Some(HealthState::Healthy)) | Ok(None) => return Ok(()),
            Ok(Some(HealthState::Unhealthy)) => {
                return Err(fail("the container's HEALTHCHECK says unhealthy".into()));
            }
            Ok(Some(_)) => {}
            Err(err) => return Err(fail(err.to_string())),
        }
        tokio::time::sleep(ATTEMPT_INTERVAL).await;
    }
    Err(fail(format!("not healthy after {max} s")))
}

/// Attempts `once` up to `max` times, one a second (an attempt that took longer than a second
/// is followed at once by the next), reporting each attempt. The last error is kept.
async fn attempts<F, Fut>(
    name: &str,
    max: u32,
    ctx: &StepContext,
    mut once: F,
) -> Result<(), CheckError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let max = max.max(1);
    let mut last = String::from("no attempt made");
    for attempt in 1..=max {
        ctx.step(Step::Checking {
            check: name.to_string(),
            attempt,
            max,
        });
        let began = Instant::now();
        match once().await {
            Ok(()) => return Ok(()),
            Err(reason) => last = reason,
        }
        if attempt < max {
            tokio::time::sleep(ATTEMPT_INTERVAL.saturating_sub(began.elapsed())).await;
        }
    }
    Err(CheckError::Failed {
        check: name.to_string(),
        reason: format!("{last} (after {max} attempts)"),
    })
}

/// The port published for a named port; a number is taken as it is, as MaestroNG does.
fn port_of(target: &CheckTarget<'_>, name: &str, port: &str) -> Result<u16, CheckError> {
    target
        .ports
        .get(port)
        .copied()
        .or_else(|| port.parse::<u16>().ok().filter(|p| *p > 0))
        .ok_or_else(|| CheckError::Failed {
            check: name.to_string(),
            reason: format!("the container publishes no port named `{port}`"),
        })
}

async fn run_one(
    target: &CheckTarget<'_>,
    check: &Check,
    ctx: &StepContext,
) -> Result<(), CheckError> {
    let name = check_name(check);
    match check {
        Check::Tcp { port, max_wait } => {
            let port = port_of(target, &name, port)?;
            tcp_check(target, ctx, &name, port, *max_wait).await
        }
        Check::Http { .. } => http_check(target, ctx, &name, check).await,
        Check::Exec {
            command,
            attempts: max,
            envfrom,
        } => {
            attempts(&name, *max, ctx, || {
                local_exec(command, *envfrom, target.env)
            })
            .await
        }
        Check::Rexec {
            command,
            attempts: max,
        } => rexec_check(target, ctx, &name, command, *max).await,
        Check::Sleep { wait } => {
            let seconds = if wait.is_finite() && *wait > 0.0 {
                *wait
            } else {
                0.0
            };
            let total = seconds.ceil() as u32;
            ctx.step(Step::Checking {
                check: name,
                attempt: 1,
                max: total.max(1),
            });
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            Ok(())
        }
    }
}

/// `tcp`: the port accepts a connection from the ship's side; `max_wait` attempts.
async fn tcp_check(
    target: &CheckTarget<'_>,
    ctx: &StepContext,
    name: &str,
    port: u16,
    max_wait: u32,
) -> Result<(), CheckError> {
    attempts(name, max_wait, ctx, || async {
        match tokio::time::timeout(
            ATTEMPT_INTERVAL,
            target.connection.open_tcp(target.ship_ip, port),
        )
        .await
        {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!(
                "no answer from {}:{port} within 1 s",
                target.ship_ip
            )),
        }
    })
    .await
}

/// `http`: status 200, or a body matching `match_regex`, within `max_wait` seconds of trying.
async fn http_check(
    target: &CheckTarget<'_>,
    ctx: &StepContext,
    name: &str,
    check: &Check,
) -> Result<(), CheckError> {
    let Check::Http {
        port,
        host,
        path,
        scheme,
        method,
        match_regex,
        max_wait,
        verify,
    } = check
    else {
        return Ok(());
    };
    let failed = |reason: String| CheckError::Failed {
        check: name.to_string(),
        reason,
    };
    let port = port_of(target, name, port)?;
    let regex = match match_regex {
        Some(text) => {
            Some(regex::Regex::new(text).map_err(|e| failed(format!("bad match_regex: {e}")))?)
        }
        None => None,
    };
    let host = host.as_deref().unwrap_or(target.ship_ip);
    // Built once: loading the system's roots reads a directory of files.
    let tls = if scheme == "https" {
        Some(TlsClient::new(&trust_of(verify), host).map_err(|e| failed(setup_words(&e)))?)
    } else {
        None
    };
    let request = HttpRequest {
        method,
        host,
        port,
        path,
        tls: tls.as_ref(),
        headers: &[],
        body: None,
    };
    // max_wait is in seconds of trying, one attempt a second.
    attempts(name, *max_wait, ctx, || async {
        let response = tokio::time::timeout(HTTP_REQUEST_TIMEOUT, target.connection.http(&request))
            .await
            .map_err(|_| format!("no answer within {} s", HTTP_REQUEST_TIMEOUT.as_secs()))?
            .map_err(|e| http_words(&e, host, verify))?;
        match &regex {
            Some(re) if re.is_match(&response.body) => Ok(()),
            Some(re) => Err(format!(
                "status {}, body does not match /{}/",
                response.status,
                re.as_str()
            )),
            None if response.status == 200 => Ok(()),
            None => Err(format!("status {} (expected 200)", response.status)),
        }
    })
    .await
}

/// `rexec`: the command exits 0 inside the container; `attempts` attempts.
async fn rexec_check(
    target: &CheckTarget<'_>,
    ctx: &StepContext,
    name: &str,
    command: &str,
    max: u32,
) -> Result<(), CheckError> {
    let argv = split_command(command);
    attempts(name, max, ctx, || async {
        let outcome = target
            .ship
            .exec(target.container, &argv, &[])
            .await
            .map_err(|e| e.to_string())?;
        if outcome.exit_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "`{command}` exited with {}: {}",
                outcome.exit_code,
                outcome.output.trim()
            ))
        }
    })
    .await
}

/// One `exec` attempt: `sh -c command` on this machine with the container's environment in
/// its environment or as a JSON object on its standard input.
async fn local_exec(
    command: &str,
    envfrom: EnvFrom,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    match envfrom {
        EnvFrom::Env => {
            cmd.envs(env.iter()).stdin(Stdio::null());
        }
        EnvFrom::Stdin => {
            cmd.stdin(Stdio::piped());
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    if envfrom == EnvFrom::Stdin
        && let Some(mut stdin) = child.stdin.take()
    {
        let json = serde_json::to_vec(env).unwrap_or_default();
        // A command that does not read its input is fine.
        let _ = stdin.write_all(&json).await;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("`{command}`: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "`{command}` exited with {}{}",
            output
                .status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| c.to_string()),
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        ))
    }
}

/// How `requests_options.verify` reads in the transport's terms.
fn trust_of(verify: &TlsVerify) -> TlsTrust {
    match verify {
        TlsVerify::SystemRoots => TlsTrust::SystemRoots,
        TlsVerify::CaFile(file) => TlsTrust::CaFile(file.clone()),
        TlsVerify::Off => TlsTrust::AnyCertificate,
    }
}

/// Why an https check cannot even try, with the setting to change.
fn setup_words(err: &TlsSetupError) -> String {
    match err {
        TlsSetupError::NoSystemRoots(_) => format!(
            "{err}: install the ca-certificates package, or set requests_options.verify to a \
             CA file or false"
        ),
        _ => err.to_string(),
    }
}

/// One attempt's failure in an operator's words, with what to change.
fn http_words(err: &HttpError, name: &str, verify: &TlsVerify) -> String {
    match err {
        HttpError::Tls(failure) => tls_words(failure, name, verify),
        other => other.to_string(),
    }
}

fn tls_words(failure: &TlsFailure, name: &str, verify: &TlsVerify) -> String {
    let trust_hint = match verify {
        TlsVerify::CaFile(file) => format!(
            "is {} the CA that signed it? Or set requests_options.verify to false",
            file.display()
        ),
        _ => "set requests_options.verify to a CA file or false".to_string(),
    };
    match failure {
        TlsFailure::UnknownIssuer => {
            format!("certificate not trusted (unknown issuer) for {name}: {trust_hint}")
        }
        TlsFailure::BadSignature => {
            format!("certificate not trusted (bad signature) for {name}: {trust_hint}")
        }
        TlsFailure::NotValidForName { presented } => {
            let names = if presented.is_empty() {
                String::new()
            } else {
                format!(" (it names {})", presented.join(", "))
            };
            format!(
                "certificate is not valid for {name}{names}: set the check's `host` to a name \
                 it holds, or requests_options.verify to false"
            )
        }
        TlsFailure::Expired(why) => format!("certificate of {name} has expired: {why}"),
        TlsFailure::NotValidYet(why) => {
            format!("certificate of {name} is not valid yet (check the clocks): {why}")
        }
        TlsFailure::Certificate(why) => format!("certificate of {name} rejected: {why}"),
        TlsFailure::NotTls(why) => format!(
            "{name} does not speak TLS on this port ({why}); for plain HTTP, set scheme: http"
        ),
        TlsFailure::Refused(alert) => {
            format!("the server refused the TLS handshake (alert: {alert})")
        }
        TlsFailure::Closed => "the server closed the connection during the TLS handshake (is \
                               it serving TLS on this port?)"
            .to_string(),
        TlsFailure::Other(why) => format!("TLS handshake failed: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_in_the_file() {
        let tcp = Check::Tcp {
            port: "client".into(),
            max_wait: 3,
        };
        assert_eq!(check_name(&tcp), "tcp:client");
        assert_eq!(check_name(&Check::Sleep { wait: 1.0 }), "sleep");
    }

    #[test]
    fn certificate_failures_are_told_in_words() {
        assert_eq!(
            tls_words(
                &TlsFailure::UnknownIssuer,
                "10.1.2.3",
                &TlsVerify::SystemRoots
            ),
            "certificate not trusted (unknown issuer) for 10.1.2.3: set requests_options.verify \
             to a CA file or false"
        );
        let with_file = tls_words(
            &TlsFailure::UnknownIssuer,
            "web.local",
            &TlsVerify::CaFile("/etc/ca.pem".into()),
        );
        assert!(
            with_file.contains("is /etc/ca.pem the CA that signed it?"),
            "{with_file}"
        );
        let wrong_name = TlsFailure::NotValidForName {
            presented: vec!["IpAddress(10.9.9.9)".into()],
        };
        let text = tls_words(&wrong_name, "10.1.2.3", &TlsVerify::SystemRoots);
        assert!(
            text.starts_with(
                "certificate is not valid for 10.1.2.3 (it names IpAddress(10.9.9.9))"
            ),
            "{text}"
        );
        let plain = TlsFailure::NotTls("received corrupt message".into());
        let text = tls_words(&plain, "10.1.2.3", &TlsVerify::Off);
        assert!(
            text.contains("does not speak TLS") && text.contains("scheme: http"),
            "{text}"
        );
        let no_roots = setup_words(&TlsSetupError::NoSystemRoots(None));
        assert!(no_roots.contains("ca-certificates"), "{no_roots}");
    }

    #[tokio::test]
    async fn exec_gets_the_environment_either_way() {
        let env = BTreeMap::from([("X".to_string(), "42".to_string())]);
        assert_eq!(
            local_exec("test \"$X\" = 42", EnvFrom::Env, &env).await,
            Ok(())
        );
        assert_eq!(
            local_exec("grep -q '\"X\":\"42\"'", EnvFrom::Stdin, &env).await,
            Ok(())
        );
        let failed = local_exec("echo nope >&2; exit 3", EnvFrom::Env, &env).await;
        assert_eq!(
            failed,
            Err("`echo nope >&2; exit 3` exited with 3: nope".into())
        );
    }
}
