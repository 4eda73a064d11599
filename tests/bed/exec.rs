//! `exec` and `ssh` against the real test bed: a command in an instance's container (on an
//! outer ship, and on an inner one through the bastion), a shell on a ship, with and without
//! a terminal. The terminal cases run the binary on a pseudo-terminal driven by
//! tests/pty_drive.py: they type, read, resize the window and read `stty size` again, and
//! check that the terminal's settings are those from before maestro.
//!
//! Each test has its own environment name and instance names: they run in parallel on one bed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::Instant;

use common::support::{self, Run, finish_within};

use crate::common;

/// An environment file for the bed and the containers `maestro start` made from it (removed
/// on drop).
struct Setup {
    bed: common::SharedBed,
    dir: tempfile::TempDir,
    path: PathBuf,
    made: Vec<(String, String)>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for (ship, name) in &self.made {
            let _ = self.bed.docker_cli(ship, &["rm", "-f", name]);
        }
    }
}

fn inner_name(bed: &common::TestBed) -> String {
    bed.inner_ships()
        .first()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| panic!("these tests need an inner ship behind the bastion"))
}

/// `name`'s file: ship1, inner1 (through the bastion), `nodocker` (ship2 with a Docker socket
/// that does not exist) and `plain`, a ship reached without SSH; `services` with IMAGE for the bed's image. Starts `start` (instance, real ship).
fn setup(name: &str, services: &str, start: &[(&str, &str)]) -> Setup {
    let bed = common::TestBed::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{name}.yaml"));
    let inner = inner_name(&bed);
    let text = format!(
        "name: {name}\nships:\n{}{}{}  plain: {{ip: 127.0.0.1, docker_port: 9}}\nservices:\n{}",
        bed.ship_yaml("ship1", "ship1"),
        bed.ship_yaml(&inner, "inner1"),
        bed.ship_yaml("ship2", "nodocker").replace(
            &bed.ship("ship2").docker_socket.display().to_string(),
            "/nonexistent/docker.sock"
        ),
        services.replace("IMAGE", &bed.image)
    );
    std::fs::write(&path, text).expect("write the file");
    let mut setup = Setup {
        bed,
        dir,
        path,
        made: Vec::new(),
    };
    for (instance, ship) in start {
        let real = if *ship == "inner1" {
            inner.clone()
        } else {
            ship.to_string()
        };
        let _ = setup.bed.docker_cli(&real, &["rm", "-f", instance]);
        setup.made.push((real, instance.to_string()));
    }
    if !start.is_empty() {
        let names: Vec<&str> = start.iter().map(|(i, _)| *i).collect();
        let mut args = vec!["start", "-i"];
        args.extend(names);
        let run = setup.run(&args, None);
        assert_eq!(run.code, 0, "start: {run}");
    }
    setup
}

impl Setup {
    fn home(&self) -> &Path {
        self.dir.path()
    }

    /// `maestro -f FILE ARGS`, `stdin` written to its standard input (else none).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = common::maestro(self.home());
        cmd.arg("-f").arg(&self.path).args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("run maestro");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        finish_within(child, support::RUN_LIMIT, started)
    }

    /// `maestro -f FILE ARGS` on a pseudo-terminal, driven by `steps` (see tests/pty_drive.py).
    fn on_terminal(&self, args: &[&str], steps: serde_json::Value) -> Option<serde_json::Value> {
        if std::env::var_os("MAESTRO_SKIP_PTY_TESTS").is_some() {
            return None;
        }
        let steps_file = self.home().join("steps.json");
        std::fs::write(&steps_file, steps.to_string()).expect("write steps");
        let mut maestro = common::maestro(self.home());
        maestro.arg("-f").arg(&self.path).args(args);
        // The same program, environment and arguments, behind the driver.
        let mut cmd = Command::new("python3");
        cmd.env_clear();
        for (key, value) in maestro.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd.env("TERM", "xterm")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty_drive.py"))
            .arg(&steps_file)
            .arg("--")
            .arg(maestro.get_program())
            .args(maestro.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("the terminal tests need python3 ({e}); MAESTRO_SKIP_PTY_TESTS=1 skips them")
        });
        let run = finish_within(child, support::RUN_LIMIT, started);
        assert_eq!(run.code, 0, "the driver failed: {run}");
        Some(serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}")))
    }
}

const SLEEPER: &str = "    image: IMAGE\n";

