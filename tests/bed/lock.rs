//! The deploy lock end to end on the test bed: two operators' commands at once, a
//! maintenance window, and the lock a killed operator leaves behind.
//!
//! A second operator is simulated with `MAESTRO_LOCK_HOLDER` (the holder's name; without it,
//! `user@host`): both "operators" run on this machine, so the pid of a holder is checked.
//! Each test has its own environment name, so its locks are its own.
//!
//! Needs root. Uses the bed named by `MAESTRO_TESTBED` if set, else brings up its own.

use crate::common;
use common::support::{self, Run};

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{SharedBed, TestBed};
use serde_json::Value;

fn bed() -> SharedBed {
    TestBed::shared()
}

/// An environment named `name` on ship1 (`a`) and the inner ship (`c`, through the
/// bastion): `slow-1` on `a` takes `wait` seconds to be declared running, `quick-1` is on `c`.
fn environment(bed: &TestBed, dir: &Path, name: &str, wait: u32) -> PathBuf {
    let inner = bed.inner_ships()[0].name.clone();
    let outer = bed.outer_ships()[0].name.clone();
    let ships = format!(
        "{}{}",
        bed.ship_yaml(&outer, "a"),
        bed.ship_yaml(&inner, "c")
    );
    environment_on(dir, name, &ships, wait, "c")
}

/// An environment named `name` on the ships `ships` (YAML lines, one of them `a`): `slow-1`
/// on `a` takes `wait` seconds to be declared running, `quick-1` is on `quick_ship`.
fn environment_on(dir: &Path, name: &str, ships: &str, wait: u32, quick_ship: &str) -> PathBuf {
    let yaml = format!(
        "name: {name}\nships:\n{ships}services:\n  slow:\n    image: maestro-test:latest\n    \
         instances:\n      {name}-slow-1:\n        ship: a\n        command: sleep 3600\n        \
         stop_timeout: 1\n        lifecycle:\n          running: [{{type: sleep, wait: {wait}}}]\n  \
         quick:\n    image: maestro-test:latest\n    instances:\n      {name}-quick-1:\n        \
         ship: {quick_ship}\n        command: sleep 3600\n        stop_timeout: 1\n",
    );
    let file = dir.join("env.yaml");
    std::fs::write(&file, yaml).expect("write env");
    file
}

/// A test's environment name, unique per test (its letters) and per run (the pid).
fn unique(letters: &str) -> String {
    format!("{letters}{}", std::process::id() % 100_000)
}

/// The usual start of a test: the shared bed, a directory, a unique environment named
/// after `letters` on `a` and `c` (see [`environment`], `wait` for its slow instance), and
/// no container of that name left on the ships.
fn fresh(letters: &str, wait: u32) -> (SharedBed, tempfile::TempDir, String, PathBuf) {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique(letters);
    let file = environment(&bed, dir.path(), &name, wait);
    remove_containers(&bed, &name);
    (bed, dir, name, file)
}

fn spawn(dir: &Path, file: &Path, holder: &str, args: &[&str]) -> Child {
    common::maestro(dir)
        .arg("-f")
        .arg(file)
        .args(args)
        .env("MAESTRO_LOCK_HOLDER", holder)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run maestro: {e}"))
}

fn run(dir: &Path, file: &Path, holder: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    support::finish_within(spawn(dir, file, holder, args), support::RUN_LIMIT, started)
}

fn status_json(dir: &Path, file: &Path) -> Value {
    let out = run(dir, file, "observer", &["--json", "lock", "status"]);
    assert_eq!(out.code, 0, "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The holder names on each ship, in ship order (`None` for a free ship).
fn holders(dir: &Path, file: &Path) -> Vec<Option<String>> {
    status_json(dir, file)["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| l["holder"]["holder"].as_str().map(str::to_string))
        .collect()
}

fn wait_until_held_by(dir: &Path, file: &Path, holder: &str) {
    let held = support::wait_for(Duration::from_secs(60), || {
        holders(dir, file)
            .iter()
            .all(|h| h.as_deref() == Some(holder))
    });
    assert!(held, "never held by {holder}: {:?}", status_json(dir, file));
}

/// Events about instances (a command that was refused must have none).
fn job_events(run: &Run) -> Vec<Value> {
    run.events()
        .into_iter()
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|k| k.starts_with("job_") || k == "step")
        })
        .collect()
}

