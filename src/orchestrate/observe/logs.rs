//! `logs`: an instance's log lines, and following them across restarts of its container.
//!
//! A follow ends when the container stops. To survive a restart we wait until the container
//! runs again and ask for its log from the last timestamp seen on: the daemon's `since` only
//! takes whole seconds, so we ask with timestamps and drop every line not newer than the last
//! one printed. Nothing is shown twice, nothing written in between is lost.
//!
//! Several instances are merged in time order (by the daemon's timestamp of each line):
//!
//! - Each instance's backlog (its last N lines, or those since `--since`) is read to its end
//!   first, also when following, and nothing is shown until every instance's backlog is in (or
//!   its ship is known unreachable): the backlogs come from ships at different speeds, and
//!   only then is their order known. A follow continues from the backlog's last line the way
//!   it does after a restart. (`-n 0` has no backlog: it follows at once.)
//! - Then a line is held [`MERGE_WINDOW`] after it arrives and released in time order: lines
//!   written at about the same time on two ships arrive in the order of the network, not of
//!   the clocks. Each instance's own lines keep their order (their times grow).
//! - `--since` and `--until` are exact: the daemon takes whole seconds, the rest is filtered
//!   on the lines' times.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::docker::{self, DockerError, LogQuery, LogSource};
use crate::orchestrate::engine::fleet::Fleet;

/// How often a follower asks whether a stopped container runs again.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// How long a followed line is held to be merged in time order with other instances' lines.
pub const MERGE_WINDOW: Duration = Duration::from_millis(200);

/// What a log reader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// One line of the container's output, without its newline.
    Line {
        instance: String,
        source: LogSource,
        text: String,
        /// When the daemon wrote it.
        time: Option<SystemTime>,
    },
    /// Something about the follow itself (stopped, running again).
    Notice { instance: String, text: String },
    /// The instance's ship could not be reached: its log will not be read.
    Unreachable { instance: String, text: String },
    /// The instance's backlog is read: [`FanOut`] consumes it to merge the backlogs, and
    /// never hands it on.
    CaughtUp { instance: String },
}

