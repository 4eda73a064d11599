//! Helpers of the integration tests (tests/bed/ and tests/offline/): running the maestro binary
//! in a clean environment and reading what it did (`Run`, `run`), a listener that
//! records every connection made to it (to prove that nothing was contacted), environment
//! files for the test bed, and faults injected in a ship's network namespace.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Ship, TestBed};

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `-1` when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// CPU time (user + system) of the process, read from `/proc` before it was reaped;
    /// `None` when not measured.
    pub cpu: Option<Duration>,
    /// Bytes the process read through `read(2)` and the like (`rchar` of `/proc/PID/io`),
    /// read before it was reaped; `None` when not measured.
    pub read_bytes: Option<u64>,
}

impl Run {
    pub fn from_output(out: Output, elapsed: Duration) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
            cpu: None,
            read_bytes: None,
        }
    }

    /// The JSON events of a `--json` run, one per stdout line; a line that starts like one
    /// and is not JSON fails the test.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect()
    }

    /// stdout as one JSON document (`status --json`, `ships --json`).
    pub fn document(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not a JSON document ({e}):\n{}", self.stdout))
    }

    /// stdout and stderr, for assertions that care about neither in particular.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// `maestro ARGS` in `dir`, with an environment holding only PATH, HOME=`dir` (so no
/// ~/.ssh of the machine is used), NO_COLOR and `envs`: no agent, no ssh_config.
pub fn maestro_command(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = super::maestro(dir);
    cmd.args(args).current_dir(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// How long any one run of maestro may take in these tests before it is killed and the test
/// fails: a hang fails loudly instead of hanging the suite.
pub const RUN_LIMIT: Duration = Duration::from_secs(180);

pub fn run_maestro(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    run(&mut maestro_command(dir, args, envs))
}

/// Runs `cmd` (made by `common::maestro`, with the test's arguments and variables) to its end,
/// at most [`RUN_LIMIT`]: the one way the tests run the binary and wait for it.
pub fn run(cmd: &mut Command) -> Run {
    run_within(cmd, RUN_LIMIT)
}

/// [`run`] with a limit of the test's own.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Run {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run maestro: {e}"));
    finish_within(child, limit, started)
}

/// [`run`], with `read_bytes` measured as any user. A zombie's `/proc/PID/io` is root's, so
/// [`finish_within`] reads it only as root; here `cmd` runs under `sh`, which waits for it and
/// then prints its own `rchar`: the kernel adds a reaped child's reads to its parent's, so the
/// figure bounds the command's reads from above (the shell's own are a few kilobytes).
pub fn run_counting_reads(cmd: &Command) -> Run {
    const MARK: &str = "rchar of the shell: ";
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg(format!(
            r#""$@"; s=$?; printf '\n{MARK}%s\n' "$(sed -n 's/^rchar: //p' /proc/$$/io)" >&2; exit $s"#
        ))
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            sh.env(key, value);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    let mut run = run(sh.stdin(Stdio::null()));
    let (stderr, figure) = run
        .stderr
        .rsplit_once(&format!("\n{MARK}"))
        .unwrap_or_else(|| panic!("the shell printed no rchar\n{run}"));
    run.read_bytes = Some(
        figure
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("rchar {figure:?}: {e}")),
    );
    run.stderr = stderr.to_string();
    run
}

/// Waits for `child` (spawned with piped stdout and stderr, or none) at most `limit` after
/// `started`; past it, kills it and panics with what it printed. Before reaping the process it
/// reads its CPU time and the bytes it read from `/proc` (see [`Run::cpu`]).
pub fn finish_within(mut child: Child, limit: Duration, started: Instant) -> Run {
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let pid = child.id();
    let deadline = started + limit;
    let mut measured = (None, None);
    let mut timed_out = false;
    loop {
        // A zombie keeps its accounting until it is reaped: read it first, then reap.
        if let Some((state, cpu)) = proc_stat(pid) {
            if state == 'Z' {
                measured = (Some(cpu), proc_rchar(pid));
                break;
            }
        } else if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().expect("reap maestro");
    let elapsed = started.elapsed();
    let out = Output {
        status,
        stdout: stdout
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default(),
        stderr: stderr
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default(),
    };
    let mut run = Run::from_output(out, elapsed);
    if timed_out {
        panic!("maestro did not end within {limit:?}; killed\n{run}");
    }
    (run.cpu, run.read_bytes) = measured;
    run
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// The state letter and CPU time (utime + stime) of process `pid`, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, Duration)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after its end.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((
        state,
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64),
    ))
}

