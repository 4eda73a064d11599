//! The `audit:` section at work: every command that changes ships tells each auditor of the
//! environment file when it begins and how it ends, with MaestroNG 0.8.3's types, keys and
//! wording (see docs/configuration.md, "Audit").
//!
//! Decisions:
//! - One hook for every command that changes ships: [`crate::orchestrate::deploy::lifecycle::run`] builds an
//!   [`Audit`] from the request's command name and its plans, so a command added there is
//!   audited without more code. The begin record goes out once the deploy lock is held (a
//!   locked-out attempt changed nothing and is not audited), and the end record before the
//!   lock is released, so that the records of two operators never interleave.
//! - Records: a begin record, then (at `level: debug` only) one record per instance acted on
//!   with its outcome, then an end record: succeeded, failed with the reason, or interrupted.
//!   Who is [`lock::operator`], the name the deploy lock gives its holder (`user@host`).
//! - Failures follow MaestroNG's multiplexer: an auditor without `ignore_errors` that fails on
//!   the begin record stops the command before it changes anything. Everything else (a begin
//!   failure with `ignore_errors`, any failure on later records) becomes a [`Note`] for the
//!   CLI to print: an auditor never changes a deploy's result. An auditor that fails stops
//!   hearing the rest of that stage (one warning, not one per record and timeout each).
//! - Every text we make (who, what, the message, the exec auditor's stdin) passes through the
//!   process-wide masker before it leaves; what the operator wrote (payload, headers, script
//!   arguments) is sent as written, since a webhook may need a token there. For the same
//!   reason an http auditor is named by its scheme, host and port only: a webhook's path
//!   often holds its token.
//! - HTTP goes through the transport's client ([`transport::http_direct`]); nothing here
//!   speaks HTTP. Each request is bounded by the auditor's `timeout` (3 s by default, and for
//!   Slack), a script by [`EXEC_TIMEOUT`]; Ctrl-C cuts any stage short.
//! - `exec` runs as MaestroNG's does: once, when a command succeeded, with `{action}` in its
//!   arguments and the containers as JSON on its stdin. Its interface has no place for a
//!   begin or a failure, and scripts written for MaestroNG expect exactly that call.
//! - `hipchat`: the service is gone; the auditor sends nothing and says so once per command.
//! - This module never prints: the CLI renders [`Note`]s and [`AuditError`]s.

use std::fmt;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::config::{AuditLevel, AuditTarget, Auditor, Environment};
use crate::orchestrate::deploy::lock;
use crate::orchestrate::engine::executor::{Cancel, JobReport, JobState, ScheduleError, Summary};
use crate::orchestrate::plan::select::Plan;
use crate::secrets;
use crate::transport::{self, HttpAnswer, HttpError, HttpRequest, TlsClient, TlsFailure, TlsTrust};

/// Where Slack's Web API is, unless [`SLACK_API_VARIABLE`] says otherwise.
pub const SLACK_API: &str = "https://slack.com/api";
/// For tests only: another base address for Slack's Web API (a local receiver).
pub const SLACK_API_VARIABLE: &str = "MAESTRO_SLACK_API_URL";
/// How long a Slack request may take (MaestroNG's slack auditor has no `timeout` key; this is
/// the http auditor's default).
pub const SLACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an exec auditor's script may run before it is killed and counted as failed.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// MaestroNG's Slack colours.
const COLOR_BEGIN: &str = "#1dc7d3";
const COLOR_SUCCESS: &str = "good";
const COLOR_ERROR: &str = "danger";

/// One container acted on, as the exec auditor's stdin describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance: String,
    pub service: String,
    pub ship_ip: String,
}

/// How a command ended, as the auditors hear it (a job's own is `engine::events::Outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    Failed(String),
    Interrupted,
}

