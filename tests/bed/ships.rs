//! `maestro ships` on the real test bed: every ship reached at once, inner ones through the
//! bastion, and a ship that cannot be reached reported with its cause.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// `maestro -f FILE ships ARGS`, with `home` as HOME (no ~/.ssh of this machine).
fn ships(file: &Path, home: &Path, args: &[&str]) -> Output {
    common::maestro(home)
        .arg("-f")
        .arg(file)
        .arg("ships")
        .args(args)
        .output()
        .expect("run maestro")
}

/// The report of the one ship of `yaml` (a `ships:` entry named `s`), run with no test bed.
fn lone_ship_report(ship_yaml: &str) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("env.yaml");
    std::fs::write(
        &file,
        format!("name: n\nships:\n  s: {ship_yaml}\nservices: {{}}\n"),
    )
    .expect("write environment");
    let out = ships(&file, dir.path(), &["--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Value = serde_json::from_str(&stdout).expect("JSON report");
    reports[0].clone()
}

/// A port that answers, but not with SSH, is named for what it is, at once, as OpenSSH
/// names it; no test bed needed (a listener on loopback).
#[test]
fn a_port_that_is_not_ssh_is_reported_with_what_it_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let started = std::time::Instant::now();
    let report = lone_ship_report(&format!(
        "{{ip: 127.0.0.1, ssh: {{user: root, port: {port}}}}}"
    ));
    let error = report["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(report["error"]["cause"], "not-ssh", "{report}");
    assert!(
        error.contains(&format!(
            "root@127.0.0.1:{port} is not an SSH server (it sent `HTTP/1.1 400 Bad Request`)"
        )),
        "{error}"
    );
    // One answer is enough: it is not retried as a busy sshd would be.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{report}"
    );
    let _ = server.join();
}

/// A ship with only an address is reached on Docker's TCP port, as MaestroNG does; when that
/// is refused, the error says so and how to go through SSH.
#[test]
fn a_ship_without_ssh_says_it_used_dockers_tcp_port() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = unused.local_addr().expect("address").port();
    drop(unused);
    let report = lone_ship_report(&format!("{{ip: 127.0.0.1, docker_port: {port}}}"));
    let error = report["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(report["error"]["cause"], "refused", "{report}");
    assert!(
        error.contains(&format!("connection to 127.0.0.1:{port} refused"))
            && error.contains("With no `ssh:` block (nor `ssh_tunnel`), maestro reaches the Docker daemon on its unencrypted TCP port")
            && error.contains("`ssh: {user: deploy}`"),
        "{error}"
    );
}