/// `rchar` of `/proc/PID/io`: bytes the process read.
fn proc_rchar(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/PID/stat` times.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// A TCP listener on 127.0.0.1 that counts the connections made to it (and closes them).
/// Ships pointed at it prove that a command contacted nothing.
pub struct ContactRecorder {
    pub port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ContactRecorder {
    pub fn new() -> ContactRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a recorder port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
                        let mut buf = [0u8; 64];
                        let _ = stream.read(&mut buf);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ContactRecorder {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far (give the accept loop a moment first).
    pub fn contacts(&self) -> usize {
        std::thread::sleep(Duration::from_millis(30));
        self.count.load(Ordering::SeqCst)
    }
}

impl Default for ContactRecorder {
    fn default() -> Self {
        ContactRecorder::new()
    }
}

impl Drop for ContactRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A ship entry (one line of flow YAML) that reaches `ip` over SSH with the bed's key and
/// known_hosts, and talks to dockerd through `socket`.
/// A container's labels (`docker inspect -f '{{json .Config.Labels}}'`) as one text, with the
/// labels maestro packs (`deflate+base64:`, the spec and the history) unpacked, as anyone who
/// reads them can: what a test looks for in labels must not hide in the packing.
pub fn labels_unpacked(labels_json: &str) -> String {
    use base64::Engine;
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_str(labels_json).expect("labels as JSON");
    let unpacked: Vec<String> = labels
        .iter()
        .map(|(key, value)| {
            let Some(encoded) = value.strip_prefix("deflate+base64:") else {
                return format!("{key}={value}");
            };
            let packed = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(encoded)
                .expect("base64");
            let mut json = String::new();
            flate2::read::DeflateDecoder::new(packed.as_slice())
                .read_to_string(&mut json)
                .expect("deflate");
            format!("{key}={json}")
        })
        .collect();
    unpacked.join("\n")
}

pub fn ssh_ship_line(
    name: &str,
    ip: &str,
    key: &Path,
    known_hosts: &Path,
    socket: &Path,
    extra: &str,
) -> String {
    format!(
        "  {name}: {{ip: {ip}, socket_path: {}, ssh: {{user: root, identity_files: [{}], known_hosts_file: {}}}{extra}}}\n",
        socket.display(),
        key.display(),
        known_hosts.display()
    )
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks that `doc` holds, between `<!-- BEGIN name -->` and `<!-- END name -->`, exactly
/// `table`; with `MAESTRO_BLESS=1` it rewrites the section instead. Keeps docs/reliability.md
/// in step with the lists of cases in the tests.
pub fn check_doc_section(doc_path: &Path, name: &str, table: &str) {
    let begin = format!("<!-- BEGIN {name} (generated by the tests; MAESTRO_BLESS=1 rewrites) -->");
    let end = format!("<!-- END {name} -->");
    let doc = std::fs::read_to_string(doc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc_path.display()));
    let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("{} lacks the markers\n{begin}\n{end}", doc_path.display());
    };
    let current = &doc[b + begin.len()..e];
    let wanted = format!("\n{table}");
    if current == wanted {
        return;
    }
    if std::env::var_os("MAESTRO_BLESS").is_some_and(|v| v == "1") {
        let updated = format!("{}{wanted}{}", &doc[..b + begin.len()], &doc[e..]);
        std::fs::write(doc_path, updated).expect("rewrite the doc");
        return;
    }
    panic!(
        "{} is out of date (section {name}); run the test with MAESTRO_BLESS=1 to regenerate.\nwanted:\n{wanted}\nfound:\n{current}",
        doc_path.display()
    );
}

/// Markdown table of (case, what the tool does).
pub fn table(header: (&str, &str), rows: &[(String, String)]) -> String {
    let mut out = format!("| {} | {} |\n| --- | --- |\n", header.0, header.1);
    for (a, b) in rows {
        out.push_str(&format!(
            "| {} | {} |\n",
            a.replace('|', "\\|"),
            b.replace('|', "\\|")
        ));
    }
    out
}

pub fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

/// Runs `cmd` in network namespace `ns`.
pub fn in_netns(ns: &str, cmd: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{ns}"))
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("nsenter: {e}"))
}

/// Every TCP packet to port 22 of a ship dropped in its namespace; removed on drop.
pub struct PacketsDropped {
    netns: String,
}

const DROP_RULE: &[&str] = &["INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"];

impl PacketsDropped {
    pub fn new(netns: &str) -> PacketsDropped {
        let mut cmd = vec!["iptables", "-I"];
        cmd.extend_from_slice(DROP_RULE);
        let out = in_netns(netns, &cmd);
        assert!(out.status.success(), "iptables: {out:?}");
        PacketsDropped {
            netns: netns.to_string(),
        }
    }
}

impl Drop for PacketsDropped {
    fn drop(&mut self) {
        let mut cmd = vec!["iptables", "-D"];
        cmd.extend_from_slice(DROP_RULE);
        let _ = in_netns(&self.netns, &cmd);
    }
}

/// A ship's dockerd stopped (TERM, as `systemctl stop` does); started again on drop with
/// the command line it had, in its namespace (tests/bed/faults.rs, tests/bed/persist.rs).
pub struct DockerdStopped<'a> {
    bed: &'a TestBed,
    ship: String,
    netns: String,
    cmdline: Vec<String>,
    log: PathBuf,
    restored: bool,
}

impl<'a> DockerdStopped<'a> {
    pub fn new(bed: &'a TestBed, ship: &Ship) -> DockerdStopped<'a> {
        let dir = ship.dir.clone().expect("bed.json names the ship's dir");
        let pidfile = dir.join("dockerd.pid");
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
            .trim()
            .parse()
            .expect("a pid");
        let cmdline: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .expect("dockerd cmdline")
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(
            wait_for(Duration::from_secs(60), || !Path::new(&format!(
                "/proc/{pid}"
            ))
            .exists()),
            "dockerd of {} did not stop",
            ship.name
        );
        DockerdStopped {
            bed,
            ship: ship.name.clone(),
            netns: ship.netns.clone(),
            cmdline,
            log: dir.join("dockerd.log"),
            restored: false,
        }
    }

    /// Starts it again now (else on drop), and waits until it answers.
    pub fn restore(&mut self) {
        if self.restored {
            return;
        }
        self.restored = true;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .expect("dockerd log");
        // `setsid --fork`: dockerd outlives this command, which returns at once.
        let status = Command::new("setsid")
            .arg("--fork")
            .arg("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(&self.cmdline)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .status()
            .expect("restart dockerd");
        assert!(status.success(), "setsid nsenter dockerd: {status}");
        let bed = self.bed;
        let ship = self.ship.clone();
        assert!(
            wait_for(Duration::from_secs(60), || bed
                .docker_cli(&ship, &["version"])
                .status
                .success()),
            "dockerd of {ship} did not come back"
        );
    }
}

impl Drop for DockerdStopped<'_> {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Cuts every SSH session of `ship` on the ship's side: each per-connection process of its sshd
/// ends (`pkill -P` of the listener), the listener stays, as when a laptop's network drops and
/// comes back. Fails the test when there was no session to cut.
pub fn cut_ssh_sessions(ship: &Ship) {
    let pidfile = ship
        .sshd_pidfile
        .as_ref()
        .expect("bed.json names the sshd pidfile");
    let listener =
        std::fs::read_to_string(pidfile).unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()));
    let cut = Command::new("pkill")
        .args(["-P", listener.trim()])
        .status()
        .expect("pkill");
    assert!(cut.success(), "no session of {} to cut", ship.name);
}
