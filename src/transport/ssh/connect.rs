//! One login toward one hop: the link its bytes travel over (a TCP connection, a
//! ProxyCommand's pipes, or a `direct-tcpip` channel of the hop before), the SSH handshake
//! with the host key algorithms on record asked first, then authentication (`auth`). A
//! failed handshake is told by its most telling cause ([`handshake_failure`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::ChannelOpenFailure;
use russh::client;

use super::auth::{PassphrasePrompt, authenticate};
use super::host_key::{ForwardTable, HostKeyCheck, HostKeyOutcome, host_key_error, host_key_notes};
use super::route::{ProxyCommand, last_lines};
use super::{Duplex, Hop, Session};
use crate::transport::HopInfo;
use crate::transport::banner::{Recorded, foreign_greeting};
use crate::transport::error::TransportErrorKind;
use crate::transport::known_hosts;

pub(crate) struct ConnectOptions {
    pub ship: String,
    pub timeout: Duration,
    pub keepalive: Duration,
    pub batch_mode: bool,
    /// The ssh-agent's socket (`SSH_AUTH_SOCK` of the command; the persist daemon is told
    /// the one of the command that asked, not its own).
    pub agent_socket: Option<PathBuf>,
    /// `MAESTRO_SSH_PASSPHRASE` of the command (the persist daemon is told the one of the
    /// command that asked).
    pub passphrase: Option<String>,
    /// Who asks for a key's passphrase when the environment gives none (not under
    /// `batch_mode`); `None`: nobody.
    pub prompt: Option<Arc<dyn PassphrasePrompt>>,
}

/// The host key algorithms to ask for, those of the key types on record first, so that a
/// host known by its ECDSA key is not refused because it also offers Ed25519 (a type not on
/// record is CHANGED, see `known_hosts`). known_hosts records an RSA key as `ssh-rsa`
/// whatever the server signs with; OpenSSH 8.8+ servers no longer sign with SHA-1
/// `ssh-rsa`, so an RSA key on record asks for `rsa-sha2-512` and `rsa-sha2-256` first, as
/// OpenSSH does. `ssh-rsa` stays last of them, for old servers, as it always was here.
pub(super) fn host_key_order(
    default: &[russh::keys::Algorithm],
    recorded: &[russh::keys::Algorithm],
) -> Vec<russh::keys::Algorithm> {
    use russh::keys::Algorithm::Rsa;
    let on_record = |alg: &russh::keys::Algorithm| {
        recorded
            .iter()
            .any(|rec| rec == alg || (matches!(rec, Rsa { .. }) && matches!(alg, Rsa { .. })))
    };
    let mut order: Vec<_> = default.iter().filter(|a| on_record(a)).cloned().collect();
    order.extend(default.iter().filter(|a| !on_record(a)).cloned());
    order
}

