//! The transport against the real test bed (testbed/bed.sh): ships are network namespaces
//! with their own sshd and dockerd, inner ships are reachable only through the bastion.
//!
//! Needs root. Set `MAESTRO_TESTBED=/path/to/bed.json` to use a bed that is already up
//! (it needs at least 3 ships and 2 inner ships); otherwise one is brought up for this test
//! binary and torn down when it exits.
//!
//! The tests run one at a time (a shared lock): some set process-wide environment
//! variables (SSH_AUTH_SOCK, MAESTRO_SSH_PASSPHRASE) or stop a ship's sshd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use maestro::transport::{
    self, DockerTarget, Endpoint, HostKeyPolicy, JumpSpec, Route, SshRoute, TransportError,
    TransportKind,
};

#[derive(Debug, Clone)]
struct Ship {
    name: String,
    ip: String,
    netns: String,
    docker_socket: String,
    host_key_fingerprint: String,
}

#[derive(Debug)]
struct Bed {
    name: String,
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

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let json_path = match std::env::var("MAESTRO_TESTBED") {
            Ok(path) => PathBuf::from(path),
            Err(_) => {
                let name = format!("tt{}", std::process::id());
                let out = Command::new("bash")
                    .arg(repo_root().join("testbed/bed.sh"))
                    .args(["up", "--name", &name, "--ships", "3", "--inner", "2"])
                    .output()
                    .expect("run bed.sh");
                assert!(
                    out.status.success(),
                    "bed.sh up failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // Tear the bed down when this test binary exits, however it exits.
                Command::new("setsid")
                    .args([
                        "bash",
                        "-c",
                        "while kill -0 \"$0\" 2>/dev/null; do sleep 0.5; done; exec bash \"$1\" down --name \"$2\"",
                    ])
                    .arg(std::process::id().to_string())
                    .arg(repo_root().join("testbed/bed.sh"))
                    .arg(&name)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn bed reaper");
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default())
            }
        };
        let text = std::fs::read_to_string(&json_path).expect("read bed.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("parse bed.json");
        let s = |v: &serde_json::Value| v.as_str().expect("string in bed.json").to_string();
        let op = &json["operator"];
        let mut ships = Vec::new();
        let mut inner = Vec::new();
        for ship in json["ships"].as_array().expect("ships") {
            let parsed = Ship {
                name: s(&ship["name"]),
                ip: s(&ship["ip"]),
                netns: s(&ship["netns"]),
                docker_socket: s(&ship["docker_socket"]),
                host_key_fingerprint: s(&ship["host_key_fingerprint"]),
            };
            if ship["inner"].as_bool().unwrap_or(false) {
                inner.push(parsed);
            } else {
                ships.push(parsed);
            }
        }
        assert!(ships.len() >= 3 && inner.len() >= 2, "bed needs 3 ships and 2 inner ships");
        Bed {
            name: s(&json["name"]),
            dir: PathBuf::from(s(&json["dir"])),
            key: PathBuf::from(s(&op["key"])),
            encrypted_key: PathBuf::from(s(&op["encrypted_key"])),
            passphrase: s(&op["encrypted_key_passphrase"]),
            known_hosts: PathBuf::from(s(&op["known_hosts"])),
            ssh_config: PathBuf::from(s(&op["ssh_config"])),
            ships,
            inner,
            bastion_ip: s(&json["bastion"]["ip"]),
        }
    })
}

/// Serialises the tests and gives each a clean process environment and an empty HOME (so
/// the operator's own ~/.ssh never takes part).
struct Serial {
    _guard: MutexGuard<'static, ()>,
    home: tempfile::TempDir,
}

fn serial() -> Serial {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().expect("tempdir");
    // SAFETY: the tests run one at a time under LOCK, and set env only while holding it.
    unsafe {
        std::env::remove_var("SSH_AUTH_SOCK");
        std::env::remove_var("MAESTRO_SSH_PASSPHRASE");
        std::env::remove_var("MAESTRO_SSH_CONFIG");
        std::env::set_var("HOME", home.path());
    }
    Serial {
        _guard: guard,
        home,
    }
}

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

fn ssh_established_in(netns: &str) -> usize {
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["ss", "-Htn", "state", "established", "( sport = :22 )"])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn bed_sshd(ship: &str, action: &str) {
    let status = Command::new("bash")
        .arg(repo_root().join("testbed/bed.sh"))
        .args(["sshd", "--name", &bed().name, "--ship", ship, action])
        .status()
        .expect("bed.sh sshd");
    assert!(status.success(), "bed.sh sshd {ship} {action}");
}

async fn assert_docker_works(conn: &transport::Connection) {
    let report = conn.probe().await.expect("probe");
    assert!(!report.engine_version.is_empty());
    assert_eq!(report.client_api_version, report.api_version.clone().min("1.53".into()));
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
        let conn = transport::connect(&endpoint(ship, key_route(bed, &ship.ip)))
            .await
            .expect("connect");
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
        assert!(report.round_trip < Duration::from_secs(2));
    });
}
