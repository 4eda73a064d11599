//! The deploy lock end to end on the test bed: two operators' commands at once, a
//! maintenance window, and the lock a killed operator leaves behind.
//!
//! A second operator is simulated with `MAESTRO_LOCK_HOLDER` (the holder's name; without it,
//! `user@host`): both "operators" run on this machine, so the pid of a holder is checked.
//! Each test has its own environment name, so its locks are its own.
//!
//! Needs root. Uses the bed named by `MAESTRO_TESTBED` if set, else brings up its own.

mod common;
use common::support::{self, Run};

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestBed;
use serde_json::Value;

fn bed() -> Arc<TestBed> {
    TestBed::shared()
}

/// An environment named `name` on ship1 (`a`) and the inner ship (`c`, through the
/// bastion): `slow-1` on `a` takes `wait` seconds to be declared running, `quick-1` is on `c`.
fn environment(bed: &TestBed, dir: &Path, name: &str, wait: u32) -> PathBuf {
    let inner = bed.inner_ships()[0].name.clone();
    let outer = bed.outer_ships()[0].name.clone();
    let yaml = format!(
        "name: {name}\nships:\n{}{}services:\n  slow:\n    image: maestro-test:latest\n    \
         instances:\n      {name}-slow-1:\n        ship: a\n        command: sleep 3600\n        \
         stop_timeout: 1\n        lifecycle:\n          running: [{{type: sleep, wait: {wait}}}]\n  \
         quick:\n    image: maestro-test:latest\n    instances:\n      {name}-quick-1:\n        \
         ship: c\n        command: sleep 3600\n        stop_timeout: 1\n",
        bed.ship_yaml(&outer, "a"),
        bed.ship_yaml(&inner, "c"),
    );
    let file = dir.join("env.yaml");
    std::fs::write(&file, yaml).expect("write env");
    file
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
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("lka{}", std::process::id() % 100_000);
    let file = environment(&bed, dir.path(), &name, 20);
    remove_containers(&bed, &name);

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

#[test]
fn a_maintenance_window_admits_its_holder_and_refuses_the_others() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("lkm{}", std::process::id() % 100_000);
    let file = environment(&bed, dir.path(), &name, 0);
    remove_containers(&bed, &name);
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
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("lkk{}", std::process::id() % 100_000);
    let file = environment(&bed, dir.path(), &name, 60);
    remove_containers(&bed, &name);
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
    let next = run(d, &file, "bob@desk2", &["--json", "-v", "start"]);
    assert_eq!(next.code, 0, "{next}");
    assert!(
        next.stderr.contains("took over the lock of alice@desk1"),
        "{next}"
    );
    assert_eq!(holders(d, &file), vec![None, None]);
    remove_containers(&bed, &name);
}

#[test]
fn ctrl_c_during_a_start_releases_its_locks() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("lki{}", std::process::id() % 100_000);
    let file = environment(&bed, dir.path(), &name, 60);
    remove_containers(&bed, &name);
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
