//! The `audit:` section end to end on the test bed: a real log file, a real HTTP receiver on
//! this machine, Slack's API faked by a local receiver (through the test-only
//! `MAESTRO_SLACK_API_URL`), an exec script, an endpoint that refuses connections, hipchat's
//! notice, and Ctrl-C while an auditor is slow.
//!
//! Who is set with `MAESTRO_LOCK_HOLDER` (the name the deploy lock gives its holder). Each test
//! has its own environment and instance names, so tests run side by side on one bed.
//!
//! Needs root. Uses the bed named by `MAESTRO_TESTBED` if set, else brings up its own.

use crate::common;
use common::support::{self, Run};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SharedBed, TestBed};
use serde_json::Value;

/// A secret of the environment's env: it must never reach an auditor.
const SECRET: &str = "AuditSecret0099";

fn bed() -> SharedBed {
    TestBed::shared()
}

/// A unique name per test and process: tests share the bed and may run at once.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    /// `POST /hook HTTP/1.1`
    line: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// An HTTP receiver on 127.0.0.1 that records each request and answers `answer` (or, with
/// `None`, holds the connection open without answering).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(answer: Option<&'static str>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&got);
        // Lives as long as the test binary: nothing to stop.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = Arc::clone(&record);
                std::thread::spawn(move || serve(stream, answer, &record));
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

