//! Warm commands (`--persist`), on the real test bed: the background maestro keeps one SSH
//! session per ship between commands, only for the same route, in a private directory that
//! answers only our uid; it survives a client's Ctrl-C, recovers a session the ship cut, and
//! exits when idle.
//!
//! Each test has its own runtime directory (MAESTRO_RUNTIME_DIR) and stops its daemon at
//! the end, also when it fails (see [`Warm`]). The tests count logins in the ships' sshd
//! logs, so they run one at a time.

use crate::common;
use common::support::{self, Run};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{SharedBed, TestBed};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A generous limit for anything asynchronous to happen (a daemon to exit, to listen).
const LIMIT: Duration = Duration::from_secs(60);

/// One test's environment file and runtime directory. Dropping it stops the daemon.
struct Warm {
    dir: tempfile::TempDir,
    runtime: PathBuf,
}

impl Warm {
    fn new(bed: &TestBed, ships: &[&str]) -> Warm {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = dir.path().join("rt");
        let warm = Warm { dir, runtime };
        warm.write_env("env.yaml", bed, ships, "");
        warm
    }

    /// An environment of the bed's `ships` (no services: status and plan still connect to
    /// every ship... through `ships`), with `ssh_extra` added to every `ssh:` block.
    fn write_env(&self, name: &str, bed: &TestBed, ships: &[&str], ssh_extra: &str) {
        let mut text = String::from("name: warm\nships:\n");
        for ship in ships {
            let s = bed.ship(ship);
            let jump = if s.inner {
                format!(", jump: [\"{}@{}\"]", bed.user, bed.bastion().ip)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "  {ship}: {{ip: {}, socket_path: \"{}\", ssh: {}}}\n",
                s.ip,
                s.docker_socket.display(),
                bed.ssh_yaml(&format!("{jump}{ssh_extra}")),
            ));
        }
        text.push_str("services:\n  wweb:\n    image: ");
        text.push_str(&bed.image);
        text.push_str("\n    instances:\n");
        for ship in ships {
            text.push_str(&format!(
                "      wweb-{ship}: {{ship: {ship}, command: \"sleep 3600\", stop_timeout: 1}}\n"
            ));
        }
        std::fs::write(self.dir.path().join(name), text).expect("write env");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = common::maestro(self.dir.path());
        cmd.current_dir(self.dir.path())
            .env("MAESTRO_RUNTIME_DIR", &self.runtime)
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        support::run(&mut self.command(args))
    }

    /// `run` with more variables.
    fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        support::run(self.command(args).envs(envs.iter().copied()))
    }

    /// Runs each of `commands` warm (`--persist 1m`), each reaching its ships, and asserts
    /// that they made one login to each of `ships` and one to the bastion, all told.
    fn assert_one_login_each(&self, bed: &TestBed, ships: &[&str], commands: &[&[&str]]) {
        let before: Vec<usize> = ships.iter().map(|s| logins(bed, s)).collect();
        let bastion_before = bastion_logins(bed);
        for args in commands {
            let run = self.run(&[&["-f", "env.yaml", "--persist", "1m"], *args].concat());
            reached(&run);
        }
        let n = commands.len();
        for (ship, before) in ships.iter().zip(before) {
            assert_eq!(
                settled(|| logins(bed, ship)) - before,
                1,
                "logins to {ship} over {n} commands"
            );
        }
        assert_eq!(
            settled(|| bastion_logins(bed)) - bastion_before,
            1,
            "logins to the bastion over {n} commands"
        );
    }

    fn socket(&self) -> PathBuf {
        self.runtime.join("persist.sock")
    }

    /// `persist status --json`: the sessions held (None when not running).
    fn sessions(&self) -> Option<Vec<serde_json::Value>> {
        let run = self.run(&["persist", "status", "--json"]);
        reached(&run);
        let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
        doc["sessions"].as_array().cloned()
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        let _ = self
            .command(&["persist", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let socket = self.socket();
        support::wait_for(LIMIT, || !socket.exists());
    }
}

/// The command reached its ships: `status` exits 1 for absent instances (the test's
/// containers mostly are), never for a reached ship alone; a ship not reached shows as
/// `host-down` or an error.
fn reached(run: &Run) {
    assert!(run.code == 0 || run.code == 1, "{run}");
    let all = run.all();
    assert!(
        !all.contains("host-down") && !all.contains("error") && !all.contains("unreachable"),
        "{run}"
    );
}

/// Successful logins in `ship`'s sshd log so far.
fn logins(bed: &TestBed, ship: &str) -> usize {
    let log = bed.ship(ship).sshd_log.clone().expect("sshd log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Accepted publickey"))
        .count()
}

