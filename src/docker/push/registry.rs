//! A read-only registry (the part of the registry v2 API a daemon's pull uses: `GET /v2/`,
//! `HEAD`/`GET` of manifests by digest and of blobs, with `Range`), served over any byte
//! stream, here the connections a ship's sshd forwards back to us.
//!
//! Decisions:
//! - Basic authentication with credentials made for the run from the system's random source;
//!   every request without them gets 401, whatever it asks. They reach the ship's daemon
//!   only inside the pull request (`X-Registry-Auth`), which travels in the SSH session.
//! - Only manifests by digest: the daemon pulls `127.0.0.1:PORT/maestro/NAME@sha256:...`,
//!   so no tag exists on the wire that could be pulled twice with different content.
//! - Bytes are counted as they leave for the connection, per push, for the progress and the
//!   report; which layers were asked for is recorded to report those the ship had.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{Method, Request, Response, StatusCode, body::Frame};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite};

use super::source::{Images, MANIFEST_V2};
use crate::docker::Credentials;

type Body = BoxBody<Bytes, std::io::Error>;

/// What one push served: bytes of blobs and manifests, and the blobs asked for.
#[derive(Debug, Default)]
pub struct Served {
    bytes: AtomicU64,
    fetched: Mutex<HashSet<String>>,
}

impl Served {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the blob `digest` was asked for (`GET`).
    pub fn fetched(&self, digest: &str) -> bool {
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
    }
}

/// The registry of a run: its images and its credentials.
#[derive(Clone)]
pub struct Registry {
    images: Arc<Images>,
    user: String,
    password: String,
    expected: Arc<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("user", &self.user)
            .finish()
    }
}

/// `bytes` random bytes from the system, hex-encoded.
fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    // Linux and macOS both have it; no crate needed.
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(hex::encode(buf))
}

impl Registry {
    pub fn new(images: Arc<Images>) -> std::io::Result<Registry> {
        let user = format!("maestro-{}", random_hex(4)?);
        let password = random_hex(24)?;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        Ok(Registry {
            images,
            user,
            password,
            expected: Arc::new(expected),
        })
    }

    pub fn images(&self) -> &Images {
        &self.images
    }

    /// What the ship's daemon logs in with, for the registry at `127.0.0.1:port`.
    pub fn credentials(&self, port: u16) -> Credentials {
        let mut creds = Credentials::new(self.user.clone(), self.password.clone());
        creds.server = Some(format!("127.0.0.1:{port}"));
        creds
    }

    /// Serves HTTP/1.1 on `stream` until the peer closes it.
    pub async fn serve<S>(&self, stream: S, served: Arc<Served>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let registry = self.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let registry = registry.clone();
            let served = served.clone();
            async move { Ok::<_, std::convert::Infallible>(registry.answer(request, &served).await) }
        });
        if let Err(err) = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!("registry connection ended: {err}");
        }
    }

    fn authorized<B>(&self, request: &Request<B>) -> bool {
        let given = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let expected = self.expected.as_bytes();
        // Compared in full whatever differs first.
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    async fn answer<B>(&self, request: Request<B>, served: &Arc<Served>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        tracing::debug!("registry: {method} {path}");
        if !self.authorized(&request) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "credentials required",
            );
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"maestro\""),
            );
            return response;
        }
        if method != Method::GET && method != Method::HEAD {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "read-only registry",
            );
        }
        let head = method == Method::HEAD;
        if path == "/v2/" || path == "/v2" {
            return with_body(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(b"{}"),
                head,
            );
        }
        if let Some((_, digest)) = path.rsplit_once("/manifests/") {
            return self.answer_manifest(digest, head, served);
        }
        if let Some((_, digest)) = path.rsplit_once("/blobs/") {
            // Only where a range starts counts: the blob is sent from there to its end.
            let from = request
                .headers()
                .get(hyper::header::RANGE)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .and_then(|(from, _)| from.parse::<u64>().ok());
            return self.answer_blob(digest, from, head, served).await;
        }
        error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not served here")
    }

    fn answer_manifest(&self, digest: &str, head: bool, served: &Served) -> Response<Body> {
        match self.images.manifest(digest) {
            Some(manifest) => {
                let mut response = with_body(
                    StatusCode::OK,
                    MANIFEST_V2,
                    Bytes::from(manifest.as_ref().clone()),
                    head,
                );
                if !head {
                    served
                        .bytes
                        .fetch_add(manifest.len() as u64, Ordering::Relaxed);
                }
                set(&mut response, "Docker-Content-Digest", digest);
                response
            }
            None => error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            ),
        }
    }

    /// A blob, from `from` on when the request asked for a range inside it.
    async fn answer_blob(
        &self,
        digest: &str,
        from: Option<u64>,
        head: bool,
        served: &Arc<Served>,
    ) -> Response<Body> {
        let Some(blob) = self.images.blob(digest) else {
            return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown");
        };
        let start = from.filter(|from| *from < blob.size);
        let mut response = Response::new(empty());
        set(&mut response, "Docker-Content-Digest", digest);
        set(&mut response, "Content-Type", "application/octet-stream");
        set(&mut response, "Accept-Ranges", "bytes");
        let from = start.unwrap_or(0);
        set(
            &mut response,
            "Content-Length",
            &(blob.size - from).to_string(),
        );
        if let Some(from) = start {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                &mut response,
                "Content-Range",
                &format!("bytes {from}-{}/{}", blob.size.saturating_sub(1), blob.size),
            );
        }
        api_version(&mut response);
        if head {
            return response;
        }
        served
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_string());
        if let Err(err) = blob.ready().await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", &err);
        }
        let file = match tokio::fs::File::open(&blob.path).await {
            Ok(file) => file,
            Err(err) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    &err.to_string(),
                );
            }
        };
        *response.body_mut() = file_body(file, from, served.clone());
        response
    }
}

