//! The transport against the real test bed (testbed/bed.sh): ships are network namespaces
//! with their own sshd and dockerd, inner ships are reachable only through the bastion.
//!
//! Needs root. Set `MAESTRO_TESTBED=/path/to/bed.json` to use a bed that is already up
//! (it needs at least 3 ships and 2 inner ships); otherwise one is brought up for this test
//! binary and torn down when it exits.
//!
//! The tests run one at a time, alone in the bed binary (a whole-process turn, see
//! tests/common/turn.rs): some set process-wide environment variables (SSH_AUTH_SOCK,
//! MAESTRO_SSH_PASSPHRASE) or stop a ship's sshd. Each test's end puts the environment back
//! as it found it, for the tests of other modules that run after it in the same process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use maestro::transport::{
    self, DockerTarget, Endpoint, HostKeyPolicy, JumpSpec, Route, SshRoute, TransportError,
    TransportErrorKind, TransportKind,
};

use crate::common;

#[derive(Debug, Clone)]
struct Ship {
    name: String,
    ip: String,
    netns: String,
    docker_socket: String,
    host_key_fingerprint: String,
}

/// The shared bed (tests/common), with the paths these tests use as plain fields.
#[derive(Debug)]
struct Bed {
    testbed: common::TestBed,
    dir: PathBuf,
    key: PathBuf,
    encrypted_key: PathBuf,
    passphrase: String,
    known_hosts: PathBuf,
    ssh_config: PathBuf,
    ships: Vec<Ship>,
    inner: Vec<Ship>,
    bastion_ip: String,
}

/// The bed lives for the whole test binary (the tests run one at a time, so the reference
/// counting of `TestBed::shared` would bring it up and down for each): a bed this binary
/// brings up is torn down by a reaper process when the binary exits, however it exits.
fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let testbed = match std::env::var_os(common::TESTBED_ENV).filter(|p| !p.is_empty()) {
            Some(path) => common::TestBed::open(Path::new(&path)).expect("open MAESTRO_TESTBED"),
            None => {
                let name = format!("transport-{}", std::process::id());
                let testbed = common::TestBed::up(&name, 3, 2);
                #[allow(clippy::zombie_processes)]
                Command::new("setsid")
                    .args([
                        "bash",
                        "-c",
                        "while kill -0 \"$0\" 2>/dev/null; do sleep 0.5; done; exec bash \"$1\" down --name \"$2\"",
                    ])
                    .arg(std::process::id().to_string())
                    .arg(common::bed_script())
                    .arg(&name)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn bed reaper");
                testbed
            }
        };
        let convert = |ship: &common::Ship| Ship {
            name: ship.name.clone(),
            ip: ship.ip.clone(),
            netns: ship.netns.clone(),
            docker_socket: ship.docker_socket.to_string_lossy().into_owned(),
            host_key_fingerprint: ship.host_key_fingerprint.clone(),
        };
        let ships: Vec<Ship> = testbed.outer_ships().into_iter().map(convert).collect();
        let inner: Vec<Ship> = testbed.inner_ships().into_iter().map(convert).collect();
        assert!(
            ships.len() >= 3 && inner.len() >= 2,
            "bed needs 3 ships and 2 inner ships"
        );
        Bed {
            dir: testbed.dir.clone(),
            key: testbed.key().to_path_buf(),
            encrypted_key: testbed.encrypted_key().to_path_buf(),
            passphrase: testbed.passphrase().to_string(),
            known_hosts: testbed.known_hosts().to_path_buf(),
            ssh_config: testbed.ssh_config().to_path_buf(),
            bastion_ip: testbed.bastion().ip.clone(),
            ships,
            inner,
            testbed,
        }
    })
}

/// The variables the tests set or clear, the library reads, and `Serial` puts back.
const ENV_VARS: [&str; 4] = [
    "SSH_AUTH_SOCK",
    "MAESTRO_SSH_PASSPHRASE",
    "MAESTRO_SSH_CONFIG",
    "HOME",
];

/// Serialises the tests and gives each a clean process environment and an empty HOME (so
/// the operator's own ~/.ssh never takes part); on drop, the environment as it was before.
struct Serial {
    saved: Vec<(&'static str, Option<std::ffi::OsString>)>,
    _home: tempfile::TempDir,
    _turn: common::turn::Turn,
}

// The one unsafe in the package (see [lints] in Cargo.toml): setting the process environment,
// which the transport reads, in a test that holds the whole process while it does.
#[allow(unsafe_code)]
fn serial() -> Serial {
    let turn = common::turn::Turn::whole();
    let home = tempfile::tempdir().expect("tempdir");
    let saved = ENV_VARS.map(|k| (k, std::env::var_os(k))).to_vec();
    // SAFETY: no other test runs while the whole-process turn is held.
    unsafe {
        std::env::remove_var("SSH_AUTH_SOCK");
        std::env::remove_var("MAESTRO_SSH_PASSPHRASE");
        std::env::remove_var("MAESTRO_SSH_CONFIG");
        std::env::set_var("HOME", home.path());
    }
    Serial {
        saved,
        _home: home,
        _turn: turn,
    }
}

impl Drop for Serial {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for (key, value) in &self.saved {
            // SAFETY: the whole-process turn is still held (fields drop after this body).
            unsafe {
                match value {
                    Some(v) => std::env::set_var(key, v),
                    None => std::env::remove_var(key),
                }
            }
        }
    }
}