impl Ending {
    /// The outcome of a sequence of runs: interrupted anywhere, else failed when any job did
    /// not succeed (the reason names them), else succeeded.
    pub fn of(result: &Result<Vec<Summary>, ScheduleError>) -> Ending {
        let summaries = match result {
            Ok(summaries) => summaries,
            Err(err) => return Ending::Failed(err.to_string()),
        };
        if summaries.iter().any(|s| s.interrupted) {
            return Ending::Interrupted;
        }
        let reports = || summaries.iter().flat_map(|s| s.jobs.iter());
        let mut reasons: Vec<String> = reports()
            .filter_map(|r| match &r.state {
                JobState::Failed { reason, .. } => Some(format!(
                    "{}: {}",
                    r.instance,
                    reason.lines().next().unwrap_or_default()
                )),
                _ => None,
            })
            .collect();
        let not_done = reports()
            .filter(|r| !r.state.is_done() && !matches!(r.state, JobState::Failed { .. }))
            .count();
        if not_done > 0 {
            reasons.push(format!("{not_done} not attempted"));
        }
        if reasons.is_empty() {
            Ending::Succeeded
        } else {
            Ending::Failed(reasons.join("; "))
        }
    }

    fn word(&self) -> &'static str {
        match self {
            Ending::Succeeded => "succeeded",
            Ending::Failed(_) => "failed",
            Ending::Interrupted => "interrupted",
        }
    }
}

/// Python's logging levels, whose names the log auditor writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

/// Which record of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Begin,
    /// One instance's outcome (`level: debug` only).
    Instance,
    End,
}

/// One thing the auditors hear. Its texts are masked already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stage: Stage,
    pub severity: Severity,
    /// The command (`{action}`): `start`, `stop`, `restart`...
    pub command: String,
    /// What it acts on (`{what}`): instance names, comma-separated.
    pub what: String,
    /// `user@host` (`{who}`).
    pub who: String,
    /// The sentence (`{message}`).
    pub message: String,
    /// At the end and per instance.
    pub outcome: Option<Ending>,
}

impl Record {
    /// A record whose texts went through the process-wide masker.
    fn new(
        stage: Stage,
        severity: Severity,
        command: &str,
        what: &str,
        who: &str,
        message: String,
        outcome: Option<Ending>,
    ) -> Record {
        Record {
            stage,
            severity,
            command: command.to_string(),
            what: what.to_string(),
            who: who.to_string(),
            message,
            outcome,
        }
        .masked(&secrets::global())
    }

    /// The record with its texts masked by `masker`.
    fn masked(self, masker: &secrets::Masker) -> Record {
        Record {
            what: masker.mask(&self.what),
            who: masker.mask(&self.who),
            message: masker.mask(&self.message),
            outcome: self.outcome.map(|o| match o {
                Ending::Failed(reason) => Ending::Failed(masker.mask(&reason)),
                other => other,
            }),
            ..self
        }
    }
}

/// `alice@laptop is starting web-1, web-2.`
pub fn begin_message(who: &str, command: &str, what: &str) -> String {
    format!("{who} is {} {what}.", verb(command))
}

/// `Start of web-1, web-2 succeeded.`, `Failed to start web-1! (message: ...)`,
/// `Stop of web-1 was interrupted.`
pub fn end_message(command: &str, what: &str, outcome: &Ending) -> String {
    match outcome {
        Ending::Succeeded => format!("{} of {what} succeeded.", title(command)),
        Ending::Failed(reason) => format!("Failed to {command} {what}! (message: {reason})"),
        Ending::Interrupted => format!("{} of {what} was interrupted.", title(command)),
    }
}

/// The `-ing` form of a command, for the begin sentence.
fn verb(command: &str) -> String {
    match command {
        "start" => "starting".into(),
        "up" => "bringing up".into(),
        "stop" => "stopping".into(),
        "down" => "bringing down".into(),
        "kill" => "killing".into(),
        "restart" => "restarting".into(),
        "pull" => "pulling".into(),
        "clean" => "cleaning".into(),
        "rollback" => "rolling back".into(),
        other => format!("running `{other}` on"),
    }
}