#[test]
fn ships_reports_route_auth_host_key_and_engine_per_ship() {
    let bed = common::TestBed::shared();
    let inner = bed.inner_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ships.yaml");
    let text = format!(
        "name: ships\nships:\n{}{}{}  gone: {{ip: 127.0.0.1, timeout: 3, ssh: {{user: root, port: 1}}}}\nservices: {{}}\n",
        bed.ship_yaml("ship1", "ship1"),
        bed.ship_yaml("ship2", "ship2"),
        bed.ship_yaml(&inner, "inner"),
    );
    std::fs::write(&file, text).expect("write environment");

    let out = ships(&file, dir.path(), &["--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one ship is down: {stdout}");
    let reports: Value = serde_json::from_str(&stdout).expect("JSON report");
    let by_name = |name: &str| {
        reports
            .as_array()
            .and_then(|all| all.iter().find(|r| r["ship"] == name))
            .unwrap_or_else(|| panic!("no report for {name}: {stdout}"))
            .clone()
    };
    for name in ["ship1", "ship2", "inner"] {
        let report = by_name(name);
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["engine"]["api_version"], "1.41", "{report}");
        assert_eq!(report["connection"]["transport"], "ssh", "{report}");
        let fingerprint = report["connection"]["host_key_fingerprint"]
            .as_str()
            .unwrap_or("");
        assert!(fingerprint.starts_with("SHA256:"), "{report}");
        assert!(
            report["engine"]["round_trip"].as_f64().is_some(),
            "{report}"
        );
    }
    let hops = by_name("inner")["connection"]["hops"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        hops.len(),
        2,
        "the inner ship is reached through the bastion"
    );
    assert!(
        hops[0]["address"]
            .as_str()
            .unwrap_or("")
            .contains(&bed.bastion().ip)
    );

    let gone = by_name("gone");
    assert_eq!(gone["ok"], false);
    assert_eq!(gone["error"]["cause"], "refused", "{gone}");
    assert!(
        gone["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ship gone"),
        "the message names the ship: {gone}"
    );

    // The human form says the same in lines.
    let out = ships(&file, dir.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let firsts: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(
        &firsts[..4],
        ["ship1", "ship2", "inner", "gone"],
        "ships are listed in the file's order: {text}"
    );
    assert!(text.contains("inner: ok, Docker"), "{text}");
    assert!(text.contains("gone: FAILED (refused)"), "{text}");
    assert!(text.contains("3 of 4 ships reachable"), "{text}");
}

/// A login user that exists on the ship, with a shell, but is not allowed on the Docker
/// socket: the common mistake of a deploy user left out of the `docker` group.
struct UserWithoutDocker(&'static str);

impl UserWithoutDocker {
    fn create() -> Self {
        let name = "maestro-nodocker";
        let exists = Command::new("id")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success());
        if !exists {
            // `-p '*'`: no password, but not locked (sshd refuses locked accounts even with a key).
            let status = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/bin/sh",
                    "-p",
                    "*",
                    name,
                ])
                .status()
                .expect("run useradd");
            assert!(status.success(), "useradd {name}");
        }
        UserWithoutDocker(name)
    }
}

impl Drop for UserWithoutDocker {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(self.0).status();
    }
}