fn bastion_logins(bed: &TestBed) -> usize {
    bed.bastion_log_count("Accepted publickey")
}

/// Waits until the ship's sshd log has stopped changing count (a login is logged once its
/// authentication ended, which is before our command ends: this only guards a slow write).
fn settled(count: impl Fn() -> usize) -> usize {
    let mut last = count();
    support::wait_for(Duration::from_secs(5), || {
        let now = count();
        let same = now == last;
        last = now;
        same
    });
    last
}

/// A test's start on one ship: this file's lock, the bed, a daemon that holds a session to
/// `ship` after one warm `status`, and the ship's logins so far.
fn warm_on(ship: &str) -> (MutexGuard<'static, ()>, SharedBed, Warm, usize) {
    let serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &[ship]);
    let first = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    reached(&first);
    let before = settled(|| logins(&bed, ship));
    (serial, bed, warm, before)
}

#[test]
fn several_commands_in_a_row_make_one_login_per_ship() {
    let _serial = serial();
    let bed = TestBed::shared();
    let ships = ["ship1", "ship2", "inner1"];
    let warm = Warm::new(&bed, &ships);
    warm.assert_one_login_each(
        &bed,
        &ships,
        &[
            &["status"],
            &["plan"],
            &["ships"],
            &["lock", "status"],
            &["status", "-F"],
            &["history"],
        ],
    );
    // The same through MAESTRO_PERSIST, and `persist status` lists them.
    let run = warm.run_with(&["-f", "env.yaml", "status"], &[("MAESTRO_PERSIST", "1m")]);
    reached(&run);
    assert_eq!(logins(&bed, "ship1"), settled(|| logins(&bed, "ship1")));
    let sessions = warm.sessions().expect("running");
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    let inner = sessions
        .iter()
        .find(|s| s["ships"][0] == "inner1")
        .expect("inner1's session");
    assert!(
        inner["route"]
            .as_str()
            .is_some_and(|r| r.contains(" -> ") && r.contains(&bed.bastion().ip)),
        "{inner}"
    );
    let text = warm.run(&["persist", "status"]);
    assert!(
        text.stdout.contains("3 sessions") && text.stdout.contains("SHIP"),
        "{text}"
    );
    // `persist stop` ends it: its socket goes, and its sessions with it.
    let stop = warm.run(&["persist", "stop"]);
    assert_eq!(stop.code, 0, "{stop}");
    assert!(stop.stdout.contains("stopped"), "{stop}");
    let socket = warm.socket();
    assert!(
        support::wait_for(LIMIT, || !socket.exists()),
        "still listening"
    );
    assert_eq!(warm.sessions(), None);
}

#[test]
fn the_file_can_ask_for_persist_and_a_warm_start_changes_ships() {
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship2"]);
    warm.write_env("env.yaml", &bed, &["ship2"], ", persist: 1m");
    let before = logins(&bed, "ship2");
    let start = warm.run(&["-f", "env.yaml", "start"]);
    assert_eq!(start.code, 0, "{start}");
    let again = warm.run(&["-f", "env.yaml", "start"]);
    reached(&again);
    // Docker's exec (an upgraded HTTP connection) and a log stream ride the kept session.
    let exec = warm.run(&[
        "-f",
        "env.yaml",
        "exec",
        "wweb-ship2",
        "--",
        "sh",
        "-c",
        "echo in-$((6*7)); exit 3",
    ]);
    assert_eq!(exec.code, 3, "{exec}");
    assert!(exec.stdout.contains("in-42"), "{exec}");
    let logs = warm.run(&["-f", "env.yaml", "logs", "wweb-ship2"]);
    assert_eq!(logs.code, 0, "{logs}");
    let stop = warm.run(&["-f", "env.yaml", "stop", "-a"]);
    assert_eq!(stop.code, 0, "{stop}");
    let clean = warm.run(&["-f", "env.yaml", "clean", "-a"]);
    assert_eq!(clean.code, 0, "{clean}");
    assert_eq!(settled(|| logins(&bed, "ship2")) - before, 1);
    // `--persist 0` turns the file's persist off: a login of its own.
    let direct = warm.run(&["-f", "env.yaml", "--persist", "0", "status"]);
    reached(&direct);
    assert_eq!(settled(|| logins(&bed, "ship2")) - before, 2);
}

