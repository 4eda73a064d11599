//! Host certificates on the real test bed: an extra sshd in a ship's namespace presents a
//! certificate of the ship's host key signed by a CA made here, and known_hosts trusts only
//! that CA (`@cert-authority`). maestro must reach the ship as OpenSSH does, and refuse it,
//! saying why, when the CA is `@revoked` or the certificate names another host, or when the
//! CA signed with SHA-1 `ssh-rsa`.
//!
//! The same extra sshd, given other host keys, plays the man in the middle who offers a key
//! of another type than the one on record, and the modern server that no longer signs with
//! `ssh-rsa` for a host on record only by its RSA key.

use crate::common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// An sshd started for one test in a ship's namespace; killed on drop, so also when the test
/// fails (the bed's own sshd is left alone).
struct ExtraSshd {
    child: Child,
    log: PathBuf,
}

impl ExtraSshd {
    /// The ship's sshd config with another port, pidfile and a `HostCertificate`.
    fn start(ship: &common::Ship, dir: &Path, port: u16, certificate: &Path) -> ExtraSshd {
        ExtraSshd::start_with(
            ship,
            dir,
            port,
            None,
            &format!("HostCertificate {}\n", certificate.display()),
        )
    }

    /// The ship's sshd config with another port and pidfile, `host_keys` instead of the
    /// ship's own host key when given, and `extra` lines.
    fn start_with(
        ship: &common::Ship,
        dir: &Path,
        port: u16,
        host_keys: Option<&[&Path]>,
        extra: &str,
    ) -> ExtraSshd {
        let ship_dir = ship
            .dir
            .as_ref()
            .expect("bed.json names the ship's directory");
        let base = std::fs::read_to_string(ship_dir.join("sshd_config")).expect("ship sshd_config");
        let mut config: String = base
            .lines()
            .filter(|line| !line.starts_with("Port ") && !line.starts_with("PidFile "))
            .filter(|line| host_keys.is_none() || !line.starts_with("HostKey "))
            .map(|line| format!("{line}\n"))
            .collect();
        config.push_str(&format!(
            "Port {port}\nPidFile {}\n{extra}",
            dir.join(format!("sshd-{port}.pid")).display(),
        ));
        for key in host_keys.unwrap_or_default() {
            config.push_str(&format!("HostKey {}\n", key.display()));
        }
        let config_path = dir.join(format!("sshd-{port}.conf"));
        std::fs::write(&config_path, config).expect("write sshd config");
        let log = dir.join(format!("sshd-{port}.log"));
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", ship.netns))
            .arg("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config_path)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let mut sshd = ExtraSshd { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((ship.ip.as_str(), port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd on port {port} exited ({status}): {}", sshd.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "sshd on port {port} did not listen within 10s: {}",
                sshd.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ExtraSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("run command");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Signs the ship's host key as a host certificate for `principal`; returns its path.
fn host_certificate(ship: &common::Ship, dir: &Path, ca: &Path, principal: &str) -> PathBuf {
    let public = ship
        .host_key_public
        .as_ref()
        .expect("bed.json names the host key");
    let copy = dir.join(format!("host-{principal}.pub"));
    std::fs::copy(public, &copy).expect("copy host key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-h", "-I", "maestro-test", "-n", principal, "-V", "-5m:+1h"])
        .arg(&copy));
    dir.join(format!("host-{principal}-cert.pub"))
}

/// `maestro -f FILE ships --json` for one ship on `port` with `known_hosts`; its report.
fn ships_report(
    bed: &common::TestBed,
    ship: &common::Ship,
    port: u16,
    known_hosts: &Path,
) -> Value {
    ships_report_with(bed, ship, port, known_hosts, "")
}

/// [`ships_report`] with more settings of the ship's `ssh` map (`, key: value`).
fn ships_report_with(
    bed: &common::TestBed,
    ship: &common::Ship,
    port: u16,
    known_hosts: &Path,
    more_ssh: &str,
) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ships.yaml");
    std::fs::write(
        &file,
        format!(
            "name: certs\nships:\n  certified: {{ip: {}, socket_path: \"{}\", ssh: {{user: {}, port: {port}, identity_files: [\"{}\"], known_hosts_file: \"{}\"{more_ssh}}}}}\nservices: {{}}\n",
            ship.ip,
            ship.docker_socket.display(),
            bed.user,
            bed.key().display(),
            known_hosts.display(),
        ),
    )
    .expect("write environment");
    common::first_ship_report(&file, &[])
}

