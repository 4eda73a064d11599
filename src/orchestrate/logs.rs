//! `logs`: an instance's log lines, and following them across restarts of its container.
//!
//! A follow ends when the container stops. To survive a restart we wait until the container
//! runs again and ask for its log from the last timestamp seen on: the daemon's `since` only
//! takes whole seconds, so we ask with timestamps and drop every line not newer than the last
//! one printed. Nothing is shown twice, nothing written in between is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::fleet::Fleet;
use crate::docker::{self, DockerError, LogQuery, LogSource};

/// How often a follower asks whether a stopped container runs again.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// What a log reader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// One line of the container's output, without its newline.
    Line {
        instance: String,
        source: LogSource,
        text: String,
    },
    /// Something about the follow itself (stopped, running again).
    Notice { instance: String, text: String },
    /// The instance's ship could not be reached: its log will not be read.
    Unreachable { instance: String, text: String },
}

#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// The last N lines at first; `None` = the whole log.
    pub tail: Option<usize>,
    /// Keep following, across restarts, until the receiver goes away.
    pub follow: bool,
    /// How often to look whether a stopped (or missing) container runs again.
    pub poll: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            tail: None,
            follow: false,
            poll: DEFAULT_POLL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{instance}: there is no container {instance} on ship {ship}")]
    Absent { instance: String, ship: String },
    #[error("{instance}: {source}")]
    Docker {
        instance: String,
        #[source]
        source: DockerError,
    },
}

/// Every selected instance's log read at once, each as soon as its own ship is connected,
/// the lines of all of them on one channel: the `logs` command's sequence. The caller prints
/// the events and decides when to stop (Ctrl-C while following).
pub struct FanOut {
    events: mpsc::Receiver<LogEvent>,
    readers: Vec<tokio::task::JoinHandle<Result<(), LogError>>>,
    unreachable: Arc<AtomicBool>,
}

impl FanOut {
    /// Starts one reader per `(ship, instance)`, on the fleet's connection to that ship.
    pub fn start(
        fleet: &Arc<Fleet>,
        instances: impl IntoIterator<Item = (String, String)>,
        options: LogOptions,
    ) -> FanOut {
        let (sender, events) = mpsc::channel::<LogEvent>(1024);
        let unreachable = Arc::new(AtomicBool::new(false));
        let readers = instances
            .into_iter()
            .map(|(ship, instance)| {
                let (fleet, sender) = (Arc::clone(fleet), sender.clone());
                let unreachable = Arc::clone(&unreachable);
                tokio::spawn(async move {
                    match fleet.ship(&ship).await {
                        Ok(handle) => read_instance(handle.docker, instance, options, sender).await,
                        Err(err) => {
                            unreachable.store(true, Ordering::SeqCst);
                            let text = err.to_string();
                            let _ = sender.send(LogEvent::Unreachable { instance, text }).await;
                            Ok(())
                        }
                    }
                })
            })
            .collect();
        FanOut {
            events,
            readers,
            unreachable,
        }
    }

    /// The next line or notice of any instance; `None` once every reader has ended.
    pub async fn next(&mut self) -> Option<LogEvent> {
        self.events.recv().await
    }

    /// Whether some instance's ship could not be reached so far.
    pub fn any_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::SeqCst)
    }

    /// Waits for every reader (after [`FanOut::next`] returned `None`) and returns the
    /// failures: a reader's error, or a reader that panicked. An unreachable ship was already
    /// an event, and is not repeated here.
    pub async fn finish(self) -> Vec<String> {
        let mut failures = Vec::new();
        for reader in self.readers {
            match reader.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failures.push(err.to_string()),
                Err(err) => failures.push(format!("a log reader failed: {err}")),
            }
        }
        failures
    }
}

/// Which lines of a resumed log were already shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// The time of the last line shown: lines at or before it are not shown again.
    pub after: Option<SystemTime>,
}

impl Resume {
    /// Whole seconds for the daemon's `since` (it rounds nothing: we filter the rest).
    pub fn since_seconds(&self) -> Option<i32> {
        let after = self.after?;
        let secs = after.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(i32::try_from(secs).unwrap_or(i32::MAX))
    }

    /// Whether a line written at `time` is new. Lines without a time follow the decision for
    /// the line they came with, so callers pass the time they inherit.
    pub fn is_new(&self, time: Option<SystemTime>) -> bool {
        match (self.after, time) {
            (Some(after), Some(time)) => time > after,
            _ => true,
        }
    }
}

