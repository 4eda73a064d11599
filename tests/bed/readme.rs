//! The README's walk-through ("Quick start on real hosts"), word for word, on the test bed: a
//! README-only reader must be able to install the binary, write a file for two hosts behind
//! a bastion, validate it and deploy it.
//!
//! The README marks what this test runs with HTML comments (invisible on GitHub):
//! `<!-- walk-through: commands -->` before a fenced block whose every line is a command, and
//! `<!-- walk-through: file NAME -->` before the block that is the file NAME. Both are taken
//! verbatim. Only what must differ on the bed differs, and none of it is in the README's text:
//!
//! - names and addresses: a `~/.ssh/config` in the isolated HOME maps the README's bastion
//!   name and its hosts' addresses (`Host 10.0.1.10` -> `HostName <inner1's address>`) and
//!   gives the bed's user, key and known_hosts, as a reader's own ssh_config would;
//! - the Docker socket: none in the file, and on the bed each ship answers at Docker's
//!   default path over SSH (`default_socket_path` of bed.json);
//! - images: the bed has no registry on the internet, so each image the file names is made on
//!   the inner ships from the bed's busybox image, a stand-in that does what the walk-through
//!   relies on (`pg_isready` answers once the "database" listens);
//! - `cargo install` puts the binary in a temporary root (`CARGO_INSTALL_ROOT`), offline, with
//!   the repository's own target directory (cargo's default for `--path`), so a warm
//!   `target/release` makes it an incremental build.
//!
//! Each command must exit 0; what it did is checked through Docker on the ships (which
//! container runs where) and in its output.
//!
//! Needs root and a bed with a bastion and 2 inner ships (the shared bed of `./test.sh`).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestBed;
use common::support::{Run, finish_within};

const README: &str = include_str!("../../README.md");

/// A cold release build on two busy cores takes minutes; a hang must still end the test.
const INSTALL_LIMIT: Duration = Duration::from_secs(1800);

/// What the README's marked blocks hold, in order.
#[derive(Debug)]
enum Step {
    Command(String),
    File { name: String, text: String },
}

/// The marked blocks of the README: the fenced block after each `<!-- walk-through: ... -->`.
fn walk_through(readme: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(marker) = line.trim().strip_prefix("<!-- walk-through:") else {
            continue;
        };
        let marker = marker.trim_end_matches("-->").trim();
        let fence = lines.next().map(|(_, l)| l.trim()).unwrap_or("");
        assert!(
            fence.starts_with("```"),
            "README.md line {}: a walk-through marker must be followed at once by a fenced block, not {fence:?}",
            n + 1
        );
        let mut body = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            body.push(l);
        }
        if marker.starts_with("commands") {
            for l in body {
                if !l.trim().is_empty() && !l.trim().starts_with('#') {
                    steps.push(Step::Command(l.to_string()));
                }
            }
        } else if let Some(name) = marker.strip_prefix("file ") {
            steps.push(Step::File {
                name: name.trim().to_string(),
                text: body.join("\n") + "\n",
            });
        } else {
            panic!(
                "README.md line {}: unknown walk-through marker {marker:?} (`commands` or `file NAME`)",
                n + 1
            );
        }
    }
    steps
}

/// The first word of a command and its subcommand (`maestro -f F start` -> start).
fn subcommand(line: &str) -> Option<&str> {
    let words: Vec<&str> = line.split('#').next()?.split_whitespace().collect();
    let mut rest = words.iter().skip(1);
    while let Some(w) = rest.next() {
        if *w == "-f" {
            rest.next();
        } else if !w.starts_with('-') {
            return Some(w);
        }
    }
    None
}

/// From the walk-through's file: each ship's name and `ip`, in file order, and the jump host.
fn ships_and_jump(file: &str) -> (Vec<(String, String)>, String) {
    let mut ships = Vec::new();
    let mut in_ships = false;
    for line in file.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_ships = line.starts_with("ships:");
            continue;
        }
        if in_ships {
            let (name, rest) = line
                .trim()
                .split_once(':')
                .unwrap_or_else(|| panic!("ship line {line:?}: expected `NAME: {{ip: ...}}`"));
            let ip = rest
                .split("ip:")
                .nth(1)
                .and_then(|r| r.split([',', '}']).next())
                .map(|ip| ip.trim().to_string())
                .unwrap_or_else(|| panic!("ship line {line:?}: no `ip:` in it"));
            ships.push((name.to_string(), ip));
        }
    }
    let jump = file
        .split("jump: [")
        .nth(1)
        .and_then(|r| r.split([']', ',']).next())
        .map(|j| j.trim().to_string())
        .unwrap_or_else(|| panic!("the walk-through's file has no `jump: [...]`:\n{file}"));
    (ships, jump)
}