fn remove_containers(bed: &TestBed, name: &str) {
    let outer = bed.outer_ships()[0].name.clone();
    let inner = bed.inner_ships()[0].name.clone();
    let _ = bed.docker_cli(&outer, &["rm", "-f", &format!("{name}-slow-1")]);
    let _ = bed.docker_cli(&inner, &["rm", "-f", &format!("{name}-quick-1")]);
}

fn container_exists(bed: &TestBed, ship: &str, container: &str) -> bool {
    bed.docker_cli(ship, &["inspect", container])
        .status
        .success()
}

#[test]
fn a_second_start_fails_at_once_naming_the_holder_and_changes_nothing() {
    let (bed, dir, name, file) = fresh("lka", 20);

    let started = Instant::now();
    let first = spawn(dir.path(), &file, "alice@desk1", &["--json", "start"]);
    wait_until_held_by(dir.path(), &file, "alice@desk1");

    let second = run(dir.path(), &file, "bob@desk2", &["--json", "start"]);
    // "At once": it ended while the first still holds the lock (its check lasts 20 s).
    let first_still_running = holders(dir.path(), &file)
        .iter()
        .all(|h| h.as_deref() == Some("alice@desk1"));
    let first = support::finish_within(first, support::RUN_LIMIT, started);

    assert_ne!(second.code, 0, "{second}");
    assert!(
        first_still_running,
        "the second start did not end at once: {second}"
    );
    for needle in [
        "deploy lock of environment",
        "held by alice@desk1",
        "`start`",
        "since ",
        "nothing was changed",
        "maestro lock status",
    ] {
        assert!(second.stderr.contains(needle), "no `{needle}`: {second}");
    }
    assert!(
        job_events(&second).is_empty(),
        "the refused start ran jobs: {second}"
    );

    assert_eq!(first.code, 0, "{first}");
    assert!(!job_events(&first).is_empty(), "{first}");
    let outer = bed.outer_ships()[0].name.clone();
    let inner = bed.inner_ships()[0].name.clone();
    assert!(container_exists(&bed, &outer, &format!("{name}-slow-1")));
    assert!(container_exists(&bed, &inner, &format!("{name}-quick-1")));
    // Released at the end: both ships are free again.
    assert_eq!(holders(dir.path(), &file), vec![None, None]);

    // The same start again by bob now runs (its instances were started already).
    let again = run(dir.path(), &file, "bob@desk2", &["--json", "start"]);
    assert_eq!(again.code, 0, "{again}");
    remove_containers(&bed, &name);
}

/// `args` run as `holder` with every Docker request in the log (`SHIP: Docker METHOD PATH:
/// STATUS in MS` on stderr).
fn run_traced(dir: &Path, file: &Path, holder: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = common::maestro(dir);
    child
        .arg("-f")
        .arg(file)
        .args(args)
        .env("MAESTRO_LOCK_HOLDER", holder)
        .env("MAESTRO_LOG", "maestro::transport::connector=debug")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = child
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run maestro: {e}"));
    support::finish_within(child, support::RUN_LIMIT, started)
}

/// How many requests `ship` was sent whose method and path start with `request`
/// (`GET /containers/json`), by `run`'s log (see [`run_traced`]).
fn requests(run: &Run, ship: &str, request: &str) -> usize {
    let prefix = format!("{ship}: Docker {request}");
    run.stderr.lines().filter(|l| l.contains(&prefix)).count()
}