/// OpenSSH's own verdict with the same known_hosts, to keep us honest about agreeing with it.
fn openssh_connects(
    bed: &common::TestBed,
    ship: &common::Ship,
    port: u16,
    known_hosts: &Path,
) -> bool {
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(bed.key())
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("{}@{}", bed.user, ship.ip))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn host_certificate_from_a_trusted_ca_is_accepted_and_refused_when_revoked_or_misnamed() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[bed.outer_ships().len() - 1].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "maestro-test-ca",
            "-f",
        ])
        .arg(&ca));
    let ca_public = std::fs::read_to_string(dir.path().join("ca.pub")).expect("CA public key");
    let ca_public = ca_public.trim();
    let ca_fingerprint = {
        let out = run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dir.path().join("ca.pub")));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_string()
    };

    let good = host_certificate(&ship, dir.path(), &ca, &ship.ip);
    let misnamed = host_certificate(&ship, dir.path(), &ca, "other.example");
    let _good_sshd = ExtraSshd::start(&ship, dir.path(), 2222, &good);
    let _misnamed_sshd = ExtraSshd::start(&ship, dir.path(), 2223, &misnamed);

    // Every ship of the bed's subnet, on the extra sshd's port: OpenSSH writes `[ip]:port`.
    let subnet = ship.ip.rsplit_once('.').expect("IPv4 address").0;
    let trusted = |port: u16| format!("@cert-authority [{subnet}.*]:{port} {ca_public}\n");

    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, trusted(2222)).expect("write known_hosts");
    assert!(
        openssh_connects(&bed, &ship, 2222, &known_hosts),
        "OpenSSH itself must accept the certificate"
    );
    let report = ships_report(&bed, &ship, 2222, &known_hosts);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["connection"]["host_key_fingerprint"], ship.host_key_fingerprint,
        "{report}"
    );

    std::fs::write(
        &known_hosts,
        format!("{}@revoked * {ca_public}\n", trusted(2222)),
    )
    .expect("write known_hosts");
    let report = ships_report(&bed, &ship, 2222, &known_hosts);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["error"]["cause"], "host-key-revoked", "{report}");
    let message = report["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("ship certified"), "{message}");
    assert!(
        message.contains(&format!(
            "is signed by CA key {ca_fingerprint}, which is marked @revoked in {}",
            known_hosts.display()
        )),
        "{message}"
    );

    std::fs::write(&known_hosts, trusted(2223)).expect("write known_hosts");
    assert!(
        !openssh_connects(&bed, &ship, 2223, &known_hosts),
        "OpenSSH refuses a certificate for another host too"
    );
    let report = ships_report(&bed, &ship, 2223, &known_hosts);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["error"]["cause"], "host-certificate", "{report}");
    let message = report["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!(
            "host certificate of {}@{}:2223 is for principals [other.example], not `{}`",
            bed.user, ship.ip, ship.ip
        )),
        "{message}"
    );

    // Also recorded by its plain key: accepted as OpenSSH does, with the certificate's
    // problem among the connection's warnings.
    let host_key = std::fs::read_to_string(ship.host_key_public.as_ref().expect("host key"))
        .expect("read host key");
    std::fs::write(
        &known_hosts,
        format!("{}[{}]:2223 {}", trusted(2223), ship.ip, host_key.trim()),
    )
    .expect("write known_hosts");
    assert!(openssh_connects(&bed, &ship, 2223, &known_hosts));
    let report = ships_report(&bed, &ship, 2223, &known_hosts);
    assert_eq!(report["ok"], true, "{report}");
    let warnings = report["connection"]["warnings"].to_string();
    assert!(
        warnings.contains("is for principals [other.example]")
            && warnings.contains("accepted its key"),
        "{report}"
    );
}

/// A new key pair of `kind` (`rsa`, `ecdsa`, `ed25519`) at `path`; its public line.
fn new_key(kind: &str, path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "maestro-test", "-f"])
        .arg(path));
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn fingerprint_of(public: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(public));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

