//! `maestro push` and `image_source` on the test bed: images of this machine sent through
//! each ship's own SSH session (a remote forward to a registry maestro serves), only the
//! layers a ship lacks.
//!
//! "This machine's" Docker daemon is the bed's `ship3` daemon, reached at its socket (the
//! machine runs no dockerd of its own): images are built there with `docker import` (a base
//! of busybox and 8 MB of random bytes) and `docker build` (`COPY` of a small file of random
//! bytes on top). The ships that receive them are `ship1`, `ship2` and `inner1` (behind the
//! bastion). Bytes through each ship's SSH session are counted by an iptables rule in the
//! ship's network namespace (packets to its port 22), not by maestro's own report.
//!
//! The tests share ships and counters: they run one at a time (`SERIAL`).

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::support::{self, Run};
use common::{SharedBed, TestBed};

static SERIAL: Mutex<()> = Mutex::new(());

const BUILDER: &str = "ship3";
const TARGETS: [&str; 3] = ["ship1", "ship2", "inner1"];

fn bed() -> SharedBed {
    let bed = TestBed::shared();
    for ship in TARGETS.iter().chain([&BUILDER, &"inner2"]) {
        bed.ship(ship);
    }
    bed
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

fn builder_host(bed: &TestBed) -> String {
    format!("unix://{}", bed.ship(BUILDER).docker_socket.display())
}

/// `docker` against the builder's daemon ("this machine's"), asserting success.
fn local_docker(bed: &TestBed, args: &[&str], dir: &Path) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", builder_host(bed))
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn random_file(path: &Path, bytes: usize) {
    let mut data = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut data,
    )
    .expect("random");
    std::fs::write(path, data).expect("write");
}

/// A base image `NAME-base:1` on the builder: busybox plus `megabytes` of random bytes.
fn build_base(bed: &TestBed, dir: &Path, name: &str, megabytes: usize) -> String {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "sleep"] {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    random_file(&root.join("base.bin"), megabytes * 1_000_000);
    let tar = dir.join("base.tar");
    let made = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(made.success());
    let base = format!("{name}-base:1");
    local_docker(
        bed,
        &[
            "import",
            "-c",
            r#"CMD ["/bin/sleep","3600"]"#,
            &tar.display().to_string(),
            &base,
        ],
        dir,
    );
    base
}

/// `image` on the builder: `base` and a new small layer of `kilobytes` random bytes. Its id.
fn build_app(bed: &TestBed, dir: &Path, base: &str, image: &str, kilobytes: usize) -> String {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    random_file(&ctx.join("small.bin"), kilobytes * 1000);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY small.bin /small.bin\n"),
    )
    .expect("Dockerfile");
    local_docker(bed, &["build", "-q", "-t", image, "."], &ctx);
    local_docker(bed, &["image", "inspect", "-f", "{{.Id}}", image], dir)
}

/// An environment file: service `app` of `image` from `source` on `ships`.
fn environment(
    bed: &TestBed,
    dir: &Path,
    name: &str,
    image: &str,
    source: &str,
    ships: &[&str],
) -> PathBuf {
    let mut text = format!("name: {name}\nships:\n");
    for ship in ships {
        text.push_str(&bed.ship_yaml(ship, ship));
    }
    text.push_str(&format!(
        "services:\n  app:\n    image: {image}\n    image_source: {source}\n    instances:\n"
    ));
    for ship in ships {
        text.push_str(&format!("      {name}-{ship}: {{ship: {ship}}}\n"));
    }
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).expect("write");
    file
}