/// Each job's outcome (`already running`, `started`).
fn outcomes(run: &Run) -> Vec<String> {
    job_events(run)
        .iter()
        .filter(|e| e["event"] == "job_done")
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A start lists its ships beside its lock: with nothing to do it decides from that list (the
/// lock's create, one list, the lock's removal per ship: two round trips), and it is still
/// refused while someone else holds the lock; with something to do it lists again under the
/// lock, so that it never decides from a list older than its lock.
#[test]
fn a_start_with_nothing_to_do_still_takes_the_lock_and_one_with_changes_lists_under_it() {
    let (bed, dir, name, file) = fresh("lkn", 0);
    let d = dir.path();
    let first = run(d, &file, "alice@desk1", &["--json", "start"]);
    assert_eq!(first.code, 0, "{first}");

    let noop = run_traced(d, &file, "alice@desk1", &["--json", "start"]);
    assert_eq!(noop.code, 0, "{noop}");
    assert_eq!(outcomes(&noop), ["already running"; 2], "{noop}");
    for ship in ["a", "c"] {
        for (request, times) in [
            ("GET /containers/json", 1),
            ("POST /containers/create", 1), // the lock's
            ("DELETE /containers/", 1),     // the lock's
            ("POST /containers/", 1),       // the same create: nothing else changed
        ] {
            assert_eq!(
                requests(&noop, ship, request),
                times,
                "{ship}: {request}: {noop}"
            );
        }
    }

    let window = run(d, &file, "bob@desk2", &["lock", "acquire", "-m", "backup"]);
    assert_eq!(window.code, 0, "{window}");
    let refused = run(d, &file, "alice@desk1", &["--json", "start"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("held by bob@desk2"), "{refused}");
    assert!(refused.stderr.contains("nothing was changed"), "{refused}");
    assert!(job_events(&refused).is_empty(), "{refused}");
    let released = run(d, &file, "bob@desk2", &["lock", "release"]);
    assert_eq!(released.code, 0, "{released}");

    // A change behind maestro's back, seen by the list taken under the lock.
    let inner = bed.inner_ships()[0].name.clone();
    let quick = format!("{name}-quick-1");
    bed.docker_ok(&inner, &["stop", "-t", "0", &quick]);
    let changed = run_traced(d, &file, "alice@desk1", &["--json", "start"]);
    assert_eq!(changed.code, 0, "{changed}");
    let mut seen = outcomes(&changed);
    seen.sort();
    assert_eq!(seen, ["already running", "started"], "{changed}");
    for ship in ["a", "c"] {
        assert_eq!(
            requests(&changed, ship, "GET /containers/json"),
            2,
            "{ship}: {changed}"
        );
    }
    let state = bed.docker_ok(&inner, &["inspect", "-f", "{{.State.Running}}", &quick]);
    assert_eq!(state.trim(), "true");
    assert_eq!(holders(d, &file), vec![None, None]);
    remove_containers(&bed, &name);
}

#[test]
fn a_maintenance_window_admits_its_holder_and_refuses_the_others() {
    let (bed, dir, name, file) = fresh("lkm", 0);
    let d = dir.path();

    let missing = run(d, &file, "alice@desk1", &["lock", "acquire"]);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(missing.stderr.contains("--message"), "{missing}");

    let taken = run(
        d,
        &file,
        "alice@desk1",
        &["lock", "acquire", "-m", "db upgrade"],
    );
    assert_eq!(taken.code, 0, "{taken}");
    assert!(taken.stdout.contains("db upgrade"), "{taken}");

    let shown = run(d, &file, "bob@desk2", &["lock", "status"]);
    assert_eq!(shown.code, 0, "{shown}");
    for needle in [
        "a: held for maintenance: alice@desk1",
        "c: held for maintenance: alice@desk1",
        "`lock acquire`",
        "\"db upgrade\"",
    ] {
        assert!(shown.stdout.contains(needle), "no `{needle}`: {shown}");
    }
    // The window outlives the `lock acquire` that opened it: its pid is not a liveness sign.
    assert!(!shown.stdout.contains("DEAD"), "{shown}");

    let refused = run(d, &file, "bob@desk2", &["--json", "start"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("held by alice@desk1"), "{refused}");
    assert!(refused.stderr.contains("\"db upgrade\""), "{refused}");
    assert!(job_events(&refused).is_empty(), "{refused}");
    let outer = bed.outer_ships()[0].name.clone();
    assert!(!container_exists(&bed, &outer, &format!("{name}-slow-1")));

    // Alice's own commands run under her window, which stays after them.
    let hers = run(d, &file, "alice@desk1", &["--json", "start"]);
    assert_eq!(hers.code, 0, "{hers}");
    assert!(container_exists(&bed, &outer, &format!("{name}-slow-1")));
    assert_eq!(
        holders(d, &file),
        vec![Some("alice@desk1".into()), Some("alice@desk1".into())]
    );

    // Bob cannot end it without --force; alice can.
    let not_his = run(d, &file, "bob@desk2", &["lock", "release"]);
    assert_eq!(not_his.code, 1, "{not_his}");
    assert!(not_his.stderr.contains("held by alice@desk1"), "{not_his}");
    assert!(not_his.stderr.contains("--force"), "{not_his}");
    let released = run(d, &file, "alice@desk1", &["lock", "release"]);
    assert_eq!(released.code, 0, "{released}");
    assert!(released.stdout.contains("a: released"), "{released}");
    assert_eq!(holders(d, &file), vec![None, None]);
    remove_containers(&bed, &name);
}

#[test]
fn a_killed_operators_lock_shows_dead_is_cleared_by_force_or_taken_over() {
    let (bed, dir, name, file) = fresh("lkk", 60);
    let d = dir.path();

    let mut victim = spawn(d, &file, "alice@desk1", &["--json", "start"]);
    let pid = victim.id();
    wait_until_held_by(d, &file, "alice@desk1");
    victim.kill().expect("kill -9");
    victim.wait().expect("reap");

    let shown = run(d, &file, "bob@desk2", &["lock", "status"]);
    assert_eq!(shown.code, 0, "{shown}");
    assert!(
        shown.stdout.contains("held by a command: alice@desk1"),
        "{shown}"
    );
    assert!(
        shown
            .stdout
            .contains(&format!("pid {pid} on this host is DEAD")),
        "{shown}"
    );
    let json = status_json(d, &file);
    assert_eq!(json["locks"][0]["alive"], Value::Bool(false), "{json}");
    assert_eq!(
        json["locks"][0]["holder"]["pid"],
        Value::from(pid),
        "{json}"
    );

    // Not released without --force: a command's lock is not anyone's to end.
    let plain = run(d, &file, "alice@desk1", &["lock", "release"]);
    assert_eq!(plain.code, 1, "{plain}");
    assert!(plain.stderr.contains("DEAD"), "{plain}");
    assert!(plain.stderr.contains("--force"), "{plain}");

    let forced = run(d, &file, "bob@desk2", &["lock", "release", "--force"]);
    assert_eq!(forced.code, 0, "{forced}");
    assert!(
        forced.stdout.contains("released (held by alice@desk1"),
        "{forced}"
    );
    assert_eq!(holders(d, &file), vec![None, None]);

    // Killed again: the next command takes the dead holder's lock over (its pid is on this
    // machine and gone), runs, and leaves the ships free.
    remove_containers(&bed, &name);
    let mut victim = spawn(d, &file, "alice@desk1", &["--json", "start"]);
    wait_until_held_by(d, &file, "alice@desk1");
    victim.kill().expect("kill -9");
    victim.wait().expect("reap");
    let next = run(d, &file, "bob@desk2", &["--json", "start"]);
    assert_eq!(next.code, 0, "{next}");
    // Told without -v: a takeover is something the operator must know of.
    assert!(
        next.stderr
            .contains("warning: took over the deploy lock of ship a: alice@desk1"),
        "{next}"
    );
    assert!(next.stderr.contains("is DEAD"), "{next}");
    assert_eq!(holders(d, &file), vec![None, None]);
    remove_containers(&bed, &name);
}

#[test]
fn ctrl_c_during_a_start_releases_its_locks() {
    let (bed, dir, name, file) = fresh("lki", 60);
    let d = dir.path();

    let started = Instant::now();
    let child = spawn(d, &file, "alice@desk1", &["--json", "start"]);
    wait_until_held_by(d, &file, "alice@desk1");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let interrupted = support::finish_within(child, support::RUN_LIMIT, started);
    assert_eq!(interrupted.code, 130, "{interrupted}");
    assert_eq!(holders(d, &file), vec![None, None], "{interrupted}");
    remove_containers(&bed, &name);
}

/// Alice's `start` holds the lock of every ship of `file` (its slow instance keeps it for a
/// while), bob's `start` meanwhile is refused at once, naming her, and runs nothing; then
/// alice's run ends and every ship is free.
fn alice_holds_and_bob_is_refused(dir: &Path, file: &Path) {
    let started = Instant::now();
    let first = spawn(dir, file, "alice@desk1", &["--json", "start"]);
    wait_until_held_by(dir, file, "alice@desk1");
    let second = run(dir, file, "bob@desk2", &["--json", "start"]);
    let first = support::finish_within(first, support::RUN_LIMIT, started);
    assert_eq!(second.code, 1, "{second}");
    assert!(second.stderr.contains("held by alice@desk1"), "{second}");
    assert!(job_events(&second).is_empty(), "{second}");
    assert_eq!(first.code, 0, "{first}");
    assert!(
        holders(dir, file).iter().all(Option::is_none),
        "{:?}",
        status_json(dir, file)
    );
}

/// This machine's name, as a lock record's `host` has it.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn a_lock_from_another_machine_by_this_hosts_name_is_never_taken_over() {
    let (bed, dir, name, file) = fresh("lkh", 0);
    let d = dir.path();
    let outer = bed.outer_ships()[0].name.clone();

    // Another CI machine, or a container in another pid namespace, with this host's name: its
    // pid means nothing here, whether or not a process of that number runs on this machine.
    let record = serde_json::json!({
        "holder": "carol@ci", "host": this_host(), "pid": 4_000_000,
        "machine": "00000000-0000-0000-0000-000000000000/pid:[4026531836]",
        "command": "start", "since": now_secs(), "kind": "command", "token": "theirs",
    });
    let lock = format!("maestro-lock.{name}.a");
    bed.docker_ok(
        &outer,
        &[
            "create",
            "--name",
            &lock,
            "--label",
            &format!("io.maestro.lock={record}"),
            "maestro-test:latest",
            "true",
        ],
    );

    let refused = run(d, &file, "bob@desk2", &["--json", "start"]);
    assert_eq!(refused.code, 1, "{refused}");
    for needle in [
        "ship a: the deploy lock",
        "held by carol@ci",
        "pid 4000000 on",
        "another machine or pid namespace by this host's name",
        "nothing was changed",
        "--force",
    ] {
        assert!(refused.stderr.contains(needle), "no `{needle}`: {refused}");
    }
    assert!(job_events(&refused).is_empty(), "{refused}");
    assert!(container_exists(&bed, &outer, &lock));
    assert!(!container_exists(&bed, &outer, &format!("{name}-slow-1")));

    let forced = run(d, &file, "bob@desk2", &["lock", "release", "--force"]);
    assert_eq!(forced.code, 0, "{forced}");
    assert!(
        forced.stdout.contains("a: released (held by carol@ci"),
        "{forced}"
    );
    assert!(!container_exists(&bed, &outer, &lock));
    remove_containers(&bed, &name);
}

/// A directory removed when the test ends, however it ends.
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_lock_directory_and_symlink_planted_on_the_ship_are_never_written_through() {
    let (bed, dir, name, file) = fresh("lks", 0);
    let d = dir.path();
    let ship = bed.outer_ships()[0].clone();

    // What any user of the ship could plant for the lock of the past (the ships share this
    // machine's /tmp): its directory under its predictable name, with the record of a dead
    // holder of this host, and a symlink where a takeover wrote the new record.
    let planted = Planted(PathBuf::from(format!(
        "/tmp/maestro-lock.{name}.a.{}",
        ship.ip
    )));
    std::fs::create_dir_all(&planted.0).expect("plant the directory");
    let forged = serde_json::json!({
        "holder": "mallory@ship", "host": this_host(), "pid": 4_000_000, "command": "start",
        "since": now_secs(), "kind": "command", "token": "planted",
    });
    std::fs::write(planted.0.join("holder.json"), forged.to_string()).expect("plant record");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    std::os::unix::fs::symlink(&victim, planted.0.join("holder.json.new")).expect("symlink");

    let started = run(d, &file, "bob@desk2", &["--json", "start"]);
    assert_eq!(started.code, 0, "{started}");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n",
        "the lock wrote through the planted symlink"
    );
    assert_eq!(holders(d, &file), vec![None, None]);
    remove_containers(&bed, &name);
}

/// sshd of `ship` restarted with the bed's own settings when the test ends, however it ends.
struct SshdRestored<'a>(&'a TestBed, String);

impl Drop for SshdRestored<'_> {
    fn drop(&mut self) {
        self.0.restart_sshd(&self.1, &[]);
    }
}

