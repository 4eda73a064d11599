//! One HTTP or HTTPS request to a port as the ship sees it, for the `http` lifecycle checks:
//! hyper's HTTP/1.1 client over a stream from [`Connection::open_tcp`] (a `direct-tcpip`
//! channel of the ship's SSH session), with rustls over that same stream for https. No HTTP
//! is written or parsed by hand here: hyper runs over any stream, SSH channels included.
//!
//! One connection per request, dropped after it: a check makes one attempt a second, and a
//! server that keeps connections alive must not hold a channel open between them.
//!
//! [`direct`] sends the same kind of request from this machine (the audit's webhooks and
//! Slack): the one client for both, so that the audit writes no HTTP of its own either.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::header::{ACCEPT, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tls::{TlsClient, TlsFailure};
use super::{Connection, TransportError};

/// Largest answer read: a check matches its regex against the body, and a server streaming
/// forever must not fill the operator's memory.
const HTTP_MAX_BODY: usize = 1024 * 1024;

/// A request to `host:port` as the ship sees it.
pub struct HttpRequest<'a> {
    /// Any case: it is sent upper-cased.
    pub method: &'a str,
    /// Where to connect, and the `Host` header.
    pub host: &'a str,
    pub port: u16,
    /// With or without its leading `/`.
    pub path: &'a str,
    /// Set for https: the request goes through TLS over the ship's stream.
    pub tls: Option<&'a TlsClient>,
    /// More headers, sent as given (after `Host`, `User-Agent` and `Accept`).
    pub headers: &'a [(String, String)],
    /// A body, sent with its `Content-Length`; none for the checks.
    pub body: Option<&'a [u8]>,
}

/// Status and body (at most [`HTTP_MAX_BODY`] bytes, not necessarily UTF-8 on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Connect(#[from] TransportError),
    /// A direct connection from this machine could not be made.
    #[error("cannot connect to {0}")]
    Unreachable(String),
    #[error("`{0}` cannot be sent as an HTTP header")]
    Header(String),
    #[error("TLS handshake failed: {0:?}")]
    Tls(TlsFailure),
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    #[error("not an HTTP answer ({0})")]
    NotHttp(String),
    #[error("sending the request: {0}")]
    Send(String),
    #[error("reading the answer: {0}")]
    Read(String),
}

impl Connection {
    /// Sends one request to `req.host:req.port` from the ship's side and reads the answer.
    /// No timeout here: the caller knows how long its check may wait.
    pub async fn http(&self, req: &HttpRequest<'_>) -> Result<HttpAnswer, HttpError> {
        let stream = self.open_tcp(req.host, req.port).await?;
        match req.tls {
            Some(tls) => {
                let stream = tls.handshake(stream).await.map_err(HttpError::Tls)?;
                exchange(CloseIsEnd(stream), req).await
            }
            None => exchange(stream, req).await,
        }
    }
}

/// Sends one request from this machine straight to `req.host:req.port` (no ship in between)
/// and reads the answer. No timeout here either: the caller bounds it.
pub async fn direct(req: &HttpRequest<'_>) -> Result<HttpAnswer, HttpError> {
    // An IPv6 literal comes bracketed from a URL; the socket wants it bare.
    let host = req.host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, req.port))
        .await
        .map_err(|e| HttpError::Unreachable(format!("{}:{}: {e}", req.host, req.port)))?;
    match req.tls {
        Some(tls) => {
            let stream = tls.handshake(stream).await.map_err(HttpError::Tls)?;
            exchange(CloseIsEnd(stream), req).await
        }
        None => exchange(stream, req).await,
    }
}

