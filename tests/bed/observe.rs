//! status, logs and plan against the real test bed: ships reached over SSH (an inner one
//! through the bastion), containers made as `start` makes them (same spec, same labels).
//!
//! Every test uses its own environment name, instance names and host ports, so that they run
//! in parallel on one shared bed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bollard::{API_DEFAULT_VERSION, Docker};
use maestro::config::{self, Environment};
use maestro::docker::Ship;
use serde_json::Value;

use crate::common;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An environment file written for the bed, and the containers the test made (removed on drop).
struct Setup {
    bed: common::SharedBed,
    _dir: tempfile::TempDir,
    path: PathBuf,
    env: Environment,
    made: Vec<(String, String)>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for (ship, name) in &self.made {
            let _ = self.bed.docker_cli(ship, &["rm", "-f", name]);
        }
    }
}

/// The ships block: ship1, ship2 and inner1 over SSH (inner1 through the bastion), and
/// `ghost`, an SSH port where nothing listens.
fn ships_yaml(bed: &common::TestBed) -> String {
    let inner = bed
        .inner_ships()
        .first()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "inner1".into());
    format!(
        "ships:\n{}{}{}  ghost: {{ip: {}, timeout: 3, ssh: {}}}\n",
        bed.ship_yaml("ship1", "ship1"),
        bed.ship_yaml("ship2", "ship2"),
        bed.ship_yaml(&inner, "inner1"),
        bed.ship("ship1").ip,
        bed.ssh_yaml(", port: 2")
    )
}

fn setup(name: &str, services: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let bed = common::TestBed::shared();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("{name}.yaml"));
    let services = services.replace("IMAGE", &bed.image);
    let text = format!("name: {name}\n{}services:\n{services}", ships_yaml(&bed));
    std::fs::write(&path, &text)?;
    let env = config::load(&path).map_err(|e| format!("{e}\n{text}"))?;
    Ok(Setup {
        bed,
        _dir: dir,
        path,
        env,
        made: Vec::new(),
    })
}

impl Setup {
    /// Rewrites the file (for plan's changed spec), keeping the containers.
    fn rewrite(&mut self, services: &str) -> TestResult {
        let services = services.replace("IMAGE", &self.bed.image);
        let text = format!(
            "name: {}\n{}services:\n{services}",
            self.env.name,
            ships_yaml(&self.bed)
        );
        std::fs::write(&self.path, &text)?;
        self.env = config::load(&self.path).map_err(|e| format!("{e}\n{text}"))?;
        Ok(())
    }

    async fn ship(&self, ship: &str) -> Result<Ship, Box<dyn std::error::Error>> {
        let socket = self.bed.ship(self.real_ship(ship)).docker_socket.clone();
        let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 60, API_DEFAULT_VERSION)?
            .negotiate_version()
            .await?;
        Ok(Ship::new(ship, docker))
    }

    fn real_ship<'a>(&'a self, ship: &'a str) -> &'a str {
        if ship == "inner1" {
            self.bed
                .inner_ships()
                .first()
                .map(|s| s.name.as_str())
                .unwrap_or("inner1")
        } else {
            ship
        }
    }

    /// Creates the instance's container as `start` would (same spec and labels), and starts it.
    async fn make(&mut self, instance: &str, start: bool) -> TestResult {
        let (service, inst) = self
            .env
            .instance(instance)
            .ok_or_else(|| format!("no instance {instance}"))?;
        let spec = maestro::orchestrate::plan::spec::container_spec(&self.env, service, inst);
        let ship_name = inst.ship.clone();
        let real = self.real_ship(&ship_name).to_string();
        let _ = self.bed.docker_cli(&real, &["rm", "-f", instance]);
        let ship = self.ship(&ship_name).await?;
        ship.create(&spec).await?;
        self.made.push((real, instance.to_string()));
        if start {
            ship.start(instance).await?;
        }
        Ok(())
    }

    fn docker(&self, ship: &str, args: &[&str]) -> String {
        self.bed.docker_ok(self.real_ship(ship), args)
    }

    fn maestro(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run maestro: {e}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        // The run's own HOME: nothing of this machine's ~/.ssh, nothing left in its ~/.cache.
        let mut command = common::maestro(self._dir.path());
        command.arg("-f").arg(&self.path).args(args);
        command
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}\n{}", text(out)))?)
}