/// Serializes the tests that change the third outer ship's sshd (its settings, its
/// sessions); no other test of this file uses that ship.
static THIRD_SHIP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_deploy_only_account_with_no_session_channels_is_locked() {
    let _third = THIRD_SHIP.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("lkd");
    let ship = bed.outer_ships()[2].name.clone();
    let file = environment_on(dir.path(), &name, &bed.ship_yaml(&ship, "a"), 20, "a");
    // Forwarding still works; shells, commands and subsystems are refused.
    bed.restart_sshd(&ship, &["-o", "MaxSessions=0"]);
    let _restored = SshdRestored(&bed, ship.clone());
    let shell = bed.ssh(&ship, "true");
    assert!(!shell.status.success(), "MaxSessions=0 still ran a command");

    alice_holds_and_bob_is_refused(dir.path(), &file);
    let _ = bed.docker_cli(&ship, &["rm", "-f", &format!("{name}-slow-1")]);
    let _ = bed.docker_cli(&ship, &["rm", "-f", &format!("{name}-quick-1")]);
}

/// A TCP port on this machine relaying to `socket`: a daemon reached over plain TCP, as a
/// ship without `ssh:` is. The relay ends with the test process.
fn tcp_relay(socket: &Path) -> u16 {
    use std::net::TcpListener;
    use std::os::unix::net::UnixStream;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(unix) = UnixStream::connect(&socket) else {
                continue;
            };
            let (Ok(mut tcp_in), Ok(mut unix_out)) = (tcp.try_clone(), unix.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_in, &mut unix_out);
                let _ = unix_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut unix_in, mut tcp_out) = (unix, tcp);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut unix_in, &mut tcp_out);
                let _ = tcp_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn a_ship_reached_over_tcp_is_locked() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("lkt");
    let ship = bed.outer_ships()[0].clone();
    let port = tcp_relay(&ship.docker_socket);
    let ships = format!("  a: {{ip: 127.0.0.1, docker_port: {port}}}\n");
    let file = environment_on(dir.path(), &name, &ships, 20, "a");
    remove_containers(&bed, &name);
    let _ = bed.docker_cli(&ship.name, &["rm", "-f", &format!("{name}-quick-1")]);

    alice_holds_and_bob_is_refused(dir.path(), &file);
    let _ = bed.docker_cli(&ship.name, &["rm", "-f", &format!("{name}-quick-1")]);
    remove_containers(&bed, &name);
}

