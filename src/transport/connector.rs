//! The Docker API over an SSH session: a hyper (HTTP/1.1) client whose connections are SSH
//! channels, pooled, with upgrades for attach/exec, handed to bollard as a custom transport.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, ClientVersion, Docker};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::TransportError;
use super::ssh::SshChain;
use super::{DEFAULT_REQUEST_TIMEOUT_SECS, DockerTarget, TlsFiles, TransportKind};

/// bollard's request body type (not exported by name).
type RequestBody = http_body_util::Either<
    http_body_util::Full<bytes::Bytes>,
    http_body_util::StreamBody<
        Pin<
            Box<
                dyn futures_util::Stream<
                        Item = Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>,
                    > + Send,
            >,
        >,
    >,
>;

/// One SSH channel as a hyper connection.
pub(crate) struct ChannelIo(russh::ChannelStream<russh::client::Msg>);

impl Connection for ChannelIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for ChannelIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChannelIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// An open channel to the daemon, waiting to become the pool's first connection.
pub(crate) type SpareChannel = russh::ChannelStream<russh::client::Msg>;

/// Opens a fresh channel to the Docker daemon for each connection the pool asks for.
#[derive(Clone)]
pub(crate) struct ChannelConnector {
    chain: Arc<SshChain>,
    target: DockerTarget,
    /// The channel `check_docker_channel` opened: handing it to the pool saves the round
    /// trip of opening another one for the first request.
    spare: Arc<std::sync::Mutex<Option<SpareChannel>>>,
}

impl tower_service::Service<Uri> for ChannelConnector {
    type Response = TokioIo<ChannelIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let chain = self.chain.clone();
        let target = self.target.clone();
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        Box::pin(async move {
            if let Some(stream) = spare {
                return Ok(TokioIo::new(ChannelIo(stream)));
            }
            let stream = match &target {
                DockerTarget::Socket(path) => chain.open_streamlocal(path).await,
                DockerTarget::Tcp(port) => chain.open_tcpip("127.0.0.1", *port).await,
            }
            .map_err(|err| {
                std::io::Error::other(format!(
                    "{} could not open a channel to {target}: {err}",
                    chain.ship_label()
                ))
            })?;
            Ok(TokioIo::new(ChannelIo(stream)))
        })
    }
}

pub(crate) fn ssh_docker(
    chain: Arc<SshChain>,
    target: DockerTarget,
    spare: Option<SpareChannel>,
    version: &ClientVersion,
) -> Result<Docker, bollard::errors::Error> {
    let connector = ChannelConnector {
        chain,
        target,
        spare: Arc::new(std::sync::Mutex::new(spare)),
    };
    let client: Client<ChannelConnector, RequestBody> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(16)
        .build(connector);
    let client = Arc::new(client);
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some("http://docker"),
        DEFAULT_REQUEST_TIMEOUT_SECS,
        version,
    )
}