/// `image:` values of the file.
fn images(file: &str) -> Vec<String> {
    file.lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(|rest| rest.split('#').next().unwrap_or("").trim().to_string())
        .collect()
}

/// The stand-in for an image of the walk-through: a shell script for the container's command
/// (run by `sh` as PID 1, which ends on SIGTERM so that `stop` is prompt) and files to add.
fn stand_in(image: &str) -> (&'static str, &'static [(&'static str, &'static str)]) {
    match image.split(':').next() {
        // Listens on 5432; `pg_isready` succeeds once something answers there.
        Some("postgres") => (
            "nc -ll -p 5432 -e echo postgres-stand-in & trap 'exit 0' TERM; wait",
            &[(
                "/usr/bin/pg_isready",
                "#!/bin/sh\nnc 127.0.0.1 5432 </dev/null | grep -q postgres-stand-in\n",
            )],
        ),
        // Serves a page on 8080.
        Some("adminer") => (
            "httpd -f -p 8080 -h /var/www & trap 'exit 0' TERM; wait",
            &[],
        ),
        _ => panic!(
            "the README's walk-through names image {image}, which tests/bed/readme.rs has no stand-in for: add one in `stand_in`"
        ),
    }
}

/// Makes `image` on `ship` of the bed from the bed's own image, as `stand_in` says.
fn make_stand_in(bed: &TestBed, ship: &str, image: &str) {
    let (command, files) = stand_in(image);
    let mut script = String::new();
    for (path, text) in files {
        script.push_str(&format!(
            "mkdir -p \"$(dirname {path})\" && printf '%s' '{text}' > {path} && chmod 0755 {path} && "
        ));
    }
    script.push_str("true");
    let builder = format!("readme-stand-in-{}", std::process::id());
    let _ = bed.docker_cli(ship, &["rm", "-f", &builder]);
    bed.docker_ok(
        ship,
        &["run", "--name", &builder, &bed.image, "sh", "-c", &script],
    );
    let cmd = serde_json::to_string(&["sh", "-c", command]).unwrap_or_default();
    bed.docker_ok(
        ship,
        &["commit", "--change", &format!("CMD {cmd}"), &builder, image],
    );
    bed.docker_ok(ship, &["rm", &builder]);
}

/// Removes what the walk-through leaves on the shared bed, also when the test fails.
struct Cleanup<'a> {
    bed: &'a TestBed,
    ships: Vec<String>,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Cleanup<'_> {
    fn run(&self) {
        for ship in &self.ships {
            for c in &self.containers {
                let _ = self.bed.docker_cli(ship, &["rm", "-f", "-v", c]);
            }
            for i in &self.images {
                let _ = self.bed.docker_cli(ship, &["rmi", i]);
            }
            let _ = self.bed.docker_cli(ship, &["volume", "rm", "pgdata"]);
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.run();
    }
}

/// Runs one line with `sh -c`, as a reader's shell would, and waits at most `limit`.
fn run_line(mut cmd: Command, line: &str, limit: Duration) -> Run {
    let started = Instant::now();
    let child = cmd
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run sh for {line:?}: {e}"));
    finish_within(child, limit, started)
}