#[allow(unsafe_code)]
fn set_env(key: &str, value: &str) {
    // SAFETY: only called while holding the Serial lock.
    unsafe { std::env::set_var(key, value) }
}

/// A route to `ship` straight by IP with the bed's key file and known_hosts.
fn key_route(bed: &Bed, host: &str) -> SshRoute {
    SshRoute {
        host: host.to_string(),
        user: Some("root".into()),
        identity_files: vec![bed.key.clone()],
        known_hosts_file: Some(bed.known_hosts.clone()),
        // Nothing from any ssh config unless a test asks for it.
        ssh_config_file: Some(PathBuf::from("/nonexistent/ssh_config")),
        ..Default::default()
    }
}

fn endpoint(ship: &Ship, route: SshRoute) -> Endpoint {
    let mut endpoint = Endpoint::new(ship.name.clone(), Route::Ssh(route));
    endpoint.docker = DockerTarget::Socket(ship.docker_socket.clone());
    endpoint
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `ss` in the ship's namespace listing its sshd's established connections, one a line.
fn ssh_connections_in(netns: &str, ss_flags: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["ss", ss_flags, "state", "established", "( sport = :22 )"])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ssh_established_in(netns: &str) -> usize {
    ssh_connections_in(netns, "-Htn")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn bed_sshd(ship: &str, action: &str) {
    bed().testbed.set_sshd_running(ship, action == "start");
}

/// A session to `ship` straight by IP with the bed's key: the route most tests need.
async fn connect_with_key(bed: &Bed, ship: &Ship) -> transport::Connection {
    transport::connect(&endpoint(ship, key_route(bed, &ship.ip)))
        .await
        .expect("connect")
}

/// The error of connecting to `endpoint`, which must fail (`why` says why, if it connects).
async fn refused(endpoint: &Endpoint, why: &str) -> TransportError {
    match transport::connect(endpoint).await {
        Ok(_) => panic!("connected to {}, but {why}", endpoint.ship),
        Err(err) => err,
    }
}

async fn assert_docker_works(conn: &transport::Connection) {
    let report = conn.probe().await.expect("probe");
    assert!(!report.engine_version.is_empty());
    assert_eq!(
        report.client_api_version,
        report.api_version.clone().min("1.53".into())
    );
    conn.docker()
        .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
        .await
        .expect("list containers");
}

#[test]
fn key_file_auth_over_socket_forwarding() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    runtime().block_on(async {
        let conn = connect_with_key(bed, ship).await;
        let info = conn.info();
        assert_eq!(info.transport, TransportKind::Ssh);
        assert_eq!(
            info.auth_method.as_deref(),
            Some(format!("key {}", bed.key.display()).as_str())
        );
        assert_eq!(
            info.host_key_fingerprint.as_deref(),
            Some(ship.host_key_fingerprint.as_str())
        );
        assert_eq!(
            info.route,
            format!("ssh root@{}:22 -> unix:{}", ship.ip, ship.docker_socket)
        );
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_docker_works(&conn).await;
        let report = conn.probe().await.expect("probe");
        assert_eq!(report.api_version, "1.41");
        // Measured and sane; how fast it is belongs to the benchmark.
        assert!(report.round_trip < Duration::from_secs(60), "{report:?}");
    });
}

/// Stops a ship's sshd and starts it again when dropped.
struct SshdStopped(String);

impl SshdStopped {
    fn new(ship: &str) -> SshdStopped {
        bed_sshd(ship, "stop");
        SshdStopped(ship.to_string())
    }
}

impl Drop for SshdStopped {
    fn drop(&mut self) {
        bed_sshd(&self.0, "start");
    }
}

/// An ssh-agent holding `key`, killed when dropped.
struct Agent {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn with_key(key: &Path) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("ssh-add");
        assert!(status.success(), "ssh-add");
        set_env("SSH_AUTH_SOCK", &socket.to_string_lossy());
        Agent { child, _dir: dir }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn empty_known_hosts(dir: &Path) -> PathBuf {
    let path = dir.join("known_hosts");
    std::fs::write(&path, "").expect("write known_hosts");
    path
}

#[test]
fn agent_auth() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[1];
    let _agent = Agent::with_key(&bed.key);
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.identity_files.clear();
        let conn = transport::connect(&endpoint(ship, route))
            .await
            .expect("connect");
        let method = conn.info().auth_method.clone().unwrap_or_default();
        assert!(method.starts_with("ssh-agent key SHA256:"), "{method}");
        assert_docker_works(&conn).await;
    });
}

#[test]
fn encrypted_key_with_passphrase_from_environment() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    set_env("MAESTRO_SSH_PASSPHRASE", &bed.passphrase);
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.identity_files = vec![bed.encrypted_key.clone()];
        route.batch_mode = true;
        let conn = transport::connect(&endpoint(ship, route))
            .await
            .expect("connect");
        assert_eq!(
            conn.info().auth_method.as_deref(),
            Some(format!("key {}", bed.encrypted_key.display()).as_str())
        );
    });
}

