//! The test bed for integration tests: real hosts made of network namespaces, each with its
//! own sshd and dockerd, brought up by `testbed/bed.sh` (see testbed/TESTBED-CONTRACT.md).
//!
//! ```ignore
//! mod common;
//! let bed = common::TestBed::shared();           // or TestBed::up("mytest", 3, 1)
//! let ship = bed.ship("ship1");
//! let out = bed.docker_cli("ship1", &["ps", "-a"]);
//! // Many sshd-only inner ships sharing one dockerd, for tests at scale through the bastion:
//! let big = common::TestBed::up_options(
//!     "mytest-scale",
//!     &common::BedOptions { cheap_inner: 100, extra_keys: 4, ..Default::default() },
//! );
//! ```
//!
//! Tests that need a bed must run as root (they do in `./test.sh` and CI).
#![allow(dead_code)]

pub mod golden;
pub mod support;
pub mod turn;

use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The environment variable that names an already running bed (path of its bed.json or of its
/// directory). `./test.sh` sets it so that every test binary shares one bed.
pub const TESTBED_ENV: &str = "MAESTRO_TESTBED";

#[derive(Debug, Clone, Deserialize)]
pub struct Operator {
    /// Unencrypted ed25519 private key, authorized on every ship and the bastion.
    pub key: PathBuf,
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// The same key, encrypted with `encrypted_key_passphrase`.
    pub encrypted_key: PathBuf,
    pub encrypted_key_passphrase: String,
    /// More unencrypted ed25519 keys (`bed.sh up --extra-keys N`), authorized on every ship
    /// and the bastion like `key`: distinct identities for the same user.
    #[serde(default)]
    pub extra_keys: Vec<PathBuf>,
    /// Host keys of every ship and of the bastion, by ip.
    pub known_hosts: PathBuf,
    /// A `Host` entry per ship name (and `bastion`), with ProxyJump for inner ships.
    pub ssh_config: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ship {
    pub name: String,
    pub ip: String,
    pub ssh_port: u16,
    pub netns: String,
    /// The ship's dockerd socket; the path is the same seen from the operator and from the ship.
    pub docker_socket: PathBuf,
    /// dockerd also listens on 127.0.0.1:this port inside the ship's namespace.
    pub docker_tcp_port: u16,
    /// Reachable only through the bastion.
    pub inner: bool,
    /// A cheap inner ship (`bed.sh up --cheap-inner N`): sshd only; `docker_socket` is the
    /// one dockerd shared by all cheap ships (see `CheapDocker`), and `docker_tcp_port` is 0
    /// (none).
    #[serde(default)]
    pub cheap: bool,
    pub host_key_fingerprint: String,
    #[serde(default)]
    pub host_key_public: Option<PathBuf>,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub sshd_pidfile: Option<PathBuf>,
    /// The ship's sshd log (LogLevel VERBOSE).
    #[serde(default)]
    pub sshd_log: Option<PathBuf>,
    #[serde(default)]
    pub dockerd_pidfile: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bastion {
    pub name: String,
    /// Its address on the operator's side.
    pub ip: String,
    /// Its address on the inner ships' side.
    pub inner_ip: String,
    pub ssh_port: u16,
    pub netns: String,
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
    #[serde(default)]
    pub host_key_public: Option<PathBuf>,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub sshd_pidfile: Option<PathBuf>,
    #[serde(default)]
    pub sshd_config: Option<PathBuf>,
    /// The bastion's sshd log (LogLevel VERBOSE): "Accepted publickey for root from ..." per
    /// login, "drop connection #N from ... past MaxStartups" per connection sshd refused.
    #[serde(default)]
    pub sshd_log: Option<PathBuf>,
}

/// The one dockerd that every cheap inner ship's `docker_socket` names
/// (`bed.sh up --cheap-inner N`). It runs in a namespace of its own (loopback only).
#[derive(Debug, Clone, Deserialize)]
pub struct CheapDocker {
    pub netns: String,
    pub docker_socket: PathBuf,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub dockerd_pidfile: Option<PathBuf>,
    /// How many cheap ships share it.
    pub ships: usize,
}

/// A registry (`bed.sh up --registry`): plain HTTP with basic auth, on the outer bridge
/// address; every ship's dockerd trusts it as insecure; inner ships cannot reach it.
#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    /// `ip:port`, the prefix of image names in it.
    pub address: String,
    pub user: String,
    pub password: String,
    /// The test image, already pushed there.
    pub image: String,
}

/// What bed.json holds.
#[derive(Debug, Clone, Deserialize)]
pub struct BedInfo {
    pub name: String,
    pub dir: PathBuf,
    /// The prefix of every namespace and link name of this bed.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub outer_subnet: Option<String>,
    /// Subnet of the inner ships (`None` without a bastion).
    #[serde(default)]
    pub inner_subnet: Option<String>,
    pub operator: Operator,
    pub user: String,
    pub image: String,
    /// Over SSH, every ship with its own dockerd also answers at this path (Docker's
    /// default), as a real host does; `None` for a bed made by a bed.sh without that.
    #[serde(default)]
    pub default_socket_path: Option<PathBuf>,
    pub ships: Vec<Ship>,
    pub bastion: Option<Bastion>,
    #[serde(default)]
    pub registry: Option<Registry>,
    #[serde(default)]
    pub cheap_docker: Option<CheapDocker>,
}

/// What `TestBed::up_options` brings up (the options of `bed.sh up`). `Default` is all zero:
/// say what you need, e.g. `BedOptions { ships: 1, cheap_inner: 30, ..Default::default() }`.
#[derive(Debug, Clone, Default)]
pub struct BedOptions {
    /// Outer ships (`--ships`, 0..=50).
    pub ships: usize,
    /// Inner ships, each with its own dockerd (`--inner`, 0..=50).
    pub inner: usize,
    /// Cheap inner ships: sshd only, one shared dockerd (`--cheap-inner`, 0..=100).
    pub cheap_inner: usize,
    /// Extra operator keys (`--extra-keys`, 0..=100), see `Operator::extra_keys`.
    pub extra_keys: usize,
    /// A registry (`--registry`, needs an outer ship).
    pub registry: bool,
}

/// A running bed. Dropping a bed this process brought up tears it down (also when the test
/// panics, since the drop runs during unwinding).
#[derive(Debug)]
pub struct TestBed {
    pub info: BedInfo,
    pub json_path: PathBuf,
    owned: bool,
}

impl Deref for TestBed {
    type Target = BedInfo;
    fn deref(&self) -> &BedInfo {
        &self.info
    }
}

/// Path of `testbed/bed.sh` in this repository.
pub fn bed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testbed")
        .join("bed.sh")
}

fn output_text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The shared bed of this process, once brought up or opened; never dropped before the end.
static SHARED: Mutex<Option<Arc<TestBed>>> = Mutex::new(None);

impl TestBed {
    /// Brings up a bed named `name` with `ships` outer ships and `inner` ships behind a bastion
    /// (a bastion exists when `inner > 0`). An existing bed of that name is replaced.
    pub fn up(name: &str, ships: usize, inner: usize) -> TestBed {
        TestBed::up_with(name, ships, inner, false)
    }

    /// Like `up`, with a registry when `registry` is true (see `Registry`).
    pub fn up_with(name: &str, ships: usize, inner: usize, registry: bool) -> TestBed {
        TestBed::up_options(
            name,
            &BedOptions {
                ships,
                inner,
                registry,
                ..Default::default()
            },
        )
    }

    /// Brings up a bed named `name` with every option of `bed.sh up` (a bastion exists when
    /// `inner + cheap_inner > 0`). An existing bed of that name is replaced; the bed is torn
    /// down when the returned value drops (also when the test panics).
    pub fn up_options(name: &str, opts: &BedOptions) -> TestBed {
        let mut cmd = Command::new(bed_script());
        cmd.args(["up", "--name", name])
            .args(["--ships", &opts.ships.to_string()])
            .args(["--inner", &opts.inner.to_string()])
            .args(["--cheap-inner", &opts.cheap_inner.to_string()])
            .args(["--extra-keys", &opts.extra_keys.to_string()]);
        if opts.registry {
            cmd.arg("--registry");
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bed_script().display()));
        assert!(
            out.status.success(),
            "bed.sh up --name {name} failed (tests need root and the packages of ./test.sh)\n{}",
            output_text(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json_path = stdout
            .lines()
            .rev()
            .find(|l| l.trim_end().ends_with("bed.json"))
            .map(|l| PathBuf::from(l.trim()))
            .unwrap_or_else(|| panic!("bed.sh up printed no bed.json path\n{}", output_text(&out)));
        let mut bed = TestBed::open(&json_path).unwrap_or_else(|e| {
            let _ = Command::new(bed_script())
                .args(["down", "--name", name])
                .output();
            panic!("{e}")
        });
        bed.owned = true;
        bed
    }

    /// Reads an existing bed (not torn down on drop). `path` is bed.json or its directory.
    pub fn open(path: &Path) -> Result<TestBed, String> {
        let json_path = if path.is_dir() {
            path.join("bed.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&json_path)
            .map_err(|e| format!("cannot read test bed {}: {e}", json_path.display()))?;
        let info: BedInfo = serde_json::from_str(&text)
            .map_err(|e| format!("bad test bed file {}: {e}", json_path.display()))?;
        Ok(TestBed {
            info,
            json_path,
            owned: false,
        })
    }

    /// The bed shared by the tests of this run: the one named by `MAESTRO_TESTBED` if set
    /// (left running), else one brought up by the first test of this test binary that asks
    /// (3 ships, 2 inner ships, a registry) and kept for the whole run: it has one owner, the
    /// process, and a watcher started with it removes it once the process has ended (also
    /// when killed). Its name holds the process id, so no other run's bed is touched.
    ///
    /// The caller's source file takes a turn on it (see [`turn`]), held as long as the
    /// returned `SharedBed` lives: keep it for the whole test.
    #[track_caller]
    pub fn shared() -> SharedBed {
        let file = std::panic::Location::caller().file();
        let turn = turn::Turn::file(file);
        SharedBed {
            bed: TestBed::shared_bed(),
            _turn: turn,
        }
    }

    fn shared_bed() -> Arc<TestBed> {
        let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bed) = guard.as_ref() {
            return bed.clone();
        }
        let bed = if let Some(path) = std::env::var_os(TESTBED_ENV).filter(|p| !p.is_empty()) {
            TestBed::open(Path::new(&path))
                .unwrap_or_else(|e| panic!("{TESTBED_ENV}={}: {e}", path.to_string_lossy()))
        } else {
            let name = auto_bed_name();
            down_when_this_process_ends(&name);
            let mut bed = TestBed::up_with(&name, 3, 2, true);
            // Not on drop: the watcher removes it after the last test, whatever the order.
            bed.owned = false;
            bed
        };
        let bed = Arc::new(bed);
        *guard = Some(bed.clone());
        bed
    }

    /// Tears the bed down now (also done on drop for beds this process brought up).
    pub fn down(&self) {
        let _ = Command::new(bed_script())
            .args(["down", "--name", &self.info.name])
            .stdin(Stdio::null())
            .output();
    }

    pub fn ship(&self, name: &str) -> &Ship {
        self.info
            .ships
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("test bed {} has no ship {name}", self.info.name))
    }

    /// Ships reachable directly from the operator's namespace.
    pub fn outer_ships(&self) -> Vec<&Ship> {
        self.info.ships.iter().filter(|s| !s.inner).collect()
    }

    /// Ships reachable only through the bastion (cheap ones included).
    pub fn inner_ships(&self) -> Vec<&Ship> {
        self.info.ships.iter().filter(|s| s.inner).collect()
    }

    /// Cheap inner ships (sshd only, their `docker_socket` is the shared dockerd's).
    pub fn cheap_ships(&self) -> Vec<&Ship> {
        self.info.ships.iter().filter(|s| s.cheap).collect()
    }

    /// The dockerd that the cheap ships share.
    pub fn cheap_docker(&self) -> &CheapDocker {
        self.info
            .cheap_docker
            .as_ref()
            .unwrap_or_else(|| panic!("test bed {} has no cheap inner ships", self.info.name))
    }

    /// The extra operator keys (`BedOptions::extra_keys`).
    pub fn extra_keys(&self) -> &[PathBuf] {
        &self.info.operator.extra_keys
    }

    /// The bastion's sshd log.
    pub fn bastion_sshd_log(&self) -> &Path {
        self.bastion().sshd_log.as_deref().unwrap_or_else(|| {
            panic!(
                "test bed {}: bed.json names no bastion sshd_log (made by an older bed.sh)",
                self.info.name
            )
        })
    }

    /// Lines of the bastion's sshd log that contain `pattern`, e.g. "Accepted publickey" (one
    /// per login) or "past MaxStartups" (one per connection refused by MaxStartups). The log
    /// only grows (a restart appends), so a test counts before and after what it does.
    pub fn bastion_log_lines(&self, pattern: &str) -> Vec<String> {
        let path = self.bastion_sshd_log();
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!("cannot read the bastion's sshd log {}: {e}", path.display())
        });
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(pattern))
            .map(str::to_string)
            .collect()
    }

    /// How many lines of the bastion's sshd log contain `pattern`.
    pub fn bastion_log_count(&self, pattern: &str) -> usize {
        self.bastion_log_lines(pattern).len()
    }

    /// Established TCP connections whose local port is `port` inside namespace `netns` (a
    /// ship's or the bastion's `netns`): with `port` 22, the SSH connections that host's sshd
    /// holds. Runs `nsenter --net=/var/run/netns/NETNS ss -Htn state established`.
    pub fn ss_established_in(&self, netns: &str, port: u16) -> usize {
        let out = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{netns}"))
            .args(["ss", "-Htn", "state", "established"])
            .arg(format!("( sport = :{port} )"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter ss: {e}"));
        assert!(
            out.status.success(),
            "ss in {netns} failed\n{}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Established SSH connections that the bastion's sshd holds right now.
    pub fn bastion_ssh_connections(&self) -> usize {
        let bastion = self.bastion();
        self.ss_established_in(&bastion.netns, bastion.ssh_port)
    }

    /// Restarts a host's sshd (a ship name or `bastion`) with extra sshd command-line
    /// arguments for this run only, e.g. `&["-o", "MaxStartups=2:100:2"]`; `&[]` brings back
    /// the bed's own settings (OpenSSH's default MaxStartups). Open sessions survive (only the
    /// listener restarts). Returns once the new sshd listens. A test that changes a shared
    /// bed's sshd must restore it.
    pub fn restart_sshd(&self, host: &str, sshd_args: &[&str]) {
        let out = Command::new(bed_script())
            .args(["sshd", "--name", &self.info.name, "--ship", host, "restart"])
            .args(sshd_args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bed.sh: {e}"));
        assert!(
            out.status.success(),
            "bed.sh sshd --ship {host} restart {sshd_args:?} failed\n{}",
            output_text(&out)
        );
    }

    /// `restart_sshd("bastion", sshd_args)`.
    pub fn restart_bastion_sshd(&self, sshd_args: &[&str]) {
        self.restart_sshd("bastion", sshd_args);
    }

    pub fn bastion(&self) -> &Bastion {
        self.info
            .bastion
            .as_ref()
            .unwrap_or_else(|| panic!("test bed {} has no bastion", self.info.name))
    }

    pub fn key(&self) -> &Path {
        &self.info.operator.key
    }

    pub fn encrypted_key(&self) -> &Path {
        &self.info.operator.encrypted_key
    }

    pub fn passphrase(&self) -> &str {
        &self.info.operator.encrypted_key_passphrase
    }

    pub fn known_hosts(&self) -> &Path {
        &self.info.operator.known_hosts
    }

    pub fn ssh_config(&self) -> &Path {
        &self.info.operator.ssh_config
    }

    pub fn registry(&self) -> &Registry {
        self.info
            .registry
            .as_ref()
            .unwrap_or_else(|| panic!("test bed {} has no registry", self.info.name))
    }

    /// One entry of an environment file's `ships:` map for the bed ship `name`, written as
    /// `alias`: reached over SSH as the bed's user with the bed's key and known_hosts, its
    /// daemon's socket named, and inner ships through the bastion.
    #[allow(dead_code)] // not every test binary writes environment files
    pub fn ship_yaml(&self, name: &str, alias: &str) -> String {
        self.ship_yaml_with(name, alias, "")
    }

    /// `ship_yaml` with more keys of the ship's flow mapping (`extra` starts with `, `).
    #[allow(dead_code)]
    pub fn ship_yaml_with(&self, name: &str, alias: &str, extra: &str) -> String {
        let ship = self.ship(name);
        let jump = if ship.inner {
            format!(", jump: [\"{}@{}\"]", self.info.user, self.bastion().ip)
        } else {
            String::new()
        };
        format!(
            "  {alias}: {{ip: {}, socket_path: \"{}\", ssh: {}{extra}}}\n",
            ship.ip,
            ship.docker_socket.display(),
            self.ssh_yaml(&jump),
        )
    }

    /// The `ssh:` flow mapping that logs in to the bed as its user with its key and
    /// known_hosts; `extra` (starting with `, `) adds keys.
    #[allow(dead_code)]
    pub fn ssh_yaml(&self, extra: &str) -> String {
        format!(
            "{{user: {}, identity_files: [\"{}\"], known_hosts_file: \"{}\"{extra}}}",
            self.info.user,
            self.key().display(),
            self.known_hosts().display(),
        )
    }

    /// Runs the docker CLI against a ship's socket directly (not through SSH), to assert state.
    pub fn docker_cli(&self, ship: &str, args: &[&str]) -> Output {
        let socket = &self.ship(ship).docker_socket;
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker: {e}"))
    }

    /// Like `docker_cli`, but asserts success and returns trimmed stdout.
    pub fn docker_ok(&self, ship: &str, args: &[&str]) -> String {
        let out = self.docker_cli(ship, args);
        assert!(
            out.status.success(),
            "docker {args:?} on {ship} failed\n{}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `cmd` on a host (a ship name or `bastion`) with the system ssh and the bed's
    /// ssh_config (inner ships go through the bastion).
    pub fn ssh(&self, host: &str, cmd: &str) -> Output {
        self.ssh_command(host)
            .arg("--")
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ssh: {e}"))
    }

    /// `ssh -F <bed ssh_config> <host>`, for callers that add their own options.
    pub fn ssh_command(&self, host: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(self.ssh_config()).arg(host);
        cmd
    }

    /// Forwards a local unix socket to `remote_socket` on `host` with `ssh -N -L` (system
    /// ssh). The forward lives as long as the returned guard.
    pub fn forward_socket(&self, host: &str, remote_socket: &Path) -> SocketForward {
        self.forward(host, &remote_socket.display().to_string())
    }

    /// Forwards a local unix socket to `remote` on `host`: a socket path, or `ip:port` as seen
    /// from the host (e.g. `127.0.0.1:2375` for the ship's dockerd TCP port).
    pub fn forward(&self, host: &str, remote: &str) -> SocketForward {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let local = dir.path().join("fwd.sock");
        let mut child = Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("{}:{remote}", local.display()))
            .arg(host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ssh: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !local.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("ssh -L to {host} exited ({status}): {err}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ssh -L to {host}: local socket did not appear within 20s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SocketForward {
            child,
            local,
            _dir: dir,
        }
    }

    /// Stops or starts one host's sshd (`bed.sh sshd`), for "sshd down" tests. A test that
    /// stops an sshd of a shared bed must start it again.
    pub fn set_sshd_running(&self, host: &str, running: bool) {
        let out = Command::new(bed_script())
            .args(["sshd", "--name", &self.info.name, "--ship", host])
            .arg(if running { "start" } else { "stop" })
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bed.sh: {e}"));
        assert!(
            out.status.success(),
            "bed.sh sshd failed\n{}",
            output_text(&out)
        );
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        if self.owned {
            self.down();
        }
    }
}

/// The shared bed, with the turn of the test that holds it (see [`turn`]): keep it for the
/// whole test. A clone is one more turn of the same file, entered at once.
#[derive(Debug)]
pub struct SharedBed {
    bed: Arc<TestBed>,
    _turn: turn::Turn,
}

impl Deref for SharedBed {
    type Target = TestBed;
    fn deref(&self) -> &TestBed {
        &self.bed
    }
}

impl Clone for SharedBed {
    fn clone(&self) -> SharedBed {
        SharedBed {
            bed: self.bed.clone(),
            _turn: self._turn.again(),
        }
    }
}

/// A running `ssh -N -L local.sock:remote` forward; killed on drop.
pub struct SocketForward {
    child: Child,
    pub local: PathBuf,
    _dir: tempfile::TempDir,
}

impl SocketForward {
    /// `unix:///...` for `docker -H`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.local.display())
    }
}

impl Drop for SocketForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a process, in a session of its own (a Ctrl-C at the terminal does not reach it),
/// that waits for this process to end and then runs `bed.sh down --name NAME`.
fn down_when_this_process_ends(name: &str) {
    let spawned = Command::new("setsid")
        .args([
            "sh",
            "-c",
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down --name "$3""#,
            "sh",
            &std::process::id().to_string(),
        ])
        .arg(bed_script())
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        panic!("cannot start the watcher that removes bed {name}: {e}");
    }
}

/// A bed name unique to this run of this test binary: the binary's name and the process id.
fn auto_bed_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tests".to_string());
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("t-{clean}");
    name.truncate(31);
    format!("{name}-{}", std::process::id())
}

/// `maestro -f FILE ships --json` with HOME set to FILE's directory and no ssh-agent (plus
/// `envs`): the report of the file's first ship.
pub fn first_ship_report(file: &Path, envs: &[(&str, &Path)]) -> serde_json::Value {
    let home = file.parent().unwrap_or(Path::new("/"));
    let mut cmd = maestro(home);
    cmd.arg("-f").arg(file).args(["ships", "--json"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run maestro");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    reports
        .as_array()
        .and_then(|all| all.first())
        .cloned()
        .unwrap_or_else(|| panic!("no report: {stdout}"))
}

/// The maestro binary under test, run the way every new test should run it: a cleared
/// environment (only PATH, `HOME=home`, `LANG=C.UTF-8` and `NO_COLOR`), stdin closed, no
/// ssh-agent; add what the test needs with `.env()`.
pub fn maestro(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maestro"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// A `docker-registry` with htpasswd auth that a test starts inside one ship's namespace, on
/// [`PrivateRegistry::ADDRESS`] there (the bed's own registry is shared; this one is the
/// test's alone, for pulls with credentials; the daemon allows plain HTTP to a loopback
/// registry). Stopped on drop.
pub struct PrivateRegistry {
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRegistry {
    pub const ADDRESS: &'static str = "127.0.0.1:5000";

    /// Starts it in network namespace `netns` with one user, and waits until it accepts
    /// connections there (an unauthorized answer is an answer).
    pub fn start(netns: &str, user: &str, password: &str) -> Result<PrivateRegistry, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .map_err(|e| format!("htpasswd: {e}"))?;
        if !htpasswd.status.success() {
            return Err("htpasswd failed".into());
        }
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes).map_err(|e| format!("{name}: {e}"))
        };
        write("htpasswd", &htpasswd.stdout)?;
        std::fs::create_dir_all(dir.path().join("data")).map_err(|e| format!("data: {e}"))?;
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: maestro\n    path: {htpasswd}\n",
            data = dir.path().join("data").display(),
            address = Self::ADDRESS,
            htpasswd = dir.path().join("htpasswd").display(),
        );
        write("config.yml", config.as_bytes())?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{netns}"))
            .arg("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("docker-registry: {e}"))?;
        let registry = PrivateRegistry { child, _dir: dir };
        for _ in 0..100 {
            let probe = Command::new("nsenter")
                .arg(format!("--net=/var/run/netns/{netns}"))
                .args(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000"])
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return Ok(registry);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("the registry did not come up within 10 s".into())
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