/// Sends the log of `instance` (its container has the instance's name) on `ship` to `events`:
/// the last `tail` lines, then, with `follow`, every new line, across restarts and
/// re-creations of the container, until `events` is closed.
///
/// Without `follow`, a missing container or a failed read is an error. With it, they are
/// notices, and the reader waits for the container to run again.
pub async fn read_instance(
    ship: docker::Ship,
    instance: String,
    options: LogOptions,
    events: mpsc::Sender<LogEvent>,
) -> Result<(), LogError> {
    let notice = |text: String| LogEvent::Notice {
        instance: instance.clone(),
        text,
    };
    let docker_error = |source: DockerError| LogError::Docker {
        instance: instance.clone(),
        source,
    };
    let mut resume = Resume::default();
    let mut first = true;
    loop {
        let details = match ship.inspect(&instance).await {
            Ok(Some(d)) => Some(d),
            Ok(None) if !options.follow => {
                return Err(LogError::Absent {
                    instance: instance.clone(),
                    ship: ship.name().to_string(),
                });
            }
            Ok(None) => None,
            Err(err) if !options.follow => return Err(docker_error(err)),
            Err(err) => {
                if events
                    .send(notice(format!("{err}; trying again")))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                None
            }
        };
        let running = details.as_ref().is_some_and(|d| d.running);
        // After the first pass, read only once the container runs, so that the whole new run
        // is read in one follow.
        if (first && details.is_some()) || running {
            if !first && resume.after.is_none() {
                // Nothing shown yet (`-n 0`, or an empty log): only this run's lines are new.
                resume.after = details
                    .as_ref()
                    .and_then(|d| d.started_at)
                    .and_then(|t| t.checked_sub(Duration::from_nanos(1)));
            }
            // With timestamps: a resumed follow drops what was already shown.
            let query = if first {
                LogQuery {
                    tail: options.tail,
                    since: None,
                    follow: options.follow,
                    timestamps: true,
                }
            } else {
                LogQuery {
                    tail: None,
                    since: resume.since_seconds(),
                    follow: true,
                    timestamps: true,
                }
            };
            let mut lines = ship.logs(&instance, query);
            let mut read_any = false;
            while let Some(item) = lines.next().await {
                match item {
                    Ok(line) => {
                        read_any = true;
                        if !resume.is_new(line.time) {
                            continue;
                        }
                        if line.time.is_some() {
                            resume.after = line.time;
                        }
                        let event = LogEvent::Line {
                            instance: instance.clone(),
                            source: line.source,
                            text: line.text,
                        };
                        if events.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(err) => {
                        if !options.follow {
                            return Err(docker_error(err));
                        }
                        if events.send(notice(format!("{err}"))).await.is_err() {
                            return Ok(());
                        }
                        break;
                    }
                }
            }
            if !options.follow {
                return Ok(());
            }
            if !first && !read_any && running {
                // A stream that ends at once while the container runs: do not spin on it.
                tokio::time::sleep(options.poll).await;
            }
        }
        first = false;
        // The follow ended: the container stopped (or went away, or the stream broke).
        wait_until_running(&ship, &instance, options.poll, &events).await;
        if events.is_closed() {
            return Ok(());
        }
    }
}

/// Polls until the container runs, telling once that it waits and once that it runs again.
async fn wait_until_running(
    ship: &docker::Ship,
    instance: &str,
    poll: Duration,
    events: &mpsc::Sender<LogEvent>,
) {
    let mut told: Option<String> = None;
    loop {
        let state = match ship.inspect(instance).await {
            Ok(Some(d)) if d.running => None,
            Ok(Some(d)) => Some(format!(
                "container {}{}; waiting for it to run again",
                format!("{:?}", d.state).to_lowercase(),
                d.exit_code
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default()
            )),
            Ok(None) => Some("no container; waiting for one to run".to_string()),
            Err(err) => Some(format!("{err}; trying again")),
        };
        match state {
            None => {
                if told.is_some() {
                    let _ = events
                        .send(LogEvent::Notice {
                            instance: instance.to_string(),
                            text: "running again".into(),
                        })
                        .await;
                }
                return;
            }
            Some(text) => {
                // Same text as last time: say nothing, the user knows already.
                let first_word = text.split(';').next().map(str::to_string);
                if told != first_word {
                    if events
                        .send(LogEvent::Notice {
                            instance: instance.to_string(),
                            text,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    told = first_word;
                }
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_skips_what_was_shown() {
        let t = |nanos| Some(UNIX_EPOCH + Duration::new(1_795_606_702, nanos));
        let resume = Resume { after: t(500) };
        assert_eq!(resume.since_seconds(), Some(1_795_606_702));
        assert!(!resume.is_new(t(100)));
        assert!(!resume.is_new(t(500)));
        assert!(resume.is_new(t(501)));
        assert!(Resume::default().is_new(t(0)));
    }
}