#[test]
fn encrypted_key_without_passphrase_fails_clearly() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.identity_files = vec![bed.encrypted_key.clone()];
        route.batch_mode = true;
        let err = refused(&endpoint(ship, route), "must fail").await;
        let TransportErrorKind::Auth { tried, .. } = &err.kind else {
            panic!("expected Auth, got {err}");
        };
        assert_eq!(tried.len(), 1, "{tried:?}");
        let message = err.to_string();
        assert!(message.contains("encrypted"), "{message}");
        assert!(message.contains("MAESTRO_SSH_PASSPHRASE"), "{message}");
        assert!(
            message.contains(&bed.encrypted_key.display().to_string()),
            "{message}"
        );
        assert_eq!(err.code(), "auth");

        // A wrong passphrase says so too.
        set_env("MAESTRO_SSH_PASSPHRASE", "not-the-passphrase");
        let mut route = key_route(bed, &ship.ip);
        route.identity_files = vec![bed.encrypted_key.clone()];
        route.batch_mode = true;
        let err = refused(&endpoint(ship, route), "must fail").await;
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
    });
}

#[test]
fn unauthorised_key_lists_methods_tried() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let stranger = dir.path().join("id_stranger");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.identity_files = vec![stranger.clone(), dir.path().join("missing_key")];
        let err = refused(&endpoint(ship, route), "must fail").await;
        let message = err.to_string();
        assert!(
            matches!(err.kind, TransportErrorKind::Auth { .. }),
            "{message}"
        );
        assert!(
            message.contains(&format!("ship {}", ship.name)),
            "{message}"
        );
        assert!(
            message.contains(&format!("root@{}:22", ship.ip)),
            "{message}"
        );
        assert!(message.contains("id_stranger: rejected"), "{message}");
        assert!(message.contains("missing_key: no such file"), "{message}");

        // More keys than sshd's MaxAuthTries (6): still an authentication failure.
        let mut many = Vec::new();
        for i in 0..8 {
            let path = dir.path().join(format!("id_many{i}"));
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&path)
                .status()
                .expect("ssh-keygen");
            assert!(status.success());
            many.push(path);
        }
        let mut route = key_route(bed, &ship.ip);
        route.identity_files = many;
        let err = refused(&endpoint(ship, route), "must fail").await;
        assert_eq!(err.code(), "auth", "{err}");
    });
}

#[test]
fn world_readable_key_is_used_with_a_warning() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let loose = dir.path().join("id_loose");
    std::fs::copy(&bed.key, &loose).expect("copy key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.identity_files = vec![loose.clone()];
        let conn = transport::connect(&endpoint(ship, route))
            .await
            .expect("connect");
        let warnings = &conn.info().warnings;
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("id_loose") && w.contains("accessible by others")),
            "{warnings:?}"
        );
    });
}

#[test]
fn unknown_host_is_refused_with_its_fingerprint() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = empty_known_hosts(dir.path());
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.known_hosts_file = Some(known_hosts.clone());
        let err = refused(&endpoint(ship, route), "must refuse").await;
        let TransportErrorKind::HostKeyUnknown {
            fingerprint, hint, ..
        } = &err.kind
        else {
            panic!("expected HostKeyUnknown, got {err}");
        };
        assert_eq!(fingerprint, &ship.host_key_fingerprint);
        assert!(hint.contains("--accept-new-host-keys"), "{hint}");
        assert!(hint.contains("accept-new"), "{hint}");
        assert!(err.to_string().contains(&ship.host_key_fingerprint));
    });
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("read"), "");
}

#[test]
fn accept_new_records_the_key_then_strict_accepts_it() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = empty_known_hosts(dir.path());
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.known_hosts_file = Some(known_hosts.clone());
        route.host_key_policy = Some(HostKeyPolicy::AcceptNew);
        let conn = transport::connect(&endpoint(ship, route.clone()))
            .await
            .expect("connect with accept-new");
        assert!(
            conn.info().warnings.iter().any(|w| w.contains("recorded")),
            "{:?}",
            conn.info().warnings
        );
        let recorded = std::fs::read_to_string(&known_hosts).expect("read");
        assert!(
            recorded.starts_with(&format!("{} ssh-ed25519 ", ship.ip)),
            "{recorded}"
        );

        route.host_key_policy = Some(HostKeyPolicy::Strict);
        let conn = transport::connect(&endpoint(ship, route))
            .await
            .expect("strict after recording");
        assert!(conn.info().warnings.is_empty());
    });
}

#[test]
fn changed_host_key_is_refused_even_with_accept_new() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let impostor = &bed.ships[1];
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = dir.path().join("known_hosts");
    // Record ship2's key under ship1's address: ship1 then "presents a changed key".
    let other_key = std::fs::read_to_string(
        bed.dir
            .join(&impostor.name)
            .join("ssh_host_ed25519_key.pub"),
    )
    .expect("read host key");
    std::fs::write(&known_hosts, format!("{} {}", ship.ip, other_key)).expect("write");
    runtime().block_on(async {
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            let mut route = key_route(bed, &ship.ip);
            route.known_hosts_file = Some(known_hosts.clone());
            route.host_key_policy = Some(policy);
            let err = refused(&endpoint(ship, route), "must refuse").await;
            let TransportErrorKind::HostKeyChanged {
                found, expected, ..
            } = &err.kind
            else {
                panic!("expected HostKeyChanged, got {err}");
            };
            assert_eq!(found, &ship.host_key_fingerprint);
            assert_eq!(
                expected.to_vec(),
                vec![impostor.host_key_fingerprint.clone()]
            );
            let message = err.to_string();
            assert!(message.contains(&ship.host_key_fingerprint), "{message}");
            assert!(
                message.contains(&format!(
                    "remove the old entry with `ssh-keygen -f {} -R {}`",
                    known_hosts.display(),
                    ship.ip
                )),
                "{message}"
            );
            assert!(
                message.contains(&impostor.host_key_fingerprint),
                "{message}"
            );
        }
    });
    // Nothing was recorded over the old entry.
    assert_eq!(
        std::fs::read_to_string(&known_hosts)
            .expect("read")
            .lines()
            .count(),
        1
    );
}

