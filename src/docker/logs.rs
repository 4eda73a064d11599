//! A container's log as lines: the one pipeline from the daemon's frames to lines, used by
//! `logs` (with timestamps, to resume a follow across restarts) and by the lifecycle's
//! failure reports (the last lines of a container that died).
//!
//! The daemon's frames may split a line or join several, per stream (stdout, stderr), and a
//! TTY container's output comes in arbitrary chunks: partial lines wait for their end. With
//! timestamps, each line starts with the time the daemon wrote it; a line without one (the
//! rest of a multi-line chunk of a TTY container) inherits the time of the line before it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::SystemTime;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use super::error::DockerError;
use crate::clock::parse_rfc3339;

/// Which stream of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    Stdout,
    Stderr,
}

/// One line of a container's log, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub source: LogSource,
    pub text: String,
    /// When the daemon wrote it: only with [`LogQuery::timestamps`].
    pub time: Option<SystemTime>,
}

/// A stream of log lines; ends when the container stops (follow) or the log is read. An
/// error comes after the lines read before it.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, DockerError>> + Send>>;

/// Which part of a container's log to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The last N lines; `None` = all of them.
    pub tail: Option<usize>,
    /// Only lines from this second on (the daemon takes whole seconds).
    pub since: Option<i32>,
    /// Only lines up to this second (whole seconds too: callers that want better filter the
    /// lines' times themselves).
    pub until: Option<i32>,
    /// Then new lines, until the container stops.
    pub follow: bool,
    /// Ask the daemon for each line's time, and split it off into [`LogLine::time`].
    pub timestamps: bool,
}

impl LogQuery {
    pub(crate) fn options(&self) -> bollard::query_parameters::LogsOptions {
        let tail = self
            .tail
            .map_or_else(|| "all".to_string(), |n| n.to_string());
        let mut options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(self.timestamps)
            .follow(self.follow)
            .tail(&tail);
        if let Some(since) = self.since {
            options = options.since(since);
        }
        if let Some(until) = self.until {
            options = options.until(until);
        }
        options.build()
    }
}

/// Splits `2026-11-25T11:38:22.472438429Z text` into its time and text. A line without a
/// readable time is all text.
pub fn split_timestamp(line: &str) -> (Option<SystemTime>, &str) {
    if let Some((stamp, rest)) = line.split_once(' ')
        && let Some(time) = parse_rfc3339(stamp)
    {
        return (Some(time), rest);
    }
    if let Some(time) = parse_rfc3339(line) {
        return (Some(time), "");
    }
    (None, line)
}

/// Frames into lines, per stream, keeping partial lines until their end arrives.
struct Splitter {
    timestamps: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// The time of the last stamped line, inherited by unstamped continuation lines.
    current: Option<SystemTime>,
}

impl Splitter {
    fn new(timestamps: bool) -> Self {
        Splitter {
            timestamps,
            stdout: Vec::new(),
            stderr: Vec::new(),
            current: None,
        }
    }

    fn line(&mut self, source: LogSource, text: &str) -> LogLine {
        if !self.timestamps {
            return LogLine {
                source,
                text: text.to_string(),
                time: None,
            };
        }
        let (time, rest) = split_timestamp(text);
        if time.is_some() {
            self.current = time;
        }
        LogLine {
            source,
            text: rest.to_string(),
            time: self.current,
        }
    }

    fn push(&mut self, output: LogOutput, ready: &mut VecDeque<LogLine>) {
        let (source, bytes) = match output {
            LogOutput::StdErr { message } => (LogSource::Stderr, message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => (LogSource::Stdout, message),
        };
        let buffer = match source {
            LogSource::Stdout => &mut self.stdout,
            LogSource::Stderr => &mut self.stderr,
        };
        buffer.extend_from_slice(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        for text in lines {
            let text = text.strip_suffix('\r').unwrap_or(&text);
            let line = self.line(source, text);
            ready.push_back(line);
        }
    }

    fn flush(&mut self, ready: &mut VecDeque<LogLine>) {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let buffer = match source {
                LogSource::Stdout => std::mem::take(&mut self.stdout),
                LogSource::Stderr => std::mem::take(&mut self.stderr),
            };
            if buffer.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&buffer).into_owned();
            let line = self.line(source, &text);
            ready.push_back(line);
        }
    }
}