fn serve(mut stream: TcpStream, answer: Option<&str>, record: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    if let Ok(mut got) = record.lock() {
        got.push(Received {
            line,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    match answer {
        Some(text) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{text}",
                text.len()
            );
        }
        None => std::thread::sleep(Duration::from_secs(60)),
    }
}

/// An environment `name` on the first outer ship (`a`) with `instances` instances of `web`
/// (`NAME-web-1`...), the secret in their env, and `audit` (YAML list items, indented by 2).
fn environment(bed: &TestBed, dir: &Path, name: &str, instances: usize, audit: &str) -> PathBuf {
    let outer = bed.outer_ships()[0].name.clone();
    let mut yaml = format!(
        "name: {name}\nships:\n{}services:\n  web:\n    image: {}\n    env: {{DB_PASSWORD: \
         \"{SECRET}\"}}\n    instances:\n",
        bed.ship_yaml(&outer, "a"),
        bed.image,
    );
    for i in 1..=instances {
        yaml.push_str(&format!(
            "      {name}-web-{i}: {{ship: a, command: \"sleep 3600\", stop_timeout: 1}}\n"
        ));
    }
    yaml.push_str("audit:\n");
    yaml.push_str(audit);
    let file = dir.join("env.yaml");
    std::fs::write(&file, yaml).expect("write env");
    file
}

fn run(dir: &Path, file: &Path, holder: &str, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut all = vec![("MAESTRO_LOCK_HOLDER", holder)];
    all.extend_from_slice(envs);
    let mut cmd_args = vec!["-f", file.to_str().expect("utf-8 path")];
    cmd_args.extend_from_slice(args);
    support::run_maestro(dir, &cmd_args, &all)
}

fn remove(bed: &TestBed, names: &[String]) {
    let outer = bed.outer_ships()[0].name.clone();
    for name in names {
        let _ = bed.docker_cli(&outer, &["rm", "-f", name]);
    }
}

fn exists(bed: &TestBed, container: &str) -> bool {
    let outer = bed.outer_ships()[0].name.clone();
    bed.docker_cli(&outer, &["inspect", container])
        .status
        .success()
}

/// The lines of a log auditor's file, without their time stamps (`LEVEL: message`).
fn log_records(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            // `2026-12-01 05:51:42,123 INFO: ...`: date, time, then the rest.
            let mut parts = line.splitn(3, ' ');
            let (date, time, rest) = (parts.next(), parts.next(), parts.next());
            assert!(
                date.is_some_and(|d| d.len() == 10) && time.is_some_and(|t| t.len() == 12),
                "not Python's asctime: {line}"
            );
            rest.unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn start_and_stop_are_heard_by_a_log_file_and_an_http_receiver() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("aud");
    let receiver = Receiver::start(Some("{}"));
    let log = dir.path().join("audit.log");
    let audit = format!(
        "  - {{type: log, file: \"{}\"}}\n  - type: http\n    endpoint: \"{}\"\n    headers: \
         {{X-Deploy: yes-please}}\n    payload:\n      text: \"{{who}} {{action}} {{what}}\"\n      \
         message: \"{{message}}\"\n      nested: [{{action: \"{{action}}\"}}, 7]\n",
        log.display(),
        receiver.url("/hook?x=1"),
    );
    let file = environment(&bed, dir.path(), &name, 2, &audit);
    let names = [format!("{name}-web-1"), format!("{name}-web-2")];
    remove(&bed, &names);
    // The secret is in who as well, to prove every text is masked on its way out.
    let holder = format!("alice-{SECRET}@laptop");
    let who = "alice-***@laptop";
    let what = format!("{name}-web-1, {name}-web-2");

    let started = run(dir.path(), &file, &holder, &["start", "--plain"], &[]);
    assert_eq!(started.code, 0, "{started}");
    assert!(!started.stderr.contains("warning"), "{started}");
    // A new log is the operator's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).expect("log").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the new audit log has mode {mode:o}");
    }
    let stopped = run(dir.path(), &file, &holder, &["stop", "-a", "--plain"], &[]);
    assert_eq!(stopped.code, 0, "{stopped}");

    assert_eq!(
        log_records(&log),
        vec![
            format!("INFO: {who} is starting {what}."),
            format!("INFO: Start of {what} succeeded."),
            format!("INFO: {who} is stopping {what}."),
            format!("INFO: Stop of {what} succeeded."),
        ]
    );
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        4,
        "one request per begin and end: {requests:#?}"
    );
    let texts: Vec<Value> = requests.iter().map(Received::json).collect();
    let expected = |action: &str, message: String| {
        serde_json::json!({
            "text": format!("{who} {action} {what}"),
            "message": message,
            "nested": [{"action": action}, 7],
        })
    };
    // Each command's begin comes before its end; the two commands ran one after the other.
    assert_eq!(
        texts,
        vec![
            expected("start", format!("{who} is starting {what}.")),
            expected("start", format!("Start of {what} succeeded.")),
            expected("stop", format!("{who} is stopping {what}.")),
            expected("stop", format!("Stop of {what} succeeded.")),
        ]
    );
    for request in &requests {
        assert_eq!(request.line, "POST /hook?x=1 HTTP/1.1");
        assert_eq!(
            request.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(request.header("x-deploy"), Some("yes-please"));
        assert!(!request.body.contains(SECRET), "{request:?}");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains(SECRET), "{text}");
    remove(&bed, &names);
}

/// A failing instance: the end record says the command failed and why, a `debug` auditor also
/// hears each instance, and the secret the daemon quotes in its error reaches no auditor.
#[test]
fn a_failing_instance_gives_a_failure_record_without_the_secret() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("auf");
    let receiver = Receiver::start(Some("{}"));
    let log = dir.path().join("audit.log");
    let audit = format!(
        "  - {{type: log, file: \"{}\", level: debug}}\n  - {{type: http, endpoint: \"{}\", \
         payload: {{m: \"{{message}}\"}}}}\n",
        log.display(),
        receiver.url("/"),
    );
    let file = environment(&bed, dir.path(), &name, 1, &audit);
    // Upper case makes the reference invalid, and the daemon's refusal quotes it.
    let text = std::fs::read_to_string(&file).unwrap_or_default().replacen(
        &format!("image: {}", bed.image),
        &format!("image: registry.local/{SECRET}:1"),
        1,
    );
    std::fs::write(&file, text).expect("write env");
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));

    let started = run(dir.path(), &file, "bob@ci", &["start", "--plain"], &[]);
    assert_eq!(started.code, 1, "{started}");

    let records = log_records(&log);
    assert_eq!(records.len(), 3, "{records:#?}");
    assert_eq!(records[0], format!("INFO: bob@ci is starting {instance}."));
    assert!(
        records[1].starts_with(&format!(
            "DEBUG: Failed to start {instance} on a! (message: "
        )),
        "{records:#?}"
    );
    assert!(
        records[2].starts_with(&format!(
            "ERROR: Failed to start {instance}! (message: {instance}: "
        )),
        "{records:#?}"
    );
    assert!(records[2].contains("registry.local/***:1"), "{records:#?}");
    let file_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!file_text.contains(SECRET), "{file_text}");

    let requests = receiver.requests();
    // info level: begin and end only.
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let end = requests[1].json();
    let message = end["m"].as_str().unwrap_or_default();
    assert!(message.starts_with("Failed to start"), "{message}");
    for request in &requests {
        assert!(!request.body.contains(SECRET), "{request:?}");
    }
    remove(&bed, &[instance]);
}