fn maestro(dir: &Path, file: &Path, args: &[&str], docker_host: &str) -> Run {
    let mut all = vec!["-f", file.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    support::run_maestro(dir, &all, &[("DOCKER_HOST", docker_host)])
}

/// Counts the bytes sent to a ship's port 22 (its sshd) in its network namespace.
struct SshBytes {
    netns: String,
    comment: String,
}

impl SshBytes {
    fn new(bed: &TestBed, ship: &str) -> SshBytes {
        let counter = SshBytes {
            netns: bed.ship(ship).netns.clone(),
            comment: unique(&format!("maestro-push-{ship}-")),
        };
        let out = support::in_netns(&counter.netns, &counter.rule("-I"));
        assert!(out.status.success(), "iptables: {out:?}");
        counter
    }

    fn rule<'a>(&'a self, op: &'a str) -> Vec<&'a str> {
        vec![
            "iptables",
            op,
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "22",
            "-m",
            "comment",
            "--comment",
            &self.comment,
        ]
    }

    fn bytes(&self) -> u64 {
        let out = support::in_netns(&self.netns, &["iptables", "-L", "INPUT", "-vxn"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains(&self.comment))
            .unwrap_or_else(|| panic!("no counter {} in {text}", self.comment));
        line.split_whitespace()
            .nth(1)
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("bad counter line {line}"))
    }
}

impl Drop for SshBytes {
    fn drop(&mut self) {
        let _ = support::in_netns(&self.netns, &self.rule("-D"));
    }
}

/// The TCP ports listening in a ship's namespace.
fn listeners(bed: &TestBed, ship: &str) -> Vec<String> {
    let out = support::in_netns(&bed.ship(ship).netns, &["ss", "-Hltn"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// Only sshd and the bed's dockerd listen: nothing of a push is left.
fn assert_no_listener_left(bed: &TestBed, ship: &str) {
    let ok = support::wait_for(Duration::from_secs(30), || {
        listeners(bed, ship)
            .iter()
            .all(|l| l.ends_with(":22") || l.ends_with(":2375"))
    });
    assert!(ok, "{ship} still listens on {:?}", listeners(bed, ship));
}

fn image_id_on(bed: &TestBed, ship: &str, image: &str) -> Option<String> {
    let out = bed.docker_cli(ship, &["image", "inspect", "-f", "{{.Id}}", image]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn pushed_events(run: &Run) -> Vec<serde_json::Value> {
    run.events()
        .into_iter()
        .filter(|e| e["event"] == "step" && e["step"]["step"] == "pushed")
        .collect()
}

/// The compressed size of a file's bytes (gzip -1, as maestro compresses).
fn gzip_size(path: &Path) -> u64 {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -1 -c '{}' | wc -c", path.display()))
        .output()
        .expect("gzip");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("size")
}

/// What a test that pushes starts from: this file's lock (its tests share ships and byte
/// counters), the bed, a directory, a name of its own, and the image `NAME-app:1` built on the
/// builder: a base of random megabytes and a small layer of random kilobytes on it.
struct Case {
    _serial: MutexGuard<'static, ()>,
    bed: SharedBed,
    dir: tempfile::TempDir,
    name: String,
    image: String,
    base: String,
    /// The image's id.
    id: String,
}

impl Case {
    fn new(prefix: &str, base_megabytes: usize, app_kilobytes: usize) -> Case {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bed = bed();
        let dir = tempfile::tempdir().expect("tempdir");
        let name = unique(prefix);
        let image = format!("{name}-app:1");
        let base = build_base(&bed, dir.path(), &name, base_megabytes);
        let id = build_app(&bed, dir.path(), &base, &image, app_kilobytes);
        Case {
            _serial: serial,
            bed,
            dir,
            name,
            image,
            base,
            id,
        }
    }
}

/// `image` is on `ship` with id `id`, and the push left nothing listening there.
fn assert_arrived(bed: &TestBed, ship: &str, image: &str, id: &str) {
    assert_eq!(image_id_on(bed, ship, image).as_deref(), Some(id), "{ship}");
    assert_no_listener_left(bed, ship);
}

/// Every target's container `NAME-SHIP` runs, from image `id`.
fn assert_containers_run(bed: &TestBed, name: &str, id: &str) {
    for ship in TARGETS {
        let state = bed.docker_ok(
            ship,
            &[
                "inspect",
                "-f",
                "{{.State.Running}} {{.Image}}",
                &format!("{name}-{ship}"),
            ],
        );
        assert_eq!(state, format!("true {id}"), "{ship}");
    }
}

#[test]
fn a_two_layer_image_reaches_three_ships_and_a_change_sends_only_the_small_layer() {
    let Case {
        _serial,
        bed,
        dir,
        name,
        image,
        base,
        id: first_id,
    } = Case::new("psh", 8, 200);
    let d = dir.path();
    let file = environment(&bed, d, &name, &image, "local", &TARGETS);
    let local = builder_host(&bed);

    let run = maestro(d, &file, &["--json", "push"], &local);
    assert_eq!(run.code, 0, "{run}");
    for ship in TARGETS {
        assert_arrived(&bed, ship, &image, &first_id);
        // Only the file's name: the registry's reference is gone.
        let digests = bed.docker_ok(
            ship,
            &["image", "inspect", "-f", "{{.RepoDigests}}", &image],
        );
        assert_eq!(digests, "[]", "{ship}");
    }
    let run = maestro(d, &file, &["--json", "start"], &local);
    assert_eq!(run.code, 0, "{run}");
    assert_containers_run(&bed, &name, &first_id);

    // Only the small layer changes.
    let second_id = build_app(&bed, d, &base, &image, 200);
    assert_ne!(first_id, second_id);
    let small = gzip_size(&d.join("ctx/small.bin"));
    let counters: Vec<SshBytes> = TARGETS.iter().map(|s| SshBytes::new(&bed, s)).collect();
    let run = maestro(d, &file, &["--json", "push"], &local);
    assert_eq!(run.code, 0, "{run}");
    let pushed = pushed_events(&run);
    assert_eq!(pushed.len(), 3, "{run}");
    for event in &pushed {
        assert_eq!(event["step"]["layers_total"], 2, "{event}");
        assert_eq!(event["step"]["layers_skipped"], 1, "{event}");
    }
    for (ship, counter) in TARGETS.iter().zip(&counters) {
        let sent = counter.bytes();
        eprintln!(
            "second push to {ship}: {sent} bytes through sshd (small layer {small} compressed)"
        );
        assert!(
            sent < 2 * small,
            "{ship}: {sent} bytes for a small layer of {small}"
        );
        assert_arrived(&bed, ship, &image, &second_id);
    }
    // `start` replaces the containers with the new image.
    let run = maestro(d, &file, &["--json", "start"], &local);
    assert_eq!(run.code, 0, "{run}");
    assert_containers_run(&bed, &name, &second_id);

    // `restart` pushes a rebuilt image itself, and `pull` of such an image is a push.
    let third_id = build_app(&bed, d, &base, &image, 20);
    let run = maestro(d, &file, &["--json", "restart", "-a"], &local);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(pushed_events(&run).len(), 3, "{run}");
    assert_containers_run(&bed, &name, &third_id);
    let run = maestro(d, &file, &["--json", "pull"], &local);
    assert_eq!(run.code, 0, "{run}");
    for event in pushed_events(&run) {
        assert_eq!(event["step"]["layers_skipped"], 2, "{event}");
    }
    let outcomes: Vec<_> = run
        .events()
        .into_iter()
        .filter(|e| e["event"] == "job_done")
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["pushed"; 3], "{run}");

    // What operators do today sends the whole image again.
    let before = counters[0].bytes();
    let save_load = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker save '{image}' | gzip | ssh -F '{}' ship1 docker load",
            bed.ssh_config().display()
        ))
        .env("DOCKER_HOST", &local)
        .output()
        .expect("sh");
    assert!(save_load.status.success(), "{save_load:?}");
    let whole = counters[0].bytes() - before;
    eprintln!("docker save | gzip | ssh docker load: {whole} bytes through sshd");
    assert!(whole > 8_000_000, "{whole}");

    for ship in TARGETS {
        let _ = bed.docker_cli(ship, &["rm", "-f", &format!("{name}-{ship}")]);
        let _ = bed.docker_cli(ship, &["rmi", &image]);
    }
}

#[test]
fn an_archive_file_is_pushed_without_a_local_daemon() {
    let Case {
        _serial,
        bed,
        dir,
        name,
        image,
        id,
        ..
    } = Case::new("pa", 2, 50);
    let d = dir.path();
    let archive = d.join("app.tar");
    local_docker(
        &bed,
        &["save", "-o", &archive.display().to_string(), &image],
        d,
    );
    let file = environment(&bed, d, &name, &image, "{archive: app.tar}", &["inner2"]);

    // No daemon here: the archive is all there is.
    let nowhere = format!("unix://{}/no-docker.sock", d.display());
    let run = maestro(d, &file, &["--json", "push"], &nowhere);
    assert_eq!(run.code, 0, "{run}");
    assert_arrived(&bed, "inner2", &image, &id);
    assert_eq!(pushed_events(&run)[0]["step"]["layers_skipped"], 0, "{run}");

    // An image the archive does not hold: named, with what it holds, before any ship.
    let file = environment(&bed, d, &name, "other:1", "{archive: app.tar}", &["inner2"]);
    let run = maestro(d, &file, &["--json", "push"], &nowhere);
    assert_ne!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("image other:1 of service app: not found in it")
            && run.stderr.contains(&image)
            && run.stderr.contains("app.tar"),
        "{run}"
    );
    assert!(!run.stdout.contains("ship_connecting"), "{run}");
    let _ = bed.docker_cli("inner2", &["rmi", &image]);
}

#[test]
fn a_missing_local_image_fails_before_any_ship_is_touched() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let name = unique("pm");
    let file = environment(&bed, d, &name, "nothing-here:7", "local", &["ship1"]);
    let containers_before = bed.docker_ok("ship1", &["ps", "-aq"]);
    for command in ["push", "start"] {
        let run = maestro(d, &file, &["--json", command], &builder_host(&bed));
        assert_ne!(run.code, 0, "{run}");
        assert!(
            run.stderr
                .contains("image nothing-here:7 of service app: not found on this machine")
                && run.stderr.contains("the local Docker daemon"),
            "{run}"
        );
        assert!(!run.stdout.contains("ship_connecting"), "{command}: {run}");
    }
    assert_eq!(bed.docker_ok("ship1", &["ps", "-aq"]), containers_before);
    assert_eq!(image_id_on(&bed, "ship1", "nothing-here:7"), None);

    // A ship whose daemon is not reached over SSH cannot be served: refused by name.
    let socket = bed.ship("ship1").docker_socket.display().to_string();
    let file = d.join("socket.yaml");
    std::fs::write(
        &file,
        format!(
            "name: {name}\nships:\n  bare: {{ip: 127.0.0.1, endpoint: \"unix://{socket}\"}}\n\
             services:\n  app:\n    image: {BUILDER}-anything:1\n    image_source: local\n    \
             instances:\n      {name}-bare: {{ship: bare}}\n"
        ),
    )
    .expect("write");
    let run = maestro(d, &file, &["--json", "push"], &builder_host(&bed));
    assert_ne!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("ship bare: image ship3-anything:1 of service app comes from this machine")
            && run
                .stderr
                .contains("is not reached over SSH: give it an `ssh:` block"),
        "{run}"
    );
    assert!(!run.stdout.contains("ship_connecting"), "{run}");
}