#[test]
fn the_runtime_dir_and_socket_are_private_and_another_uid_is_refused() {
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship1"]);
    // The test's own directory (0700 as made) is opened so that nobody can reach what
    // lies in it: what protects the runtime directory must be that directory itself.
    std::fs::set_permissions(warm.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod tempdir");
    let run = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    reached(&run);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&warm.runtime), 0o700);
    assert_eq!(mode(&warm.socket()), 0o600);

    // `nobody` is refused by the directory check before anything is asked.
    let nobody = warm
        .command(&["persist", "status"])
        .env("HOME", "/")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as nobody");
    let text = String::from_utf8_lossy(&nobody.stderr);
    assert_ne!(nobody.status.code(), Some(0), "{text}");
    assert!(
        text.contains("belongs to uid 0, not to you (uid 65534)"),
        "{text}"
    );

    // With the directory and socket opened to everyone (as a careless chmod would), the
    // daemon still answers nobody with a refusal: it checks the peer's uid itself.
    std::fs::set_permissions(&warm.runtime, std::fs::Permissions::from_mode(0o711))
        .expect("chmod dir");
    std::fs::set_permissions(warm.socket(), std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let socket = warm.socket();
    // The system's python (not a shim under root's home, which nobody cannot read).
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1])\n\
             try:\n s.sendall(b'{\"op\":\"status\"}\\n')\n\
             except BrokenPipeError:\n pass\n\
             print(s.makefile().readline())",
        )
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("python3 as nobody");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("\"ok\":false") && answer.contains("serves uid 0 only"),
        "{answer}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!answer.contains("sessions\":[{"), "{answer}");
    // And our own commands refuse the opened directory, saying how to fix it.
    let refused = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.all().contains("chmod 700"), "{refused}");
    std::fs::set_permissions(&warm.runtime, std::fs::Permissions::from_mode(0o700))
        .expect("chmod back");
}

#[test]
fn the_daemon_exits_when_idle() {
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship1"]);
    let run = warm.run(&["-f", "env.yaml", "--persist", "3s", "status"]);
    reached(&run);
    assert!(warm.sessions().is_some(), "running after the command");
    let socket = warm.socket();
    assert!(
        support::wait_for(LIMIT, || !socket.exists()),
        "the daemon still listens {}s later",
        LIMIT.as_secs()
    );
    assert_eq!(warm.sessions(), None);
    let log = std::fs::read_to_string(warm.runtime.join("daemon.log")).expect("log");
    assert!(log.contains("idle for 3s: exiting"), "{log}");
}

#[test]
fn a_session_the_ship_cut_is_recovered() {
    let (_serial, bed, warm, before) = warm_on("ship3");
    support::cut_ssh_sessions(bed.ship("ship3"));
    let again = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    reached(&again);
    assert!(again.stdout.contains("wweb-ship3"), "{again}");
    assert_eq!(
        settled(|| logins(&bed, "ship3")) - before,
        1,
        "one new login after the cut"
    );
    let log = std::fs::read_to_string(warm.runtime.join("daemon.log")).expect("log");
    assert!(log.contains("session lost; logging in again"), "{log}");
}