#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// The last N lines at first; `None` = the whole log.
    pub tail: Option<usize>,
    /// Keep following, across restarts, until the receiver goes away.
    pub follow: bool,
    /// How often to look whether a stopped (or missing) container runs again.
    pub poll: Duration,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Only lines written at or before this time.
    pub until: Option<SystemTime>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            tail: None,
            follow: false,
            poll: DEFAULT_POLL,
            since: None,
            until: None,
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
    merge: Merge,
    /// Every reader has ended.
    closed: bool,
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
        let instances: Vec<(String, String)> = instances.into_iter().collect();
        let merge = Merge::new(instances.iter().map(|(_, i)| i.clone()), MERGE_WINDOW);
        let readers = instances
            .into_iter()
            .map(|(ship, instance)| {
                let (fleet, sender) = (Arc::clone(fleet), sender.clone());
                let unreachable = Arc::clone(&unreachable);
                tokio::spawn(async move {
                    let outcome = match fleet.ship(&ship).await {
                        Ok(handle) => {
                            let sender = sender.clone();
                            read_instance(handle.docker, instance.clone(), options, sender).await
                        }
                        Err(err) => {
                            unreachable.store(true, Ordering::SeqCst);
                            let text = err.to_string();
                            let instance = instance.clone();
                            let _ = sender.send(LogEvent::Unreachable { instance, text }).await;
                            Ok(())
                        }
                    };
                    // A reader that ended early (an error) holds up no one's merge.
                    let _ = sender.send(LogEvent::CaughtUp { instance }).await;
                    outcome
                })
            })
            .collect();
        FanOut {
            events,
            readers,
            unreachable,
            merge,
            closed: false,
        }
    }

    /// The next line or notice of any instance, merged in time order (see the module's
    /// header); `None` once every reader has ended and every line was handed on.
    pub async fn next(&mut self) -> Option<LogEvent> {
        loop {
            if let Some(event) = self.merge.pop(Instant::now(), self.closed) {
                return Some(event);
            }
            if self.closed {
                return None;
            }
            let deadline = self.merge.next_release();
            tokio::select! {
                received = self.events.recv() => match received {
                    Some(event) => self.merge.push(event, Instant::now()),
                    None => self.closed = true,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => {}
            }
        }
    }

    /// The lines held for the merge, in time order: for the end of a follow (Ctrl-C).
    pub fn held(&mut self) -> Vec<LogEvent> {
        std::iter::from_fn(|| self.merge.pop(Instant::now(), true)).collect()
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

/// Lines of several instances put in time order (see the module's header).
#[derive(Debug)]
struct Merge {
    /// Instances whose backlog is not in yet: until it is, no line is released.
    waiting: BTreeSet<String>,
    held: BinaryHeap<Reverse<Held>>,
    /// Notices and errors: handed on at once.
    now: VecDeque<LogEvent>,
    window: Duration,
    arrived: u64,
}

#[derive(Debug)]
struct Held {
    time: SystemTime,
    /// Arrival order: equal times keep it, so an instance's lines keep theirs.
    seq: u64,
    release: Instant,
    event: LogEvent,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

impl Merge {
    fn new(instances: impl IntoIterator<Item = String>, window: Duration) -> Merge {
        Merge {
            waiting: instances.into_iter().collect(),
            held: BinaryHeap::new(),
            now: VecDeque::new(),
            window,
            arrived: 0,
        }
    }

    fn push(&mut self, event: LogEvent, now: Instant) {
        match event {
            LogEvent::CaughtUp { instance } => {
                self.waiting.remove(&instance);
            }
            LogEvent::Line { time, .. } => {
                self.arrived += 1;
                self.held.push(Reverse(Held {
                    // A line without a time (none is asked without) is placed at its arrival.
                    time: time.unwrap_or_else(SystemTime::now),
                    seq: self.arrived,
                    release: now + self.window,
                    event,
                }));
            }
            LogEvent::Unreachable { ref instance, .. } => {
                self.waiting.remove(instance);
                self.now.push_back(event);
            }
            LogEvent::Notice { .. } => self.now.push_back(event),
        }
    }

    /// The next event to hand on at `now`; with `all`, every held line, in order.
    fn pop(&mut self, now: Instant, all: bool) -> Option<LogEvent> {
        if let Some(event) = self.now.pop_front() {
            return Some(event);
        }
        let ready = all
            || (self.waiting.is_empty()
                && self.held.peek().is_some_and(|Reverse(h)| h.release <= now));
        if ready {
            self.held.pop().map(|Reverse(h)| h.event)
        } else {
            None
        }
    }

    /// When the earliest held line may go, once every backlog is in.
    fn next_release(&self) -> Option<Instant> {
        if !self.waiting.is_empty() {
            return None;
        }
        self.held.peek().map(|Reverse(h)| h.release)
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
    let reader = InstanceLog {
        ship: &ship,
        instance: &instance,
        options,
        events: &events,
    };
    match reader.read().await {
        Ok(()) | Err(Stop::Closed) => Ok(()),
        Err(Stop::Failed(err)) => Err(err),
    }
}

/// Why a log reader stops before its end.
enum Stop {
    /// The receiver is gone: nobody reads any more, which is not an error.
    Closed,
    Failed(LogError),
}

/// One instance's log being read (see [`read_instance`]).
struct InstanceLog<'a> {
    ship: &'a docker::Ship,
    instance: &'a str,
    options: LogOptions,
    events: &'a mpsc::Sender<LogEvent>,
}

impl InstanceLog<'_> {
    async fn read(&self) -> Result<(), Stop> {
        // Lines at `since` itself are shown.
        let mut resume = Resume {
            after: self
                .options
                .since
                .and_then(|t| t.checked_sub(Duration::from_nanos(1))),
        };
        // `-n 0` has no backlog to merge: follow at once (see the module's header).
        let backlog_first = self.options.follow && self.options.tail != Some(0);
        if self.options.follow && !backlog_first {
            self.send(self.caught_up()).await?;
        }
        let mut first = true;
        loop {
            let details = self.inspect().await?;
            let running = details.as_ref().is_some_and(|d| d.running);
            // After the first pass, read only once the container runs, so that the whole new
            // run is read in one follow.
            if (first && details.is_some()) || running {
                if !first && resume.after.is_none() {
                    // Nothing shown yet (`-n 0`, or an empty log): only this run's lines are
                    // new.
                    resume.after = details
                        .as_ref()
                        .and_then(|d| d.started_at)
                        .and_then(|t| t.checked_sub(Duration::from_nanos(1)));
                }
                let query = self.query(first, backlog_first, &resume);
                let read_any = self.send_lines(query, &mut resume).await?;
                if !self.options.follow {
                    return Ok(());
                }
                if !first && !read_any && running {
                    // A stream that ends at once while the container runs: do not spin on it.
                    tokio::time::sleep(self.options.poll).await;
                }
            }
            if first {
                first = false;
                self.send(self.caught_up()).await?;
                if backlog_first && running {
                    // The backlog is read: follow on from its last line.
                    continue;
                }
            }
            // The follow ended: the container stopped (or went away, or the stream broke).
            wait_until_running(self.ship, self.instance, self.options.poll, self.events).await;
            if self.events.is_closed() {
                return Ok(());
            }
        }
    }

    /// The container as it is now; `None` when a follow finds it absent or cannot ask (it
    /// tells so and waits). Without a follow, either is an error.
    async fn inspect(&self) -> Result<Option<docker::ContainerDetails>, Stop> {
        match self.ship.inspect(self.instance).await {
            Ok(Some(d)) => Ok(Some(d)),
            Ok(None) if !self.options.follow => Err(Stop::Failed(LogError::Absent {
                instance: self.instance.to_string(),
                ship: self.ship.name().to_string(),
            })),
            Ok(None) => Ok(None),
            Err(err) if !self.options.follow => Err(self.docker_error(err)),
            Err(err) => {
                self.send(self.notice(format!("{err}; trying again")))
                    .await?;
                Ok(None)
            }
        }
    }

    /// What to ask the daemon, with timestamps so that a resumed follow drops what was
    /// already shown: the backlog on the first read, and only new lines after a restart.
    fn query(&self, first: bool, backlog_first: bool, resume: &Resume) -> LogQuery {
        if first {
            // The daemon's `until` is whole seconds: one more, and the rest is filtered here.
            let until_seconds = self
                .options
                .until
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| i32::try_from(d.as_secs() + 1).unwrap_or(i32::MAX));
            LogQuery {
                tail: self.options.tail,
                since: resume.since_seconds(),
                until: until_seconds,
                follow: self.options.follow && !backlog_first,
                timestamps: true,
            }
        } else {
            LogQuery {
                tail: None,
                since: resume.since_seconds(),
                until: None,
                follow: true,
                timestamps: true,
            }
        }
    }

    /// Sends the lines of one read that are new and not past `--until`, moving `resume` on;
    /// whether the daemon sent any line at all. A broken stream ends a follow's read with a
    /// notice, and is an error otherwise.
    async fn send_lines(&self, query: LogQuery, resume: &mut Resume) -> Result<bool, Stop> {
        let mut lines = self.ship.logs(self.instance, query);
        let mut read_any = false;
        while let Some(item) = lines.next().await {
            match item {
                Ok(line) => {
                    read_any = true;
                    if !resume.is_new(line.time) || !self.before_until(line.time) {
                        continue;
                    }
                    if line.time.is_some() {
                        resume.after = line.time;
                    }
                    self.send(LogEvent::Line {
                        instance: self.instance.to_string(),
                        source: line.source,
                        text: line.text,
                        time: line.time,
                    })
                    .await?;
                }
                Err(err) if !self.options.follow => return Err(self.docker_error(err)),
                Err(err) => {
                    self.send(self.notice(format!("{err}"))).await?;
                    break;
                }
            }
        }
        Ok(read_any)
    }

    fn before_until(&self, time: Option<SystemTime>) -> bool {
        match (self.options.until, time) {
            (Some(until), Some(time)) => time <= until,
            _ => true,
        }
    }

    async fn send(&self, event: LogEvent) -> Result<(), Stop> {
        self.events.send(event).await.map_err(|_| Stop::Closed)
    }

    fn notice(&self, text: String) -> LogEvent {
        LogEvent::Notice {
            instance: self.instance.to_string(),
            text,
        }
    }

    fn caught_up(&self) -> LogEvent {
        LogEvent::CaughtUp {
            instance: self.instance.to_string(),
        }
    }

    fn docker_error(&self, source: DockerError) -> Stop {
        Stop::Failed(LogError::Docker {
            instance: self.instance.to_string(),
            source,
        })
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

    fn line(instance: &str, secs: u64) -> LogEvent {
        LogEvent::Line {
            instance: instance.into(),
            source: LogSource::Stdout,
            text: format!("{instance}@{secs}"),
            time: Some(UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    fn text(event: Option<LogEvent>) -> String {
        match event {
            Some(LogEvent::Line { text, .. }) => text,
            Some(LogEvent::Notice { text, .. }) => format!("notice {text}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn backlogs_are_merged_in_time_order_once_all_are_in() {
        let start = Instant::now();
        let window = Duration::from_millis(200);
        let mut merge = Merge::new(["a".to_string(), "b".to_string()], window);
        for secs in [1, 3, 5] {
            merge.push(line("a", secs), start);
        }
        merge.push(
            LogEvent::CaughtUp {
                instance: "a".into(),
            },
            start,
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(merge.pop(later, false), None, "b's backlog is not in yet");
        assert_eq!(merge.next_release(), None);
        merge.push(
            LogEvent::Notice {
                instance: "b".into(),
                text: "waiting".into(),
            },
            later,
        );
        assert_eq!(
            text(merge.pop(later, false)),
            "notice waiting",
            "notices go at once"
        );
        for secs in [2, 4] {
            merge.push(line("b", secs), later);
        }
        merge.push(
            LogEvent::CaughtUp {
                instance: "b".into(),
            },
            later,
        );
        assert_eq!(text(merge.pop(later + window, false)), "a@1");
        assert_eq!(text(merge.pop(later + window, false)), "b@2");
        // A live line held less than the window waits, even when older lines are gone.
        merge.push(line("a", 6), later + window);
        let order: Vec<String> = std::iter::from_fn(|| merge.pop(later + window, false))
            .map(|e| text(Some(e)))
            .collect();
        assert_eq!(order, ["a@3", "b@4", "a@5"]);
        assert_eq!(merge.next_release(), Some(later + window + window));
        assert_eq!(
            text(merge.pop(later + window, true)),
            "a@6",
            "all: at the end"
        );
    }

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