#[test]
fn hashed_known_hosts_entries_are_honoured() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::copy(&bed.known_hosts, &known_hosts).expect("copy");
    let status = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("ssh-keygen -H");
    assert!(status.success());
    let hashed = std::fs::read_to_string(&known_hosts).expect("read");
    assert!(!hashed.contains(&ship.ip) && hashed.contains("|1|"));
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.known_hosts_file = Some(known_hosts.clone());
        transport::connect(&endpoint(ship, route))
            .await
            .expect("connect with hashed known_hosts");
    });
}

#[test]
fn ssh_config_with_proxy_jump_reaches_an_inner_ship() {
    let _serial = serial();
    let bed = bed();
    let inner = &bed.inner[0];
    runtime().block_on(async {
        // Everything (address, user, key, known_hosts, the bastion) from the ssh config.
        let route = SshRoute {
            ssh_config_file: Some(bed.ssh_config.clone()),
            ..SshRoute::new(inner.name.clone())
        };
        let conn = transport::connect(&endpoint(inner, route))
            .await
            .expect("connect through the bastion");
        let info = conn.info();
        assert_eq!(info.hops.len(), 2, "{info:?}");
        assert_eq!(info.hops[0].address, format!("root@{}:22", bed.bastion_ip));
        assert_eq!(info.hops[1].address, format!("root@{}:22", inner.ip));
        assert_eq!(
            info.host_key_fingerprint.as_deref(),
            Some(inner.host_key_fingerprint.as_str())
        );
        assert_eq!(conn.stats().sessions, 2);
        assert_docker_works(&conn).await;

        // The same through MAESTRO_SSH_CONFIG, for the other inner ship.
        set_env("MAESTRO_SSH_CONFIG", &bed.ssh_config.to_string_lossy());
        let other = &bed.inner[1];
        let conn = transport::connect(&endpoint(other, SshRoute::new(other.name.clone())))
            .await
            .expect("connect with MAESTRO_SSH_CONFIG");
        assert_eq!(conn.info().hops.len(), 2);
        assert_docker_works(&conn).await;
    });
}

/// How many `ssh -W` proxies to `target` run on this machine.
fn proxies_to(target: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", &format!("ssh -F .* -W {target}:22")])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn ssh_config_proxy_command_carries_the_session() {
    let _serial = serial();
    let bed = bed();
    let inner = &bed.inner[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host via-command\n  HostName {ip}\n  User root\n  IdentityFile {key}\n  \
             UserKnownHostsFile {kh}\n  ProxyCommand ssh -F {bed_config} -W %h:%p bastion\n\
             Host broken-command\n  HostName {ip}\n  User root\n  \
             ProxyCommand sh -c 'echo proxy cannot reach %h >&2; exit 3'\n",
            ip = inner.ip,
            key = bed.key.display(),
            kh = bed.known_hosts.display(),
            bed_config = bed.ssh_config.display(),
        ),
    )
    .expect("write ssh config");
    runtime().block_on(async {
        let route = SshRoute {
            ssh_config_file: Some(config.clone()),
            ..SshRoute::new("via-command")
        };
        let conn = transport::connect(&endpoint(inner, route))
            .await
            .expect("connect through the ProxyCommand");
        assert_eq!(conn.info().hops.len(), 1, "{:?}", conn.info());
        assert_eq!(
            conn.info().host_key_fingerprint.as_deref(),
            Some(inner.host_key_fingerprint.as_str())
        );
        assert_docker_works(&conn).await;
        assert_eq!(proxies_to(&inner.ip), 1);
        drop(conn);
        // The proxy process belongs to the session: it goes with it.
        for _ in 0..50 {
            if proxies_to(&inner.ip) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            proxies_to(&inner.ip),
            0,
            "the ProxyCommand outlived its session"
        );

        let route = SshRoute {
            ssh_config_file: Some(config.clone()),
            ..SshRoute::new("broken-command")
        };
        let err = refused(&endpoint(inner, route), "the proxy exits").await;
        assert_eq!(err.code(), "proxy-command", "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("proxy cannot reach {}", inner.ip)),
            "{message}"
        );
    });
}

#[test]
fn identities_only_keeps_other_agent_keys_back() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let _agent = Agent::with_key(&bed.key);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ssh_config");
    let unrelated = dir.path().join("unrelated_key");
    std::fs::write(
        &config,
        format!(
            "Host only-unrelated listed\n  HostName {ip}\n  User root\n  \
             UserKnownHostsFile {kh}\n  IdentitiesOnly yes\n\
             Host only-unrelated\n  IdentityFile {unrelated}\n\
             Host listed\n  IdentityFile {key}\n",
            ip = ship.ip,
            kh = bed.known_hosts.display(),
            unrelated = unrelated.display(),
            key = bed.key.display(),
        ),
    )
    .expect("write ssh config");
    runtime().block_on(async {
        let route = |alias: &str| SshRoute {
            ssh_config_file: Some(config.clone()),
            batch_mode: true,
            ..SshRoute::new(alias)
        };
        let err = refused(
            &endpoint(ship, route("only-unrelated")),
            "the agent's key is not a configured one",
        )
        .await;
        assert_eq!(err.code(), "auth", "{err}");
        assert!(err.to_string().contains("IdentitiesOnly"), "{err}");

        // The agent still signs for a configured key file it holds.
        let conn = transport::connect(&endpoint(ship, route("listed")))
            .await
            .expect("connect with the agent's copy of the listed key");
        let method = conn.info().auth_method.clone().unwrap_or_default();
        assert!(method.starts_with("ssh-agent key SHA256:"), "{method}");
    });
}

