//! What a server sent before the SSH handshake failed: a port that answers with HTTP, SMTP or
//! a database's greeting is "not an SSH server (it sent `HTTP/1.0 400 ...`)", as OpenSSH says,
//! instead of a protocol error or a MaxStartups guess.
//!
//! The stream under the handshake is wrapped and keeps the first bytes it reads. russh reports
//! a foreign greeting only as "disconnected", so this is the one place that can tell.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What OpenSSH's sshd writes before closing a connection it will not serve.
const SSHD_REFUSALS: &[&str] = &["Exceeded MaxStartups", "Not allowed at this time"];

/// Bytes kept: enough for a greeting line.
const KEPT: usize = 256;

/// A stream that records the first bytes read through it.
pub(crate) struct Recorded<S> {
    inner: S,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl<S> Recorded<S> {
    /// The wrapped stream, and the handle to read what it saw.
    pub(crate) fn new(inner: S) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (
            Recorded {
                inner,
                seen: seen.clone(),
            },
            seen,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() < KEPT {
                let new = &buf.filled()[before..];
                let room = KEPT - seen.len();
                seen.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When the server sent something and no line of it is an SSH identification (`SSH-...`,
/// which RFC 4253 lets other lines precede): its first line, printable, for the message.
pub(crate) fn foreign_greeting(seen: &[u8]) -> Option<String> {
    if seen.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(seen);
    if text.lines().any(|line| line.starts_with("SSH-")) {
        return None;
    }
    // sshd's own refusals before its banner: too many logins being set up (MaxStartups), or a
    // source it penalises for a while (PerSourcePenalties). An SSH server, busy.
    if SSHD_REFUSALS.iter().any(|words| text.starts_with(words)) {
        return None;
    }
    let first = text.lines().next().unwrap_or_default();
    let mut shown: String = first
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(60)
        .collect();
    if first.chars().count() > 60 {
        shown.push_str("...");
    }
    Some(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greeting_that_is_not_ssh_is_shown() {
        assert_eq!(
            foreign_greeting(b"HTTP/1.0 400 Bad request\r\nServer: x\r\n").as_deref(),
            Some("HTTP/1.0 400 Bad request")
        );
        assert_eq!(
            foreign_greeting(b"banner line\r\nSSH-2.0-OpenSSH_9.6\r\n"),
            None
        );
        assert_eq!(foreign_greeting(b""), None);
        assert_eq!(foreign_greeting(b"Exceeded MaxStartups\r\n"), None);
        assert_eq!(
            foreign_greeting(b"\x00\x01binary").as_deref(),
            Some("??binary")
        );
    }
}