fn client_config(hop: &Hop, options: &ConnectOptions) -> client::Config {
    let mut preferred = russh::Preferred::default();
    let recorded = known_hosts::recorded_algorithms(&hop.host, hop.port, &hop.known_hosts_files);
    preferred.key = host_key_order(&preferred.key, &recorded).into();
    // OpenSSH asks for certificates first when a CA is listed for the host; russh asks for
    // none unless told, and a certificate nobody trusts would only be judged by its key.
    if known_hosts::trusts_cas_for(&hop.host, hop.port, &hop.known_hosts_files) {
        preferred.host_key_certificates = preferred.key.clone();
    }
    client::Config {
        preferred,
        keepalive_interval: Some(options.keepalive),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

pub(super) async fn connect_hop(
    hop: &Hop,
    previous: Option<Arc<Session>>,
    via: Option<String>,
    options: &ConnectOptions,
) -> Result<Session, TransportErrorKind> {
    let timeout = options.timeout;
    let outcome = Arc::new(Mutex::new(HostKeyOutcome::default()));
    let forwards = ForwardTable::default();
    let handler = HostKeyCheck::for_hop(hop, forwards.clone(), outcome.clone());
    let config = Arc::new(client_config(hop, options));
    let link = open_link(hop, previous.as_ref(), via, options).await?;
    // What the server sent, for when the handshake fails (see `banner`).
    let (stream, greeting) = Recorded::new(link.stream);
    tracing::debug!("{}: {}: SSH handshake", options.ship, hop.label);
    let started = Instant::now();
    let handshake =
        tokio::time::timeout(timeout, client::connect_stream(config, stream, handler)).await;
    match &handshake {
        Ok(Ok(_)) => tracing::debug!(
            "{}: {}: SSH handshake done in {} ms",
            options.ship,
            hop.label,
            started.elapsed().as_millis()
        ),
        Ok(Err(err)) => {
            tracing::debug!(
                "{}: {}: SSH handshake failed: {err}",
                options.ship,
                hop.label
            )
        }
        Err(_) => tracing::debug!("{}: {}: SSH handshake timed out", options.ship, hop.label),
    }
    let mut handle = match handshake {
        Err(_) => {
            return Err(TransportErrorKind::Timeout {
                hop: hop.label.clone(),
                after: timeout,
            });
        }
        Ok(Ok(handle)) => handle,
        Ok(Err(err)) => {
            let greeting = greeting.lock().map(|seen| seen.clone()).unwrap_or_default();
            return Err(handshake_failure(
                hop,
                options,
                &outcome,
                link.proxy_stderr,
                &greeting,
                err,
            )
            .await);
        }
    };
    let (fingerprint, mut warnings) = host_key_notes(hop, &outcome);
    let auth_method = authenticate(&mut handle, hop, options, &mut warnings).await?;
    Ok(Session {
        handle,
        info: HopInfo {
            address: hop.label.clone(),
            auth_method,
            host_key_fingerprint: fingerprint,
        },
        warnings,
        _proxy: link.proxy,
        _via: previous,
        users: AtomicUsize::new(0),
        forwards,
    })
}

/// How a hop's bytes travel before SSH starts: a ProxyCommand's pipes, a TCP connection, or a
/// `direct-tcpip` channel of the hop before it.
struct HopLink {
    stream: Box<dyn Duplex>,
    /// The ProxyCommand, which lives as long as the session.
    proxy: Option<tokio::process::Child>,
    /// What the ProxyCommand prints on stderr, read until it exits.
    proxy_stderr: Option<tokio::task::JoinHandle<String>>,
}

async fn open_link(
    hop: &Hop,
    previous: Option<&Arc<Session>>,
    via: Option<String>,
    options: &ConnectOptions,
) -> Result<HopLink, TransportErrorKind> {
    let ship = &options.ship;
    let link = |stream: Box<dyn Duplex>| HopLink {
        stream,
        proxy: None,
        proxy_stderr: None,
    };
    match (previous, &hop.proxy_command) {
        (None, Some(command)) => {
            tracing::debug!("{ship}: {}: ProxyCommand `{command}`", hop.label);
            let spawned =
                ProxyCommand::spawn(command).map_err(|err| TransportErrorKind::ProxyCommand {
                    hop: hop.label.clone(),
                    command: command.clone(),
                    reason: format!("cannot start it: {err}"),
                })?;
            Ok(HopLink {
                stream: Box::new(spawned.stream),
                proxy: Some(spawned.child),
                proxy_stderr: Some(spawned.stderr),
            })
        }
        (None, None) => Ok(link(Box::new(tcp_link(hop, options).await?))),
        (Some(previous), _) => Ok(link(Box::new(
            channel_link(hop, previous, via, options).await?,
        ))),
    }
}

/// A hop reached directly: its name resolved, then a TCP connection.
async fn tcp_link(
    hop: &Hop,
    options: &ConnectOptions,
) -> Result<tokio::net::TcpStream, TransportErrorKind> {
    let (ship, timeout) = (&options.ship, options.timeout);
    let timed_out = || TransportErrorKind::Timeout {
        hop: hop.label.clone(),
        after: timeout,
    };
    let addresses = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((hop.host.as_str(), hop.port)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|source| TransportErrorKind::Dns {
        hop: hop.label.clone(),
        source: source.into(),
    })?
    .collect::<Vec<_>>();
    tracing::debug!("{ship}: {}: TCP connect to {addresses:?}", hop.label);
    let started = Instant::now();
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addresses[..]))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| io_error(&hop.label, timeout, source))
        .inspect_err(|err| tracing::debug!("{ship}: {}: TCP connect: {err}", hop.label))?;
    tracing::debug!(
        "{ship}: {}: TCP connected to {} in {} ms",
        hop.label,
        stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        started.elapsed().as_millis()
    );
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A hop reached through the one before it: a `direct-tcpip` channel of its session.
async fn channel_link(
    hop: &Hop,
    previous: &Arc<Session>,
    via: Option<String>,
    options: &ConnectOptions,
) -> Result<russh::ChannelStream<client::Msg>, TransportErrorKind> {
    let ship = &options.ship;
    tracing::debug!(
        "{ship}: {}: direct-tcpip channel through {}",
        hop.label,
        previous.info.address
    );
    let channel = tokio::time::timeout(
        options.timeout,
        previous.handle.channel_open_direct_tcpip(
            hop.host.as_str(),
            u32::from(hop.port),
            "127.0.0.1",
            0,
        ),
    )
    .await
    .map_err(|_| TransportErrorKind::Timeout {
        hop: hop.label.clone(),
        after: options.timeout,
    })?
    .map_err(|err| match err {
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed) => {
            TransportErrorKind::Refused {
                hop: hop.label.clone(),
                via,
            }
        }
        other => TransportErrorKind::Ssh {
            hop: hop.label.clone(),
            source: Arc::new(other),
        },
    })?;
    Ok(channel.into_stream())
}