#[test]
fn inner_ship_is_not_reachable_directly() {
    let _serial = serial();
    let bed = bed();
    let inner = &bed.inner[0];
    runtime().block_on(async {
        let mut e = endpoint(inner, key_route(bed, &inner.ip));
        // The route is `unreachable`: the refusal is immediate, far within the 60 s
        // connect timeout (a wide contrast that load cannot flip).
        e.connect_timeout = Duration::from_secs(60);
        let started = std::time::Instant::now();
        let err = refused(&e, "no route").await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}: {err}",
            started.elapsed()
        );
        assert!(matches!(err.code(), "timeout" | "network"), "{err}");
        eprintln!("direct connection to an inner ship: {err}");
    });
}

#[test]
fn explicit_two_hop_chain() {
    let _serial = serial();
    let bed = bed();
    let (first_inner, target) = (&bed.inner[0], &bed.inner[1]);
    runtime().block_on(async {
        let mut route = key_route(bed, &target.ip);
        route.jumps = vec![
            format!("root@{}", bed.bastion_ip)
                .parse::<JumpSpec>()
                .expect("spec"),
            format!("root@{}:22", first_inner.ip)
                .parse::<JumpSpec>()
                .expect("spec"),
        ];
        let conn = transport::connect(&endpoint(target, route))
            .await
            .expect("connect over two jumps");
        let info = conn.info();
        assert_eq!(info.hops.len(), 3);
        assert_eq!(
            info.route,
            format!(
                "ssh root@{}:22 -> root@{}:22 -> root@{}:22 -> unix:{}",
                bed.bastion_ip, first_inner.ip, target.ip, target.docker_socket
            )
        );
        assert_eq!(
            info.hops[1].host_key_fingerprint,
            first_inner.host_key_fingerprint
        );
        assert_eq!(conn.stats().sessions, 3);
        assert_docker_works(&conn).await;

        // The same chain from the bed's ssh config (ProxyJump bastion,inner1).
        let route = SshRoute {
            ssh_config_file: Some(bed.ssh_config.clone()),
            ..SshRoute::new(format!("{}-2hop", target.name))
        };
        let conn = transport::connect(&endpoint(target, route))
            .await
            .expect("connect over two jumps from ssh config");
        assert_eq!(conn.info().hops.len(), 3);
    });
}

#[test]
fn jump_host_failure_names_the_hop() {
    let _serial = serial();
    let bed = bed();
    let inner = &bed.inner[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = dir.path().join("known_hosts");
    // The inner ship is known, the bastion is not.
    let kh = std::fs::read_to_string(&bed.known_hosts).expect("read");
    let without_bastion: String = kh
        .lines()
        .filter(|l| !l.starts_with(&format!("{} ", bed.bastion_ip)))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&known_hosts, without_bastion).expect("write");
    runtime().block_on(async {
        let mut route = key_route(bed, &inner.ip);
        route.known_hosts_file = Some(known_hosts.clone());
        route.jumps = vec![format!("root@{}", bed.bastion_ip).parse().expect("spec")];
        let err = refused(&endpoint(inner, route), "bastion unknown").await;
        let TransportErrorKind::Jump { hop, source, .. } = &err.kind else {
            panic!("expected Jump, got {err}");
        };
        assert_eq!(hop, &format!("root@{}:22", bed.bastion_ip));
        assert!(
            matches!(**source, TransportErrorKind::HostKeyUnknown { .. }),
            "{err}"
        );
        assert_eq!(err.code(), "host-key-unknown");
    });
}

#[test]
fn tcp_port_forwarding() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[1];
    runtime().block_on(async {
        let mut e = endpoint(ship, key_route(bed, &ship.ip));
        e.docker = DockerTarget::Tcp(2375);
        let conn = transport::connect(&e).await.expect("connect");
        assert!(conn.info().route.ends_with("-> tcp:127.0.0.1:2375"));
        assert_docker_works(&conn).await;

        // Nothing listens on 2376 on the ship.
        let mut e = endpoint(ship, key_route(bed, &ship.ip));
        e.docker = DockerTarget::Tcp(2376);
        let err = refused(&e, "no daemon there").await;
        assert_eq!(err.code(), "docker-unreachable", "{err}");
    });
}

#[test]
fn open_tcp_from_the_ship_side() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    runtime().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let conn = connect_with_key(bed, ship).await;
        // The daemon's TCP port listens on the ship's loopback only.
        let mut stream = conn.open_tcp("127.0.0.1", 2375).await.expect("open_tcp");
        stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(answer.ends_with("OK"), "{answer}");

        let err = conn
            .open_tcp("127.0.0.1", 1)
            .await
            .expect_err("closed port");
        assert_eq!(err.code(), "refused", "{err}");
    });
}

#[test]
fn local_socket_ship() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[2];
    runtime().block_on(async {
        let e = Endpoint::new(
            ship.name.clone(),
            Route::Local {
                socket: PathBuf::from(&ship.docker_socket),
            },
        );
        let conn = transport::connect(&e).await.expect("connect");
        assert_eq!(conn.info().transport, TransportKind::Local);
        assert_docker_works(&conn).await;

        let e = Endpoint::new(
            ship.name.clone(),
            Route::Local {
                socket: bed.dir.join("no-such.sock"),
            },
        );
        let err = refused(&e, "missing").await;
        assert!(
            matches!(err.kind, TransportErrorKind::SocketMissing { .. }),
            "{err}"
        );
    });
}