/// The request and its answer over an open stream.
async fn exchange<S>(stream: S, req: &HttpRequest<'_>) -> Result<HttpAnswer, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let method = hyper::Method::from_bytes(req.method.to_uppercase().as_bytes())
        .map_err(|_| HttpError::Method(req.method.to_string()))?;
    let path = if req.path.starts_with('/') {
        req.path.to_string()
    } else {
        format!("/{}", req.path)
    };
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, format!("{}:{}", req.host, req.port))
        .header(USER_AGENT, "maestro")
        .header(ACCEPT, "*/*");
    for (name, value) in req.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| HttpError::Header(name.clone()))?;
        // The value is not repeated in the error: it may be a credential.
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::Header(format!("the value of {name}")))?;
        builder = builder.header(name, value);
    }
    let body = match req.body {
        Some(bytes) => Either::Right(Full::new(Bytes::copy_from_slice(bytes))),
        None => Either::Left(Empty::<Bytes>::new()),
    };
    let request = builder
        .body(body)
        .map_err(|e| HttpError::Send(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HttpError::Send(words(&e)))?;
    // The connection's driver ends when the answer has been read or the sender is dropped.
    let driver = tokio::spawn(connection);
    let answer = sender.send_request(request).await.map_err(|e| {
        if e.is_parse() {
            HttpError::NotHttp(words(&e))
        } else {
            HttpError::Send(words(&e))
        }
    })?;
    let status = answer.status().as_u16();
    let mut body = answer.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < HTTP_MAX_BODY {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(HttpError::Read(words(&e))),
        }
    }
    drop(body);
    drop(sender);
    driver.abort();
    Ok(HttpAnswer {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// hyper's error with its causes: its own text alone ("error reading a body from connection")
/// hides the one that matters.
fn words(err: &hyper::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A TLS stream whose peer closing without a close_notify ends the answer instead of failing
/// it: many servers close that way once they have answered, and an answer delimited by the
/// close (HTTP/1.0) is whole at that point. A check is no place to guard against truncation.
struct CloseIsEnd<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for CloseIsEnd<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CloseIsEnd<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that reads one request and writes `answer`, then closes; returns the request.
    async fn serve_once(answer: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            // The head is enough: a body, if any, is not waited for.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = socket.write_all(answer).await;
            let _ = socket.shutdown().await;
            String::from_utf8_lossy(&request).into_owned()
        });
        (port, task)
    }

    async fn ask(answer: &'static [u8]) -> (Result<HttpAnswer, HttpError>, String) {
        let (port, server) = serve_once(answer).await;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let req = HttpRequest {
            method: "get",
            host: "127.0.0.1",
            port,
            path: "health",
            tls: None,
            headers: &[],
            body: None,
        };
        let answer = exchange(stream, &req).await;
        (answer, server.await.unwrap_or_default())
    }

    #[tokio::test]
    async fn request_and_answers_of_each_framing() {
        let (answer, request) = ask(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
        assert!(
            request.to_lowercase().contains("host: 127.0.0.1:"),
            "{request}"
        );
        assert_eq!(
            answer.ok(),
            Some(HttpAnswer {
                status: 200,
                body: "ok".into()
            })
        );
        let (chunked, _) = ask(
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(
            chunked.ok(),
            Some(HttpAnswer {
                status: 503,
                body: "abcde".into()
            })
        );
        let (until_close, _) = ask(b"HTTP/1.0 200 OK\r\n\r\nto the end").await;
        assert_eq!(until_close.ok().map(|a| a.body), Some("to the end".into()));
    }

    #[tokio::test]
    async fn a_direct_request_sends_its_headers_and_body() {
        let (port, server) = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let headers = vec![("X-Token".to_string(), "abc".to_string())];
        let req = HttpRequest {
            method: "post",
            host: "127.0.0.1",
            port,
            path: "/hook?x=1",
            tls: None,
            headers: &headers,
            body: Some(b"{\"a\":1}"),
        };
        let answer = direct(&req).await.map(|a| a.status).ok();
        let request = server.await.unwrap_or_default();
        assert_eq!(answer, Some(204));
        assert!(
            request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("x-token: abc\r\n"), "{request}");
        assert!(request.contains("content-length: 7\r\n"), "{request}");

        let (port, _server) = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let bad = vec![("Bad Name".to_string(), "v".to_string())];
        let refused = direct(&HttpRequest {
            headers: &bad,
            port,
            ..req
        })
        .await
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("`Bad Name` cannot be sent as an HTTP header")
        );
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_says_so() {
        let (answer, _) = ask(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let err = answer.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("not an HTTP answer"), "{err}");
    }
}
