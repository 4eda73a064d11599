//! `http` lifecycle checks over https, run from the ship's side on the real test bed: an
//! `openssl s_server` in a ship's network namespace serves TLS with a certificate made here
//! (a test CA signs a leaf for the ship's ip), and instances whose `running` checks reach it
//! through maestro's SSH session show each way of verifying it.
//!
//! Needs root and `openssl`. Uses the bed named by `MAESTRO_TESTBED` if set, else brings up
//! its own.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestBed;
use serde_json::Value;

/// Where the TLS server listens on the ship (its own ip). Published container ports are
/// bound to loopback addresses of the ship, so Docker never takes this port on the ship's ip.
const TLS_PORT: u16 = 18443;
/// A busybox httpd inside a container, published on the ship as usual.
const PLAIN_PORT: u16 = 18088;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA (self-signed, trusted by nobody) and a server certificate it signed whose only name
/// is the ship's ip, as an IP subjectAltName.
fn make_certificates(dir: &Path, ip: &str) {
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=maestro test CA"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", &format!("/CN={ip}")],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// `openssl s_server -www` in the ship's network namespace; killed on drop, so a failing
/// test does not leave it behind.
struct TlsServer {
    child: Child,
}

impl TlsServer {
    fn start(netns: &str, ip: &str, dir: &Path) -> TlsServer {
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{netns}"))
            .args(["openssl", "s_server", "-quiet", "-www"])
            .args(["-accept", &format!("{ip}:{TLS_PORT}")])
            .args(["-cert", "server.pem", "-key", "server.key"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("openssl s_server: {e}"));
        let server = TlsServer { child };
        for _ in 0..100 {
            let probe = Command::new("nsenter")
                .arg(format!("--net=/var/run/netns/{netns}"))
                .args(["bash", "-c", &format!("exec 3<>/dev/tcp/{ip}/{TLS_PORT}")])
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("openssl s_server did not come up on {ip}:{TLS_PORT}");
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the test's containers now and again on drop.
struct Containers<'a> {
    bed: &'a TestBed,
    ship: String,
    names: Vec<&'static str>,
}

impl Containers<'_> {
    fn remove(&self) {
        for name in &self.names {
            let _ = self.bed.docker_cli(&self.ship, &["rm", "-f", name]);
        }
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One instance per way of checking, each publishing the check's port on its own loopback
/// address of the ship (the check only needs the port number to be declared).
fn environment_yaml(bed: &TestBed, ship: &str) -> String {
    let instance = |name: &str, loopback: &str, check: &str| {
        format!(
            "  {name}:\n    image: maestro-test:latest\n    instances:\n      {name}-1:\n        \
             ship: a\n        command: sleep 3600\n        stop_timeout: 1\n        ports: \
             {{https: {{exposed: 8443, external: [{loopback}, {TLS_PORT}]}}}}\n        \
             lifecycle:\n          running: [{{type: http, port: https, {check}}}]\n"
        )
    };
    let mut yaml = format!("name: chk\nships:\n{}services:\n", bed.ship_yaml(ship, "a"));
    yaml += &instance(
        "tls-ca",
        "127.0.0.2",
        "scheme: https, requests_options: {verify: ca.pem}, max_wait: 10",
    );
    yaml += &instance("tls-untrusted", "127.0.0.3", "scheme: https, max_wait: 2");
    yaml += &instance(
        "tls-insecure",
        "127.0.0.4",
        "scheme: https, requests_options: {verify: false}, match_regex: 'Ciphers', max_wait: 10",
    );
    // TLS spoken to a plain HTTP server: the port is the plain one's, checked once that
    // server is up.
    yaml += &instance("tls-wrong", "127.0.0.5", "scheme: https, max_wait: 3")
        .replace(&format!(", {TLS_PORT}]"), &format!(", {PLAIN_PORT}]"))
        .replace(
            "    instances:\n      tls-wrong-1",
            "    requires: [tls-plain]\n    instances:\n      tls-wrong-1",
        );
    yaml += &format!(
        "  tls-plain:\n    image: maestro-test:latest\n    instances:\n      tls-plain-1:\n        \
         ship: a\n        command: httpd -f -p 8080\n        stop_timeout: 1\n        ports: \
         {{web: {{exposed: 8080, external: [{ip}, {PLAIN_PORT}]}}}}\n        lifecycle:\n          \
         running: [{{type: http, port: web, path: /etc/hostname, match_regex: '^tls-plain', \
         max_wait: 10}}]\n",
        ip = bed.ship(ship).ip
    );
    yaml
}

fn kind(e: &Value) -> &str {
    e["event"].as_str().unwrap_or_default()
}

#[test]
fn https_checks_verify_the_certificate_as_asked() {
    let bed = TestBed::shared();
    let ship = bed.outer_ships()[0].clone();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    make_certificates(dir.path(), &ship.ip);
    let containers = Containers {
        bed: &bed,
        ship: ship.name.clone(),
        names: vec![
            "tls-ca-1",
            "tls-untrusted-1",
            "tls-insecure-1",
            "tls-wrong-1",
            "tls-plain-1",
        ],
    };
    containers.remove();
    let _server = TlsServer::start(&ship.netns, &ship.ip, dir.path());

    // The CA file is named relative to the environment file.
    let file = dir.path().join("env.yaml");
    std::fs::write(&file, environment_yaml(&bed, &ship.name)).unwrap_or_else(|e| panic!("{e}"));
    let out = common::maestro(dir.path())
        .arg("-f")
        .arg(&file)
        .args(["--json", "start"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run maestro: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect();
    let mut outcome: BTreeMap<String, String> = BTreeMap::new();
    for e in &events {
        let instance = e["instance"].as_str().unwrap_or_default().to_string();
        match kind(e) {
            "job_done" => {
                outcome.insert(instance, "done".into());
            }
            "job_failed" => {
                outcome.insert(
                    instance,
                    format!("failed: {}", e["reason"].as_str().unwrap_or_default()),
                );
            }
            _ => {}
        }
    }
    let context = format!("outcomes {outcome:#?}\nstderr: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "two instances must fail: {context}"
    );
    for passing in ["tls-ca-1", "tls-insecure-1", "tls-plain-1"] {
        assert_eq!(
            outcome.get(passing).map(String::as_str),
            Some("done"),
            "{passing}: {context}"
        );
    }
    let untrusted = outcome.get("tls-untrusted-1").cloned().unwrap_or_default();
    let expected = format!(
        "certificate not trusted (unknown issuer) for {}: set requests_options.verify to a CA \
         file or false",
        ship.ip
    );
    assert!(
        untrusted.starts_with("failed: ") && untrusted.contains(&expected),
        "tls-untrusted-1 must fail with {expected:?}: {context}"
    );
    assert!(
        untrusted.contains("http:https check failed"),
        "the cause names the check: {untrusted}"
    );
    let wrong = outcome.get("tls-wrong-1").cloned().unwrap_or_default();
    assert!(
        wrong.contains(&format!("{} does not speak TLS on this port", ship.ip))
            && wrong.contains("set scheme: http"),
        "tls-wrong-1: {context}"
    );
}
