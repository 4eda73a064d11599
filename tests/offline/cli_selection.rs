//! What stop, kill and restart accept as names, as in MaestroNG: a service name stands for all
//! its instances only with `-s/--expand-services` (or `-a`), and no names at all needs `-a`.
//! Refusals happen before any ship is contacted; accepted commands here select no instance
//! (`-S` matches no ship), which is refused in turn, so none of these tests needs the test bed.

use crate::common;
use common::support::{self, Run};

use std::path::Path;

const ENV: &str = "\
name: sel
ships:
  a: {ip: 10.0.0.1}
  b: {ip: 10.0.0.2}
services:
  db:
    image: x
    instances:
      db-1: {ship: a}
  web:
    image: x
    requires: [db]
    instances:
      web-1: {ship: a}
      web-2: {ship: b}
  cache:
    image: x
    instances:
      cache: {ship: b}
";

fn maestro(dir: &Path, args: &[&str]) -> Run {
    support::run(
        common::maestro(dir)
            .arg("-f")
            .arg(dir.join("env.yaml"))
            .arg("--plain")
            .args(args),
    )
}

fn env_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("env.yaml"), ENV).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn a_service_name_needs_expand_services_to_stop_kill_or_restart() {
    let dir = env_dir();
    for command in ["stop", "kill", "restart"] {
        let run = maestro(dir.path(), &[command, "web"]);
        assert_eq!(run.code, 2, "{command} web: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "`web` is a service (instances web-1, web-2): pass -s/--expand-services to \
                 {command} all of them, or name the instances"
            )),
            "{command} web: {}",
            run.stderr
        );
    }
    let run = maestro(dir.path(), &["stop", "db"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "`db` is a service (instance db-1): pass -s/--expand-services to stop it, or name \
             the instances"
        ),
        "{}",
        run.stderr
    );
    // Every service named is reported at once.
    let run = maestro(dir.path(), &["kill", "web", "db-1", "db"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("`web` is a service") && run.stderr.contains("`db` is a service"),
        "{}",
        run.stderr
    );
}

#[test]
fn instance_names_and_expanded_services_are_accepted() {
    let dir = env_dir();
    // -S none: the names are accepted, and then the selection is empty, which is refused
    // before anything is contacted.
    for args in [
        &["stop", "web-1", "web-2"][..],
        &["kill", "db-1"],
        &["restart", "web-1"],
        &["stop", "-s", "web"],
        &["kill", "--expand-services", "web", "db"],
        &["restart", "-s", "web"],
        &["stop", "-a", "web"],
        &["stop", "-a"],
        &["restart", "-a"],
        // A service whose only instance has its own name.
        &["stop", "cache"],
        // Other commands take service names as ever.
        &["start", "web"],
        &["pull", "web"],
        &["clean", "web"],
        &["down", "web"],
    ] {
        let run = maestro(dir.path(), &[args, &["-S", "none"]].concat());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("is a service")
                && run.stderr.contains("no instance matches the selection"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// A health gate must not pass on a typo: an empty selection is an error everywhere, with
/// what was asked for and what the file has.
#[test]
fn an_empty_selection_is_refused_by_every_command() {
    let dir = env_dir();
    for args in [
        &["status", "-C", "zzz*"][..],
        &["status", "--json", "-C", "zzz*"],
        &["plan", "-S", "nope*"],
        &["start", "-S", "nope*"],
        &["logs", "-C", "zzz*"],
        &["pull", "web", "-C", "db*"],
        &["stop", "-a", "-S", "nope*"],
        &["restart", "-a", "-C", "zzz*"],
    ] {
        let run = maestro(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        let filter = args.last().copied().unwrap_or_default();
        assert!(
            run.stderr
                .contains("error: no instance matches the selection (")
                && run.stderr.contains(&format!("'{filter}')"))
                && run
                    .stderr
                    .contains("the file's instances: db-1, web-1, web-2, cache"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_misspelt_name_gets_a_suggestion() {
    let dir = env_dir();
    let run = maestro(dir.path(), &["status", "wbe"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: unknown service or container `wbe`; did you mean `web`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_names_needs_all_for_stop_kill_and_restart() {
    let dir = env_dir();
    for command in ["stop", "kill", "restart"] {
        let run = maestro(dir.path(), &[command]);
        assert_eq!(run.code, 2, "{command}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "`{command}` needs the names of the services or instances to {command}, or \
                 -a/--all to {command} everything"
            )),
            "{command}: {}",
            run.stderr
        );
    }
}

#[test]
fn the_help_says_how_to_name_a_whole_service() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = common::maestro(home.path())
        .args(["stop", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run maestro: {e}"));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--expand-services"), "{help}");
    assert!(help.contains("stop, kill and restart refuse a"), "{help}");
}

/// `logs -f web` (docker's follow) reads `web` as the environment file: the error says so.
#[test]
fn logs_dash_f_from_docker_habit_is_pointed_at_dash_capital_f() {
    let dir = env_dir();
    let out = common::maestro(dir.path())
        .args(["logs", "-f", "web"])
        .current_dir(dir.path())
        .output()
        .expect("run maestro");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read environment file web")
            && stderr.contains(
                "`-f` names the environment file; `logs -F` (or --follow) follows the logs"
            ),
        "{stderr}"
    );
}