#[test]
fn ctrl_c_in_a_client_leaves_the_daemon_healthy() {
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship1"]);
    let port = bed.ship("ship1").docker_tcp_port.to_string();
    let started = Instant::now();
    // In a process group of its own, as a shell runs a foreground job: the Ctrl-C below
    // goes to the whole group, as the terminal's would.
    let mut child = warm
        .command(&[
            "-f",
            "env.yaml",
            "--persist",
            "1m",
            "forward",
            "ship1",
            &port,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("forward");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("line");
    let local = first
        .strip_prefix("forwarding ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    // One request through the daemon's channel, and one connection left open mid-way.
    let mut client = std::net::TcpStream::connect(&local).expect("connect");
    client
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    client.read_to_string(&mut answer).expect("read");
    assert!(answer.ends_with("OK"), "{answer}");
    let _open = std::net::TcpStream::connect(&local).expect("connect");
    let before = settled(|| logins(&bed, "ship1"));
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-INT", "--", &group]).status();
    let run = support::finish_within(child, LIMIT, started);
    assert_ne!(
        run.code, -1,
        "the client ended on Ctrl-C, not killed: {run}"
    );
    let sessions = warm.sessions().expect("the daemon is still running");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let status = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    reached(&status);
    assert_eq!(
        settled(|| logins(&bed, "ship1")),
        before,
        "the kept session served the next command"
    );
}

#[test]
fn a_changed_file_never_reuses_a_session_made_for_another_route() {
    let (_serial, bed, warm, before) = warm_on("ship2");

    // Another key (the same key under another name is another identity file).
    let other_key = warm.dir.path().join("other_key");
    std::fs::copy(bed.key(), &other_key).expect("copy key");
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = std::fs::read_to_string(warm.dir.path().join("env.yaml"))
        .expect("env")
        .replace(
            &bed.key().display().to_string(),
            &other_key.display().to_string(),
        );
    std::fs::write(warm.dir.path().join("other-key.yaml"), text).expect("write");
    let run = warm.run(&["-f", "other-key.yaml", "--persist", "1m", "status"]);
    reached(&run);
    assert_eq!(
        settled(|| logins(&bed, "ship2")) - before,
        1,
        "its own login"
    );

    // Another route: another user at the same address. The bed lets `nobody` log in with
    // the operator's key, and its Docker socket is root's: the command fails after its own
    // login, never on root's session.
    let before = settled(|| logins(&bed, "ship2"));
    let text = std::fs::read_to_string(warm.dir.path().join("env.yaml"))
        .expect("env")
        .replace(&format!("user: {}", bed.user), "user: nobody");
    std::fs::write(warm.dir.path().join("other-user.yaml"), text).expect("write");
    let run = warm.run(&["-f", "other-user.yaml", "--persist", "1m", "status"]);
    assert_ne!(
        run.code, 0,
        "nobody has no access to root's Docker socket: {run}"
    );
    assert!(run.all().contains("nobody@"), "{run}");
    assert_eq!(
        settled(|| logins(&bed, "ship2")) - before,
        1,
        "its own login"
    );

    // A key replaced in place (same path, other contents) is another route too.
    let mut key = std::fs::read(&other_key).expect("read key");
    key.extend_from_slice(b"\n");
    std::fs::write(&other_key, key).expect("rewrite key");
    let before = settled(|| logins(&bed, "ship2"));
    let run = warm.run(&["-f", "other-key.yaml", "--persist", "1m", "status"]);
    reached(&run);
    assert_eq!(
        settled(|| logins(&bed, "ship2")) - before,
        1,
        "its own login"
    );
    let sessions = warm.sessions().expect("running");
    let up = sessions.iter().filter(|s| s["alive"] == true).count();
    assert_eq!(up, 4, "one per route: {sessions:?}");
}

/// Stops `ship`'s dockerd and starts it again as it was, waiting until it answers.
fn restart_dockerd(bed: &TestBed, ship: &str) {
    support::DockerdStopped::new(bed, bed.ship(ship)).restore();
}

#[test]
fn a_restarted_dockerd_does_not_break_warm_commands() {
    let (_serial, bed, warm, before) = warm_on("ship3");
    // The daemon now holds channels to ship3's dockerd, opened ahead; dockerd's restart
    // ends them on the ship's side, not the SSH session.
    restart_dockerd(&bed, "ship3");
    for _ in 0..3 {
        let again = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
        reached(&again);
        assert!(again.stdout.contains("wweb-ship3"), "{again}");
    }
    assert_eq!(
        settled(|| logins(&bed, "ship3")),
        before,
        "the session itself was kept"
    );
}

#[test]
fn a_bad_persist_duration_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, env) in [
        (&["--persist", "soon", "persist", "status"][..], None),
        (&["persist", "status"][..], Some("soon")),
    ] {
        let mut cmd = common::maestro(dir.path());
        cmd.args(args)
            .env("MAESTRO_RUNTIME_DIR", dir.path().join("rt"));
        if let Some(value) = env {
            cmd.env("MAESTRO_PERSIST", value);
        }
        let out = cmd.output().expect("run");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains("--persist <DURATION>")
                && text
                    .contains("expected seconds or a duration such as 500ms, 2s, 1m, not `soon`"),
            "{text}"
        );
    }
}

#[test]
fn persist_status_and_stop_without_a_daemon_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = dir.path().join("rt");
    for (args, said) in [
        (&["persist", "status"][..], "persist: not running"),
        (&["persist", "stop"][..], "persist: not running"),
    ] {
        let out = common::maestro(dir.path())
            .args(args)
            .env("MAESTRO_RUNTIME_DIR", &runtime)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.contains(said), "{text}");
    }
    let out = common::maestro(dir.path())
        .args(["persist", "status", "--json"])
        .env("MAESTRO_RUNTIME_DIR", &runtime)
        .output()
        .expect("run");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["sessions"], serde_json::Value::Null, "{doc}");
}