#[test]
fn exec_on_a_terminal_types_reads_resizes_and_returns_the_exit_code() {
    let s = setup(
        "ex-tty",
        &format!(
            "  extty:\n{SLEEPER}    instances:\n      extty-1: {{ship: ship1, command: \"sleep 600\"}}\n"
        ),
        &[("extty-1", "ship1")],
    );
    let steps = serde_json::json!([
        {"size": [30, 100]},
        {"expect": "# "},
        {"send": "stty size\r"}, {"expect": "30 100"},
        {"resize": [40, 120]},
        // The new size reaches the container after the signal: ask until it shows.
        {"until": "40 120", "send": "stty size\r"},
        // Ctrl-C goes to the container's foreground command, not to maestro.
        {"send": "sleep 300\r"}, {"expect": "sleep 300"},
        {"until": "\\^C", "send": "\u{3}"},
        {"send": "echo typed-$((6*7))\r"}, {"expect": "typed-42"},
        {"send": "exit 7\r"},
    ]);
    let Some(out) = s.on_terminal(&["exec", "extty-1"], steps) else {
        return;
    };
    assert_eq!(out["failed"], serde_json::Value::Null, "{out:#}");
    assert_eq!(out["exit"], 7, "{out:#}");
    assert_eq!(
        out["restored"], true,
        "the terminal was left changed: {out:#}"
    );
    // SIGTERM in the middle of a session: maestro ends with 128 + 15, the terminal restored.
    let steps = serde_json::json!([
        {"expect": "# "},
        {"send": "echo ready-$((1+1))\r"}, {"expect": "ready-2"},
        {"signal": "TERM"},
    ]);
    let Some(out) = s.on_terminal(&["exec", "extty-1"], steps) else {
        return;
    };
    assert_eq!(out["exit"], 143, "{out:#}");
    assert_eq!(out["restored"], true, "{out:#}");
}

#[test]
fn ssh_on_a_terminal_reaches_an_inner_ship_and_restores_the_terminal_when_the_link_dies() {
    let s = setup(
        "ex-sshtty",
        "  unused:\n    image: IMAGE\n    instances: {}\n",
        &[],
    );
    let steps = serde_json::json!([
        {"size": [33, 101]},
        {"expect": "[#$] "},
        {"send": "stty size\r"}, {"expect": "33 101"},
        {"resize": [44, 111]},
        {"until": "44 111", "send": "stty size\r"},
        {"send": "exit 5\r"},
    ]);
    let Some(out) = s.on_terminal(&["ssh", "inner1"], steps) else {
        return;
    };
    assert_eq!(out["failed"], serde_json::Value::Null, "{out:#}");
    assert_eq!(out["exit"], 5, "{out:#}");
    assert_eq!(out["restored"], true, "{out:#}");

    // The session's sshd process killed from inside: the channel closes without an exit
    // status, as when the connection is lost.
    let steps = serde_json::json!([
        {"expect": "[#$] "},
        {"send": "kill -9 $PPID\r"},
    ]);
    let Some(out) = s.on_terminal(&["ssh", "inner1"], steps) else {
        return;
    };
    assert_eq!(out["exit"], 1, "{out:#}");
    assert_eq!(out["restored"], true, "{out:#}");
    let output = out["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("the connection to ship inner1 was lost before the command ended"),
        "{out:#}"
    );
}

#[test]
fn exec_without_a_terminal_streams_stdin_and_passes_the_exit_code() {
    let s = setup(
        "ex-pipe",
        &format!(
            "  expipe:\n{SLEEPER}    env: {{DB_PASSWORD: hunter2-in-the-file}}\n    instances:\n      expipe-1: {{ship: ship1, command: \"sleep 600\"}}\n"
        ),
        &[("expipe-1", "ship1")],
    );
    let script = "tr a-z A-Z; echo to-stderr >&2; exit 3";
    let run = s.run(
        &["exec", "expipe-1", "--", "sh", "-c", script],
        Some("first line\nsecond line\n"),
    );
    assert_eq!(run.code, 3, "{run}");
    assert_eq!(run.stdout, "FIRST LINE\nSECOND LINE\n", "{run}");
    assert_eq!(run.stderr, "to-stderr\n", "{run}");

    // The container's secrets are masked in what it prints, as in every output of maestro.
    let run = s.run(
        &[
            "exec",
            "-T",
            "expipe-1",
            "--",
            "sh",
            "-c",
            "echo \"pw=$DB_PASSWORD\"",
        ],
        None,
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "pw=***\n"), "{run}");

    // No stdin at all: the command sees its end at once.
    let run = s.run(&["exec", "expipe-1", "--", "wc", "-c"], None);
    assert_eq!((run.code, run.stdout.trim()), (0, "0"), "{run}");
}