fn title(command: &str) -> String {
    let mut chars = command.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One instance's record: the run's command (`restart (stop)` for half a restart), its
/// instance and ship, and how its job ended.
fn instance_record(command: &str, who: &str, report: &JobReport) -> Record {
    let what = format!("{} on {}", report.instance, report.ship);
    let (message, outcome) = match &report.state {
        JobState::Done { outcome } => (
            format!("{} of {what} succeeded ({outcome}).", title(command)),
            Ending::Succeeded,
        ),
        JobState::Failed { reason, .. } => {
            let reason = reason.lines().next().unwrap_or_default().to_string();
            (
                format!("Failed to {command} {what}! (message: {reason})"),
                Ending::Failed(reason),
            )
        }
        JobState::Skipped { reason } => (
            format!("{} of {what} was skipped: {reason}.", title(command)),
            Ending::Failed(reason.clone()),
        ),
        JobState::Cancelled { reason } => (
            format!("{} of {what} was cancelled: {reason}.", title(command)),
            Ending::Interrupted,
        ),
    };
    Record::new(
        Stage::Instance,
        Severity::Debug,
        command,
        &report.instance,
        who,
        message,
        Some(outcome),
    )
}

/// `text` with `{name}` replaced by the value of `name` in `fields`, and `{{`/`}}` by braces,
/// as Python's `str.format`; an unknown `{name}` is left as written.
pub fn fill(text: &str, fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(end) = tail.find('}').filter(|_| tail.starts_with('{'))
            && let Some((_, value)) = fields.iter().find(|(name, _)| *name == &tail[1..end])
        {
            out.push_str(value);
            rest = &tail[end + 1..];
            continue;
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// An http auditor's payload with [`fill`] applied to every string in it, through maps and
/// lists (keys stay as written), as MaestroNG does.
pub fn fill_payload(payload: &Value, record: &Record) -> Value {
    let fields = [
        ("what", record.what.as_str()),
        ("action", record.command.as_str()),
        ("who", record.who.as_str()),
        ("message", record.message.as_str()),
    ];
    fn walk(value: &Value, fields: &[(&str, &str)]) -> Value {
        match value {
            Value::String(s) => Value::String(fill(s, fields)),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, fields)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), walk(v, fields)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(payload, &fields)
}

/// Whether an auditor of `level` hears `record`: `info` hears the begin and end of each
/// command, `debug` also each instance.
pub fn hears(level: AuditLevel, record: &Record) -> bool {
    record.stage != Stage::Instance || level == AuditLevel::Debug
}

/// `2026-12-01 05:51:42,123 INFO: alice@laptop is starting web-1.` (Python's
/// `%(asctime)s %(levelname)s: %(message)s`; the time is UTC.)
pub fn log_line(now: SystemTime, record: &Record) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (year, month, day, hour, minute, second) = crate::clock::utc_fields(since.as_secs());
    format!(
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02},{:03} {}: {}\n",
        since.subsec_millis(),
        record.severity.name(),
        // One record, one line, whatever a reason holds.
        record.message.replace('\n', " "),
    )
}

/// The body of Slack's `chat.postMessage` for `record`, with MaestroNG's colours.
pub fn slack_body(channel: &str, name: Option<&str>, icon: Option<&str>, record: &Record) -> Value {
    let color = match (&record.stage, &record.outcome) {
        (Stage::Begin, _) => COLOR_BEGIN,
        (_, Some(Ending::Succeeded)) => COLOR_SUCCESS,
        (_, Some(Ending::Interrupted)) => "warning",
        _ => COLOR_ERROR,
    };
    let mut fields = vec![
        json!({"title": "Command", "value": record.command, "short": true}),
        json!({"title": "Who", "value": record.who, "short": true}),
        json!({"title": "Containers", "value": record.what, "short": false}),
    ];
    if let Some(outcome) = &record.outcome {
        fields.push(json!({"title": "Ending", "value": outcome.word(), "short": true}));
    }
    let mut body = json!({
        "channel": channel,
        "username": name.unwrap_or("maestro"),
        "attachments": [{
            "fallback": record.message,
            "text": record.message,
            "color": color,
            "fields": fields,
        }],
    });
    if let (Some(icon), Some(map)) = (icon, body.as_object_mut()) {
        map.insert("icon_url".into(), Value::String(icon.to_string()));
    }
    body
}

/// A failure of one auditor on one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `audit[1] (http, https://hooks.example.com)`.
    pub auditor: String,
    pub command: String,
    pub stage: Stage,
    pub reason: String,
    pub ignore_errors: bool,
}

