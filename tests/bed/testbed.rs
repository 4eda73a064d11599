//! The test bed itself: hosts come up, are reachable over SSH the way maestro will use them
//! (forwarded Docker socket, bastion, two-hop chain), are isolated as the contract says, and
//! leave nothing behind.

use crate::common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::TestBed;

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn stdout_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker -H <host> version`, the server part only.
fn server_version(docker_host: &str) -> String {
    stdout_ok(
        Command::new("docker")
            .args([
                "-H",
                docker_host,
                "version",
                "--format",
                "{{.Server.Version}}",
            ])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT"),
    )
}

fn in_netns(netns: &str, args: &[&str]) -> String {
    stdout_ok(
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{netns}"))
            .args(args),
    )
}

/// The system ssh, found before the test puts its wrapper first in PATH.
fn real_ssh() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("ssh"))
        .find(|candidate| candidate.is_file())
        .expect("ssh in PATH")
}

/// Everything a bed made that is visible machine-wide and carries its prefix or its dir.
fn leftovers(prefix: &str, dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let netns = stdout_ok(Command::new("ip").args(["netns", "list"]));
    found.extend(
        netns
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| format!("netns {l}")),
    );
    let links = stdout_ok(Command::new("ip").args(["-o", "link", "show"]));
    found.extend(
        links
            .lines()
            .filter(|l| l.contains(prefix))
            .map(|l| format!("link {l}")),
    );
    let dir_text = dir.display().to_string();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&dir_text) {
                found.push(format!(
                    "process {}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&dir_text))
            .map(|l| format!("mount {l}")),
    );
    if dir.exists() {
        found.push(format!("directory {}", dir.display()));
    }
    found
}

#[test]
fn a_bed_of_three_ships_and_inner_ships_works_over_system_ssh_and_leaves_nothing_behind() {
    let bed = TestBed::up_with("selftest", 3, 2, true);
    let prefix = bed.prefix.clone().expect("bed.json names its prefix");
    let inner_subnet = bed
        .inner_subnet
        .clone()
        .expect("bed.json names the inner subnet");
    let dir = bed.dir.clone();
    assert_eq!(bed.outer_ships().len(), 3);
    assert_eq!(bed.inner_ships().len(), 2);

    // Every ship's Docker socket, forwarded through the system ssh client (inner ships through
    // the bastion, as the ssh_config says).
    std::thread::scope(|scope| {
        for ship in &bed.ships {
            let bed = &bed;
            scope.spawn(move || {
                let forward = bed.forward_socket(&ship.name, &ship.docker_socket);
                let version = server_version(&forward.docker_host());
                assert!(!version.is_empty(), "{}: empty server version", ship.name);
            });
        }
    });

    // The dockerd TCP port on the ship's loopback, forwarded the same way.
    let forward = bed.forward("ship2", "127.0.0.1:2375");
    assert!(!server_version(&forward.docker_host()).is_empty());
    drop(forward);

    // DOCKER_HOST=ssh:// runs `docker system dial-stdio` on the ship, which reaches the ship's
    // own daemon because its sshd sets DOCKER_HOST for sessions. The docker CLI cannot be given
    // an ssh config file, so a wrapper named `ssh` first in PATH adds it.
    let wrapper_dir = tempfile::tempdir().expect("tempdir");
    let wrapper = wrapper_dir.path().join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' -F '{}' \"$@\"\n",
            real_ssh().display(),
            bed.ssh_config().display()
        ),
    )
    .expect("write ssh wrapper");
    stdout_ok(Command::new("chmod").arg("+x").arg(&wrapper));
    let path = format!(
        "{}:{}",
        wrapper_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for ship in ["ship1", "inner1"] {
        let version = stdout_ok(
            Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .env("DOCKER_HOST", format!("ssh://root@{ship}"))
                .env("PATH", &path)
                .env_remove("DOCKER_CONTEXT"),
        );
        assert!(!version.is_empty(), "{ship}: empty version over ssh://");
    }

    // Inner ships: no route from the operator's namespace, none back, the bastion does not
    // forward, and yet they are reachable through the bastion and through a two-hop chain.
    let inner1 = bed.ship("inner1");
    let addr: SocketAddr = format!("{}:22", inner1.ip).parse().expect("inner ip");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_err(),
        "inner ship {} is reachable directly from the operator's namespace",
        inner1.ip
    );
    let route = run(Command::new("ip").args(["route", "get", &inner1.ip]));
    assert!(
        !route.status.success(),
        "the operator's namespace has a route to {}:\n{}",
        inner1.ip,
        text(&route)
    );
    let direct = run(bed.ssh_command("inner1").args([
        "-o",
        "ProxyJump=none",
        "-o",
        "ConnectTimeout=3",
        "true",
    ]));
    assert!(!direct.status.success(), "ssh without the bastion worked");
    for ship in bed.inner_ships() {
        let routes = in_netns(&ship.netns, &["ip", "-4", "route"]);
        assert!(
            !routes.contains("default"),
            "{} has a default route:\n{routes}",
            ship.name
        );
        let outer_net = bed.outer_ships()[0].ip.rsplit_once('.').map(|(n, _)| n);
        assert!(
            outer_net.is_some_and(|n| !routes.contains(n)),
            "{} has a route to the outer subnet:\n{routes}",
            ship.name
        );
    }
    let forwarding = in_netns(
        &bed.bastion().netns,
        &["cat", "/proc/sys/net/ipv4/ip_forward"],
    );
    assert_eq!(forwarding, "0", "the bastion forwards packets");
    let out = bed.ssh("inner1", "ip -4 -o addr show dev eth0");
    assert!(
        out.status.success(),
        "ssh inner1 via bastion\n{}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&inner1.ip));
    let out = bed.ssh("inner2-2hop", "ip -4 -o addr show dev eth0");
    assert!(out.status.success(), "two-hop ssh\n{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&bed.ship("inner2").ip));

    // sshd down and up again (for the transport's "sshd down" tests).
    bed.set_sshd_running("ship3", false);
    let refused = bed.ssh("ship3", "true");
    assert!(!refused.status.success(), "ssh worked with sshd stopped");
    bed.set_sshd_running("ship3", true);
    let back = bed.ssh("ship3", "true");
    assert!(back.status.success(), "ssh after restart\n{}", text(&back));

    // The test image is in every daemon, with one id, and runs.
    let mut ids: Vec<String> = bed
        .ships
        .iter()
        .map(|s| {
            bed.docker_ok(
                &s.name,
                &["image", "inspect", &bed.image, "--format", "{{.Id}}"],
            )
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "image ids differ: {ids:?}");
    let hello = bed.docker_ok("ship3", &["run", "--rm", &bed.image, "echo", "hello"]);
    assert_eq!(hello, "hello");
    // The registry: the test image is there, behind basic auth; credentials stay in a
    // throwaway DOCKER_CONFIG.
    let registry = bed.registry().clone();
    let anonymous = bed.docker_cli("ship2", &["pull", &registry.image]);
    assert!(
        !anonymous.status.success(),
        "pull without credentials worked"
    );
    let docker_config = tempfile::tempdir().expect("tempdir");
    let with_config = |args: &[&str]| {
        stdout_ok(
            Command::new("docker")
                .arg("-H")
                .arg(format!(
                    "unix://{}",
                    bed.ship("ship2").docker_socket.display()
                ))
                .args(args)
                .env("DOCKER_CONFIG", docker_config.path()),
        )
    };
    with_config(&[
        "login",
        "-u",
        &registry.user,
        "-p",
        &registry.password,
        &registry.address,
    ]);
    with_config(&["pull", &registry.image]);

    // A running container too: `down` must get rid of it.
    bed.docker_ok("inner1", &["run", "-d", &bed.image, "sleep", "1000"]);

    drop(bed);
    let left = leftovers(&prefix, &dir);
    assert!(
        left.is_empty(),
        "left behind after drop:\n{}",
        left.join("\n")
    );
    let routes = stdout_ok(Command::new("ip").args(["route"]));
    assert!(
        !routes.contains(&format!("unreachable {inner_subnet}")),
        "unreachable route left behind:\n{routes}"
    );
}

#[test]
fn down_of_a_bed_that_does_not_exist_succeeds() {
    let out = run(Command::new(common::bed_script()).args(["down", "--name", "never-was-up"]));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_shared_bed_has_three_ships_a_bastion_and_an_inner_ship() {
    let bed = TestBed::shared();
    assert!(bed.outer_ships().len() >= 3);
    assert!(!bed.inner_ships().is_empty());
    assert!(bed.bastion.is_some());
    for ship in &bed.ships {
        let out = bed.ssh(&ship.name, "ip -4 -o addr show dev eth0");
        assert!(out.status.success(), "ssh {}\n{}", ship.name, text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&ship.ip));
    }
    let out = bed.ssh("bastion", "true");
    assert!(out.status.success(), "ssh bastion\n{}", text(&out));
}

/// Polls `f` until it is true or `secs` pass; returns its last value.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn thirty_cheap_inner_ships_share_one_dockerd_behind_the_bastion_and_leave_nothing_behind() {
    let started = std::time::Instant::now();
    // Torn down on drop, also when an assertion below fails. Its name must not start with
    // another test's bed name: `leftovers` matches the bed directory as a prefix.
    let bed = TestBed::up_options(
        "cheapselftest",
        &common::BedOptions {
            cheap_inner: 30,
            extra_keys: 2,
            ..Default::default()
        },
    );
    eprintln!("30 cheap inner ships up in {:?}", started.elapsed());
    let prefix = bed.prefix.clone().expect("bed.json names its prefix");
    let dir = bed.dir.clone();
    let shared = bed.cheap_docker().docker_socket.clone();
    assert_eq!(bed.cheap_docker().ships, 30);
    let cheap = bed.cheap_ships();
    assert_eq!(cheap.len(), 30);
    assert_eq!(bed.inner_ships().len(), 30);
    assert!(bed.outer_ships().is_empty());
    let known_hosts = std::fs::read_to_string(bed.known_hosts()).expect("known_hosts");
    let mut ips: Vec<&str> = cheap.iter().map(|s| s.ip.as_str()).collect();
    for ship in &cheap {
        assert!(ship.inner && ship.cheap, "{ship:?}");
        assert_eq!(
            ship.docker_socket, shared,
            "{}: not the shared socket",
            ship.name
        );
        assert!(
            known_hosts
                .lines()
                .any(|l| l.starts_with(&format!("{} ", ship.ip))),
            "{} ({}) is not in known_hosts",
            ship.name,
            ship.ip
        );
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 30, "cheap ships share addresses");

    // Through the bastion with plain OpenSSH: a cheap ship's sessions reach the shared dockerd,
    // and a container started through one cheap ship is seen through another.
    let logins_before = bed.bastion_log_count("Accepted publickey");
    let out = bed.ssh("cheap17", "docker ps");
    assert!(
        out.status.success(),
        "ssh cheap17 docker ps\n{}",
        text(&out)
    );
    bed.docker_ok(
        "cheap3",
        &[
            "run",
            "-d",
            "--name",
            "cheap-probe",
            &bed.image,
            "sleep",
            "1000",
        ],
    );
    let out = bed.ssh("cheap17", "docker ps --format '{{.Names}}'");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cheap-probe"),
        "cheap17 does not see the shared dockerd's container\n{}",
        text(&out)
    );
    // The socket forwarded over SSH (direct-streamlocal through the bastion), as maestro does.
    let forward = bed.forward_socket("cheap30", &bed.ship("cheap30").docker_socket);
    assert!(!server_version(&forward.docker_host()).is_empty());
    // While the forward is open, the bastion holds its jump connection.
    assert!(
        bed.bastion_ssh_connections() >= 1,
        "ss in the bastion's namespace sees no SSH connection"
    );
    drop(forward);
    // Every login through the bastion is in its sshd log.
    assert!(
        eventually(5, || bed.bastion_log_count("Accepted publickey")
            >= logins_before + 2),
        "the bastion's sshd log does not show the jump logins"
    );

    // An extra operator key logs in on its own (no other identity offered).
    let extra = &bed.extra_keys()[1];
    let bastion_ip = bed.bastion().ip.clone();
    let out = run(Command::new("ssh").args([
        "-F",
        "/dev/null",
        "-i",
        &extra.display().to_string(),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        &format!("UserKnownHostsFile={}", bed.known_hosts().display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        &format!("root@{bastion_ip}"),
        "true",
    ]));
    assert!(
        out.status.success(),
        "login with an extra key\n{}",
        text(&out)
    );

    // MaxStartups for one run of the bastion's sshd: with 2:100:2, unauthenticated
    // connections past two are dropped, and the log says so. Then back to the default.
    let sshd_config =
        std::fs::read_to_string(bed.bastion().sshd_config.as_ref().expect("sshd_config"))
            .expect("bastion sshd_config");
    assert!(
        !sshd_config.contains("MaxStartups"),
        "the bastion's sshd_config sets MaxStartups"
    );
    bed.restart_bastion_sshd(&["-o", "MaxStartups=2:100:2"]);
    let drops_before = bed.bastion_log_count("past MaxStartups");
    let addr: SocketAddr = format!("{bastion_ip}:22").parse().expect("bastion addr");
    let held: Vec<TcpStream> = (0..5)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok())
        .collect();
    assert!(
        eventually(5, || bed.bastion_log_count("past MaxStartups")
            > drops_before),
        "no 'past MaxStartups' line with MaxStartups=2:100:2 and {} connections",
        held.len()
    );
    drop(held);
    bed.restart_bastion_sshd(&[]);
    let out = bed.ssh("cheap1", "true");
    assert!(
        out.status.success(),
        "ssh after restoring sshd\n{}",
        text(&out)
    );

    drop(bed);
    let left = leftovers(&prefix, &dir);
    assert!(
        left.is_empty(),
        "left behind after drop:\n{}",
        left.join("\n")
    );
}