/// Why a handshake failed, in the order that explains it best: a refused host key, then what
/// a failed ProxyCommand printed, then a server that is not sshd (it sent `greeting`), then a
/// busy sshd, then the SSH error itself.
async fn handshake_failure(
    hop: &Hop,
    options: &ConnectOptions,
    outcome: &Mutex<HostKeyOutcome>,
    proxy_stderr: Option<tokio::task::JoinHandle<String>>,
    greeting: &[u8],
    err: russh::Error,
) -> TransportErrorKind {
    let refused = {
        let outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
        host_key_error(hop, &outcome)
    };
    if let Some(refused) = refused {
        return refused;
    }
    // A proxy that fails usually just exits: say what it printed, not "EOF".
    if let (Some(command), Some(stderr)) = (&hop.proxy_command, proxy_stderr) {
        // Its stderr closes when it exits; one still running says nothing more.
        let said = tokio::time::timeout(Duration::from_secs(1), stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return TransportErrorKind::ProxyCommand {
            hop: hop.label.clone(),
            command: command.clone(),
            reason: last_lines(&said).unwrap_or_else(|| err.to_string()),
        };
    }
    if let Some(sent) = foreign_greeting(greeting) {
        return TransportErrorKind::NotSsh {
            hop: hop.label.clone(),
            sent,
        };
    }
    if dropped_before_login(&err) {
        return TransportErrorKind::DroppedBeforeLogin {
            hop: hop.label.clone(),
            attempts: 1,
        };
    }
    ssh_error(&hop.label, options.timeout, err)
}

/// sshd past its `MaxStartups` accepts the connection and closes it at once: before the
/// host key, the client sees the connection reset or closed. (A host key refusal or a
/// server that is not sshd at all fail differently.)
fn dropped_before_login(err: &russh::Error) -> bool {
    use std::io::ErrorKind;
    match err {
        russh::Error::IO(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::BrokenPipe
        ),
        russh::Error::Disconnect | russh::Error::HUP => true,
        _ => false,
    }
}

fn io_error(hop: &str, timeout: Duration, source: std::io::Error) -> TransportErrorKind {
    match source.kind() {
        std::io::ErrorKind::ConnectionRefused => TransportErrorKind::Refused {
            hop: hop.to_string(),
            via: None,
        },
        std::io::ErrorKind::TimedOut => TransportErrorKind::Timeout {
            hop: hop.to_string(),
            after: timeout,
        },
        _ => TransportErrorKind::Io {
            hop: hop.to_string(),
            source: source.into(),
        },
    }
}

pub(super) fn ssh_error(hop: &str, timeout: Duration, err: russh::Error) -> TransportErrorKind {
    match err {
        russh::Error::IO(source) => io_error(hop, timeout, source),
        other => TransportErrorKind::Ssh {
            hop: hop.to_string(),
            source: Arc::new(other),
        },
    }
}