/// What the CLI tells after the command: nothing here changes its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Failed(Failure),
    /// A `hipchat` auditor would have acted (once per command).
    HipChatGone {
        auditor: String,
    },
    /// Ctrl-C cut the end records short.
    Interrupted {
        command: String,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Failed(failure) if failure.stage == Stage::Begin => write!(
                f,
                "audit: {} could not record the start of `{}`: {}; it has ignore_errors: true, \
                 so the command went on",
                failure.auditor, failure.command, failure.reason
            ),
            Note::Failed(failure) => write!(
                f,
                "audit: {} could not record how `{}` ended: {}; the command's result stands",
                failure.auditor, failure.command, failure.reason
            ),
            Note::HipChatGone { auditor } => write!(
                f,
                "audit: {auditor}: HipChat no longer exists as a service; nothing was sent"
            ),
            Note::Interrupted { command } => write!(
                f,
                "audit: interrupted before every auditor heard how `{command}` ended"
            ),
        }
    }
}

/// Why a command did not begin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// Auditors without `ignore_errors` could not record the begin.
    #[error(
        "{}; nothing was changed\n  = help: make the auditor work, or set `ignore_errors: true` \
         on it in the environment file's `audit` section to go on without it",
        .0.iter().map(|f| format!("audit: {} could not record the start of `{}`: {}", f.auditor, f.command, f.reason)).collect::<Vec<_>>().join("\n")
    )]
    Refused(Vec<Failure>),
    /// Ctrl-C while the begin record was being sent.
    #[error("interrupted while the auditors heard the start; nothing was changed")]
    Interrupted,
}

/// What an auditor did with a record.
enum Sent {
    Done,
    /// Not for this auditor (its level, or exec outside a success).
    Skipped,
    HipChatGone,
}

/// The auditors of one command.
#[derive(Debug, Clone)]
pub struct Audit {
    auditors: Vec<Auditor>,
    command: String,
    who: String,
    targets: Vec<Target>,
}

impl Audit {
    /// The audit of `command` over `plans` (their instances, each once, in plan order).
    pub fn new(env: &Environment, command: &str, plans: &[Plan]) -> Audit {
        let mut targets: Vec<Target> = Vec::new();
        for step in plans.iter().flat_map(|p| p.steps.iter()) {
            if targets.iter().any(|t| t.instance == step.instance) {
                continue;
            }
            targets.push(Target {
                instance: step.instance.clone(),
                service: step.service.clone(),
                ship_ip: env
                    .ship(&step.ship)
                    .map_or_else(|| step.ship.clone(), |s| s.ip.clone()),
            });
        }
        Audit {
            auditors: env.audit.clone(),
            command: command.to_string(),
            who: lock::operator(),
            targets,
        }
    }

    /// With another `who` (tests).
    pub fn by(mut self, who: &str) -> Audit {
        self.who = who.to_string();
        self
    }

    fn what(&self) -> String {
        if self.targets.is_empty() {
            return "nothing".to_string();
        }
        let names: Vec<&str> = self.targets.iter().map(|t| t.instance.as_str()).collect();
        names.join(", ")
    }

    pub fn begin_record(&self) -> Record {
        let what = self.what();
        Record::new(
            Stage::Begin,
            Severity::Info,
            &self.command,
            &what,
            &self.who,
            begin_message(&self.who, &self.command, &what),
            None,
        )
    }

    /// The instance records (for `debug` auditors), then the end record.
    pub fn end_records(&self, result: &Result<Vec<Summary>, ScheduleError>) -> Vec<Record> {
        let mut records: Vec<Record> = Vec::new();
        if let Ok(summaries) = result {
            for summary in summaries {
                for report in &summary.jobs {
                    records.push(instance_record(&summary.command, &self.who, report));
                }
            }
        }
        let outcome = Ending::of(result);
        let severity = match outcome {
            Ending::Succeeded => Severity::Info,
            Ending::Failed(_) => Severity::Error,
            Ending::Interrupted => Severity::Warning,
        };
        let what = self.what();
        records.push(Record::new(
            Stage::End,
            severity,
            &self.command,
            &what,
            &self.who,
            end_message(&self.command, &what, &outcome),
            Some(outcome),
        ));
        records
    }

