//! Connecting a fleet, on real test beds: a silent ship holds up only its own instances, and
//! Ctrl-C ends every command while ships are still connecting. The beds here are this file's
//! own (the shared bed's sshds are busy with other tests, and these tests count connections).
//!
//! Time matters to what is tested, so each assertion contrasts times far apart (a 30 s
//! connect timeout against an end within 5 s) rather than holding a command to a tight
//! threshold; see docs/testing.md.

use crate::common;
use common::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::TestBed;
use serde_json::Value;
use support::{PacketsDropped, Run, finish_within, in_netns, wait_for};

/// The silent ship's connect timeout: far above anything the assertions allow.
const SILENT_TIMEOUT_S: u64 = 30;

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests of this file break a ship of their bed: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bed of two ships for one test, torn down when it is dropped (also when the test
/// fails).
fn bed() -> TestBed {
    TestBed::up("fleetconn", 2, 0)
}

/// Established TCP connections to port 22 inside namespace `ns`.
fn ssh_connections(ns: &str) -> usize {
    let out = in_netns(
        ns,
        &["ss", "-Htn", "state", "established", "( sport = :22 )"],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// An environment of one instance on each of the bed's two ships (`live` and `silent`, the
/// second with a 30 s connect timeout), written in a fresh directory.
fn environment(bed: &TestBed) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ships = bed.outer_ships();
    let mut text = String::from("name: fleetconn\nships:\n");
    text.push_str(&bed.ship_yaml(&ships[0].name, "live"));
    text.push_str(&bed.ship_yaml_with(
        &ships[1].name,
        "silent",
        &format!(", timeout: {SILENT_TIMEOUT_S}"),
    ));
    text.push_str(&format!(
        "services:\n  web:\n    image: {}\n    instances:\n      web-live: {{ship: live, command: [sleep, \"3600\"]}}\n      web-silent: {{ship: silent, command: [sleep, \"3600\"]}}\n",
        bed.info.image
    ));
    std::fs::write(dir.path().join("env.yaml"), text).expect("write env.yaml");
    dir
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    support::maestro_command(dir, args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maestro")
}

/// The `at_ms` of the first event of kind `kind` about `instance` (or ship, for the
/// ship events).
fn at_ms(events: &[Value], kind: &str, key: &str, name: &str) -> Option<u64> {
    events
        .iter()
        .find(|e| e["event"] == kind && e[key] == name)
        .and_then(|e| e["at_ms"].as_u64())
}

#[test]
fn a_silent_ship_fails_only_its_own_instances() {
    let _serial = serial();
    let bed = &bed();
    let dir = environment(bed);
    let silent = bed.outer_ships()[1].netns.clone();
    let _silent = PacketsDropped::new(&silent);

    let started = Instant::now();
    let child = spawn(dir.path(), &["-f", "env.yaml", "start", "--json"]);
    let run = finish_within(child, Duration::from_secs(SILENT_TIMEOUT_S + 60), started);
    assert_eq!(run.code, 1, "{run}");
    let events = run.events();
    let done = at_ms(&events, "job_done", "instance", "web-live")
        .unwrap_or_else(|| panic!("web-live was not done\n{run}"));
    let failed = at_ms(&events, "job_failed", "instance", "web-silent")
        .unwrap_or_else(|| panic!("web-silent did not fail\n{run}"));
    let finished = events
        .iter()
        .find(|e| e["event"] == "plan_finished")
        .and_then(|e| e["at_ms"].as_u64())
        .unwrap_or_else(|| panic!("no plan_finished\n{run}"));
    // Nothing changes before every ship of the run is locked or known unreachable (the deploy
    // lock is all or nothing, docs/commands.md): the live ship's instance waits for the
    // silent ship's verdict, then is done; only the silent ship's instance fails...
    let verdict = at_ms(&events, "ship_connect_failed", "ship", "silent")
        .unwrap_or_else(|| panic!("the silent ship was not given up\n{run}"));
    let live_began = at_ms(&events, "job_started", "instance", "web-live")
        .unwrap_or_else(|| panic!("web-live never started\n{run}"));
    assert!(
        failed >= SILENT_TIMEOUT_S * 1000 && live_began >= verdict && done >= live_began,
        "web-live began at {live_began} ms and was done at {done} ms, the silent ship was \
         given up at {verdict} ms, web-silent failed at {failed} ms\n{run}"
    );
    // ...and nothing is left to do after the silent ship gives up: the command takes the
    // timeout, not the timeout plus the work.
    assert!(
        finished < failed + 5000,
        "finished at {finished} ms, {failed} ms after the silent ship failed\n{run}"
    );
    let failure = events
        .iter()
        .find(|e| e["event"] == "job_failed")
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        failure.contains(&format!("did not answer within {SILENT_TIMEOUT_S}s")),
        "{failure}"
    );
    let state = bed.docker_ok(
        &bed.outer_ships()[0].name,
        &["inspect", "-f", "{{.State.Running}}", "web-live"],
    );
    assert_eq!(state.trim(), "true");
}

#[test]
fn ctrl_c_while_a_ship_is_connecting_ends_every_command() {
    let _serial = serial();
    let bed = &bed();
    let dir = environment(bed);
    let live = bed.outer_ships()[0].netns.clone();
    let silent = bed.outer_ships()[1].netns.clone();
    let _silent = PacketsDropped::new(&silent);
    let commands: &[&[&str]] = &[
        &["start", "--plain"],
        &["status"],
        &["logs", "-F", "web-live", "web-silent"],
        &["ships"],
    ];
    for command in commands {
        let mut args = vec!["-f", "env.yaml"];
        args.extend_from_slice(command);
        let child = spawn(dir.path(), &args);
        let pid = child.id();
        // The evidence that it is connecting: its session to the live ship is up (the silent
        // one waits out its 30 s timeout).
        assert!(
            wait_for(Duration::from_secs(30), || ssh_connections(&live) > 0),
            "{command:?}: maestro never reached the live ship"
        );
        let children = descendants(pid);
        let signalled = Instant::now();
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        // 10 s against a 30 s connect timeout: only an interruption ends it this soon.
        let run = finish_within(child, Duration::from_secs(10), signalled);
        assert_eq!(run.code, 130, "{command:?}: {run}");
        for child in children {
            assert!(
                !Path::new(&format!("/proc/{child}")).exists(),
                "{command:?}: child process {child} outlived maestro"
            );
        }
        // The live ship's sshd sees the session end with the process.
        assert!(
            wait_for(Duration::from_secs(5), || ssh_connections(&live) == 0),
            "{command:?}: an SSH connection to the live ship is left over"
        );
    }
}

/// Every process below `pid` (children of children included), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = vec![pid];
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let stats: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // The command name may hold spaces: fields after the closing parenthesis.
            let rest = stat.rsplit_once(')')?.1;
            let ppid = rest.split_whitespace().nth(1)?.parse::<u32>().ok()?;
            Some((p, ppid))
        })
        .collect();
    while let Some(parent) = parents.pop() {
        for (p, ppid) in &stats {
            if *ppid == parent {
                found.push(*p);
                parents.push(*p);
            }
        }
    }
    found
}