#[test]
fn slack_gets_a_message_per_begin_and_end() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("aus");
    let receiver = Receiver::start(Some("{\"ok\": true}"));
    let audit = "  - {type: slack, channel: \"#deploys\", token: xoxb-test-token, name: deployer, \
                 icon: \"http://icons.example/m.png\"}\n";
    let file = environment(&bed, dir.path(), &name, 1, audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));
    let api = receiver.url("/api");
    let started = run(
        dir.path(),
        &file,
        "carol@desk",
        &["start", "--plain"],
        &[("MAESTRO_SLACK_API_URL", &api)],
    );
    assert_eq!(started.code, 0, "{started}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let colors: Vec<Value> = requests
        .iter()
        .map(|r| r.json()["attachments"][0]["color"].clone())
        .collect();
    assert_eq!(colors, vec!["#1dc7d3", "good"]);
    for request in &requests {
        assert_eq!(request.line, "POST /api/chat.postMessage HTTP/1.1");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer xoxb-test-token")
        );
        let body = request.json();
        assert_eq!(body["channel"], "#deploys");
        assert_eq!(body["username"], "deployer");
        assert_eq!(body["icon_url"], "http://icons.example/m.png");
    }
    assert_eq!(
        requests[0].json()["attachments"][0]["text"],
        format!("carol@desk is starting {instance}.")
    );

    // Slack's refusal (`ok: false`) is a failure, told as a warning at the end.
    let refusing = Receiver::start(Some("{\"ok\": false, \"error\": \"not_in_channel\"}"));
    let text = std::fs::read_to_string(&file).unwrap_or_default().replace(
        "token: xoxb-test-token",
        "token: xoxb-test-token, ignore_errors: true",
    );
    std::fs::write(&file, text).expect("write env");
    let api = refusing.url("/api");
    let again = run(
        dir.path(),
        &file,
        "carol@desk",
        &["start", "--plain"],
        &[("MAESTRO_SLACK_API_URL", &api)],
    );
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stderr.contains(
            "warning: audit: audit[0] (slack, channel #deploys) could not record the start of \
             `start`: Slack refused the message (status 200): not_in_channel"
        ),
        "{again}"
    );
    remove(&bed, &[instance]);
}