#[test]
fn ctrl_c_during_lock_acquire_releases_the_locks_taken() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("lkc");
    let live = bed.outer_ships()[0].name.clone();
    let silent = bed.outer_ships()[1].clone();
    let ships = format!(
        "{}{}",
        bed.ship_yaml(&live, "a"),
        bed.ship_yaml_with(&silent.name, "b", ", timeout: 60")
    );
    let file = environment_on(dir.path(), &name, &ships, 0, "b");
    let _silent = support::PacketsDropped::new(&silent.netns);

    // `a` answers at once and is locked; `b` never answers, so the acquisition waits.
    let started = Instant::now();
    let child = spawn(
        dir.path(),
        &file,
        "alice@desk1",
        &["lock", "acquire", "-m", "window"],
    );
    let lock = format!("maestro-lock.{name}.a");
    let taken = support::wait_for(Duration::from_secs(30), || {
        container_exists(&bed, &live, &lock)
    });
    assert!(taken, "a's lock was never taken");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let interrupted = support::finish_within(child, Duration::from_secs(30), started);
    assert_eq!(interrupted.code, 130, "{interrupted}");
    assert!(
        interrupted
            .stderr
            .contains("interrupted; the locks taken were released"),
        "{interrupted}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "Ctrl-C waited for the silent ship: {interrupted}"
    );
    assert!(!container_exists(&bed, &live, &lock), "{interrupted}");
}