/// The lines of `raw`, in order; `error` turns the daemon's error into ours, after the lines
/// read before it.
pub(crate) fn lines<S>(
    raw: S,
    timestamps: bool,
    error: impl Fn(bollard::errors::Error) -> DockerError + Send + 'static,
) -> LogStream
where
    S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
{
    struct State<S, E> {
        raw: Pin<Box<S>>,
        splitter: Splitter,
        ready: VecDeque<LogLine>,
        failed: Option<DockerError>,
        ended: bool,
        error: E,
    }
    let state = State {
        raw: Box::pin(raw),
        splitter: Splitter::new(timestamps),
        ready: VecDeque::new(),
        failed: None,
        ended: false,
        error,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(line) = state.ready.pop_front() {
                    return Some((Ok(line), state));
                }
                if let Some(err) = state.failed.take() {
                    return Some((Err(err), state));
                }
                if state.ended {
                    return None;
                }
                match state.raw.next().await {
                    Some(Ok(output)) => state.splitter.push(output, &mut state.ready),
                    Some(Err(err)) => {
                        state.ended = true;
                        state.splitter.flush(&mut state.ready);
                        state.failed = Some((state.error)(err));
                    }
                    None => {
                        state.ended = true;
                        state.splitter.flush(&mut state.ready);
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::{Duration, UNIX_EPOCH};

    fn out(text: &str) -> LogOutput {
        LogOutput::StdOut {
            message: Bytes::from(text.to_string()),
        }
    }

    #[test]
    fn timestamps_are_split_off() {
        let (time, text) = split_timestamp("2026-11-25T11:38:22.472438429Z hello world");
        assert_eq!(text, "hello world");
        assert_eq!(
            time,
            Some(UNIX_EPOCH + Duration::new(1_795_606_702, 472_438_429))
        );
        assert_eq!(split_timestamp("no time here"), (None, "no time here"));
    }

    #[test]
    fn chunks_become_lines_and_continuations_inherit_the_time() {
        let mut splitter = Splitter::new(true);
        let mut ready = VecDeque::new();
        splitter.push(
            out("2026-11-25T11:38:22.1Z one\n2026-11-25T11:38:2"),
            &mut ready,
        );
        splitter.push(out("3.5Z two\nthree\n"), &mut ready);
        splitter.push(
            LogOutput::StdErr {
                message: Bytes::from("2026-11-25T11:38:24Z oops"),
            },
            &mut ready,
        );
        splitter.flush(&mut ready);
        let texts: Vec<(&str, LogSource)> =
            ready.iter().map(|l| (l.text.as_str(), l.source)).collect();
        assert_eq!(
            texts,
            [
                ("one", LogSource::Stdout),
                ("two", LogSource::Stdout),
                ("three", LogSource::Stdout),
                ("oops", LogSource::Stderr)
            ]
        );
        assert_eq!(ready[1].time, ready[2].time, "continuation inherits");
        assert!(ready[0].time < ready[1].time);
    }

    #[test]
    fn without_timestamps_a_line_that_starts_with_a_time_is_left_whole() {
        let mut splitter = Splitter::new(false);
        let mut ready = VecDeque::new();
        splitter.push(
            out("2026-11-25T11:38:22Z printed by the app\r\n"),
            &mut ready,
        );
        splitter.push(out("partial"), &mut ready);
        splitter.flush(&mut ready);
        let texts: Vec<&str> = ready.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["2026-11-25T11:38:22Z printed by the app", "partial"]
        );
        assert!(ready.iter().all(|l| l.time.is_none()));
    }
}