/// Opens one channel to the daemon before anything else, so that a missing or forbidden
/// socket is reported as such rather than as a failed API call. The channel is returned
/// for the first API request to use.
pub(crate) async fn check_docker_channel(
    ship: &str,
    chain: &SshChain,
    target: &DockerTarget,
    timeout: Duration,
) -> Result<SpareChannel, TransportError> {
    let hop = chain.ship_label().to_string();
    let opened = match target {
        DockerTarget::Socket(path) => {
            tokio::time::timeout(timeout, chain.open_streamlocal(path)).await
        }
        DockerTarget::Tcp(port) => {
            tokio::time::timeout(timeout, chain.open_tcpip("127.0.0.1", *port)).await
        }
    };
    let err = match opened {
        Ok(Ok(stream)) => return Ok(stream),
        Err(_) => {
            return Err(TransportError::Timeout {
                ship: ship.to_string(),
                hop: format!("{target} on {hop}"),
                after: timeout,
            });
        }
        Ok(Err(err)) => err,
    };
    let reason = err.to_string();
    match target {
        DockerTarget::Socket(path) => {
            let probe = format!(
                "p={}; if [ ! -e \"$p\" ]; then echo missing; elif [ ! -S \"$p\" ]; then echo \
                 not-a-socket; elif [ ! -r \"$p\" ] || [ ! -w \"$p\" ]; then echo permission; \
                 else echo present; fi",
                shell_quote(path)
            );
            let diagnosis = tokio::time::timeout(timeout, chain.run(&probe))
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            match diagnosis.trim() {
                "missing" | "not-a-socket" => Err(TransportError::SocketMissing {
                    ship: ship.to_string(),
                    hop,
                    path: path.clone(),
                }),
                "permission" => Err(TransportError::SocketPermission {
                    ship: ship.to_string(),
                    hop,
                    path: path.clone(),
                }),
                _ => Err(TransportError::DockerUnreachable {
                    ship: ship.to_string(),
                    hop,
                    target: target.to_string(),
                    reason: format!(
                        "{reason} (is AllowStreamLocalForwarding enabled in its sshd_config, \
                         and is dockerd listening?)"
                    ),
                }),
            }
        }
        DockerTarget::Tcp(_) => Err(TransportError::DockerUnreachable {
            ship: ship.to_string(),
            hop,
            target: target.to_string(),
            reason: format!(
                "{reason} (is dockerd listening on that port, and AllowTcpForwarding enabled?)"
            ),
        }),
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

pub(crate) async fn check_local_socket(ship: &str, socket: &Path) -> Result<(), TransportError> {
    let path = socket.display().to_string();
    match tokio::net::UnixStream::connect(socket).await {
        Ok(_) => Ok(()),
        Err(err) => match err.kind() {
            std::io::ErrorKind::NotFound => Err(TransportError::SocketMissing {
                ship: ship.to_string(),
                hop: "this machine".into(),
                path,
            }),
            std::io::ErrorKind::PermissionDenied => Err(TransportError::SocketPermission {
                ship: ship.to_string(),
                hop: "this machine".into(),
                path,
            }),
            std::io::ErrorKind::ConnectionRefused => Err(TransportError::Refused {
                ship: ship.to_string(),
                hop: format!("unix:{path}"),
                via: None,
            }),
            _ => Err(TransportError::Io {
                ship: ship.to_string(),
                hop: format!("unix:{path}"),
                source: err,
            }),
        },
    }
}

pub(crate) async fn check_tcp(
    ship: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(), TransportError> {
    let hop = format!("{host}:{port}");
    let addresses = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| TransportError::Timeout {
            ship: ship.to_string(),
            hop: hop.clone(),
            after: timeout,
        })?
        .map_err(|source| TransportError::Dns {
            ship: ship.to_string(),
            hop: hop.clone(),
            source,
        })?
        .collect::<Vec<_>>();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addresses[..])).await {
        Err(_) => Err(TransportError::Timeout {
            ship: ship.to_string(),
            hop,
            after: timeout,
        }),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(TransportError::Refused {
                ship: ship.to_string(),
                hop,
                via: None,
            })
        }
        Ok(Err(source)) => Err(TransportError::Io {
            ship: ship.to_string(),
            hop,
            source,
        }),
    }
}

pub(crate) fn tcp_docker(
    ship: &str,
    host: &str,
    port: u16,
    tls: Option<&TlsFiles>,
    version: &ClientVersion,
) -> Result<(Docker, TransportKind), TransportError> {
    let docker_err = |source| TransportError::docker(ship, source);
    let address = format!("tcp://{host}:{port}");
    let Some(tls) = tls else {
        let docker = Docker::connect_with_http(&address, DEFAULT_REQUEST_TIMEOUT_SECS, version)
            .map_err(docker_err)?;
        return Ok((docker, TransportKind::Tcp));
    };
    let settings = |message: &str| TransportError::Settings {
        ship: ship.to_string(),
        message: message.to_string(),
    };
    if !tls.verify {
        return Err(settings(
            "TLS without verification (tls_verify: false) is not supported: give tls_ca_cert so \
             the daemon's certificate can be checked",
        ));
    }
    let (Some(ca), Some(cert), Some(key)) = (&tls.ca, &tls.cert, &tls.key) else {
        return Err(settings(
            "TLS needs tls_ca_cert, tls_cert and tls_key (the daemon's CA and our client certificate)",
        ));
    };
    let docker = Docker::connect_with_ssl(
        &address,
        key,
        cert,
        ca,
        DEFAULT_REQUEST_TIMEOUT_SECS,
        version,
    )
    .map_err(docker_err)?;
    Ok((docker, TransportKind::Tls))
}