#[test]
fn exec_runs_its_script_on_success_with_the_containers_on_stdin() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("aue");
    let out = dir.path().join("script.out");
    let script = dir.path().join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"args: $*\" >> {out}\necho \"who: $MAESTRO_AUDIT_WHO\" >> {out}\n\
             cat >> {out}\necho >> {out}\n",
            out = out.display()
        ),
    )
    .expect("write script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let audit = format!(
        "  - {{type: exec, script: \"{}\", args: \"--did {{action}} --twice\"}}\n",
        script.display()
    );
    let file = environment(&bed, dir.path(), &name, 1, &audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));
    let started = run(dir.path(), &file, "dave@box", &["start", "--plain"], &[]);
    assert_eq!(started.code, 0, "{started}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "runs once, on success: {text}");
    assert_eq!(lines[0], "args: --did start --twice");
    assert_eq!(lines[1], "who: dave@box");
    let stdin: Value = serde_json::from_str(lines[2]).unwrap_or_else(|e| panic!("{e}: {text}"));
    let ip = bed.ship(&bed.outer_ships()[0].name.clone()).ip.clone();
    assert_eq!(
        stdin,
        serde_json::json!({instance.clone(): {"ship": ip, "service": "web"}})
    );

    // A script that fails is told, and the command's result stands.
    std::fs::write(&script, "#!/bin/sh\necho 'no space left' >&2\nexit 3\n").expect("write");
    let again = run(dir.path(), &file, "dave@box", &["start", "--plain"], &[]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stderr.contains(&format!(
            "warning: audit: audit[0] (exec, {s}) could not record how `start` ended: {s} \
             exited with status 3: no space left; the command's result stands",
            s = script.display()
        )),
        "{again}"
    );
    remove(&bed, &[instance]);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn an_unreachable_auditor_stops_the_command_unless_it_ignores_errors() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("auu");
    let port = closed_port();
    let log = dir.path().join("audit.log");
    let audit = format!(
        "  - {{type: http, endpoint: \"http://127.0.0.1:{port}/secret-path\"}}\n  - {{type: log, \
         file: \"{}\"}}\n",
        log.display()
    );
    let file = environment(&bed, dir.path(), &name, 1, &audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));

    let refused = run(dir.path(), &file, "erin@desk", &["start", "--plain"], &[]);
    assert_eq!(refused.code, 1, "{refused}");
    let expected = format!(
        "audit: audit[0] (http, http://127.0.0.1:{port}) could not record the start of `start`: \
         cannot connect to 127.0.0.1:{port}: Connection refused"
    );
    assert!(refused.stderr.contains(&expected), "{refused}");
    assert!(refused.stderr.contains("nothing was changed"), "{refused}");
    assert!(
        refused.stderr.contains("set `ignore_errors: true` on it"),
        "{refused}"
    );
    assert!(!refused.all().contains("secret-path"), "{refused}");
    assert!(
        !exists(&bed, &instance),
        "a container was created: {refused}"
    );
    // The auditor that heard the command begin hears that nothing followed, and why.
    assert_eq!(
        log_records(&log),
        vec![
            format!("INFO: erin@desk is starting {instance}."),
            format!(
                "ERROR: Failed to start {instance}! (message: refused: audit[0] (http, \
                 http://127.0.0.1:{port}) could not record its start)"
            ),
        ]
    );
    std::fs::remove_file(&log).expect("remove log");

    // The lock was released: the same command goes on once the auditor ignores errors.
    let text = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .replace("/secret-path\"}", "/secret-path\", ignore_errors: true}");
    std::fs::write(&file, text).expect("write env");
    let started = run(dir.path(), &file, "erin@desk", &["start", "--plain"], &[]);
    assert_eq!(started.code, 0, "{started}");
    assert!(exists(&bed, &instance), "{started}");
    assert!(
        started.stderr.contains(&format!(
            "warning: {expected} (os error 111); it has ignore_errors: true, so the command \
             went on"
        )),
        "{started}"
    );
    assert!(
        started
            .stderr
            .contains("could not record how `start` ended: cannot connect to 127.0.0.1"),
        "{started}"
    );
    remove(&bed, &[instance]);
}

#[test]
fn hipchat_says_it_is_gone_and_contacts_nothing() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("auh");
    let audit = "  - {type: hipchat, room: ops, token: hc-token-1234, level: debug}\n";
    let file = environment(&bed, dir.path(), &name, 1, audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));
    let started = run(dir.path(), &file, "fay@desk", &["start", "--plain"], &[]);
    assert_eq!(started.code, 0, "{started}");
    let warning = "warning: audit: audit[0] (hipchat, room ops): HipChat no longer exists as a \
                   service; nothing was sent";
    assert_eq!(
        started.stderr.matches(warning).count(),
        1,
        "once per command: {started}"
    );
    remove(&bed, &[instance]);
}