#[test]
fn wrong_socket_path_is_reported_as_missing() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    runtime().block_on(async {
        let mut e = endpoint(ship, key_route(bed, &ship.ip));
        e.docker = DockerTarget::Socket("/var/run/no-docker-here.sock".into());
        let err = refused(&e, "missing socket").await;
        let name = &err.ship;
        let TransportErrorKind::SocketMissing { path, .. } = err.root() else {
            panic!("expected SocketMissing, got {err}");
        };
        assert_eq!(path, "/var/run/no-docker-here.sock");
        assert_eq!(name, &ship.name);
        // The login worked: how the ship was reached is kept with the error.
        let reached = err.reached().expect("what the login found");
        assert_eq!(
            reached.host_key_fingerprint.as_deref(),
            Some(ship.host_key_fingerprint.as_str())
        );
        assert_eq!(
            reached.auth_method.as_deref(),
            Some(format!("key {}", bed.key.display()).as_str())
        );
        assert!(
            reached.route.ends_with("unix:/var/run/no-docker-here.sock"),
            "{}",
            reached.route
        );
    });
}

#[test]
fn sshd_down_is_refused() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[2];
    let _stopped = SshdStopped::new(&ship.name);
    runtime().block_on(async {
        let err = refused(&endpoint(ship, key_route(bed, &ship.ip)), "sshd is down").await;
        assert!(
            matches!(err.kind, TransportErrorKind::Refused { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&ship.ip), "{err}");
    });
}

#[test]
fn many_concurrent_api_calls_share_one_session() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[1];
    runtime().block_on(async {
        let conn = connect_with_key(bed, ship).await;
        let calls = (0..50).map(|i| {
            let docker = conn.docker().clone();
            async move {
                if i % 2 == 0 {
                    docker.version().await.map(|_| ())
                } else {
                    docker
                        .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
                        .await
                        .map(|_| ())
                }
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failures.is_empty(), "{failures:?}");
        let stats = conn.stats();
        assert_eq!(stats.sessions, 1);
        assert!(
            stats.channels_opened >= 2 && stats.channels_opened <= 52,
            "{stats:?}"
        );
        // One TCP connection to the ship's sshd, however many requests.
        assert_eq!(ssh_established_in(&ship.netns), 1);

        // Dropping the last handle closes the session.
        drop(conn);
        let mut open = usize::MAX;
        for _ in 0..50 {
            open = ssh_established_in(&ship.netns);
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            open, 0,
            "session still open after the connection was dropped"
        );
    });
}

#[test]
fn exec_with_attached_output_runs_over_an_upgraded_channel() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    runtime().block_on(async {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let conn = connect_with_key(bed, ship).await;
        let docker = conn.docker();
        let name = format!("transport-exec-{}", std::process::id());
        let body = bollard::models::ContainerCreateBody {
            image: Some("maestro-test:latest".into()),
            cmd: Some(vec!["sleep".into(), "60".into()]),
            ..Default::default()
        };
        docker
            .create_container(
                Some(
                    bollard::query_parameters::CreateContainerOptionsBuilder::new()
                        .name(&name)
                        .build(),
                ),
                body,
            )
            .await
            .expect("create");
        docker
            .start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .expect("start");
        let exec = docker
            .create_exec(
                &name,
                CreateExecOptions {
                    cmd: Some(vec!["echo", "hello over ssh"]),
                    attach_stdout: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("create exec");
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&exec.id, None).await.expect("start exec")
        {
            while let Some(Ok(chunk)) = output.next().await {
                text.push_str(&chunk.to_string());
            }
        }
        docker
            .remove_container(
                &name,
                Some(
                    bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .build(),
                ),
            )
            .await
            .expect("remove");
        assert_eq!(text.trim(), "hello over ssh");
    });
}

#[test]
fn inner_sshd_down_or_bastion_down_name_the_hop() {
    let _serial = serial();
    let bed = bed();
    let inner = &bed.inner[1];
    let route = || {
        let mut route = key_route(bed, &inner.ip);
        route.jumps = vec![format!("root@{}", bed.bastion_ip).parse().expect("spec")];
        route
    };
    runtime().block_on(async {
        {
            let _stopped = SshdStopped::new(&inner.name);
            let err = refused(&endpoint(inner, route()), "inner sshd is down").await;
            let TransportErrorKind::Refused { hop, via, .. } = &err.kind else {
                panic!("expected Refused, got {err}");
            };
            assert_eq!(hop, &format!("root@{}:22", inner.ip));
            assert_eq!(via, &Some(format!("root@{}:22", bed.bastion_ip)));
        }
        {
            let _stopped = SshdStopped::new("bastion");
            let err = refused(&endpoint(inner, route()), "bastion is down").await;
            let TransportErrorKind::Jump { hop, source, .. } = &err.kind else {
                panic!("expected Jump, got {err}");
            };
            assert_eq!(hop, &format!("root@{}:22", bed.bastion_ip));
            assert!(
                matches!(**source, TransportErrorKind::Refused { .. }),
                "{err}"
            );
            assert_eq!(err.code(), "refused");
        }
    });
}

#[test]
fn plain_tcp_route() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    runtime().block_on(async {
        // A daemon port on this machine: a relay to the ship's socket stands in for
        // `dockerd -H tcp://0.0.0.0:2375`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let socket = ship.docker_socket.clone();
        let relay = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let socket = socket.clone();
                tokio::spawn(async move {
                    if let Ok(mut unix) = tokio::net::UnixStream::connect(&socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
        });
        let e = Endpoint::new(
            ship.name.clone(),
            Route::Tcp {
                host: "127.0.0.1".into(),
                port,
                tls: None,
            },
        );
        let conn = transport::connect(&e).await.expect("connect");
        assert_eq!(conn.info().transport, TransportKind::Tcp);
        assert_eq!(conn.info().route, format!("tcp 127.0.0.1:{port}"));
        assert_docker_works(&conn).await;
        relay.abort();

        let e = Endpoint::new(
            ship.name.clone(),
            Route::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
                tls: None,
            },
        );
        let err = refused(&e, "closed port").await;
        assert_eq!(err.code(), "refused", "{err}");

        let e = Endpoint::new(
            ship.name.clone(),
            Route::Tcp {
                host: "no-such-host.invalid".into(),
                port: 2375,
                tls: None,
            },
        );
        let err = refused(&e, "no such name").await;
        assert_eq!(err.code(), "dns", "{err}");
    });
}