fn row<'a>(report: &'a Value, instance: &str) -> &'a Value {
    report["instances"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["instance"] == instance))
        .unwrap_or_else(|| panic!("no row for {instance} in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_running_stopped_absent_and_host_down() -> TestResult {
    let mut s = setup(
        "obs-st",
        r#"
  stdb:
    image: IMAGE
    instances:
      stdb-1: {ship: ship1, ports: {sql: "5432:41432"}, command: "httpd -f -p 5432"}
  stweb:
    image: IMAGE
    requires: [stdb]
    instances:
      stweb-1: {ship: inner1, command: "sleep 600"}
      stweb-2: {ship: ship2, command: "sleep 600"}
      stweb-3: {ship: ship2, command: "sleep 600"}
  stlost:
    image: IMAGE
    instances:
      stlost-1: {ship: ghost}
"#,
    )?;
    s.make("stdb-1", true).await?;
    s.make("stweb-1", true).await?;
    s.make("stweb-2", true).await?;
    s.docker("ship2", &["stop", "-t", "0", "stweb-2"]);

    let out = s.maestro(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = |instance: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(instance))
            .unwrap_or_else(|| panic!("no line for {instance}\n{table}"))
            .to_string()
    };
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["#", "INSTANCE", "SERVICE", "SHIP", "CONTAINER", "STATUS"],
        "{table}"
    );
    let id = s.docker("ship1", &["inspect", "-f", "{{.Id}}", "stdb-1"]);
    assert!(
        line("stdb-1").contains(&format!("latest:{}", &id[..7])),
        "{table}"
    );
    assert!(line("stdb-1").contains("running for "), "{table}");
    assert!(line("stweb-1").contains("running for "), "{table}");
    assert!(line("stweb-2").contains("down for "), "{table}");
    assert!(line("stweb-3").ends_with("absent"), "{table}");
    assert!(line("stlost-1").ends_with("host down: refused"), "{table}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ship ghost"),
        "{}",
        text(&out)
    );

    // -H shows the ship's address.
    let out = s.maestro(&["status", "-H", "stdb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&s.bed.ship("ship1").ip),
        "{}",
        text(&out)
    );

    let out = s.maestro(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out)?;
    assert_eq!(report["environment"], "obs-st");
    assert_eq!(report["ok"], false);
    assert_eq!(row(&report, "stdb-1")["state"], "running");
    assert_eq!(row(&report, "stdb-1")["container"]["id"], id.as_str());
    assert_eq!(row(&report, "stweb-1")["state"], "running");
    assert_eq!(row(&report, "stweb-2")["state"], "down");
    assert_eq!(row(&report, "stweb-2")["container_state"], "exited");
    assert_eq!(row(&report, "stweb-3")["state"], "absent");
    assert_eq!(row(&report, "stlost-1")["state"], "host-down");
    assert_eq!(row(&report, "stlost-1")["cause"], "refused");

    // Only what is selected counts for the exit code, and the ghost ship is not contacted.
    let out = s.maestro(&["status", "--json", "stweb-1", "stdb-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)?["instances"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn full_status_checks_ports_from_the_ships_side() -> TestResult {
    let mut s = setup(
        "obs-full",
        r#"
  fuweb:
    image: IMAGE
    instances:
      fuweb-1: {ship: inner1, ports: {http: "8080:28080"}, command: "httpd -f -p 8080"}
  fumute:
    image: IMAGE
    instances:
      fumute-1: {ship: inner1, ports: {http: "8080:28090"}, command: "sleep 600"}
"#,
    )?;
    s.make("fuweb-1", true).await?;
    s.make("fumute-1", true).await?;

    // inner1 has no route from here: a port that answers was reached through the tunnel.
    let out = s.maestro(&["status", "-F", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out)?;
    let web = row(&report, "fuweb-1");
    assert_eq!(web["ports"][0]["name"], "http");
    assert_eq!(web["ports"][0]["external"], 28080);
    assert_eq!(web["ports"][0]["check"]["result"], "open", "{report}");
    assert_eq!(web["container"]["image"], s.bed.image.as_str());
    assert!(
        web["container"]["image_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:"))
    );
    let mute = row(&report, "fumute-1");
    assert_eq!(mute["ports"][0]["check"]["result"], "failed", "{report}");

    let out = s.maestro(&["status", "-F"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("IMAGE ID") && h.ends_with("PORTS")),
        "{table}"
    );
    assert!(table.contains("http:28080 ok"), "{table}");
    assert!(table.contains("http:28090 FAILED"), "{table}");

    let out = s.maestro(&["status", "-F", "fuweb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    Ok(())
}

const COUNTER: &str = r#"sh -c 'n=$(cat /boots 2>/dev/null || echo 0); n=$((n+1)); echo $n > /boots; i=0; while true; do i=$((i+1)); echo boot$n-line$i; sleep 0.1; done'"#;

#[tokio::test(flavor = "multi_thread")]
async fn logs_show_the_last_lines_with_prefixes_for_several() -> TestResult {
    let mut s = setup(
        "obs-logs",
        r#"
  lgone:
    image: IMAGE
    instances:
      lgone-1: {ship: ship1, command: "sh -c 'for i in 1 2 3 4 5; do echo hello $i; done; sleep 0.3; echo oops >&2; sleep 600'"}
      lgone-22: {ship: inner1, command: "sh -c 'for i in 1 2 3 4 5; do echo hello $i; done; sleep 0.3; echo oops >&2; sleep 600'"}
"#,
    )?;
    s.make("lgone-1", true).await?;
    s.make("lgone-22", true).await?;
    // stdout and stderr are logged by separate copiers: "oops" comes later so that the order
    // in the log is certain.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let out = s.maestro(&["logs", "-n", "3", "lgone-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "hello 4\nhello 5\n", "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    let out = s.maestro(&["logs", "-n", "2", "lgone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lgone-1  | hello 5\n"), "{}", text(&out));
    assert!(stdout.contains("lgone-22 | hello 5\n"), "{}", text(&out));
    assert!(!stdout.contains('\u{1b}'), "no colour with NO_COLOR");

    let out = s.maestro(&["logs", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_survives_a_restart() -> TestResult {
    let services = format!(
        "  lgcount:\n    image: IMAGE\n    instances:\n      lgcount-1: {{ship: inner1, command: \"{COUNTER}\"}}\n"
    );
    let mut s = setup("obs-follow", &services)?;
    s.make("lgcount-1", true).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut child = s
        .command(&["logs", "-F", "-n", "2", "lgcount-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let wait_for = |pattern: &str, seen: &mut Vec<String>| -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(pattern);
                    seen.push(line);
                    if done {
                        return Ok(());
                    }
                }
                Err(_) => return Err(format!("no line {pattern} within 30s; saw {seen:?}")),
            }
        }
    };
    let outcome = (|| -> TestResult {
        wait_for("boot1-line", &mut seen)?;
        // Let some lines go by, then restart the container under the follower.
        std::thread::sleep(Duration::from_millis(500));
        s.docker("inner1", &["restart", "-t", "0", "lgcount-1"]);
        wait_for("boot2-line5", &mut seen)?;
        Ok(())
    })();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    outcome?;
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a follow with success");

    // The first two lines are the tail; then every line of both runs, once, in order.
    let parse = |line: &str| -> Option<(u32, u32)> {
        let (boot, line) = line.strip_prefix("boot")?.split_once("-line")?;
        Some((boot.parse().ok()?, line.parse().ok()?))
    };
    let parsed: Vec<(u32, u32)> = seen.iter().filter_map(|l| parse(l)).collect();
    assert_eq!(
        parsed.len(),
        seen.len(),
        "only log lines on stdout: {seen:?}"
    );
    let boot1: Vec<u32> = parsed.iter().filter(|p| p.0 == 1).map(|p| p.1).collect();
    let boot2: Vec<u32> = parsed.iter().filter(|p| p.0 == 2).map(|p| p.1).collect();
    assert!(boot1.len() >= 2, "{seen:?}");
    assert!(
        boot1.windows(2).all(|w| w[1] == w[0] + 1),
        "first run contiguous: {seen:?}"
    );
    assert_eq!(
        boot2.first(),
        Some(&1),
        "second run from its start: {seen:?}"
    );
    assert!(
        boot2.windows(2).all(|w| w[1] == w[0] + 1),
        "second run contiguous, nothing repeated: {seen:?}"
    );
    // Nothing of the first run was lost: its last line is the last the daemon has.
    let logged = s.docker("inner1", &["logs", "lgcount-1"]);
    let last_boot1 = logged
        .lines()
        .filter_map(parse)
        .filter(|p| p.0 == 1)
        .map(|p| p.1)
        .max();
    assert_eq!(boot1.last().copied(), last_boot1, "{seen:?}");
    Ok(())
}

/// The time and text of each line of `docker logs -t`.
fn stamped(logged: &str) -> Vec<(std::time::SystemTime, String)> {
    logged
        .lines()
        .filter_map(|l| {
            let (stamp, text) = l.split_once(' ')?;
            Some((maestro::clock::parse_rfc3339(stamp)?, text.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_since_until_and_timestamps_pick_lines_by_their_time() -> TestResult {
    let mut s = setup(
        "obs-since",
        r#"
  lgtime:
    image: IMAGE
    instances:
      lgtime-1: {ship: inner1, command: "sh -c 'echo one; sleep 1.5; echo two; sleep 1.5; echo three; sleep 600'"}
"#,
    )?;
    s.make("lgtime-1", true).await?;
    let mut logged = Vec::new();
    let all_three = common::support::wait_for(Duration::from_secs(30), || {
        logged = stamped(&s.docker("inner1", &["logs", "-t", "lgtime-1"]));
        logged.len() == 3
    });
    assert!(all_three, "the container logged {logged:?}");
    let between = |a: usize, b: usize| {
        let (ta, tb) = (logged[a].0, logged[b].0);
        let mid = ta + tb.duration_since(ta).unwrap_or_default() / 2;
        maestro::clock::format_rfc3339(mid)
    };
    let (after_one, after_two) = (between(0, 1), between(1, 2));
    let logs = |args: &[&str]| {
        let out = s.maestro(&[&["logs"], args, &["lgtime-1"]].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(logs(&["--since", &after_one]), "two\nthree\n");
    assert_eq!(logs(&["--until", &after_two]), "one\ntwo\n");
    assert_eq!(
        logs(&["--since", &after_one, "--until", &after_two]),
        "two\n"
    );
    // Exact at the line's own time: since is inclusive, so is until.
    let at_two = maestro::clock::format_rfc3339(logged[1].0);
    assert_eq!(logs(&["--since", &at_two, "--until", &at_two]), "two\n");
    assert_eq!(logs(&["--since", "1h"]), "one\ntwo\nthree\n");

    let shown = logs(&["-t", "-n", "2"]);
    let times: Vec<_> = stamped(&shown);
    let expected: Vec<_> = logged[1..].to_vec();
    assert_eq!(
        times, expected,
        "the daemon's times, to the nanosecond: {shown}"
    );

    let out = s.maestro(&["logs", "--since", "2026-11-25T11:38:22", "lgtime-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not `2026-11-25T11:38:22`; add its zone: `Z` for UTC"),
        "{err}"
    );
    Ok(())
}

const TICKER: &str = r#"sh -c 'i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.25; done'"#;

#[tokio::test(flavor = "multi_thread")]
async fn logs_of_several_followed_instances_are_merged_in_time_order() -> TestResult {
    let services = format!(
        "  lgmerge:\n    image: IMAGE\n    instances:\n      lgmerge-1: {{ship: ship1, command: \"{TICKER}\"}}\n      lgmerge-2: {{ship: inner1, command: \"{TICKER}\"}}\n"
    );
    let mut s = setup("obs-merge", &services)?;
    s.make("lgmerge-1", true).await?;
    s.make("lgmerge-2", true).await?;
    // Both have a backlog of interleaved lines before the follow starts.
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let mut child = s
        .command(&["logs", "-F", "-t", "-n", "5", "lgmerge"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 20 {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert_eq!(status.code(), Some(0));
    // `lgmerge-1 | 2026-...Z tickN`
    let parsed: Vec<(String, std::time::SystemTime)> = seen
        .iter()
        .filter_map(|l| {
            let (instance, rest) = l.split_once(" | ")?;
            let stamp = rest.split(' ').next()?;
            Some((
                instance.trim().to_string(),
                maestro::clock::parse_rfc3339(stamp)?,
            ))
        })
        .collect();
    assert_eq!(parsed.len(), seen.len(), "{seen:?}");
    // The backlogs (5 lines each) came from two ships at different speeds: merged, in order.
    assert!(
        parsed[..10].windows(2).all(|w| w[0].1 <= w[1].1),
        "the backlogs in time order: {seen:?}"
    );
    let first_ten: Vec<&str> = parsed[..10].iter().map(|p| p.0.as_str()).collect();
    assert!(
        first_ten.contains(&"lgmerge-1") && first_ten.contains(&"lgmerge-2"),
        "{seen:?}"
    );
    // Live lines are held a moment to be merged; each instance's own stay in order.
    for instance in ["lgmerge-1", "lgmerge-2"] {
        let own: Vec<_> = parsed.iter().filter(|p| p.0 == instance).collect();
        assert!(own.windows(2).all(|w| w[0].1 < w[1].1), "{seen:?}");
    }
    Ok(())
}

const PLAN_V1: &str = r#"
  pldb:
    image: IMAGE
    instances:
      pldb-1: {ship: ship1, command: "sleep 600"}
  plweb:
    image: IMAGE
    requires: [pldb]
    env: {MODE: one}
    instances:
      plweb-1: {ship: ship2, command: "sleep 600"}
      plweb-2: {ship: ship2, command: "sleep 600"}
      plweb-3: {ship: inner1, command: "sleep 600"}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_what_start_would_do_and_the_diff() -> TestResult {
    let mut s = setup("obs-plan", PLAN_V1)?;
    s.make("pldb-1", true).await?;
    s.make("plweb-1", true).await?;
    s.make("plweb-2", true).await?;
    s.docker("ship2", &["stop", "-t", "0", "plweb-2"]);

    let out = s.maestro(&["plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out)?;
    assert_eq!(row(&report, "pldb-1")["action"], "nothing");
    assert_eq!(row(&report, "plweb-1")["action"], "nothing");
    assert_eq!(row(&report, "plweb-2")["action"], "start");
    assert_eq!(row(&report, "plweb-3")["action"], "create");
    assert_eq!(row(&report, "plweb-3")["pull"], false);

    // plweb-1 gets another MODE (a port would change its peers' environment too).
    s.rewrite(&PLAN_V1.replace(
        "      plweb-1: {ship: ship2, command: \"sleep 600\"}",
        "      plweb-1: {ship: ship2, command: \"sleep 600\", env: {MODE: two}}",
    ))?;
    let out = s.maestro(&["plan", "--json", "plweb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out)?;
    let web = row(&report, "plweb-1");
    assert_eq!(web["action"], "recreate", "{report}");
    let changes = web["changes"].as_array().ok_or("no changes")?;
    let mode = changes
        .iter()
        .find(|c| c["field"] == "env.MODE")
        .ok_or_else(|| format!("no env.MODE change in {web}"))?;
    assert_eq!(mode["old"], "one");
    assert_eq!(mode["new"], "two");
    assert_eq!(changes.len(), 1, "{web}");
    assert_eq!(
        report["instances"].as_array().map(Vec::len),
        Some(3),
        "plweb selects its instances only"
    );

    let out = s.maestro(&["plan"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("recreate: the container spec changed"),
        "{table}"
    );
    assert!(table.contains("env.MODE: \"one\" -> \"two\""), "{table}");
    assert!(
        table.contains("1 to create, 1 to re-create, 1 to start, 1 unchanged"),
        "{table}"
    );
    Ok(())
}

/// A file written with compose's order in mind is valid MaestroNG and keeps its meaning, but
/// `plan` says so when the image disagrees: `8080:80` on an image that exposes 80 and not
/// 8080, and a schema 1 volume whose ship-side path the image declares as a VOLUME.
#[test]
fn plan_hints_at_compose_habits_when_the_image_disagrees() -> TestResult {
    let bed = common::TestBed::shared();
    let image = "maestro-test-hint:1";
    let _ = bed.docker_cli("ship1", &["rm", "-f", "obs-hint-src"]);
    bed.docker_ok(
        "ship1",
        &["create", "--name", "obs-hint-src", &bed.image, "true"],
    );
    bed.docker_ok(
        "ship1",
        &[
            "commit",
            "--change",
            "EXPOSE 80",
            "--change",
            "VOLUME /var/lib/data",
            "obs-hint-src",
            image,
        ],
    );
    let _ = bed.docker_cli("ship1", &["rm", "-f", "obs-hint-src"]);
    let s = setup(
        "obs-hint",
        &format!(
            "  hint:\n    image: {image}\n    instances:\n      hint-1:\n        ship: ship1\n        \
             ports: {{http: \"8080:80\"}}\n        volumes: {{/data: /var/lib/data}}\n"
        ),
    )?;
    let out = s.maestro(&["plan", "hint-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stderr.contains(&format!(
            "warning: instance hint-1: port `http` publishes container port 8080 as the ship's \
             port 80, but the image {image} exposes 80/tcp, not 8080/tcp"
        )) && stderr.contains("write `80:8080`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("declares the volume /var/lib/data")
            && stderr.contains("write `/var/lib/data: /data`"),
        "{stderr}"
    );
    // Written the way the image expects: no hint.
    let quiet = setup(
        "obs-hint2",
        &format!(
            "  hint:\n    image: {image}\n    instances:\n      hint-1:\n        ship: ship1\n        \
             ports: {{http: \"80:8080\"}}\n        volumes: {{/var/lib/data: /srv/data}}\n"
        ),
    )?;
    let out = quiet.maestro(&["plan", "hint-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    let _ = bed.docker_cli("ship1", &["rmi", "-f", image]);
    Ok(())
}

/// A link to a container that is not an instance of the file (MaestroNG passes it to Docker):
/// `plan` says whether the ship has that container, since Docker refuses to create one whose
/// link it cannot find; `start` then links it.
#[test]
fn plan_says_whether_a_link_outside_the_file_is_on_the_ship() -> TestResult {
    let bed = common::TestBed::shared();
    let _ = bed.docker_cli("ship1", &["rm", "-f", "obs-legacy-cache"]);
    let s = setup(
        "obs-extlink",
        "  app:\n    image: IMAGE\n    instances:\n      extlink-1:\n        ship: ship1\n        \
         command: sleep 600\n        links: {obs-legacy-cache: cache}\n",
    )?;
    let out = s.maestro(&["plan", "extlink-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stderr.contains(
            "warning: extlink-1 links `obs-legacy-cache`, not an instance of this file, and ship \
             ship1 has no container of that name: Docker will refuse to create extlink-1"
        ),
        "{stderr}"
    );
    bed.docker_ok(
        "ship1",
        &[
            "run",
            "-d",
            "--name",
            "obs-legacy-cache",
            &bed.image,
            "sleep",
            "600",
        ],
    );
    let out = s.maestro(&["plan", "extlink-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ship ship1 has a container of that name, which Docker will link"),
        "{stderr}"
    );
    let out = s.maestro(&["start", "--plain", "extlink-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let links = s.docker(
        "ship1",
        &[
            "inspect",
            "--format",
            "{{json .HostConfig.Links}}",
            "extlink-1",
        ],
    );
    assert!(links.contains("obs-legacy-cache"), "{links}");
    let _ = bed.docker_cli("ship1", &["rm", "-f", "extlink-1", "obs-legacy-cache"]);
    Ok(())
}