#[test]
fn a_user_without_access_to_the_socket_is_told_so() {
    let bed = common::TestBed::shared();
    let user = UserWithoutDocker::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ships.yaml");
    // The bed's sshd takes the bed's key for any user (one AuthorizedKeysFile for all).
    let ship = bed.ship_yaml("ship1", "ship1").replacen(
        &format!("user: {}", bed.user),
        &format!("user: {}", user.0),
        1,
    );
    std::fs::write(
        &file,
        format!("name: ships\nships:\n{ship}services: {{}}\n"),
    )
    .expect("write environment");

    let out = ships(&file, dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ship1: FAILED (socket-permission)"),
        "{stdout}"
    );
    let socket = bed.ship("ship1").docker_socket.display().to_string();
    assert!(
        stdout.contains(&format!("permission denied on the Docker socket {socket}")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{}@", user.0)), "{stdout}");
    assert!(stdout.contains("`docker`"), "{stdout}");
}

/// SSH works and the Docker socket is missing: the report says so and still shows the route,
/// the login that worked and the host key it found.
#[test]
fn a_missing_docker_socket_keeps_the_route_login_and_host_key() {
    let bed = common::TestBed::shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("env.yaml");
    let ship = bed.ship("ship1");
    let text = format!(
        "name: n\nships:\n  s: {{ip: {}, socket_path: /var/run/no-docker-here.sock, ssh: {}}}\nservices: {{}}\n",
        ship.ip,
        bed.ssh_yaml("")
    );
    std::fs::write(&file, text).expect("write environment");
    let out = ships(&file, dir.path(), &["--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str::<Value>(&stdout).expect("JSON report")[0].clone();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["error"]["cause"], "socket-missing", "{report}");
    assert!(
        report["connection"]["route"]
            .as_str()
            .is_some_and(|r| r.ends_with("unix:/var/run/no-docker-here.sock")),
        "{report}"
    );
    assert_eq!(
        report["connection"]["auth_method"],
        format!("key {}", bed.key().display()),
        "{report}"
    );
    assert!(
        report["connection"]["host_key_fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("SHA256:")),
        "{report}"
    );
    let plain = ships(&file, dir.path(), &[]);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains("s: FAILED (socket-missing)") && text.contains("  route:    ssh "),
        "{text}"
    );
}

/// `-v`'s diagnostic log names each step of a connection, on stderr: TCP connect, the key
/// exchange's algorithms, the host key check with its verdict, each login method and its
/// answer, and, once logged in, the Docker API requests with their status. Checked against an
/// unknown host key, a refused key, and a ship that works.
#[test]
fn verbose_diagnostics_name_each_step_of_a_connection() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let empty_known_hosts = dir.path().join("empty_known_hosts");
    std::fs::write(&empty_known_hosts, "").expect("write known_hosts");
    let stranger = dir.path().join("id_stranger");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .output()
        .expect("ssh-keygen");
    assert!(keygen.status.success(), "{keygen:?}");
    let file = dir.path().join("env.yaml");
    let ssh = |key: &Path, known_hosts: &Path| {
        format!(
            "{{ip: {}, socket_path: \"{}\", ssh: {{user: {}, identity_files: [\"{}\"], known_hosts_file: \"{}\"}}}}",
            ship.ip,
            ship.docker_socket.display(),
            bed.info.user,
            key.display(),
            known_hosts.display()
        )
    };
    std::fs::write(
        &file,
        format!(
            "name: v\nships:\n  unknown: {}\n  refused: {}\n  good: {}\nservices: {{}}\n",
            ssh(bed.key(), &empty_known_hosts),
            ssh(&stranger, bed.known_hosts()),
            ssh(bed.key(), bed.known_hosts()),
        ),
    )
    .expect("write environment");
    let out = ships(&file, dir.path(), &["-v"]);
    let log = String::from_utf8_lossy(&out.stderr);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}\n{log}");
    let hop = format!("{}@{}:{}", bed.info.user, ship.ip, ship.ssh_port);
    let lines_of = |ship: &str| -> Vec<&str> {
        log.lines()
            .filter(|l| l.contains(&format!(" {ship}: ")))
            .collect()
    };
    for name in ["unknown", "refused", "good"] {
        let lines = lines_of(name).join("\n");
        assert!(
            lines.contains(&format!("{name}: {hop}: TCP connect to"))
                && lines.contains("TCP connected to")
                && lines.contains(&format!("{name}: {hop}: SSH handshake")),
            "{name}:\n{log}"
        );
    }
    // The key exchange's choice (russh's own message) and the host key's verdict.
    assert!(
        log.contains("negotiated algorithms") && log.contains("curve25519"),
        "{log}"
    );
    let fingerprint = ship.host_key_fingerprint.clone();
    assert!(
        log.contains(&format!("host key {fingerprint} (ssh-ed25519): Unknown"))
            && log.contains(&format!("host key {fingerprint} (ssh-ed25519): Known")),
        "{log}"
    );
    assert!(
        lines_of("unknown")
            .join("\n")
            .contains("SSH handshake failed: Unknown server key"),
        "{log}"
    );
    // Each login method and the server's answer.
    assert!(
        log.contains(&format!(
            "{hop}: login as {}: key {}: rejected",
            bed.info.user,
            stranger.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{hop}: login as {}: key {}: accepted",
            bed.info.user,
            bed.key().display()
        )),
        "{log}"
    );
    // Once in: the channel to the daemon and the API requests, with status and time.
    assert!(
        log.contains(&format!(
            "channel to {} opened in",
            ship.docker_socket.display()
        )),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("good: Docker GET /") && l.contains(": 200 in")),
        "{log}"
    );
    // Without -v, none of it.
    let quiet = ships(&file, dir.path(), &[]);
    let quiet_log = String::from_utf8_lossy(&quiet.stderr);
    assert!(!quiet_log.contains("TCP connect"), "{quiet_log}");
}