/// State of container `name` on a bed ship (`running`, `exited`), or None when there is none.
fn container_state(bed: &TestBed, ship: &str, name: &str) -> Option<String> {
    let out = bed.docker_cli(ship, &["inspect", "-f", "{{.State.Status}}", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn readme_walk_through_runs_word_for_word_on_the_bed() {
    let steps = walk_through(README);
    let files: Vec<(&String, &String)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::File { name, text } => Some((name, text)),
            Step::Command(_) => None,
        })
        .collect();
    assert_eq!(
        files.len(),
        1,
        "the README's walk-through must mark exactly one file: {steps:#?}"
    );
    let (file_name, file_text) = files[0];
    let (ships, jump) = ships_and_jump(file_text);
    assert_eq!(
        ships.len(),
        2,
        "the walk-through is about two hosts behind a bastion; its file has ships {ships:?}"
    );

    let bed = TestBed::shared();
    assert_eq!(
        bed.default_socket_path.as_deref(),
        Some(Path::new("/var/run/docker.sock")),
        "this bed's ships do not answer at Docker's default socket path: it was made by an older testbed/bed.sh; bring it up again"
    );
    let inner: Vec<String> = bed
        .inner_ships()
        .iter()
        .filter(|s| !s.cheap)
        .map(|s| s.name.clone())
        .collect();
    assert!(
        inner.len() >= 2,
        "the walk-through needs a bed with a bastion and 2 inner ships (bed.sh up --inner 2)"
    );
    // README ship (in file order) -> bed inner ship.
    let placement: BTreeMap<&str, &str> = ships
        .iter()
        .zip(&inner)
        .map(|((name, _), bed_ship)| (name.as_str(), bed_ship.as_str()))
        .collect();

    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let install_root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    // The reader's ssh_config, as for `ssh 10.0.1.10`: the README's names are the bed's.
    let mut ssh_config = format!("Host {jump}\n  HostName {}\n", bed.bastion().ip);
    for ((_, ip), bed_ship) in ships.iter().zip(&inner) {
        ssh_config.push_str(&format!(
            "Host {ip}\n  HostName {}\n",
            bed.ship(bed_ship).ip
        ));
    }
    ssh_config.push_str(&format!(
        "Host *\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
        bed.user,
        bed.key().display(),
        bed.known_hosts().display()
    ));
    let ssh_dir = home.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(ssh_dir.join("config"), ssh_config).unwrap_or_else(|e| panic!("{e}"));

    // The images, and the instances (container names) the file places on each ship.
    let containers: Vec<String> = file_text
        .lines()
        .filter(|l| l.contains("{ship:"))
        .filter_map(|l| l.trim().split(':').next().map(str::to_string))
        .collect();
    let cleanup = Cleanup {
        bed: &bed,
        ships: inner.iter().take(2).cloned().collect(),
        containers: containers.clone(),
        images: images(file_text),
    };
    cleanup.run(); // leftovers of an interrupted run
    for ship in inner.iter().take(2) {
        for image in images(file_text) {
            make_stand_in(&bed, ship, &image);
        }
    }
    // Instance -> (its ship in the file, the bed ship it must run on).
    let placement: BTreeMap<String, (String, String)> = file_text
        .lines()
        .filter_map(|l| {
            let (instance, rest) = l.trim().split_once(": {ship: ")?;
            let ship = rest.split([',', '}']).next()?.trim();
            let bed_ship = placement.get(ship)?.to_string();
            Some((instance.to_string(), (ship.to_string(), bed_ship)))
        })
        .collect();
    assert_eq!(
        placement.len(),
        containers.len(),
        "every instance of the walk-through's file must be on one of its ships: {placement:?}"
    );
    // The README's own words about the generated variables: "`web-1` gets `A=B` and `C=D`".
    let web_env: Vec<String> = README
        .split("`web-1` gets ")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("the README no longer says what `web-1` gets"))
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.contains('='))
        .map(str::to_string)
        .collect();
    assert!(
        !web_env.is_empty(),
        "the README's sentence on what `web-1` gets names no variable"
    );
    let expect = Expect {
        bed: &bed,
        file_name,
        placement,
        web_env,
    };

    let bin_dir = install_root.path().join("bin");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for step in &steps {
        let line = match step {
            Step::File { name, text } => {
                std::fs::write(work.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
                continue;
            }
            Step::Command(line) => line,
        };
        let program = line.split_whitespace().next().unwrap_or_default();
        let run = match program {
            "cargo" => {
                // In the repository (the reader's clone), with the real HOME for rustup and
                // cargo; only where it installs differs.
                let mut cmd = Command::new("sh");
                cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
                    .env("CARGO_INSTALL_ROOT", install_root.path())
                    .env("CARGO_NET_OFFLINE", "true");
                let started = Instant::now();
                let run = run_line(cmd, line, INSTALL_LIMIT);
                eprintln!("readme walk-through: `{line}` took {:?}", started.elapsed());
                assert!(
                    run.code == 0 && bin_dir.join("maestro").is_file(),
                    "README walk-through: `{line}` failed or installed no {}\n{run}",
                    bin_dir.join("maestro").display()
                );
                run
            }
            "maestro" => {
                // In the directory of the file, with the isolated HOME: no agent, no ssh_config
                // but the one written above.
                let mut cmd = Command::new("sh");
                cmd.env_clear()
                    .env("PATH", &path)
                    .env("HOME", home.path())
                    .env("LANG", "C.UTF-8")
                    .env("NO_COLOR", "1")
                    .current_dir(work.path());
                let run = run_line(cmd, line, common::support::RUN_LIMIT);
                assert_eq!(
                    run.code, 0,
                    "README walk-through: `{line}` failed (after {ran:?})\n{run}"
                );
                run
            }
            other => panic!(
                "README walk-through: tests/bed/readme.rs runs `cargo` and `maestro` lines only, not `{other}`: {line}"
            ),
        };
        // Shown when the test fails (the harness captures it otherwise).
        eprintln!("$ {line}\n{run}");
        if program == "maestro" {
            check_effect(&expect, line, &run);
        }
        ran.push(line.clone());
    }
    for needed in ["validate", "ships", "start", "status", "stop", "clean"] {
        assert!(
            ran.iter().any(|l| subcommand(l) == Some(needed)),
            "the README's walk-through must run `maestro ... {needed}`; it ran {ran:?}"
        );
    }
    drop(cleanup);
}