#[test]
fn exec_reaches_an_instance_behind_the_bastion_as_user_in_dir_with_env() {
    let s = setup(
        "ex-inner",
        &format!(
            "  exin:\n{SLEEPER}    instances:\n      exin-1: {{ship: inner1, command: \"sleep 600\"}}\n"
        ),
        &[("exin-1", "inner1")],
    );
    let run = s.run(
        &[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "GREETING=hello there",
            "exin-1",
            "--",
            "sh",
            "-c",
            "id -un; pwd; echo \"$GREETING\"; hostname",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, "nobody\n/tmp\nhello there\nexin-1\n", "{run}");
}

#[test]
fn exec_on_several_instances_prefixes_their_lines_and_returns_the_worst_code() {
    let s = setup(
        "ex-many",
        &format!(
            "  exmany:\n{SLEEPER}    instances:\n      exmany-1: {{ship: ship1, command: \"sleep 600\"}}\n      exmany-2: {{ship: inner1, command: \"sleep 600\"}}\n"
        ),
        &[("exmany-1", "ship1"), ("exmany-2", "inner1")],
    );
    let script = "echo out-$(hostname); echo err-$(hostname) >&2; [ $(hostname) = exmany-2 ] && exit 4; exit 1";
    let run = s.run(&["exec", "exmany", "--", "sh", "-c", script], None);
    assert_eq!(run.code, 4, "the worst of 1 and 4: {run}");
    for instance in ["exmany-1", "exmany-2"] {
        let prefix = format!("{instance} | ");
        assert!(
            run.stdout.contains(&format!("{prefix}out-{instance}\n")),
            "{run}"
        );
        assert!(
            run.stderr.contains(&format!("{prefix}err-{instance}\n")),
            "{run}"
        );
    }
}

#[test]
fn ssh_runs_a_command_on_an_inner_ship_and_passes_its_exit_code() {
    let s = setup(
        "ex-ssh",
        "  exnd:\n    image: IMAGE\n    instances:\n      exnd-1: {ship: nodocker}\n",
        &[],
    );
    let inner = inner_name(&s.bed);
    let ip = s.bed.ship(&inner).ip.clone();
    // The ship's own address is on it: the command ran there, past the bastion.
    let run = s.run(
        &["ssh", "inner1", "--", "ip -o addr; echo oops >&2; exit 6"],
        None,
    );
    assert_eq!(run.code, 6, "{run}");
    assert!(run.stdout.contains(&format!("inet {ip}/")), "{run}");
    assert_eq!(run.stderr, "oops\n", "{run}");

    let run = s.run(&["ssh", "inner1", "--", "cat"], Some("through\n"));
    assert_eq!((run.code, run.stdout.as_str()), (0, "through\n"), "{run}");

    // A shell on a ship does not need its Docker daemon, which `status` finds missing.
    let run = s.run(
        &[
            "ssh",
            "nodocker",
            "--",
            "echo on-$(hostname -I | wc -w)-addresses",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.starts_with("on-"), "{run}");
    let run = s.run(&["status"], None);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("/nonexistent/docker.sock"), "{run}");
}

#[test]
fn ctrl_c_without_a_terminal_ends_maestro_with_130() {
    let s = setup(
        "ex-int",
        &format!(
            "  exint:\n{SLEEPER}    instances:\n      exint-1: {{ship: ship1, command: \"sleep 600\"}}\n"
        ),
        &[("exint-1", "ship1")],
    );
    let mut cmd = common::maestro(s.home());
    cmd.arg("-f")
        .arg(&s.path)
        .args([
            "exec",
            "exint-1",
            "--",
            "sh",
            "-c",
            "echo running; exec sleep 600",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run maestro");
    // Wait for the command's first line, then interrupt.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("the command's first line");
    assert_eq!(&first, b"running\n");
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status();
    assert!(status.is_ok_and(|s| s.success()));
    let run = finish_within(child, support::RUN_LIMIT, started);
    assert_eq!(run.code, 130, "{run}");
}

#[test]
fn bad_inputs_are_named_with_what_to_do() {
    let s = setup(
        "ex-bad",
        &format!(
            "  exbad:\n{SLEEPER}    instances:\n      exbad-1: {{ship: ship1, command: \"sleep 600\"}}\n      exbad-2: {{ship: ship1, command: \"sleep 600\"}}\n      exbad-3: {{ship: ship1, command: \"sleep 600\"}}\n"
        ),
        &[("exbad-1", "ship1"), ("exbad-2", "ship1")],
    );
    s.bed.docker_ok("ship1", &["stop", "-t", "0", "exbad-2"]);
    let _ = s.bed.docker_cli("ship1", &["rm", "-f", "exbad-3"]);

    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["exec", "exbda-1", "--", "true"],
            2,
            &["unknown service or container `exbda-1`; did you mean `exbad-1`?"],
        ),
        (
            &["exec", "exbad-2", "--", "true"],
            1,
            &[
                "exbad-2 on ship ship1 is not running (its container is exited)",
                "help: `maestro start exbad-2` starts it",
            ],
        ),
        (
            &["exec", "exbad-3", "--", "true"],
            1,
            &[
                "there is no container exbad-3 on ship ship1",
                "help: `maestro start exbad-3` creates and starts it",
            ],
        ),
        (
            &["exec", "exbad-1", "ls"],
            2,
            &[
                "unknown service or container `ls`",
                "help: the command comes after `--`: maestro exec exbad-1 -- ls ...",
            ],
        ),
        (
            &["exec"],
            2,
            &[
                "exec needs an instance",
                "`maestro status` lists the instances",
            ],
        ),
        (
            &["exec", "-t", "exbad", "--", "true"],
            2,
            &["-t gives one instance a terminal, and 3 are selected"],
        ),
        (
            &["exec", "-e", "=novalue", "exbad-1"],
            2,
            &["expected NAME=value or NAME, not `=novalue`"],
        ),
        (
            &["ssh", "plain"],
            2,
            &[
                "ship plain is not reached over SSH (its Docker daemon is reached at tcp://127.0.0.1:9)",
                "help: give it an `ssh:` block",
            ],
        ),
        (
            &["ssh", "inner2x"],
            2,
            &[
                "unknown ship `inner2x`; did you mean `inner1`?",
                "the file's ships: ship1, inner1, nodocker, plain",
            ],
        ),
    ];
    for (args, code, texts) in cases {
        let run = s.run(args, None);
        assert_eq!(run.code, *code, "{args:?}: {run}");
        for text in *texts {
            assert!(
                run.stderr.contains(text),
                "{args:?} should say {text:?}: {run}"
            );
        }
    }
}

#[test]
fn exec_refuses_a_container_that_has_the_name_but_is_not_this_environments() {
    let mut s = setup(
        "ex-own",
        &format!(
            "  exown:\n{SLEEPER}    instances:\n      exown-1: {{ship: ship1, command: \"sleep 600\"}}\n"
        ),
        &[],
    );
    // Someone else's container with the instance's name, running, without maestro's labels.
    let _ = s.bed.docker_cli("ship1", &["rm", "-f", "exown-1"]);
    s.made.push(("ship1".into(), "exown-1".into()));
    let image = s.bed.image.clone();
    s.bed.docker_ok(
        "ship1",
        &["run", "-d", "--name", "exown-1", &image, "sleep", "600"],
    );

    let run = s.run(&["exec", "exown-1", "--", "touch", "/ran"], None);
    assert_eq!(run.code, 1, "{run}");
    for needle in [
        "container exown-1 on ship1 is not this environment's",
        "it has none of maestro's labels",
        "--adopt",
    ] {
        assert!(run.stderr.contains(needle), "no `{needle}`: {run}");
    }
    let ran = s
        .bed
        .docker_cli("ship1", &["exec", "exown-1", "test", "-e", "/ran"]);
    assert!(
        !ran.status.success(),
        "the command ran in someone else's container"
    );
}

#[test]
fn exec_e_name_takes_the_value_from_this_machine_as_docker_does() {
    let s = setup(
        "ex-env",
        &format!(
            "  exenv:\n{SLEEPER}    instances:\n      exenv-1: {{ship: ship1, command: \"sleep 600\"}}\n"
        ),
        &[("exenv-1", "ship1")],
    );
    let out = common::maestro(s.home())
        .arg("-f")
        .arg(&s.path)
        .args([
            "exec",
            "-e",
            "FROM_HERE",
            "-e",
            "NOT_SET_HERE",
            "exenv-1",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo \"$FROM_HERE\"; echo \"${NOT_SET_HERE-unset}\"",
        ])
        .env("FROM_HERE", "local value")
        .output()
        .expect("run maestro");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text, "local value\nunset\n");
}