// --- many ships behind one bastion ---------------------------------------------------------

/// Ships behind the bastion in the scale tests: more than OpenSSH's default MaxStartups
/// lets log in at once (10), by far.
const SCALE_SHIPS: usize = 32;

/// An environment with one `base` and one `top` instance (`top` requires `base`) on each of
/// `ships`, each ship's entry made by `ship_line(index, ship)`.
fn two_levels(
    bed: &TestBed,
    name: &str,
    ships: &[&common::Ship],
    ship_line: impl Fn(usize, &common::Ship) -> String,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = format!("name: {name}\nships:\n");
    for (k, ship) in ships.iter().enumerate() {
        text.push_str(&ship_line(k, ship));
    }
    let image = &bed.info.image;
    let instances = |service: &str| {
        ships
            .iter()
            .map(|ship| {
                // The cheap ships share one dockerd: names must differ per ship.
                format!(
                    "      {service}-{s}: {{ship: {s}, command: [sleep, \"3600\"]}}\n",
                    s = ship.name
                )
            })
            .collect::<String>()
    };
    text.push_str(&format!(
        "services:\n  base:\n    image: {image}\n    instances:\n{}  top:\n    image: {image}\n    requires: [base]\n    instances:\n{}",
        instances("base"),
        instances("top"),
    ));
    std::fs::write(dir.path().join("env.yaml"), text).expect("write env.yaml");
    dir
}

