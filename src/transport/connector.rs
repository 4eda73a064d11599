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

use super::api_version::{self, VersionCache};
use super::error::{TransportError, TransportErrorKind};
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

/// One channel to the daemon as a hyper connection: an SSH channel of our own session, or
/// a stream the persist daemon relays to a channel of its session (see `warm`).
pub(crate) struct ChannelIo(Box<dyn super::ssh::Duplex>);

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
pub(crate) type SpareChannel = Box<dyn super::ssh::Duplex>;

/// Where the channels come from.
#[derive(Clone)]
pub(crate) enum Opener {
    /// Our own SSH session.
    Chain(Arc<SshChain>),
    /// The persist daemon's session for this route.
    Warm(Arc<super::warm::WarmRoute>),
}

impl Opener {
    fn label(&self) -> &str {
        match self {
            Opener::Chain(chain) => chain.ship_label(),
            Opener::Warm(route) => route.label(),
        }
    }

    async fn open(&self, target: &DockerTarget) -> Result<SpareChannel, String> {
        match self {
            Opener::Chain(chain) => match target {
                DockerTarget::Socket(path) => chain.open_streamlocal(path).await,
                DockerTarget::Tcp(port) => chain.open_tcpip("127.0.0.1", *port).await,
            }
            .map(|stream| Box::new(stream) as SpareChannel)
            .map_err(|err| err.to_string()),
            Opener::Warm(route) => route
                .open_docker(target)
                .await
                .map(|stream| Box::new(stream) as SpareChannel)
                .map_err(|err| err.to_string()),
        }
    }
}

/// Opens a fresh channel to the Docker daemon for each connection the pool asks for.
#[derive(Clone)]
pub(crate) struct ChannelConnector {
    opener: Opener,
    target: DockerTarget,
    /// The channels `check_docker_channel` opened: handing them to the pool saves the
    /// round trip of opening one for each of the first requests.
    spare: Arc<std::sync::Mutex<Vec<SpareChannel>>>,
}

impl tower_service::Service<Uri> for ChannelConnector {
    type Response = TokioIo<ChannelIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let opener = self.opener.clone();
        let target = self.target.clone();
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        Box::pin(async move {
            if let Some(stream) = spare {
                return Ok(TokioIo::new(ChannelIo(stream)));
            }
            let stream = opener.open(&target).await.map_err(|err| {
                std::io::Error::other(format!(
                    "{} could not open a channel to {target}: {err}",
                    opener.label()
                ))
            })?;
            Ok(TokioIo::new(ChannelIo(stream)))
        })
    }
}

pub(crate) fn ssh_docker(
    ship: &str,
    opener: Opener,
    target: DockerTarget,
    spare: Vec<SpareChannel>,
    version: &ClientVersion,
    api: Arc<ApiVersionState>,
) -> Result<Docker, bollard::errors::Error> {
    let ship = ship.to_string();
    let connector = ChannelConnector {
        opener,
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
            let api = api.clone();
            let ship = ship.clone();
            async move {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let started = std::time::Instant::now();
                let answer = send_with_version(&client, &api, request).await;
                let ms = started.elapsed().as_millis();
                match &answer {
                    // The status line arrives before a streamed body (logs, pulls, events):
                    // the time is the time to the answer's head.
                    Ok(response) => tracing::debug!(
                        "{ship}: Docker {method} {path}: {} in {ms} ms",
                        response.status().as_u16()
                    ),
                    Err(err) => {
                        tracing::debug!("{ship}: Docker {method} {path}: {err} after {ms} ms")
                    }
                }
                answer
            }
        },
        Some("http://docker"),
        DEFAULT_REQUEST_TIMEOUT_SECS,
        version,
    )
}

/// The API version an SSH connection's requests carry in their path. bollard 0.21 builds
/// every path without one (its URL join drops the `/v1.xx` prefix), so the daemon would
/// answer in whatever API it speaks newest; the transport puts the agreed version back.
pub(crate) struct ApiVersionState {
    /// None while the version is being negotiated (`GET /version` is unversioned).
    current: std::sync::Mutex<Option<ClientVersion>>,
    /// Remembered, not forced by the operator: a rejection is answered by negotiating again.
    recover: std::sync::atomic::AtomicBool,
    cache: Option<VersionCache>,
    version_requests: std::sync::atomic::AtomicU64,
}