/// Runs `maestro push` until it reports bytes sent, then calls `interrupt` with its pid;
/// returns how it ended.
fn push_interrupted(d: &Path, file: &Path, local: &str, interrupt: impl FnOnce(u32)) -> Run {
    let started = Instant::now();
    let mut child = support::maestro_command(
        d,
        &["-f", file.to_str().expect("utf-8"), "--json", "push"],
        &[("DOCKER_HOST", local)],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("maestro");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let mut sending = false;
    for line in lines.by_ref() {
        let line = line.expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("\"pushing\"") && !line.contains("\"bytes_sent\":0,") {
            sending = true;
            break;
        }
    }
    assert!(sending, "the push never sent anything:\n{seen}");
    interrupt(child.id());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut run = support::finish_within(child, support::RUN_LIMIT, started);
    run.stdout = format!("{seen}{}", rest.join("\n"));
    run
}

#[test]
fn a_cut_push_leaves_no_image_under_its_name_and_a_rerun_completes() {
    let Case {
        _serial,
        bed,
        dir,
        name,
        image,
        base,
        id,
    } = Case::new("pc", 150, 10);
    let d = dir.path();
    let file = environment(&bed, d, &name, &image, "local", &["ship2"]);
    let local = builder_host(&bed);

    let run = push_interrupted(d, &file, &local, |_| {
        support::cut_ssh_sessions(bed.ship("ship2"))
    });
    assert_ne!(run.code, 0, "{run}");
    assert_eq!(image_id_on(&bed, "ship2", &image), None, "{run}");
    assert_no_listener_left(&bed, "ship2");

    let run = maestro(d, &file, &["--json", "push"], &local);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        image_id_on(&bed, "ship2", &image).as_deref(),
        Some(id.as_str())
    );
    let digests = bed.docker_ok(
        "ship2",
        &["image", "inspect", "-f", "{{.RepoDigests}}", &image],
    );
    assert_eq!(digests, "[]");
    let _ = bed.docker_cli("ship2", &["rmi", &image]);
    let _ = Command::new("docker")
        .args(["rmi", &image, &base])
        .env("DOCKER_HOST", &local)
        .output();
}

#[test]
fn ctrl_c_during_a_push_leaves_no_listener_on_the_ship() {
    let Case {
        _serial,
        bed,
        dir,
        name,
        image,
        base,
        ..
    } = Case::new("pi", 150, 10);
    let d = dir.path();
    let file = environment(&bed, d, &name, &image, "local", &["ship1"]);
    let local = builder_host(&bed);
    let run = push_interrupted(d, &file, &local, |pid| {
        let sent = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    });
    assert_ne!(run.code, 0, "{run}");
    assert_eq!(image_id_on(&bed, "ship1", &image), None, "{run}");
    assert_no_listener_left(&bed, "ship1");
    let _ = Command::new("docker")
        .args(["rmi", &image, &base])
        .env("DOCKER_HOST", &local)
        .output();
}