/// Runs maestro to its end (at most `limit`), sampling meanwhile how many SSH connections
/// the bastion holds; returns the run and the largest count seen.
fn run_watching_bastion(bed: &TestBed, dir: &Path, args: &[&str], limit: Duration) -> (Run, usize) {
    let started = Instant::now();
    let mut child = spawn(dir, args);
    let mut most = 0;
    while started.elapsed() < limit && matches!(child.try_wait(), Ok(None)) {
        most = most.max(bed.bastion_ssh_connections());
        std::thread::sleep(Duration::from_millis(100));
    }
    (finish_within(child, limit, started), most)
}

fn job_counts(run: &Run) -> (usize, usize) {
    let events = run.events();
    let done = events.iter().filter(|e| e["event"] == "job_done").count();
    let other = events
        .iter()
        .filter(|e| {
            ["job_failed", "job_skipped", "job_cancelled"]
                .contains(&e["event"].as_str().unwrap_or(""))
        })
        .count();
    (done, other)
}

#[test]
fn thirty_two_ships_behind_one_bastion_share_one_login_to_it() {
    let _serial = serial();
    let bed = common::TestBed::up_options(
        "fleetscale",
        &common::BedOptions {
            cheap_inner: SCALE_SHIPS,
            ..Default::default()
        },
    );
    let ships = bed.cheap_ships();
    assert_eq!(ships.len(), SCALE_SHIPS);
    let dir = two_levels(&bed, "fleetscale", &ships, |_, ship| {
        bed.ship_yaml(&ship.name, &ship.name)
    });
    let logins = || bed.bastion_log_count("Accepted publickey");

    let before = logins();
    let (run, most) = run_watching_bastion(
        &bed,
        dir.path(),
        &["-f", "env.yaml", "ships"],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains(&format!("{SCALE_SHIPS} of {SCALE_SHIPS} ships reachable")),
        "{run}"
    );
    assert_eq!(
        logins() - before,
        1,
        "logins to the bastion during `ships`\n{run}"
    );
    assert!(
        most <= 1,
        "the bastion held {most} SSH connections during `ships`"
    );

    let before = logins();
    let (run, most) = run_watching_bastion(
        &bed,
        dir.path(),
        &["-f", "env.yaml", "start", "--json"],
        Duration::from_secs(600),
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(job_counts(&run), (2 * SCALE_SHIPS, 0), "{run}");
    assert_eq!(
        logins() - before,
        1,
        "logins to the bastion during `start`\n{run}"
    );
    assert_eq!(most, 1, "SSH connections the bastion held during `start`");
    let running = bed.docker_cli(
        &ships[0].name,
        &[
            "ps",
            "-q",
            "--filter",
            "label=io.maestro.environment=fleetscale",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&running.stdout).lines().count(),
        2 * SCALE_SHIPS,
        "containers running on the cheap ships' dockerd"
    );
}

#[test]
fn logins_that_cannot_be_shared_are_paced_under_a_strict_max_startups() {
    let _serial = serial();
    const SHIPS: usize = 12;
    let bed = common::TestBed::up_options(
        "fleetpace",
        &common::BedOptions {
            cheap_inner: SHIPS,
            extra_keys: SHIPS,
            ..Default::default()
        },
    );
    // sshd refuses every new connection while 2 are being set up.
    bed.restart_bastion_sshd(&["-o", "MaxStartups=2:100:2"]);
    let ships = bed.cheap_ships();
    let keys = bed.extra_keys().to_vec();
    assert_eq!(keys.len(), SHIPS);
    // A different key for each ship: no two jump logins are the same, none is shared.
    let dir = two_levels(&bed, "fleetpace", &ships, |k, ship| {
        format!(
            "  {name}: {{ip: {ip}, socket_path: \"{socket}\", ssh: {{user: {user}, identity_files: [\"{key}\"], known_hosts_file: \"{known}\", jump: [\"{user}@{bastion}\"]}}}}\n",
            name = ship.name,
            ip = ship.ip,
            socket = ship.docker_socket.display(),
            user = bed.info.user,
            key = keys[k].display(),
            known = bed.known_hosts().display(),
            bastion = bed.bastion().ip,
        )
    });
    let logins_before = bed.bastion_log_count("Accepted publickey");
    let run = finish_within(
        spawn(dir.path(), &["-f", "env.yaml", "start", "--json"]),
        Duration::from_secs(600),
        Instant::now(),
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(job_counts(&run), (2 * SHIPS, 0), "{run}");
    assert_eq!(
        bed.bastion_log_count("Accepted publickey") - logins_before,
        SHIPS,
        "one bastion login per ship"
    );
}
