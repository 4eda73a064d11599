//! Errors of calls to one ship's Docker daemon, classified so callers can decide what to do.

use std::error::Error as StdError;
use std::fmt;

/// What kind of failure a Docker call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The container, image or network does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with the object's state, e.g. a name in use (HTTP 409).
    Conflict,
    /// The connection broke or timed out; an idempotent call may be retried.
    Transient,
    /// The container exited while we waited for it to run.
    Exited { code: i64 },
    /// We gave up waiting.
    TimedOut,
    /// Anything else (bad request, daemon error, unexpected answer).
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotFound => write!(f, "not found"),
            ErrorKind::Conflict => write!(f, "conflict"),
            ErrorKind::Transient => write!(f, "connection problem"),
            ErrorKind::Exited { code } => write!(f, "exited with code {code}"),
            ErrorKind::TimedOut => write!(f, "timed out"),
            ErrorKind::Other => write!(f, "failed"),
        }
    }
}

/// A failed call to a ship's Docker daemon: which ship, which call, what kind, and why.
#[derive(Debug, thiserror::Error)]
#[error("ship {ship}: {call}: {kind}: {message}")]
pub struct DockerError {
    pub ship: String,
    /// The call and its main argument, e.g. `start web-1`.
    pub call: String,
    pub kind: ErrorKind,
    /// The daemon's message or the transport's error text.
    pub message: String,
    /// HTTP status the daemon answered with, when there was one.
    pub status: Option<u16>,
    #[source]
    pub source: Option<bollard::errors::Error>,
}

impl DockerError {
    /// Wraps a bollard error, classifying it.
    pub fn from_bollard(ship: &str, call: impl Into<String>, err: bollard::errors::Error) -> Self {
        let (kind, status, message) = classify(&err);
        DockerError {
            ship: ship.to_string(),
            call: call.into(),
            kind,
            message,
            status,
            source: Some(err),
        }
    }

    /// An error of our own making (no underlying bollard error).
    pub fn new(
        ship: &str,
        call: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        DockerError {
            ship: ship.to_string(),
            call: call.into(),
            kind,
            message: message.into(),
            status: None,
            source: None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// Words in transport error texts that mean the connection, not the request, failed. Used only
/// when no typed cause (io::Error, hyper::Error) tells us.
const TRANSIENT_WORDS: &[&str] = &[
    "connection reset",
    "connection refused",
    "connection closed",
    "connection aborted",
    "broken pipe",
    "unexpected eof",
    "end of file",
    "timed out",
    "timeout",
    "channel closed",
    "incomplete message",
];

fn classify(err: &bollard::errors::Error) -> (ErrorKind, Option<u16>, String) {
    use bollard::errors::Error as B;
    match err {
        B::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                // A proxy in front of the daemon (or the SSH forward) answering for it.
                502..=504 => ErrorKind::Transient,
                _ => ErrorKind::Other,
            };
            // The daemon's own words (which may quote a name or label anyone with the
            // daemon chose): shown without their control characters.
            (
                kind,
                Some(*status_code),
                crate::printable::printable(message),
            )
        }
        B::RequestTimeoutError => (ErrorKind::Transient, None, err.to_string()),
        _ => {
            let message = chain_text(err);
            // `transparent` variants hide their payload from `source()`, so start the walk
            // at the payload itself.
            let root: &(dyn StdError + 'static) = match err {
                B::IOError { err } => err,
                B::HyperResponseError { err } => err,
                B::HyperLegacyError { err } => err,
                other => other,
            };
            let kind = if is_transient_chain(root) {
                ErrorKind::Transient
            } else {
                ErrorKind::Other
            };
            (kind, None, message)
        }
    }
}

fn chain_text(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

fn is_transient_chain(err: &(dyn StdError + 'static)) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionReset
                    | K::ConnectionAborted
                    | K::ConnectionRefused
                    | K::NotConnected
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::TimedOut
                    | K::Interrupted
            ) {
                return true;
            }
        }
        if let Some(hyper_err) = current.downcast_ref::<hyper::Error>()
            && (hyper_err.is_incomplete_message()
                || hyper_err.is_closed()
                || hyper_err.is_canceled()
                || hyper_err.is_timeout())
        {
            return true;
        }
        if let Some(legacy) = current.downcast_ref::<hyper_util::client::legacy::Error>()
            && legacy.is_connect()
        {
            return true;
        }
        cause = current.source();
    }
    let text = chain_text(err).to_ascii_lowercase();
    TRANSIENT_WORDS.iter().any(|word| text.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::errors::Error as B;

    #[test]
    fn classifies_status_codes() {
        let err = |code| B::DockerResponseServerError {
            status_code: code,
            message: "m".into(),
        };
        assert_eq!(
            DockerError::from_bollard("s", "c", err(404)).kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            DockerError::from_bollard("s", "c", err(409)).kind,
            ErrorKind::Conflict
        );
        assert_eq!(
            DockerError::from_bollard("s", "c", err(500)).kind,
            ErrorKind::Other
        );
        assert_eq!(
            DockerError::from_bollard("s", "c", err(503)).kind,
            ErrorKind::Transient
        );
    }

    #[test]
    fn classifies_broken_connections() {
        let reset = B::IOError {
            err: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer"),
        };
        assert!(DockerError::from_bollard("s", "c", reset).is_transient());
        let eof = B::IOError {
            err: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"),
        };
        assert!(DockerError::from_bollard("s", "c", eof).is_transient());
        assert!(DockerError::from_bollard("s", "c", B::RequestTimeoutError).is_transient());
        let other = B::IOError {
            err: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(
            DockerError::from_bollard("s", "c", other).kind,
            ErrorKind::Other
        );
    }

    #[test]
    fn message_names_ship_and_call() {
        let err = DockerError::from_bollard(
            "ship1",
            "start web-1",
            B::DockerResponseServerError {
                status_code: 404,
                message: "No such container: web-1".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            "ship ship1: start web-1: not found: No such container: web-1"
        );
    }
}