    /// Tells every auditor that the command begins. An auditor without `ignore_errors` that
    /// fails stops the command: the error says which and why. Ctrl-C interrupts it.
    pub async fn begin(&self, cancel: &Cancel) -> Result<Vec<Note>, AuditError> {
        if self.auditors.is_empty() {
            return Ok(Vec::new());
        }
        let records = [self.begin_record()];
        let results = tokio::select! {
            results = self.stage(&records) => results,
            _ = cancel.cancelled() => return Err(AuditError::Interrupted),
        };
        let mut notes = Vec::new();
        let mut refused = Vec::new();
        let mut heard = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Err(failure) if !failure.ignore_errors => refused.push(failure),
                Err(failure) => notes.push(Note::Failed(failure)),
                Ok(note) => {
                    heard.push(index);
                    notes.extend(note);
                }
            }
        }
        if refused.is_empty() {
            return Ok(notes);
        }
        // Those that heard the command begin hear that nothing followed, and why.
        let why: Vec<String> = refused
            .iter()
            .map(|f| format!("{} could not record its start", f.auditor))
            .collect();
        self.refused_to(Some(&heard), &why.join("; "), cancel).await;
        Err(AuditError::Refused(refused))
    }

    /// Tells every auditor how the command ended. Failures are notes, whatever
    /// `ignore_errors` says; the next Ctrl-C (or the first, if the run was not interrupted)
    /// cuts it short.
    pub async fn end(
        &self,
        result: &Result<Vec<Summary>, ScheduleError>,
        cancel: &Cancel,
    ) -> Vec<Note> {
        if self.auditors.is_empty() {
            return Vec::new();
        }
        let records = self.end_records(result);
        let next_interrupt = async {
            if cancel.is_aborted() {
                // The third Ctrl-C exits the process; the timeouts bound the rest.
                std::future::pending::<()>().await;
            } else if cancel.is_cancelled() {
                cancel.aborted().await;
            } else {
                cancel.cancelled().await;
            }
        };
        let results = tokio::select! {
            results = self.stage(&records) => results,
            _ = next_interrupt => {
                return vec![Note::Interrupted { command: self.command.clone() }];
            }
        };
        results
            .into_iter()
            .filter_map(|r| match r {
                Err(failure) => Some(Note::Failed(failure)),
                Ok(note) => note,
            })
            .collect()
    }

    /// Tells every auditor that the command it heard begin was refused before anything
    /// changed (a ship's deploy lock was held, or could not be taken), with the first line of
    /// `reason`. Failures are dropped: the command's own error is what the operator reads.
    /// The second Ctrl-C cuts it short.
    pub async fn refused(&self, reason: &str, cancel: &Cancel) {
        self.refused_to(None, reason, cancel).await;
    }

    /// [`Audit::refused`], told to the auditors at `only` (indices in file order), or to all.
    async fn refused_to(&self, only: Option<&[usize]>, reason: &str, cancel: &Cancel) {
        if self.auditors.is_empty() || only.is_some_and(<[usize]>::is_empty) {
            return;
        }
        let what = self.what();
        let reason = reason.lines().next().unwrap_or_default();
        let outcome = Ending::Failed(format!("refused: {reason}"));
        let record = Record::new(
            Stage::End,
            Severity::Error,
            &self.command,
            &what,
            &self.who,
            end_message(&self.command, &what, &outcome),
            Some(outcome),
        );
        tokio::select! {
            _ = self.stage_to(only, std::slice::from_ref(&record)) => {}
            _ = cancel.aborted() => {}
        }
    }

    /// `records` to every auditor at once, each in order; an auditor stops at its first
    /// failure. One result per auditor, in file order.
    async fn stage(&self, records: &[Record]) -> Vec<Result<Option<Note>, Failure>> {
        self.stage_to(None, records).await
    }

    /// [`Audit::stage`] for the auditors at `only` (indices in file order), or all; one
    /// result per auditor asked.
    async fn stage_to(
        &self,
        only: Option<&[usize]>,
        records: &[Record],
    ) -> Vec<Result<Option<Note>, Failure>> {
        let per_auditor = self
            .auditors
            .iter()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|only| only.contains(i)))
            .map(|(i, auditor)| async move {
                let mut note = None;
                for record in records {
                    match deliver(auditor, record, &self.targets).await {
                        Ok(Sent::Done | Sent::Skipped) => {}
                        Ok(Sent::HipChatGone) => {
                            note = Some(Note::HipChatGone {
                                auditor: describe(i, auditor),
                            });
                        }
                        Err(reason) => {
                            return Err(Failure {
                                auditor: describe(i, auditor),
                                command: self.command.clone(),
                                stage: record.stage,
                                reason: secrets::mask(&reason),
                                ignore_errors: auditor.ignore_errors,
                            });
                        }
                    }
                }
                Ok(note)
            });
        join_all(per_auditor).await
    }
}