/// A second sshd in a ship's namespace that trusts only user certificates signed by a CA.
struct CertSshd {
    child: std::process::Child,
}

impl Drop for CertSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn openssh_certificate_beside_the_key() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keygen = |args: &[&str]| {
        let status = Command::new("ssh-keygen")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("ssh-keygen");
        assert!(status.success(), "ssh-keygen {args:?}");
    };
    let path = |name: &str| d.join(name).to_string_lossy().into_owned();
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", &path("ca")]);
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", &path("id_user")]);
    keygen(&[
        "-q",
        "-s",
        &path("ca"),
        "-I",
        "maestro-test",
        "-n",
        "root",
        &path("id_user.pub"),
    ]);
    assert!(d.join("id_user-cert.pub").exists());

    let host_key = bed.dir.join(&ship.name).join("ssh_host_ed25519_key");
    let port = 2222;
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress {ip}\nHostKey {hk}\nPidFile {pid}\n\
             AuthorizedKeysFile none\nTrustedUserCAKeys {ca}.pub\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AllowStreamLocalForwarding yes\n",
            ip = ship.ip,
            hk = host_key.display(),
            pid = path("sshd.pid"),
            ca = path("ca"),
        ),
    )
    .expect("write sshd_config");
    let child = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", ship.netns))
        .arg("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sshd");
    let _sshd = CertSshd { child };
    let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).expect("host key");
    let known_hosts = d.join("known_hosts");
    std::fs::write(&known_hosts, format!("[{}]:{port} {host_pub}", ship.ip)).expect("write");
    for _ in 0..100 {
        if std::net::TcpStream::connect((ship.ip.as_str(), port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime().block_on(async {
        let mut route = key_route(bed, &ship.ip);
        route.port = Some(port);
        route.identity_files = vec![d.join("id_user")];
        route.known_hosts_file = Some(known_hosts.clone());
        let conn = transport::connect(&endpoint(ship, route))
            .await
            .expect("connect with a certificate");
        let method = conn.info().auth_method.clone().unwrap_or_default();
        assert!(method.starts_with("certificate "), "{method}");
        assert_eq!(
            conn.info().hops[0].address,
            format!("root@{}:{port}", ship.ip)
        );
        assert_docker_works(&conn).await;
    });
}

#[test]
fn all_ships_connect_concurrently_and_failures_stay_per_ship() {
    let _serial = serial();
    let bed = bed();
    let mut endpoints: Vec<Endpoint> = bed
        .ships
        .iter()
        .map(|ship| endpoint(ship, key_route(bed, &ship.ip)))
        .collect();
    let inner = &bed.inner[0];
    endpoints.push(endpoint(
        inner,
        SshRoute {
            ssh_config_file: Some(bed.ssh_config.clone()),
            ..SshRoute::new(inner.name.clone())
        },
    ));
    let mut broken = endpoint(&bed.ships[0], key_route(bed, &bed.ships[0].ip));
    broken.ship = "broken".into();
    broken.docker = DockerTarget::Socket("/nonexistent.sock".into());
    endpoints.push(broken);
    runtime().block_on(async {
        let results = transport::connect_all(&endpoints).await;
        assert_eq!(results.len(), 5);
        for (result, endpoint) in results.iter().zip(&endpoints).take(4) {
            let conn = result.as_ref().expect("connect");
            assert_eq!(conn.info().ship, endpoint.ship);
            conn.probe().await.expect("probe");
        }
        let err = results[4].as_ref().expect_err("broken ship");
        assert_eq!(err.code(), "socket-missing");
        assert!(err.to_string().starts_with("ship broken:"), "{err}");
    });
}

/// A TLS front for a ship's Docker socket (as `dockerd --tlsverify` would be): python's ssl
/// module, requiring a client certificate signed by the test CA.
struct TlsRelay {
    child: std::process::Child,
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TLS_RELAY: &str = r#"
import asyncio, ssl, sys
cert, key, ca, sock, port_file = sys.argv[1:6]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_cert_chain(cert, key)
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data); await w.drain()
    finally:
        w.close()
async def handle(cr, cw):
    ur, uw = await asyncio.open_unix_connection(sock)
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw), return_exceptions=True)
async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', 0, ssl=ctx)
    with open(port_file, 'w') as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    await server.serve_forever()
