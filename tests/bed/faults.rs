//! Faults during `start`, on the real test bed: a ship's sshd killed mid-run, a ship's dockerd
//! stopped, a ship that does not answer at all, the bastion down, Ctrl-C once and twice. Each
//! test runs the built binary with `--json`, reads its events, and asserts the state of every
//! container afterwards through each ship's Docker daemon.
//!
//! The faults are injected from outside maestro, in the ships' network namespaces (helpers at
//! the top), and undone by guards even when a test fails, so that the shared bed is left as it
//! was found. The tests of this file run one at a time (they break ships).
//!
//! docs/reliability.md lists these faults; `reliability_doc_lists_every_fault` keeps it in step.

use crate::common;
use common::support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use common::TestBed;
use support::{DockerdStopped, PacketsDropped, RUN_LIMIT, Run, wait_for};

/// The faults tried, with what maestro does; each name is a test below.
const FAULTS: &[(&str, &str, &str)] = &[
    (
        "sshd_killed_in_the_middle_of_start",
        "every sshd process of one ship killed while `start` waits on a lifecycle check elsewhere",
        "instances on other ships (and those already done on the lost ship) finish; the lost ship's next instance fails with the transport error naming the ship; its dependents are skipped naming it; exit 1; once sshd is back, a second `start` converges with every container running",
    ),
    (
        "dockerd_stopped",
        "one ship's dockerd stopped before `start`",
        "that ship's instances fail naming the Docker socket, their dependents are skipped, other ships finish; exit 1; with dockerd back a second `start` converges",
    ),
    (
        "ship_that_does_not_answer",
        "one ship drops every packet to its sshd (iptables in its namespace)",
        "its instances fail with a timeout after the ship's `ssh_timeout` (2 s here: seconds, not minutes), dependents skipped, other ships finish; exit 1",
    ),
    (
        "bastion_down",
        "the bastion's sshd stopped: ships behind it are unreachable",
        "instances of the inner ship fail naming the bastion hop, their dependents are skipped, outer ships finish; exit 1",
    ),
    (
        "ctrl_c_during_start",
        "SIGINT while an instance waits on its lifecycle check",
        "nothing new starts; the check in progress (a 300 s wait) is cancelled and reported cancelled, the run ends within 60 s of the signal; later instances are reported cancelled; exit 130; the summary says `interrupted`; no container is left created-but-not-started without an event saying so",
    ),
    (
        "second_ctrl_c_aborts_at_once",
        "SIGINT during `stop` of a container that ignores SIGTERM (60 s stop timeout), then SIGINT again",
        "the first (sent once Docker has the stop request) lets the stop in flight go on; the second drops it at once: exit 130 within 20 s of it while Docker still reports the container running, the summary says `aborted` and the dropped stop's event that the state on the ship is unknown",
    ),
];

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// --- fault injection ---------------------------------------------------------------------

/// Pids of the processes named `comm` whose network namespace is `ns`.
fn pids_in_netns(ns: &str, comm: &str) -> Vec<u32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap_or_else(|e| panic!("ip netns pids: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// Every sshd of a host killed (the listener and each session), as when the daemon or the
/// host dies; started again on drop.
struct SshdKilled<'a> {
    bed: &'a TestBed,
    host: String,
    restored: bool,
}

impl<'a> SshdKilled<'a> {
    fn new(bed: &'a TestBed, host: &str, netns: &str) -> SshdKilled<'a> {
        bed.set_sshd_running(host, false);
        for pid in pids_in_netns(netns, "sshd") {
            signal(pid, "KILL");
        }
        assert!(
            wait_for(Duration::from_secs(5), || pids_in_netns(netns, "sshd")
                .is_empty()),
            "sshd processes of {host} survived"
        );
        SshdKilled {
            bed,
            host: host.to_string(),
            restored: false,
        }
    }

    fn restore(&mut self) {
        if !self.restored {
            self.restored = true;
            self.bed.set_sshd_running(&self.host, true);
        }
    }
}

impl Drop for SshdKilled<'_> {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The bastion's sshd stopped; started again on drop.
struct BastionDown<'a> {
    bed: &'a TestBed,
}

impl Drop for BastionDown<'_> {
    fn drop(&mut self) {
        self.bed.set_sshd_running("bastion", true);
    }
}