/// What the walk-through is about, for `check_effect`.
struct Expect<'a> {
    bed: &'a TestBed,
    file_name: &'a str,
    /// instance -> (its ship in the README's file, the bed ship that ship is)
    placement: BTreeMap<String, (String, String)>,
    /// `NAME=VALUE` that the README says `web-1` gets.
    web_env: Vec<String>,
}

/// The line index of the first line of `text` containing every part.
fn line_of(text: &str, parts: &[&str]) -> Option<usize> {
    text.lines()
        .position(|l| parts.iter().all(|p| l.contains(p)))
}

/// What each maestro command of the walk-through must have done, beyond exiting 0.
fn check_effect(x: &Expect<'_>, line: &str, run: &Run) {
    let states = || -> BTreeMap<String, Option<String>> {
        x.placement
            .iter()
            .map(|(c, (_, ship))| (c.clone(), container_state(x.bed, ship, c)))
            .collect()
    };
    let all = |state: Option<&str>| -> BTreeMap<String, Option<String>> {
        x.placement
            .keys()
            .map(|c| (c.clone(), state.map(str::to_string)))
            .collect()
    };
    match subcommand(line) {
        Some("validate") => assert!(
            run.stdout
                .contains(&format!("{}: environment `shop` is valid", x.file_name)),
            "`{line}` does not say the file is valid\n{run}"
        ),
        Some("ships") => {
            let bastion = &x.bed.bastion().ip;
            for (readme_ship, bed_ship) in x.placement.values() {
                let ip = &x.bed.ship(bed_ship).ip;
                let route = format!(
                    "{bastion}:22 -> {}@{ip}:22 -> unix:/var/run/docker.sock",
                    x.bed.user
                );
                assert!(
                    line_of(&run.stdout, &[&format!("{readme_ship}: ok")]).is_some()
                        && line_of(&run.stdout, &["route:", &route]).is_some(),
                    "`{line}`: {readme_ship} is not reported reachable through the bastion ({route})\n{run}"
                );
            }
            assert!(
                run.stdout.contains("2 of 2 ships reachable"),
                "`{line}`: not every ship reachable\n{run}"
            );
        }
        Some("start") => {
            assert_eq!(
                states(),
                all(Some("running")),
                "after `{line}` every container must run on its inner ship\n{run}"
            );
            // The README says: db-1 first, web-1 once db-1's check passed.
            let db_started = line_of(&run.stdout, &["db-1 on", "started"]);
            let web_begins = line_of(&run.stdout, &["web-1 on", "begin"]);
            assert!(
                line_of(&run.stdout, &["db-1 on", "checking rexec"]).is_some()
                    && db_started.is_some()
                    && db_started < web_begins,
                "`{line}`: web-1 must begin only once db-1 has passed its check\n{run}"
            );
            let (_, web_ship) = x
                .placement
                .get("web-1")
                .unwrap_or_else(|| panic!("the walk-through's file has no instance web-1"));
            let env = x.bed.docker_ok(
                web_ship,
                &[
                    "inspect",
                    "-f",
                    "{{range .Config.Env}}{{println .}}{{end}}",
                    "web-1",
                ],
            );
            for pair in &x.web_env {
                assert!(
                    env.lines().any(|l| l == pair),
                    "the README says web-1 gets {pair}; it has:\n{env}"
                );
            }
        }
        Some("status") => {
            for (c, (readme_ship, _)) in &x.placement {
                assert!(
                    line_of(&run.stdout, &[c, readme_ship, "running"]).is_some(),
                    "`{line}` does not say that {c} is running on {readme_ship}\n{run}"
                );
            }
        }
        Some("stop") => {
            assert_eq!(
                states(),
                all(Some("exited")),
                "after `{line}` every container must be stopped, not removed\n{run}"
            );
            let web_stopped = line_of(&run.stdout, &["web-1 on", "stopped"]);
            let db_begins = line_of(&run.stdout, &["db-1 on", "begin"]);
            assert!(
                web_stopped.is_some() && web_stopped < db_begins,
                "`{line}`: dependents first, so web-1 must be stopped before db-1 begins\n{run}"
            );
        }
        Some("clean") => assert_eq!(
            states(),
            all(None),
            "after `{line}` no container of the walk-through may be left\n{run}"
        ),
        _ => {}
    }
}

#[test]
fn the_walk_through_markers_are_found() {
    let steps = walk_through(README);
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Step::Command(c) if c.starts_with("cargo install"))),
        "the README's walk-through must start with installing the binary: {steps:#?}"
    );
    assert_eq!(
        subcommand("maestro -f shop.yaml stop -a   # x"),
        Some("stop")
    );
    assert_eq!(
        subcommand("cargo install --locked --path ."),
        Some("install")
    );
}