/// The blob from `from` on, in chunks, each counted in `served` as it is handed to the
/// connection.
fn file_body(file: tokio::fs::File, from: u64, served: Arc<Served>) -> Body {
    let chunks = futures_util::stream::try_unfold(
        (file, from == 0, from),
        move |(mut file, mut seeked, from)| {
            let served = served.clone();
            async move {
                if !seeked {
                    file.seek(std::io::SeekFrom::Start(from)).await?;
                    seeked = true;
                }
                let mut buf = vec![0u8; 256 * 1024];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                served.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(Some((Frame::data(Bytes::from(buf)), (file, seeked, from))))
            }
        },
    );
    BodyExt::boxed(StreamBody::new(chunks))
}

fn set(response: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn api_version(response: &mut Response<Body>) {
    set(response, "Docker-Distribution-API-Version", "registry/2.0");
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn with_body(status: StatusCode, content_type: &str, body: Bytes, head: bool) -> Response<Body> {
    let length = body.len();
    let mut response = Response::new(if head {
        empty()
    } else {
        Full::new(body).map_err(|never| match never {}).boxed()
    });
    *response.status_mut() = status;
    set(&mut response, "Content-Type", content_type);
    set(&mut response, "Content-Length", &length.to_string());
    api_version(&mut response);
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    with_body(status, "application/json", bytes, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::push::LocalSource;

    /// Sends `request` to `registry` over an in-memory connection.
    async fn ask(
        registry: &Registry,
        served: &Arc<Served>,
        request: Request<Full<Bytes>>,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let serving = {
            let registry = registry.clone();
            let served = served.clone();
            tokio::spawn(async move { registry.serve(server, served).await })
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        drop(sender);
        let _ = serving.await;
        (parts.status, parts.headers, body)
    }

    fn get(path: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
        let mut builder = Request::get(path);
        if let Some(auth) = auth {
            builder = builder.header(hyper::header::AUTHORIZATION, auth);
        }
        builder.body(Full::new(Bytes::new())).expect("request")
    }

    #[tokio::test]
    async fn only_the_runs_credentials_get_anything_and_blobs_resume_at_a_range() {
        // A docker save archive of one image, made here.
        let dir = tempfile::tempdir().expect("dir");
        let mut layer = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_cksum();
        layer
            .append_data(&mut header, "a", &b"abc"[..])
            .expect("layer");
        let layer = layer.into_inner().expect("layer");
        let diff_id = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&layer))
        );
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
        let archive_path = dir.path().join("a.tar");
        let mut archive = tar::Builder::new(std::fs::File::create(&archive_path).expect("file"));
        let manifest = r#"[{"Config":"c.json","RepoTags":["app:1"],"Layers":["l/layer.tar"]}]"#;
        for (name, bytes) in [
            ("manifest.json", manifest.as_bytes()),
            ("c.json", config.as_bytes()),
            ("l/layer.tar", &layer[..]),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, name, bytes).expect("add");
        }
        archive.finish().expect("finish");
        drop(archive);
        let mut images = Images::new(None).expect("images");
        let image = images
            .prepare("app:1", None, &LocalSource::Archive(archive_path))
            .await
            .expect("prepared");
        let registry = Registry::new(Arc::new(images)).expect("registry");
        let served = Arc::new(Served::default());
        let creds = registry.credentials(4000);
        assert_eq!(creds.server.as_deref(), Some("127.0.0.1:4000"));
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", creds.username, creds.password))
        );
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:guess", creds.username))
        );
        let layer_path = format!("/v2/maestro/push/blobs/{}", image.layers[0].0);
        let manifest_path = format!("/v2/maestro/push/manifests/{}", image.manifest_digest);
        for path in ["/v2/", manifest_path.as_str(), layer_path.as_str()] {
            for auth in [None, Some(wrong.as_str())] {
                let (status, headers, _) = ask(&registry, &served, get(path, auth)).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {auth:?}");
                assert_eq!(headers["www-authenticate"], "Basic realm=\"maestro\"");
            }
        }
        assert_eq!(served.bytes(), 0);
        let (status, headers, _) = ask(&registry, &served, get("/v2/", Some(&good))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
        let (status, headers, body) =
            ask(&registry, &served, get(&manifest_path, Some(&good))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], MANIFEST_V2);
        assert_eq!(body.as_ref(), image.manifest.as_slice());
        // By tag: nothing (pulls are by digest only).
        let (status, _, _) = ask(
            &registry,
            &served,
            get("/v2/maestro/push/manifests/latest", Some(&good)),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, whole) = ask(&registry, &served, get(&layer_path, Some(&good))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(whole.len() as u64, image.layers[0].1);
        assert!(served.fetched(&image.layers[0].0));
        let mut ranged = get(&layer_path, Some(&good));
        ranged
            .headers_mut()
            .insert(hyper::header::RANGE, "bytes=10-".parse().expect("range"));
        let (status, headers, tail) = ask(&registry, &served, ranged).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(tail.as_ref(), &whole[10..]);
        assert!(
            headers["content-range"]
                .to_str()
                .expect("text")
                .starts_with("bytes 10-")
        );
        let mut post = get("/v2/maestro/push/blobs/uploads/", Some(&good));
        *post.method_mut() = Method::POST;
        let (status, _, _) = ask(&registry, &served, post).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _, _) = ask(
            &registry,
            &served,
            get(
                &format!("/v2/x/blobs/sha256:{}", "0".repeat(64)),
                Some(&good),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