// --- running maestro ---------------------------------------------------------------------

struct Env {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    /// Instance -> bed ship name.
    placement: BTreeMap<String, String>,
}

/// Ship letters of the files below: `a`, `b` outer, `v` the victim (outer), `c` the inner
/// ship behind the bastion.
fn ship_letters(bed: &TestBed) -> BTreeMap<&'static str, common::Ship> {
    let outer = bed.outer_ships();
    assert!(outer.len() >= 3, "the fault tests need 3 outer ships");
    let mut m = BTreeMap::new();
    m.insert("a", outer[0].clone());
    m.insert("b", outer[1].clone());
    m.insert("v", outer[2].clone());
    if let Some(inner) = bed.inner_ships().first() {
        m.insert("c", (*inner).clone());
    }
    m
}

/// One service of a test environment: `(service, requires, [(instance, ship letter)], extra
/// service YAML)`.
type ServiceRow<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Writes an environment file of `services`; `victim_extra` is added to ship `v`'s entry.
fn environment(bed: &TestBed, name: &str, services: &[ServiceRow<'_>], victim_extra: &str) -> Env {
    let letters = ship_letters(bed);
    let mut text = format!("name: {name}\nship_defaults:\n  timeout: 10\nships:\n");
    for (letter, ship) in &letters {
        let extra = if *letter == "v" { victim_extra } else { "" };
        text.push_str(&bed.ship_yaml_with(&ship.name, letter, extra));
    }
    text.push_str("services:\n");
    let mut placement = BTreeMap::new();
    for (service, requires, instances, extra) in services {
        text.push_str(&format!(
            "  {service}:\n    image: {}\n    requires: [{}]\n{extra}    instances:\n",
            bed.image,
            requires.join(", ")
        ));
        for (instance, letter) in *instances {
            text.push_str(&format!(
                "      {instance}: {{ship: {letter}, command: sleep 3600, stop_timeout: 1}}\n"
            ));
            placement.insert(instance.to_string(), letters[letter].name.clone());
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("env.yaml"), text).expect("write env.yaml");
    let path = dir.path().to_path_buf();
    let env = Env {
        _dir: dir,
        dir: path,
        placement,
    };
    remove_containers(bed, &env);
    env
}

fn remove_containers(bed: &TestBed, env: &Env) {
    for (instance, ship) in &env.placement {
        let _ = bed.docker_cli(ship, &["rm", "-f", instance]);
    }
}

fn spawn_start(env: &Env, extra: &[&str]) -> Child {
    let mut args = vec!["-f", "env.yaml", "start"];
    args.extend_from_slice(extra);
    support::maestro_command(&env.dir, &args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maestro")
}

/// Waits for maestro at most [`RUN_LIMIT`]: a hang fails the test, it does not hang the suite.
fn finish(child: Child, started: Instant) -> Run {
    support::finish_within(child, RUN_LIMIT, started)
}

fn start(env: &Env) -> Run {
    let started = Instant::now();
    finish(spawn_start(env, &["--json"]), started)
}

/// The one terminal event of each instance: (kind, reason). Asserts there is exactly one.
fn outcomes(run: &Run) -> BTreeMap<String, (String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in run.events() {
        let kind = e["event"].as_str().unwrap_or_default();
        if matches!(
            kind,
            "job_done" | "job_failed" | "job_skipped" | "job_cancelled"
        ) {
            let instance = e["instance"].as_str().unwrap_or_default().to_string();
            let reason = e["reason"].as_str().unwrap_or_default().to_string();
            let previous = out.insert(instance.clone(), (kind.to_string(), reason));
            assert!(
                previous.is_none(),
                "{instance} has two terminal events\n{run}"
            );
        }
    }
    out
}

fn kind_of<'a>(
    outcomes: &'a BTreeMap<String, (String, String)>,
    instance: &str,
    run: &Run,
) -> &'a str {
    outcomes
        .get(instance)
        .map(|(k, _)| k.as_str())
        .unwrap_or_else(|| panic!("no terminal event for {instance}\n{run}"))
}

/// The container's state (`running`, `created`, `exited`...), `None` when there is none.
fn container_state(bed: &TestBed, ship: &str, name: &str) -> Option<String> {
    let out = bed.docker_cli(ship, &["inspect", "-f", "{{.State.Status}}", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits up to `seconds` for container `name` on `ship` to be running; fails the test if not.
fn await_running(bed: &TestBed, ship: &str, name: &str, seconds: u64) {
    assert!(
        wait_for(Duration::from_secs(seconds), || {
            container_state(bed, ship, name).as_deref() == Some("running")
        }),
        "{name} never ran on {ship}"
    );
}

/// Every instance of the file: its container's state, asserted against `expected` (`None` =
/// no container).
fn assert_states(bed: &TestBed, env: &Env, expected: &[(&str, Option<&str>)], run: &Run) {
    for (instance, want) in expected {
        let ship = &env.placement[*instance];
        let got = container_state(bed, ship, instance);
        assert_eq!(
            got.as_deref(),
            *want,
            "container {instance} on {ship}\n{run}"
        );
    }
}

fn assert_all_running(bed: &TestBed, env: &Env, run: &Run) {
    for (instance, ship) in &env.placement {
        assert_eq!(
            container_state(bed, ship, instance).as_deref(),
            Some("running"),
            "{instance} on {ship}\n{run}"
        );
    }
}

// --- the faults --------------------------------------------------------------------------

#[test]
fn sshd_killed_in_the_middle_of_start() {
    let _serial = serial();
    let bed = TestBed::shared();
    let letters = ship_letters(&bed);
    let victim = letters["v"].clone();
    let env = environment(
        &bed,
        "fault-sshd",
        &[
            (
                "gate",
                &[],
                &[("gate-1", "a")],
                "    lifecycle:\n      running: [{type: sleep, wait: 6}]\n",
            ),
            ("early", &[], &[("early-1", "v")], ""),
            ("free", &[], &[("free-1", "b")], ""),
            ("lost", &["gate"], &[("lost-1", "v")], ""),
            ("after", &["lost"], &[("after-1", "a")], ""),
        ],
        "",
    );
    let started = Instant::now();
    let child = spawn_start(&env, &["--json"]);
    await_running(&bed, &letters["a"].name, "gate-1", 60);
    // early-1 is independent and quick: let it finish on the victim before the fault.
    await_running(&bed, &victim.name, "early-1", 30);
    let mut killed = SshdKilled::new(&bed, &victim.name, &victim.netns);
    let run = finish(child, started);
    let out = outcomes(&run);
    assert_eq!(run.code, 1, "{run}");
    for done in ["gate-1", "early-1", "free-1"] {
        assert_eq!(kind_of(&out, done, &run), "job_done", "{done}\n{run}");
    }
    assert_eq!(kind_of(&out, "lost-1", &run), "job_failed", "{run}");
    // The transport error, naming the lost ship (`v` in the file).
    let reason = &out["lost-1"].1;
    eprintln!("lost-1 failed: {reason}");
    assert!(
        reason.contains("ship v:") && is_transport_error(reason),
        "lost-1 must fail with the transport error naming ship v: {reason}\n{run}"
    );
    assert_eq!(kind_of(&out, "after-1", &run), "job_skipped", "{run}");
    assert!(out["after-1"].1.contains("lost-1"), "{run}");
    assert_states(
        &bed,
        &env,
        &[
            ("gate-1", Some("running")),
            ("early-1", Some("running")),
            ("free-1", Some("running")),
            ("lost-1", None),
            ("after-1", None),
        ],
        &run,
    );

    killed.restore();
    let again = start(&env);
    assert_eq!(again.code, 0, "second start must converge\n{again}");
    assert_all_running(&bed, &env, &again);
    remove_containers(&bed, &env);
}

/// A reason that comes from losing the SSH transport (the connection or its session), not
/// from Docker or the file.
fn is_transport_error(reason: &str) -> bool {
    let r = reason.to_lowercase();
    [
        "ssh",
        "connection",
        "session",
        "channel",
        "refused",
        "reset",
        "closed",
    ]
    .iter()
    .any(|w| r.contains(w))
}

/// The environment of the one-ship-lost faults: `lost-1` on the ship of `letter`,
/// `needs-lost-1` (requires it) on `a`, `free-1` (independent) on `b`.
fn one_ship_environment(bed: &TestBed, name: &str, letter: &str, victim_extra: &str) -> Env {
    environment(
        bed,
        name,
        &[
            ("lost", &[], &[("lost-1", letter)], ""),
            ("needs-lost", &["lost"], &[("needs-lost-1", "a")], ""),
            ("free", &[], &[("free-1", "b")], ""),
        ],
        victim_extra,
    )
}

/// What losing one ship must leave: exit 1; `lost-1` failed with a reason that `cause`
/// accepts, `needs-lost-1` skipped, `free-1` done and the only container running.
fn assert_one_ship_lost(bed: &TestBed, env: &Env, run: &Run, cause: impl Fn(&str) -> bool) {
    let out = outcomes(run);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(kind_of(&out, "free-1", run), "job_done", "{run}");
    assert_eq!(kind_of(&out, "lost-1", run), "job_failed", "{run}");
    assert!(cause(&out["lost-1"].1), "unexpected cause\n{run}");
    assert_eq!(kind_of(&out, "needs-lost-1", run), "job_skipped", "{run}");
    assert!(out["needs-lost-1"].1.contains("lost-1"), "{run}");
    assert_states(
        bed,
        env,
        &[
            ("lost-1", None),
            ("needs-lost-1", None),
            ("free-1", Some("running")),
        ],
        run,
    );
}

#[test]
fn dockerd_stopped() {
    let _serial = serial();
    let bed = TestBed::shared();
    let letters = ship_letters(&bed);
    let env = one_ship_environment(&bed, "fault-dockerd", "v", "");
    let mut stopped = DockerdStopped::new(&bed, &letters["v"]);
    let run = start(&env);
    stopped.restore();
    let socket = letters["v"].docker_socket.display().to_string();
    assert_one_ship_lost(&bed, &env, &run, |cause| cause.contains(&socket));
    let again = start(&env);
    assert_eq!(again.code, 0, "{again}");
    assert_all_running(&bed, &env, &again);
    remove_containers(&bed, &env);
}

#[test]
fn ship_that_does_not_answer() {
    let _serial = serial();
    let bed = TestBed::shared();
    let letters = ship_letters(&bed);
    let env = one_ship_environment(&bed, "fault-silent", "v", ", ssh_timeout: 2");
    let _dropped = PacketsDropped::new(&letters["v"].netns);
    let run = start(&env);
    assert!(
        run.elapsed < Duration::from_secs(30),
        "the connect timeout is 2 s, the run took {:?}\n{run}",
        run.elapsed
    );
    assert_one_ship_lost(&bed, &env, &run, |cause| {
        cause.contains("did not answer within 2s")
    });
    remove_containers(&bed, &env);
}

#[test]
fn bastion_down() {
    let _serial = serial();
    let bed = TestBed::shared();
    assert!(
        !bed.inner_ships().is_empty(),
        "bastion_down needs a bed with inner ships (bed.sh up --inner 1 or more); {} has none",
        bed.name
    );
    let env = one_ship_environment(&bed, "fault-bastion", "c", "");
    bed.set_sshd_running("bastion", false);
    let guard = BastionDown { bed: &bed };
    let run = start(&env);
    drop(guard);
    assert_one_ship_lost(&bed, &env, &run, |cause| cause.contains(&bed.bastion().ip));
    remove_containers(&bed, &env);
}

/// Every container of the file is running, absent, or its instance's event says what was
/// left (a container created but not started is never left silently).
fn assert_nothing_half_made(bed: &TestBed, env: &Env, run: &Run) {
    let out = outcomes(run);
    for (instance, ship) in &env.placement {
        match container_state(bed, ship, instance).as_deref() {
            None | Some("running") => {}
            Some(state) => {
                let reason = out.get(instance).map(|(_, r)| r.as_str()).unwrap_or("");
                assert!(
                    reason.contains("created") || reason.contains(state),
                    "{instance} left {state} without saying so\n{run}"
                );
            }
        }
    }
}

#[test]
fn ctrl_c_during_start() {
    let _serial = serial();
    let bed = TestBed::shared();
    let letters = ship_letters(&bed);
    let env = environment(
        &bed,
        "fault-sigint",
        &[
            (
                "slow",
                &[],
                &[("slow-1", "a")],
                "    lifecycle:\n      running: [{type: sleep, wait: 300}]\n",
            ),
            ("free", &[], &[("free-1", "b")], ""),
            ("later", &["slow"], &[("later-1", "b")], ""),
        ],
        "",
    );
    let started = Instant::now();
    let child = spawn_start(&env, &["--json"]);
    await_running(&bed, &letters["a"].name, "slow-1", 60);
    await_running(&bed, &letters["b"].name, "free-1", 30);
    let interrupted_at = Instant::now();
    signal(child.id(), "INT");
    let run = finish(child, started);
    assert_eq!(run.code, 130, "{run}");
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(60),
        "the 300 s check was not cancelled: the run ended {:?} after the signal\n{run}",
        interrupted_at.elapsed()
    );
    let evs = run.events();
    assert!(
        evs.iter()
            .any(|e| e["event"] == "interrupted" && e["abort"] == false),
        "{run}"
    );
    let finished = evs
        .iter()
        .find(|e| e["event"] == "plan_finished")
        .unwrap_or_else(|| panic!("no plan_finished\n{run}"));
    assert_eq!(finished["summary"]["interrupted"], true, "{run}");
    let out = outcomes(&run);
    assert_eq!(kind_of(&out, "free-1", &run), "job_done", "{run}");
    assert_eq!(kind_of(&out, "later-1", &run), "job_cancelled", "{run}");
    assert_eq!(kind_of(&out, "slow-1", &run), "job_cancelled", "{run}");
    assert_states(
        &bed,
        &env,
        &[("later-1", None), ("free-1", Some("running"))],
        &run,
    );
    assert_nothing_half_made(&bed, &env, &run);
    remove_containers(&bed, &env);
}

/// stdout of a child read line by line as it comes (for events to wait on), and kept whole.
struct LiveStdout {
    lines: mpsc::Receiver<String>,
    all: std::thread::JoinHandle<String>,
}

impl LiveStdout {
    fn new(child: &mut Child) -> LiveStdout {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        let all = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        LiveStdout { lines, all }
    }

    /// Waits up to `limit` for a JSON event line that `want` accepts.
    fn wait_event(&self, limit: Duration, want: impl Fn(&serde_json::Value) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if serde_json::from_str(&line).is_ok_and(|e| want(&e)) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }
}

/// Docker's `kill` events of container `name` on `ship` since `since` (Docker sends the stop
/// signal as a `kill` event as soon as it handles a stop request).
fn kill_events(bed: &TestBed, ship: &str, name: &str, since: SystemTime) -> usize {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs()
            .to_string()
    };
    let out = bed.docker_cli(
        ship,
        &[
            "events",
            "--since",
            &secs(since),
            "--until",
            &secs(SystemTime::now() + Duration::from_secs(1)),
            "--filter",
            &format!("container={name}"),
            "--filter",
            "event=kill",
            "--format",
            "{{.Action}}",
        ],
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The first Ctrl-C lets an operation in flight finish; the second drops it at once. The
/// operation here is `stop` of a container whose PID 1 ignores SIGTERM (`sleep`), with a
/// 60 s stop timeout. No fixed sleeps: the first SIGINT goes once Docker reports the stop
/// request (its `kill` event), the second once maestro reports the first.
#[test]
fn second_ctrl_c_aborts_at_once() {
    let _serial = serial();
    let bed = TestBed::shared();
    let letters = ship_letters(&bed);
    let ship = letters["a"].name.clone();
    let env = environment(
        &bed,
        "fault-sigint2",
        &[("stubborn", &[], &[("stubborn-1", "a")], "")],
        "",
    );
    let file = env.dir.join("env.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("stop_timeout: 1", "stop_timeout: 60")).expect("write");
    let first = start(&env);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(
        container_state(&bed, &ship, "stubborn-1").as_deref(),
        Some("running"),
        "{first}"
    );

    // Docker's event timestamps have a resolution of a second: start from the one before.
    let since = SystemTime::now() - Duration::from_secs(1);
    let started = Instant::now();
    let mut child = common::maestro(&env.dir)
        .args(["-f", "env.yaml", "stop", "-a", "--json"])
        .current_dir(&env.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maestro stop");
    let live = LiveStdout::new(&mut child);
    let reached = wait_for(Duration::from_secs(60), || {
        kill_events(&bed, &ship, "stubborn-1", since) > 0
    });
    if !reached {
        let _ = child.kill();
    }
    assert!(reached, "the stop request never reached Docker");

    signal(child.id(), "INT");
    let first_seen = live.wait_event(Duration::from_secs(30), |e| {
        e["event"] == "interrupted" && e["abort"] == false
    });
    if !first_seen {
        let _ = child.kill();
    }
    assert!(first_seen, "maestro never reported the first Ctrl-C");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the first Ctrl-C must let the stop in flight go on"
    );
    assert_eq!(
        container_state(&bed, &ship, "stubborn-1").as_deref(),
        Some("running"),
        "the stop in flight waits out its 60 s timeout"
    );

    let interrupted_at = Instant::now();
    signal(child.id(), "INT");
    let mut run = support::finish_within(child, Duration::from_secs(120), started);
    let after_second = interrupted_at.elapsed();
    // Read right away: the stop dropped by maestro had up to 60 s left in Docker.
    let state = container_state(&bed, &ship, "stubborn-1");
    run.stdout = live.all.join().expect("stdout reader");
    assert_eq!(run.code, 130, "{run}");
    assert!(
        after_second < Duration::from_secs(20),
        "the second Ctrl-C took {after_second:?} against a 60 s stop\n{run}"
    );
    assert_eq!(
        state.as_deref(),
        Some("running"),
        "maestro must end while Docker still runs the stop it dropped\n{run}"
    );
    let evs = run.events();
    let interruptions: Vec<bool> = evs
        .iter()
        .filter(|e| e["event"] == "interrupted")
        .filter_map(|e| e["abort"].as_bool())
        .collect();
    assert_eq!(interruptions, vec![false, true], "{run}");
    let finished = evs
        .iter()
        .find(|e| e["event"] == "plan_finished")
        .unwrap_or_else(|| panic!("no plan_finished\n{run}"));
    assert_eq!(finished["summary"]["aborted"], true, "{run}");
    let out = outcomes(&run);
    assert_eq!(kind_of(&out, "stubborn-1", &run), "job_cancelled", "{run}");
    assert!(
        out["stubborn-1"].1.contains("unknown"),
        "the dropped stop's event says the state is unknown\n{run}"
    );
    remove_containers(&bed, &env);
}

/// Each fault is a test of this file and a row of docs/reliability.md.
#[test]
fn reliability_doc_lists_every_fault() {
    let source = include_str!("faults.rs");
    let rows: Vec<(String, String)> = FAULTS
        .iter()
        .map(|(name, fault, outcome)| {
            assert!(
                source.contains(&format!("fn {name}()")),
                "fault {name} has no test of that name"
            );
            (format!("`{name}`: {fault}"), outcome.to_string())
        })
        .collect();
    support::check_doc_section(
        &support::docs_dir().join("reliability.md"),
        "faults",
        &support::table(
            ("fault (test in tests/bed/faults.rs)", "what maestro does"),
            &rows,
        ),
    );
}