#[test]
fn an_encrypted_key_takes_the_passphrase_of_the_command_that_asks() {
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship2"]);
    let text = std::fs::read_to_string(warm.dir.path().join("env.yaml"))
        .expect("env")
        .replace(
            &bed.key().display().to_string(),
            &bed.encrypted_key().display().to_string(),
        );
    std::fs::write(warm.dir.path().join("env.yaml"), text).expect("write");
    // No passphrase: refused at once, naming the variable (the daemon never prompts).
    let run = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.all().contains("MAESTRO_SSH_PASSPHRASE"), "{run}");
    // The same daemon (started without it) logs in with the next command's passphrase.
    let run = warm.run_with(
        &["-f", "env.yaml", "--persist", "1m", "status"],
        &[("MAESTRO_SSH_PASSPHRASE", bed.passphrase())],
    );
    reached(&run);
    assert!(run.stdout.contains("wweb-ship2"), "{run}");
    let log = std::fs::read_to_string(warm.runtime.join("daemon.log")).expect("log");
    assert!(!log.contains(bed.passphrase()), "{log}");
}

#[test]
fn ships_behind_one_bastion_share_its_kept_login_across_commands() {
    let _serial = serial();
    // A bed of this test's own (named with the process id: concurrent runs never meet):
    // twelve sshd-only ships behind the bastion.
    let bed = TestBed::up_options(
        &format!("pscale-{}", std::process::id()),
        &common::BedOptions {
            cheap_inner: 12,
            ..Default::default()
        },
    );
    let names: Vec<String> = bed.cheap_ships().iter().map(|s| s.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let warm = Warm::new(&bed, &names);
    warm.assert_one_login_each(
        &bed,
        &names,
        &[&["status"], &["ships"], &["status"], &["plan"]],
    );
    let sessions = warm.sessions().expect("running");
    assert_eq!(sessions.len(), 12, "{sessions:?}");
}

#[test]
fn a_command_right_after_persist_stop_starts_a_new_daemon() {
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship1"]);
    for _ in 0..3 {
        let run = warm.run(&["-f", "env.yaml", "--persist", "1m", "ships"]);
        assert_eq!(run.code, 0, "{run}");
        let stop = warm.run(&["persist", "stop"]);
        assert!(stop.stdout.contains("stopped"), "{stop}");
    }
    let run = warm.run(&["-f", "env.yaml", "--persist", "1m", "ships"]);
    assert_eq!(run.code, 0, "{run}");
    let log = std::fs::read_to_string(warm.runtime.join("daemon.log")).expect("log");
    assert_eq!(log.matches("listening at").count(), 4, "{log}");
}

/// A daemon left by an older maestro (the operator upgraded while it ran) is stopped and
/// replaced, never asked for a channel: it is played here by a listener that, as a daemon
/// from before the hello did, answers any request it does not know as not understood, and
/// `stop` by going away.
#[test]
fn a_daemon_of_another_version_is_replaced_not_spoken_to() {
    use std::os::unix::fs::DirBuilderExt;
    use std::os::unix::net::UnixListener;
    let _serial = serial();
    let bed = TestBed::shared();
    let warm = Warm::new(&bed, &["ship1"]);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&warm.runtime)
        .expect("runtime dir");
    let socket = warm.socket();
    let listener = UnixListener::bind(&socket).expect("bind the old daemon's socket");
    let old = std::thread::spawn(move || {
        let mut asked = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let stop = line.contains(r#""op":"stop""#);
            asked.push(line.trim().to_string());
            if stop {
                let _ = std::fs::remove_file(&socket);
                let _ = stream.write_all(b"{\"ok\":true}\n");
                break;
            }
            let _ = stream.write_all(
                b"{\"ok\":false,\"kind\":\"persist\",\"message\":\"a request not understood\"}\n",
            );
        }
        asked
    });
    let run = warm.run(&["-f", "env.yaml", "--persist", "1m", "status"]);
    reached(&run);
    let asked = old.join().expect("the old daemon's thread");
    assert_eq!(
        asked,
        [r#"{"op":"hello"}"#, r#"{"op":"stop"}"#],
        "what the old daemon was asked"
    );
    // The new daemon holds the ship's session.
    let sessions = warm.sessions().expect("a new daemon running");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let log = std::fs::read_to_string(warm.runtime.join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains(&format!(
            "(maestro {}, protocol ",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
}