#[test]
fn a_host_offering_a_key_type_not_on_record_is_changed_even_with_accept_new() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[bed.outer_ships().len() - 1].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    // The impostor has no Ed25519 key of the ship, so it offers only an RSA key.
    let rsa = dir.path().join("impostor_rsa");
    new_key("rsa", &rsa);
    let _sshd = ExtraSshd::start_with(&ship, dir.path(), 2224, Some(&[rsa.as_path()]), "");
    let host_key = std::fs::read_to_string(ship.host_key_public.as_ref().expect("host key"))
        .expect("read host key");
    let known_hosts = dir.path().join("known_hosts");
    let recorded = format!("[{}]:2224 {}\n", ship.ip, host_key.trim());
    std::fs::write(&known_hosts, &recorded).expect("write known_hosts");
    for policy in ["strict", "accept-new"] {
        let report = ships_report_with(
            &bed,
            &ship,
            2224,
            &known_hosts,
            &format!(", known_hosts: {policy}"),
        );
        assert_eq!(report["ok"], false, "{policy}: {report}");
        assert_eq!(
            report["error"]["cause"], "host-key-changed",
            "{policy}: {report}"
        );
        let message = report["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!(
                "it presented the ssh-rsa key {}",
                fingerprint_of(&rsa.with_extension("pub"))
            )) && message.contains("key types on record: ssh-ed25519")
                && message.contains(&ship.host_key_fingerprint),
            "{policy}: {message}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("read known_hosts"),
        recorded,
        "nothing may be recorded for a host whose key type changed"
    );
}

#[test]
fn a_host_on_record_by_its_rsa_key_is_reached_with_sha2_signatures() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[bed.outer_ships().len() - 1].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = dir.path().join("host_rsa");
    let rsa_public = new_key("rsa", &rsa);
    let ship_key = ship.host_key_public.as_ref().expect("host key");
    let ship_private = ship_key.with_extension("");
    // An OpenSSH 8.8+ server: Ed25519 and RSA keys, `ssh-rsa` signatures not offered.
    let _sshd = ExtraSshd::start_with(
        &ship,
        dir.path(),
        2225,
        Some(&[ship_private.as_path(), rsa.as_path()]),
        "HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256\n",
    );
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("[{}]:2225 {rsa_public}\n", ship.ip))
        .expect("write known_hosts");
    assert!(
        openssh_connects(&bed, &ship, 2225, &known_hosts),
        "OpenSSH itself reaches a host on record by its RSA key"
    );
    let report = ships_report(&bed, &ship, 2225, &known_hosts);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["connection"]["host_key_fingerprint"],
        fingerprint_of(&rsa.with_extension("pub")),
        "{report}"
    );
}

#[test]
fn a_host_certificate_signed_with_sha1_rsa_is_refused() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[bed.outer_ships().len() - 1].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("rsa_ca");
    let ca_public = new_key("rsa", &ca);
    let public = ship.host_key_public.as_ref().expect("host key");
    let copy = dir.path().join("host-sha1.pub");
    std::fs::copy(public, &copy).expect("copy host key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-t", "ssh-rsa", "-h", "-I", "maestro-test", "-n"])
        .arg(&ship.ip)
        .args(["-V", "-5m:+1h"])
        .arg(&copy));
    let _sshd = ExtraSshd::start(
        &ship,
        dir.path(),
        2226,
        &dir.path().join("host-sha1-cert.pub"),
    );
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("@cert-authority [{}]:2226 {ca_public}\n", ship.ip),
    )
    .expect("write known_hosts");
    assert!(
        !openssh_connects(&bed, &ship, 2226, &known_hosts),
        "OpenSSH refuses a certificate its CA signed with ssh-rsa"
    );
    let report = ships_report(&bed, &ship, 2226, &known_hosts);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["error"]["cause"], "host-certificate", "{report}");
    let message = report["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!(
            "is signed by CA key {} with ssh-rsa, an algorithm CASignatureAlgorithms does not allow",
            fingerprint_of(&ca.with_extension("pub"))
        )),
        "{message}"
    );
}
