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
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Check, EnvFrom};
use crate::docker::{ContainerStatus, HealthState, Ship};
use crate::transport::Connection;

use super::events::Step;
use super::executor::StepContext;
use super::spec::split_command;

/// Time between two attempts of a check.
const ATTEMPT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest an HTTP check waits for one answer.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP answer read (the regex is matched against it).
const HTTP_MAX_BYTES: usize = 1024 * 1024;
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
    matches!(target.ship.health(target.container).await, Ok(Some(_)))
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
            attempts(&name, *max_wait, ctx, || async {
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
        Check::Http {
            port,
            host,
            path,
            scheme,
            method,
            match_regex,
            max_wait,
            verify,
        } => {
            let port = port_of(target, &name, port)?;
            let regex = match match_regex {
                Some(text) => Some(regex::Regex::new(text).map_err(|e| CheckError::Failed {
                    check: name.clone(),
                    reason: format!("bad match_regex: {e}"),
                })?),
                None => None,
            };
            let host = host.as_deref().unwrap_or(target.ship_ip);
            // Built once: loading the system's roots reads a directory of files.
            let tls = if scheme == "https" {
                Some(
                    tls::Client::new(verify, host).map_err(|reason| CheckError::Failed {
                        check: name.clone(),
                        reason,
                    })?,
                )
            } else {
                None
            };
            let request = HttpRequest {
                method,
                host,
                port,
                path,
                tls: tls.as_ref(),
            };
            // max_wait is in seconds of trying, one attempt a second.
            attempts(&name, *max_wait, ctx, || async {
                let response = http_once(target.connection, &request).await?;
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
        } => {
            let argv = split_command(command);
            attempts(&name, *max, ctx, || async {
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

struct HttpRequest<'a> {
    method: &'a str,
    host: &'a str,
    port: u16,
    path: &'a str,
    /// Set for `https`: the request goes through TLS over the ship's stream.
    tls: Option<&'a tls::Client>,
}

#[derive(Debug, PartialEq, Eq)]
struct HttpResponse {
    status: u16,
    body: String,
}

/// A minimal HTTP/1.1 request; `Connection: close` lets us read to the end of the stream.
fn http_request_bytes(req: &HttpRequest<'_>) -> Vec<u8> {
    let path = if req.path.starts_with('/') {
        req.path.to_string()
    } else {
        format!("/{}", req.path)
    };
    format!(
        "{} {path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: maestro\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        req.method.to_uppercase(),
        req.host,
        req.port
    )
    .into_bytes()
}

/// Status and body of a response read to the end; chunked bodies are joined. Works on
/// bytes: the answer comes from the network and need not be UTF-8 anywhere.
fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = find(raw, b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (raw, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err(format!("not an HTTP answer: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(rest, b"\r\n") {
        let size_line = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        let after = &rest[line_end + 2..];
        let available = size.min(after.len());
        out.extend_from_slice(&after[..available]);
        if size == 0 || available < size {
            break;
        }
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&after[size..]);
    }
    out
}

async fn http_once(connection: &Connection, req: &HttpRequest<'_>) -> Result<HttpResponse, String> {
    let exchange = async {
        let stream = connection
            .open_tcp(req.host, req.port)
            .await
            .map_err(|e| e.to_string())?;
        match req.tls {
            Some(tls) => http_exchange(tls.handshake(stream).await?, req).await,
            None => http_exchange(stream, req).await,
        }
    };
    tokio::time::timeout(HTTP_REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {} s", HTTP_REQUEST_TIMEOUT.as_secs()))?
}

/// Sends the request and reads the answer to the end of the stream.
async fn http_exchange<S>(mut stream: S, req: &HttpRequest<'_>) -> Result<HttpResponse, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(&http_request_bytes(req))
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let _ = stream.flush().await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // Many TLS servers close without a close_notify once they have answered; what
            // was read is the whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => 0,
            Err(e) => return Err(format!("reading the answer: {e}")),
        };
        if n == 0 || raw.len() >= HTTP_MAX_BYTES {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    parse_http_response(&raw)
}

/// TLS for `https` checks, run over the stream the ship opened, so the server is reached
/// exactly as for `http`. The crypto provider is `ring`, the one bollard's rustls uses.
mod tls {
    use std::sync::{Arc, OnceLock};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;

    use crate::config::TlsVerify;

    /// What an https check connects with: the TLS settings and the name the certificate
    /// must hold (the check's `host`, else the ship's ip).
    pub(super) struct Client {
        connector: TlsConnector,
        name: ServerName<'static>,
        /// How the certificate is verified, for the hints of error messages.
        verify: TlsVerify,
    }

    fn provider() -> Arc<CryptoProvider> {
        static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
        Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
    }

    /// The system's trusted roots, read once per process.
    fn system_roots() -> Result<Arc<RootCertStore>, String> {
        static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
        ROOTS
            .get_or_init(|| {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    let why = found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    return Err(format!(
                        "no trusted CA certificates found on this machine{why}: install the \
                         ca-certificates package, or set requests_options.verify to a CA file \
                         or false"
                    ));
                }
                Ok(Arc::new(roots))
            })
            .clone()
    }

    fn file_roots(file: &std::path::Path) -> Result<Arc<RootCertStore>, String> {
        let bad =
            |e: &dyn std::fmt::Display| format!("cannot use the CA file {}: {e}", file.display());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(file).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        if roots.is_empty() {
            return Err(bad(&"it holds no certificate"));
        }
        Ok(Arc::new(roots))
    }

    impl Client {
        pub(super) fn new(verify: &TlsVerify, name: &str) -> Result<Client, String> {
            let server_name = ServerName::try_from(name.to_string())
                .map_err(|_| format!("`{name}` is neither a host name nor an ip address"))?;
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?;
            let config = match verify {
                TlsVerify::SystemRoots => builder.with_root_certificates(system_roots()?),
                TlsVerify::CaFile(file) => builder.with_root_certificates(file_roots(file)?),
                TlsVerify::Off => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                        provider().signature_verification_algorithms,
                    ))),
            }
            .with_no_client_auth();
            Ok(Client {
                connector: TlsConnector::from(Arc::new(config)),
                name: server_name,
                verify: verify.clone(),
            })
        }

        pub(super) async fn handshake<S>(&self, stream: S) -> Result<TlsStream<S>, String>
        where
            S: AsyncRead + AsyncWrite + Unpin,
        {
            self.connector
                .connect(self.name.clone(), stream)
                .await
                .map_err(|e| self.explain(&e))
        }

        /// The handshake's failure in an operator's words, with what to change.
        fn explain(&self, err: &std::io::Error) -> String {
            let name = self.name.to_str();
            let Some(tls) = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            else {
                return match err.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        "the server closed the connection during the TLS handshake \
                         (is it serving TLS on this port?)"
                            .to_string()
                    }
                    _ => format!("TLS handshake: {err}"),
                };
            };
            describe(tls, &name, &self.verify)
        }
    }

    pub(super) fn describe(err: &rustls::Error, name: &str, verify: &TlsVerify) -> String {
        let trust_hint = match verify {
            TlsVerify::CaFile(file) => format!(
                "is {} the CA that signed it? Or set requests_options.verify to false",
                file.display()
            ),
            _ => "set requests_options.verify to a CA file or false".to_string(),
        };
        let rustls::Error::InvalidCertificate(cert) = err else {
            return match err {
                rustls::Error::InvalidMessage(_) => format!(
                    "{name} does not speak TLS on this port ({err}); for plain HTTP, set \
                     scheme: http"
                ),
                rustls::Error::AlertReceived(alert) => {
                    format!("the server refused the TLS handshake (alert: {alert:?})")
                }
                other => format!("TLS handshake failed: {other}"),
            };
        };
        match cert {
            CertificateError::UnknownIssuer => {
                format!("certificate not trusted (unknown issuer) for {name}: {trust_hint}")
            }
            CertificateError::BadSignature => {
                format!("certificate not trusted (bad signature) for {name}: {trust_hint}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let names = match cert {
                    CertificateError::NotValidForNameContext { presented, .. }
                        if !presented.is_empty() =>
                    {
                        format!(" (it names {})", presented.join(", "))
                    }
                    _ => String::new(),
                };
                format!(
                    "certificate is not valid for {name}{names}: set the check's `host` to a \
                     name it holds, or requests_options.verify to false"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate of {name} has expired: {cert}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("certificate of {name} is not valid yet (check the clocks): {cert}")
            }
            other => format!("certificate of {name} rejected: {other}"),
        }
    }

    /// `verify: false`: any certificate for any name, as python-requests does; handshake
    /// signatures are still checked, so the server must hold the certificate's key.
    #[derive(Debug)]
    struct AnyCertificate(WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
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
    fn request_and_response() {
        let req = HttpRequest {
            method: "get",
            host: "10.0.0.1",
            port: 8080,
            path: "health",
            tls: None,
        };
        let bytes = String::from_utf8(http_request_bytes(&req)).unwrap_or_default();
        assert!(bytes.starts_with("GET /health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n"));
        assert!(bytes.ends_with("Connection: close\r\n\r\n"));
        let plain = parse_http_response(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(
            plain,
            Ok(HttpResponse {
                status: 200,
                body: "ok".into()
            })
        );
        let chunked = parse_http_response(
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(
            chunked,
            Ok(HttpResponse {
                status: 503,
                body: "abcde".into()
            })
        );
        assert!(parse_http_response(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn certificate_failures_are_told_in_words() {
        use crate::config::TlsVerify;
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            tls::describe(&unknown, "10.1.2.3", &TlsVerify::SystemRoots),
            "certificate not trusted (unknown issuer) for 10.1.2.3: set requests_options.verify \
             to a CA file or false"
        );
        let with_file = tls::describe(
            &unknown,
            "web.local",
            &TlsVerify::CaFile("/etc/ca.pem".into()),
        );
        assert!(
            with_file.contains("is /etc/ca.pem the CA that signed it?"),
            "{with_file}"
        );
        let wrong_name =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("10.1.2.3")
                    .map(|n| n.to_owned())
                    .unwrap_or_else(|e| panic!("{e}")),
                presented: vec!["IpAddress(10.9.9.9)".into()],
            });
        let text = tls::describe(&wrong_name, "10.1.2.3", &TlsVerify::SystemRoots);
        assert!(
            text.starts_with(
                "certificate is not valid for 10.1.2.3 (it names IpAddress(10.9.9.9))"
            ),
            "{text}"
        );
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let text = tls::describe(&plain, "10.1.2.3", &TlsVerify::Off);
        assert!(
            text.contains("does not speak TLS") && text.contains("scheme: http"),
            "{text}"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_when_the_check_runs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap_or_else(|e| panic!("{e}"));
        let verify = crate::config::TlsVerify::CaFile(file.clone());
        let err = tls::Client::new(&verify, "10.1.2.3")
            .err()
            .unwrap_or_default();
        assert!(err.contains("holds no certificate"), "{err}");
        assert!(tls::Client::new(&crate::config::TlsVerify::Off, "10.1.2.3").is_ok());
        assert!(tls::Client::new(&crate::config::TlsVerify::Off, "web.example").is_ok());
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