impl ApiVersionState {
    pub(crate) fn new(cache: Option<VersionCache>) -> ApiVersionState {
        ApiVersionState {
            current: std::sync::Mutex::new(None),
            recover: std::sync::atomic::AtomicBool::new(false),
            cache,
            version_requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn current(&self) -> Option<ClientVersion> {
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the version every later request carries; `remembered` ones are stored in the
    /// cache and renegotiated if the daemon rejects them.
    pub(crate) fn set(&self, version: ClientVersion, remembered: bool) {
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(version);
        self.recover
            .store(remembered, std::sync::atomic::Ordering::Relaxed);
        if remembered && let Some(cache) = &self.cache {
            cache.store(bollard::API_DEFAULT_VERSION, &version);
        }
    }

    pub(crate) fn cached(&self) -> Option<ClientVersion> {
        self.cache
            .as_ref()
            .and_then(|cache| cache.load(bollard::API_DEFAULT_VERSION))
    }

    /// `GET /version` requests sent on this connection (negotiations and diagnostics).
    pub(crate) fn version_requests(&self) -> u64 {
        self.version_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The path of `uri` with `version` as its first segment (replacing one already there).
fn with_version(uri: &Uri, version: Option<&ClientVersion>) -> Uri {
    let Some(version) = version else {
        return uri.clone();
    };
    let path_and_query = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let unversioned = match path_and_query.strip_prefix("/v") {
        Some(rest) => {
            let end = rest.find('/').unwrap_or(rest.len());
            if api_version::parse_version(&rest[..end]).is_some() && rest[..end].contains('.') {
                &rest[end..]
            } else {
                path_and_query
            }
        }
        None => path_and_query,
    };
    let mut parts = uri.clone().into_parts();
    let versioned = format!("/v{}{unversioned}", api_version::format_version(version));
    match versioned.parse() {
        Ok(pq) => {
            parts.path_and_query = Some(pq);
            Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
        }
        Err(_) => uri.clone(),
    }
}

/// Sends `request` with the connection's API version. A 400 saying the daemon does not
/// speak a remembered version makes us ask it again (`GET /version`) and send the request
/// once more, when its body can be sent again (all but streamed uploads).
async fn send_with_version(
    client: &Client<ChannelConnector, RequestBody>,
    api: &ApiVersionState,
    request: BollardRequest,
) -> Result<hyper::Response<hyper::body::Incoming>, bollard::errors::Error> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.path() == "/version" {
        api.version_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let original_uri = parts.uri.clone();
    parts.uri = with_version(&original_uri, api.current().as_ref());
    let replay = match &body {
        http_body_util::Either::Left(full) => Some((parts.clone(), full.clone())),
        http_body_util::Either::Right(_) => None,
    };
    let response = client
        .request(hyper::Request::from_parts(parts, body))
        .await
        .map_err(bollard::errors::Error::from)?;
    if response.status() != hyper::StatusCode::BAD_REQUEST
        || !api.recover.load(std::sync::atomic::Ordering::Relaxed)
    {
        return Ok(response);
    }
    // bollard would read the error body itself; reading it here means giving bollard the
    // error it would have made of it.
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(bollard::errors::Error::from)?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_string))
        .unwrap_or(text);
    let rejected = bollard::errors::Error::DockerResponseServerError {
        status_code: 400,
        message: message.clone(),
    };
    if !api_version::is_version_rejection(&message) {
        return Err(rejected);
    }
    let Some(agreed) = negotiate(client, api).await else {
        return Err(rejected);
    };
    api.set(agreed, true);
    let Some((mut parts, full)) = replay else {
        return Err(rejected);
    };
    parts.uri = with_version(&original_uri, Some(&agreed));
    client
        .request(hyper::Request::from_parts(
            parts,
            http_body_util::Either::Left(full),
        ))
        .await
        .map_err(bollard::errors::Error::from)
}

/// The version to speak with the daemon: the newest both it and bollard know.
async fn negotiate(
    client: &Client<ChannelConnector, RequestBody>,
    api: &ApiVersionState,
) -> Option<ClientVersion> {
    api.version_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request = hyper::Request::get("http://docker/version")
        .body(http_body_util::Either::Left(http_body_util::Full::new(
            bytes::Bytes::new(),
        )))
        .ok()?;
    let response = client.request(request).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()?
        .to_bytes();
    let version: bollard::models::SystemVersion = serde_json::from_slice(&body).ok()?;
    let server = api_version::parse_version(version.api_version.as_deref()?)?;
    let ours = *bollard::API_DEFAULT_VERSION;
    Some(if server < ours { server } else { ours })
}

/// Channels to the Docker daemon a connection opens at once, before its first request: a
/// start's first requests (the deploy lock's create, the list of containers, an image's
/// inspect) go out together, none waiting for a channel to open.
pub(crate) const FIRST_CHANNELS: usize = 3;

/// Opens one channel to the daemon before anything else, so that a missing or forbidden
/// socket is reported as such rather than as a failed API call. [`FIRST_CHANNELS`] are
/// opened at once (in the same round trip) and returned for the first API requests, so
/// that requests sent in parallel at the start do not wait for a channel open.
pub(crate) async fn check_docker_channel(
    ship: &str,
    chain: &SshChain,
    target: &DockerTarget,
    timeout: Duration,
) -> Result<Vec<SpareChannel>, TransportError> {
    let hop = chain.ship_label().to_string();
    let open = || async {
        match target {
            DockerTarget::Socket(path) => {
                tokio::time::timeout(timeout, chain.open_streamlocal(path)).await
            }
            DockerTarget::Tcp(port) => {
                tokio::time::timeout(timeout, chain.open_tcpip("127.0.0.1", *port)).await
            }
        }
    };
    let (opened, more) = tokio::join!(
        open(),
        futures_util::future::join_all((1..FIRST_CHANNELS).map(|_| open()))
    );
    let err = match opened {
        Ok(Ok(stream)) => {
            let mut channels: Vec<SpareChannel> = vec![Box::new(stream)];
            for stream in more.into_iter().flatten().flatten() {
                channels.push(Box::new(stream));
            }
            return Ok(channels);
        }
        Err(_) => {
            return Err(TransportErrorKind::Timeout {
                hop: format!("{target} on {hop}"),
                after: timeout,
            }
            .for_ship(ship));
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
                "missing" | "not-a-socket" => Err(TransportErrorKind::SocketMissing {
                    hop,
                    path: path.clone(),
                }
                .for_ship(ship)),
                "permission" => Err(TransportErrorKind::SocketPermission {
                    hop,
                    path: path.clone(),
                }
                .for_ship(ship)),
                _ => Err(TransportErrorKind::DockerUnreachable {
                    hop,
                    target: target.to_string(),
                    reason: format!(
                        "{reason} (is AllowStreamLocalForwarding enabled in its sshd_config, \
                         and is dockerd listening?)"
                    ),
                }
                .for_ship(ship)),
            }
        }
        DockerTarget::Tcp(_) => Err(TransportErrorKind::DockerUnreachable {
            hop,
            target: target.to_string(),
            reason: format!(
                "{reason} (is dockerd listening on that port, and AllowTcpForwarding enabled?)"
            ),
        }
        .for_ship(ship)),
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
            std::io::ErrorKind::NotFound => Err(TransportErrorKind::SocketMissing {
                hop: "this machine".into(),
                path,
            }
            .for_ship(ship)),
            std::io::ErrorKind::PermissionDenied => Err(TransportErrorKind::SocketPermission {
                hop: "this machine".into(),
                path,
            }
            .for_ship(ship)),
            std::io::ErrorKind::ConnectionRefused => Err(TransportErrorKind::Refused {
                hop: format!("unix:{path}"),
                via: None,
            }
            .for_ship(ship)),
            _ => Err(TransportErrorKind::Io {
                hop: format!("unix:{path}"),
                source: err.into(),
            }
            .for_ship(ship)),
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
        .map_err(|_| {
            TransportErrorKind::Timeout {
                hop: hop.clone(),
                after: timeout,
            }
            .for_ship(ship)
        })?
        .map_err(|source| {
            TransportErrorKind::Dns {
                hop: hop.clone(),
                source: source.into(),
            }
            .for_ship(ship)
        })?
        .collect::<Vec<_>>();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addresses[..])).await {
        Err(_) => Err(TransportErrorKind::Timeout {
            hop,
            after: timeout,
        }
        .for_ship(ship)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(TransportErrorKind::Refused { hop, via: None }.for_ship(ship))
        }
        Ok(Err(source)) => Err(TransportErrorKind::Io {
            hop,
            source: source.into(),
        }
        .for_ship(ship)),
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
    let settings = |message: &str| {
        TransportErrorKind::Settings {
            message: message.to_string(),
        }
        .for_ship(ship)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> ClientVersion {
        api_version::parse_version(text).expect("version")
    }

    #[test]
    fn requests_carry_the_agreed_version() {
        let uri: Uri = "http://docker/containers/json?all=true"
            .parse()
            .expect("uri");
        assert_eq!(
            with_version(&uri, Some(&v("1.41"))).to_string(),
            "http://docker/v1.41/containers/json?all=true"
        );
        assert_eq!(with_version(&uri, None), uri);
        // A version already in the path is replaced, not doubled.
        let versioned: Uri = "http://docker/v1.53/images/x/json".parse().expect("uri");
        assert_eq!(
            with_version(&versioned, Some(&v("1.41"))).to_string(),
            "http://docker/v1.41/images/x/json"
        );
        // A first segment that merely starts with v is a path, not a version.
        let volumes: Uri = "http://docker/volumes/create".parse().expect("uri");
        assert_eq!(
            with_version(&volumes, Some(&v("1.41"))).to_string(),
            "http://docker/v1.41/volumes/create"
        );
    }
}