/// Ctrl-C while an auditor does not answer: the command ends at once, having changed nothing
/// and left no lock.
#[test]
fn ctrl_c_works_while_an_auditor_is_slow() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("auc");
    let silent = Receiver::start(None);
    let audit = format!(
        "  - {{type: http, endpoint: \"{}\", timeout: 120}}\n",
        silent.url("/")
    );
    let file = environment(&bed, dir.path(), &name, 1, &audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));
    let started = Instant::now();
    let child = common::maestro(dir.path())
        .arg("-f")
        .arg(&file)
        .args(["start", "--plain"])
        .env("MAESTRO_LOCK_HOLDER", "gus@desk")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maestro");
    let asked = support::wait_for(Duration::from_secs(60), || !silent.requests().is_empty());
    assert!(asked, "the auditor was never asked");
    let interrupted_at = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = support::finish_within(child, support::RUN_LIMIT, started);
    assert_eq!(out.code, 130, "{out}");
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(30),
        "Ctrl-C took {:?}: {out}",
        interrupted_at.elapsed()
    );
    assert!(
        out.stderr
            .contains("interrupted while the auditors heard the start; nothing was changed"),
        "{out}"
    );
    assert!(!exists(&bed, &instance), "{out}");
    let status = run(
        dir.path(),
        &file,
        "gus@desk",
        &["--json", "lock", "status"],
        &[],
    );
    assert!(
        !status.stdout.contains("gus@desk"),
        "a lock was left: {status}"
    );
}

/// A restart is one command to the auditors: one begin, one end, and at `debug` one record
/// per instance of each run (here one: a restart in place).
#[test]
fn a_restart_is_one_command_with_a_record_per_instance_at_debug() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("aur");
    let log = dir.path().join("audit.log");
    let audit = format!(
        "  - {{type: log, file: \"{}\", level: debug}}\n",
        log.display()
    );
    let file = environment(&bed, dir.path(), &name, 1, &audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));
    let started = run(dir.path(), &file, "hal@desk", &["start", "--plain"], &[]);
    assert_eq!(started.code, 0, "{started}");
    std::fs::remove_file(&log).expect("remove log");
    let restarted = run(
        dir.path(),
        &file,
        "hal@desk",
        &["restart", "-a", "--plain"],
        &[],
    );
    assert_eq!(restarted.code, 0, "{restarted}");
    assert_eq!(
        log_records(&log),
        vec![
            format!("INFO: hal@desk is restarting {instance}."),
            // Nothing depends on it and nothing changed: one restart in place.
            format!("DEBUG: Restart of {instance} on a succeeded (restarted)."),
            format!("INFO: Restart of {instance} succeeded."),
        ]
    );
    remove(&bed, &[instance]);
}

/// A command the deploy lock refuses changed nothing: the auditors that heard it begin (the
/// begin record goes out while the locks are taken) hear that it was refused, and by whom.
#[test]
fn a_command_the_lock_refuses_is_told_to_the_auditors_as_refused() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("aul");
    let log = dir.path().join("audit.log");
    let audit = format!("  - {{type: log, file: \"{}\"}}\n", log.display());
    let file = environment(&bed, dir.path(), &name, 1, &audit);
    let instance = format!("{name}-web-1");
    remove(&bed, std::slice::from_ref(&instance));

    let window = run(
        dir.path(),
        &file,
        "ivy@desk",
        &["lock", "acquire", "-m", "upgrade"],
        &[],
    );
    assert_eq!(window.code, 0, "{window}");
    let refused = run(dir.path(), &file, "jo@desk", &["start", "--plain"], &[]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(!exists(&bed, &instance), "{refused}");
    let records = log_records(&log);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0], format!("INFO: jo@desk is starting {instance}."));
    assert!(
        records[1].starts_with(&format!(
            "ERROR: Failed to start {instance}! (message: refused: ship a: the deploy lock of \
             environment `{name}` is held by ivy@desk"
        )),
        "{records:?}"
    );
    let released = run(dir.path(), &file, "ivy@desk", &["lock", "release"], &[]);
    assert_eq!(released.code, 0, "{released}");
}