asyncio.run(main())
"#;

#[test]
fn tls_route_with_client_certificates() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = |name: &str| d.join(name).to_string_lossy().into_owned();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    std::fs::write(d.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=maestro")] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &p(&format!("{name}.key")),
            "-out",
            &p(&format!("{name}.csr")),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&format!("{name}.csr")),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&format!("{name}.ext")),
            "-out",
            &p(&format!("{name}.pem")),
        ]);
    }
    let child = Command::new("python3")
        .args(["-c", TLS_RELAY])
        .args([
            p("server.pem"),
            p("server.key"),
            p("ca.pem"),
            ship.docker_socket.clone(),
            p("port"),
        ])
        .spawn()
        .expect("python3");
    let _relay = TlsRelay { child };
    let mut port = None;
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(d.join("port"))
            && let Ok(parsed) = text.trim().parse::<u16>()
        {
            port = Some(parsed);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = port.expect("relay port");
    let tls = |verify: bool| transport::TlsFiles {
        ca: Some(d.join("ca.pem")),
        cert: Some(d.join("client.pem")),
        key: Some(d.join("client.key")),
        verify,
    };
    runtime().block_on(async {
        let e = Endpoint::new(
            ship.name.clone(),
            Route::Tcp {
                host: "127.0.0.1".into(),
                port,
                tls: Some(tls(true)),
            },
        );
        let conn = transport::connect(&e).await.expect("connect over TLS");
        assert_eq!(conn.info().transport, TransportKind::Tls);
        assert_docker_works(&conn).await;

        let e = Endpoint::new(
            ship.name.clone(),
            Route::Tcp {
                host: "127.0.0.1".into(),
                port,
                tls: Some(tls(false)),
            },
        );
        let err = refused(&e, "unverified TLS").await;
        assert_eq!(err.code(), "settings", "{err}");
    });
}

#[test]
fn requests_fail_fast_when_the_session_dies() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[1];
    runtime().block_on(async {
        let conn = connect_with_key(bed, ship).await;
        conn.docker().ping().await.expect("ping");
        // Kill the sshd process serving our session (not the listener).
        let text = ssh_connections_in(&ship.netns, "-Htnp");
        let pids: Vec<String> = text
            .split("pid=")
            .skip(1)
            .filter_map(|rest| rest.split(',').next().map(str::to_string))
            .collect();
        assert!(!pids.is_empty(), "{text}");
        for pid in &pids {
            let _ = Command::new("kill").arg(pid).status();
        }
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(60), conn.docker().version()).await;
        assert!(matches!(result, Ok(Err(_))), "{result:?}");
        // The closed connection is seen at once, not at the first keepalive (15 s).
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(conn.stats().sessions, 0);
    });
}

/// The API version agreed with a daemon is remembered: the next connection sends no
/// `GET /version`, and a remembered version the daemon rejects (too new or too old for it)
/// is negotiated again and the rejected request sent once more.
#[test]
fn api_version_is_remembered_and_a_wrong_one_recovers() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let cache = tempfile::tempdir().expect("tempdir");
    let mut endpoint = endpoint(ship, key_route(bed, &ship.ip));
    endpoint.api_version_cache = Some(cache.path().to_path_buf());
    let list = |conn: transport::Connection| async move {
        conn.docker()
            .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
            .await
            .expect("list containers");
        conn
    };
    let entry = || {
        let entries: Vec<_> = std::fs::read_dir(cache.path().join("api-version"))
            .expect("cache dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    };
    runtime().block_on(async {
        let first = list(transport::connect(&endpoint).await.expect("connect")).await;
        assert_eq!(first.stats().version_requests, 1);
        let text = std::fs::read_to_string(entry()).expect("read entry");
        assert!(text.ends_with("\n1.41\n"), "{text}");

        let second = list(transport::connect(&endpoint).await.expect("connect")).await;
        assert_eq!(second.stats().version_requests, 0);

        for wrong in ["1.50", "1.5"] {
            let path = entry();
            let text = std::fs::read_to_string(&path).expect("read entry");
            let stale = text.replace("\n1.41\n", &format!("\n{wrong}\n"));
            std::fs::write(&path, stale).expect("write entry");
            let conn = list(transport::connect(&endpoint).await.expect("connect")).await;
            assert_eq!(conn.stats().version_requests, 1, "remembered {wrong}");
            let text = std::fs::read_to_string(entry()).expect("read entry");
            assert!(text.ends_with("\n1.41\n"), "{text}");
            // Later requests of the same connection use the agreed version.
            let report = conn.probe().await.expect("probe");
            assert_eq!(report.client_api_version, "1.41");
        }
    });
}

/// A version forced by the ship's `api_version` is used as is, without asking the daemon.
#[test]
fn forced_api_version_sends_no_version_request() {
    let _serial = serial();
    let bed = bed();
    let ship = &bed.ships[0];
    let mut endpoint = endpoint(ship, key_route(bed, &ship.ip));
    endpoint.api_version = Some("1.40".into());
    runtime().block_on(async {
        let conn = transport::connect(&endpoint).await.expect("connect");
        conn.docker()
            .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
            .await
            .expect("list containers");
        assert_eq!(conn.stats().version_requests, 0);
        let report = conn.probe().await.expect("probe");
        assert_eq!(report.client_api_version, "1.40");
    });
}