#[tokio::test]
async fn release_force_removes_the_lock_it_read_and_not_the_one_that_replaced_it() {
    use bollard::{API_DEFAULT_VERSION, Docker};
    use maestro::docker::{LockClaim, Ship};
    use maestro::orchestrate::deploy::lock::{self, Holder, LockKind, Released};

    let bed = bed();
    let name = unique("lkf");
    let socket = bed.outer_ships()[0].docker_socket.clone();
    let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 30, API_DEFAULT_VERSION)
        .expect("docker");
    let ship = Ship::new("a", docker);
    let env = maestro::config::load_str(
        &format!("name: {name}\nships:\n  a: {{ip: 10.0.0.1}}\nservices: {{}}\n"),
        "env.yaml",
        Path::new("."),
    )
    .expect("environment");
    let lock_name = lock::lock_name(&env, "a");
    let record = |who: &str| {
        let mut holder = Holder::ours("start", LockKind::Command, None);
        holder.holder = who.to_string();
        holder.token = who.to_string();
        serde_json::to_string(&holder).expect("record")
    };

    let Ok(LockClaim::Taken { id: alices }) = ship.claim_lock(&lock_name, &record("alice")).await
    else {
        panic!("alice could not take the lock");
    };
    // What `lock release --force` read...
    let read = ship
        .read_lock(&lock_name)
        .await
        .expect("read")
        .expect("held");
    assert_eq!(read.id, alices);
    // ...then alice's run ends and bob's begins, before the forced removal acts.
    assert!(ship.remove_lock(&alices).await.expect("alice releases"));
    let Ok(LockClaim::Taken { id: bobs }) = ship.claim_lock(&lock_name, &record("bob")).await
    else {
        panic!("bob could not take the lock");
    };
    let released = lock::release_read(&ship, &env, "a", &read, "carol", true)
        .await
        .expect("release");
    assert_eq!(released, Released::NotHeld);
    let now = ship
        .read_lock(&lock_name)
        .await
        .expect("read")
        .expect("bob's lock stands");
    assert_eq!(now.id, bobs);
    assert!(ship.remove_lock(&bobs).await.expect("bob releases"));
}

#[test]
fn a_ship_whose_connection_was_lost_mid_run_is_still_released() {
    let _third = THIRD_SHIP.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("lkl");
    let ship = bed.outer_ships()[2].clone();
    let file = environment_on(dir.path(), &name, &bed.ship_yaml(&ship.name, "a"), 10, "a");
    let d = dir.path();

    let started = Instant::now();
    let child = spawn(d, &file, "alice@desk1", &["--json", "-v", "start"]);
    wait_until_held_by(d, &file, "alice@desk1");
    // Cut the run's SSH session.
    support::cut_ssh_sessions(&ship);
    let run = support::finish_within(child, support::RUN_LIMIT, started);
    assert!(
        run.stderr.contains("connection lost")
            && run.stderr.contains("reconnecting to release the lock"),
        "{run}"
    );
    // Not told as left behind...
    assert!(!run.stderr.contains("lock release --force"), "{run}");
    // ...because it is not.
    assert_eq!(holders(d, &file), vec![None], "{run}");
    let _ = bed.docker_cli(&ship.name, &["rm", "-f", &format!("{name}-slow-1")]);
    let _ = bed.docker_cli(&ship.name, &["rm", "-f", &format!("{name}-quick-1")]);
}