/// `audit[1] (http, https://hooks.example.com)`: where it is in the file, its type, and its
/// target without anything that may be a credential (a webhook's path, a token).
pub fn describe(index: usize, auditor: &Auditor) -> String {
    let target = match &auditor.target {
        AuditTarget::Log { file } => file.clone(),
        AuditTarget::Http { endpoint, .. } => match endpoint.parse::<hyper::Uri>() {
            Ok(uri) => format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().map(|a| a.as_str()).unwrap_or_default()
            ),
            Err(_) => "an endpoint that is not a URL".to_string(),
        },
        AuditTarget::Slack { channel, .. } => format!("channel {channel}"),
        AuditTarget::HipChat { room, .. } => format!("room {room}"),
        AuditTarget::Exec { script, .. } => script.clone(),
    };
    format!("audit[{index}] ({}, {target})", auditor.kind())
}

async fn deliver(auditor: &Auditor, record: &Record, targets: &[Target]) -> Result<Sent, String> {
    if !hears(auditor.level, record) {
        return Ok(Sent::Skipped);
    }
    match &auditor.target {
        AuditTarget::Log { file } => {
            append(file, &log_line(SystemTime::now(), record)).await?;
            Ok(Sent::Done)
        }
        AuditTarget::Http {
            endpoint,
            payload,
            headers,
            method,
            timeout,
        } => {
            let body = serde_json::to_vec(&fill_payload(payload, record))
                .map_err(|e| format!("cannot write the payload as JSON: {e}"))?;
            // MaestroNG's Content-Type, unless the file's headers give their own.
            let mut all: Vec<(String, String)> = Vec::new();
            if !headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
            {
                all.push((
                    "Content-Type".into(),
                    "application/json; charset=utf-8".into(),
                ));
            }
            all.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            let answer = send(method, endpoint, &all, &body, *timeout).await?;
            if (200..300).contains(&answer.status) {
                Ok(Sent::Done)
            } else {
                Err(format!(
                    "the endpoint answered with status {}{}",
                    answer.status,
                    excerpt(&answer.body)
                ))
            }
        }
        AuditTarget::Slack {
            channel,
            token,
            name,
            icon,
        } => {
            let body = slack_body(channel, name.as_deref(), icon.as_deref(), record);
            let body = serde_json::to_vec(&body)
                .map_err(|e| format!("cannot write the message as JSON: {e}"))?;
            let base = std::env::var(SLACK_API_VARIABLE)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| SLACK_API.to_string());
            let url = format!("{}/chat.postMessage", base.trim_end_matches('/'));
            let headers = [
                (
                    "Content-Type".to_string(),
                    "application/json; charset=utf-8".to_string(),
                ),
                ("Authorization".to_string(), format!("Bearer {token}")),
            ];
            let answer = send("POST", &url, &headers, &body, SLACK_TIMEOUT).await?;
            // Slack answers 200 with `"ok": false` and the reason when it refuses.
            let parsed: Option<Value> = serde_json::from_str(&answer.body).ok();
            match parsed
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(Value::as_bool)
            {
                Some(true) if answer.status == 200 => Ok(Sent::Done),
                _ => {
                    let why = parsed
                        .as_ref()
                        .and_then(|v| v.get("error"))
                        .and_then(Value::as_str)
                        .map(|e| format!(": {e}"))
                        .unwrap_or_else(|| excerpt(&answer.body));
                    Err(format!(
                        "Slack refused the message (status {}){why}; check the token and that \
                         the app is in channel {channel}",
                        answer.status
                    ))
                }
            }
        }
        AuditTarget::HipChat { .. } => Ok(if record.stage == Stage::Begin {
            Sent::HipChatGone
        } else {
            Sent::Skipped
        }),
        AuditTarget::Exec { script, args } => {
            if record.stage != Stage::End || record.outcome != Some(Ending::Succeeded) {
                return Ok(Sent::Skipped);
            }
            run_script(script, args, record, targets).await?;
            Ok(Sent::Done)
        }
    }
}

/// Appends `line` to `file`, creating it (not its directory).
async fn append(file: &str, line: &str) -> Result<(), String> {
    let mut options = tokio::fs::OpenOptions::new();
    options.create(true).append(true);
    // A new log is the operator's alone: it names who changed what, and when. An existing
    // file keeps the mode it has (the operator may have shared it on purpose).
    #[cfg(unix)]
    options.mode(0o600);
    let mut handle = options
        .open(file)
        .await
        .map_err(|e| format!("cannot open {file} to append to it: {e}"))?;
    handle
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot write to {file}: {e}"))?;
    handle
        .flush()
        .await
        .map_err(|e| format!("cannot write to {file}: {e}"))
}

/// `: text of the answer` (its first line, short), or nothing for an empty body.
fn excerpt(body: &str) -> String {
    let line = body.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return String::new();
    }
    let short: String = line.chars().take(200).collect();
    format!(": {short}")
}

/// One request to `url`, within `timeout`.
async fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("the endpoint is not a URL ({e})"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the endpoint must start with http:// or https://".into()),
    };
    let host = uri
        .host()
        .ok_or_else(|| "the endpoint names no host".to_string())?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let tls = if https {
        let name = host.trim_start_matches('[').trim_end_matches(']');
        Some(TlsClient::new(&TlsTrust::SystemRoots, name).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let request = HttpRequest {
        method,
        host,
        port,
        path,
        tls: tls.as_ref(),
        headers,
        body: Some(body),
    };
    tokio::time::timeout(timeout, transport::http_direct(&request))
        .await
        .map_err(|_| format!("no answer from {host}:{port} within {}", seconds(timeout)))?
        .map_err(|e| http_words(&e, host))
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn http_words(err: &HttpError, host: &str) -> String {
    let HttpError::Tls(failure) = err else {
        return err.to_string();
    };
    match failure {
        TlsFailure::UnknownIssuer | TlsFailure::BadSignature => format!(
            "the certificate of {host} is not trusted by this machine's CA store: add its CA \
             to the system's trusted certificates"
        ),
        TlsFailure::NotValidForName { presented } if !presented.is_empty() => format!(
            "the certificate of {host} is not valid for that name (it names {})",
            presented.join(", ")
        ),
        TlsFailure::NotValidForName { .. } => {
            format!("the certificate of {host} is not valid for that name")
        }
        TlsFailure::Expired(why) | TlsFailure::NotValidYet(why) => {
            format!("the certificate of {host}: {why}")
        }
        other => format!("TLS handshake with {host} failed: {other:?}"),
    }
}

/// The exec auditor's run: `script` with `args` (`{action}` filled, split on whitespace),
/// the containers as JSON on stdin; a non-zero exit is a failure with its stderr's last line.
async fn run_script(
    script: &str,
    args: &str,
    record: &Record,
    targets: &[Target],
) -> Result<(), String> {
    let args = fill(args, &[("action", record.command.as_str())]);
    let mut containers = serde_json::Map::new();
    for target in targets {
        containers.insert(
            secrets::mask(&target.instance),
            json!({"ship": secrets::mask(&target.ship_ip), "service": secrets::mask(&target.service)}),
        );
    }
    let stdin = serde_json::to_vec(&Value::Object(containers))
        .map_err(|e| format!("cannot write the containers as JSON: {e}"))?;
    let mut child = tokio::process::Command::new(script)
        .args(args.split_whitespace())
        .env("MAESTRO_AUDIT_WHO", &record.who)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Ctrl-C or the timeout drops the future: the script goes with it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let run = async {
        if let Some(mut input) = child.stdin.take() {
            // A script that does not read its stdin is no failure.
            let _ = input.write_all(&stdin).await;
            drop(input);
        }
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(EXEC_TIMEOUT, run)
        .await
        .map_err(|_| format!("{script} did not finish within {}", seconds(EXEC_TIMEOUT)))?
        .map_err(|e| format!("waiting for {script}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    let status = match output.status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    Err(format!("{script} {status}{last}"))
}

#[cfg(test)]
mod tests;
