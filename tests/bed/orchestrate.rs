//! The lifecycle commands end to end on the real test bed: the built binary deploys an
//! environment of 4 services and 9 instances, 3 levels deep, on 3 ships (one behind the
//! bastion), and the tests check through the Docker API what it made, and through the JSON
//! event stream in which order it made it.
//!
//! Needs root. Uses the shared bed (`TestBed::shared`: the one named by `MAESTRO_TESTBED` if
//! set, else the bed binary's own); it needs 2 outer ships and an inner one.

use crate::common;
use crate::common::golden;
use common::support::{self, Run};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use common::{SharedBed, TestBed};
use serde_json::Value;

const ENV_NAME: &str = "orch";

/// The shared bed (the one named by `MAESTRO_TESTBED`, or the bed binary's own), as in CI.
fn bed() -> SharedBed {
    TestBed::shared()
}

struct Ships {
    ship1: common::Ship,
    ship2: common::Ship,
    inner1: common::Ship,
}

fn ships(bed: &TestBed) -> Ships {
    let outer = bed.outer_ships();
    let inner = bed.inner_ships();
    assert!(
        outer.len() >= 2 && !inner.is_empty(),
        "bed needs 2 outer ships and an inner one"
    );
    Ships {
        ship1: outer[0].clone(),
        ship2: outer[1].clone(),
        inner1: inner[0].clone(),
    }
}

/// The environment file: `extra` is appended to front-2's definition (to change its spec).
fn environment_yaml(bed: &TestBed, ships: &Ships, shared_dir: &Path, front2_extra: &str) -> String {
    let ships_block = [
        bed.ship_yaml(&ships.ship1.name, "a"),
        bed.ship_yaml(&ships.ship2.name, "b"),
        bed.ship_yaml(&ships.inner1.name, "c"),
    ]
    .concat();
    format!(
        r#"__maestro: {{schema: 2}}
name: {ENV_NAME}
ship_defaults:
  timeout: 10
ships:
{ships_block}services:
  data:
    image: maestro-test:latest
    instances:
      data-1:
        ship: a
        command: sleep 3600
        volumes: {{{shared}: /shared}}
        container_volumes: [/cache]
        stop_timeout: 1
        healthcheck: {{test: "test -d /shared", interval: 1, retries: 3}}
  store:
    image: maestro-test:latest
    env: {{LEVEL: service, STORE_ONLY: yes}}
    lifecycle:
      running: [{{type: tcp, port: http, max_wait: 15}}]
    instances:
      store-1: {{ship: a, command: "httpd -f -p 8080", ports: {{http: 8080}}, stop_timeout: 1}}
      store-2: {{ship: b, command: "httpd -f -p 8080", ports: {{http: "8080:18080"}}, stop_timeout: 1}}
      store-3: {{ship: c, command: "httpd -f -p 8080", ports: {{http: 8080}}, stop_timeout: 1, env: {{LEVEL: instance}}}}
  app:
    image: maestro-test:latest
    requires: [store]
    lifecycle:
      running:
        - {{type: http, port: web, path: /etc/hostname, match_regex: "^app-[0-9]", max_wait: 15}}
        - {{type: rexec, command: "sh -c 'test -n \"$STORE_INSTANCES\"'", attempts: 5}}
    instances:
      app-1:
        ship: a
        command: httpd -f -p 8081
        ports: {{web: 8081}}
        volumes_from: [data-1]
        links: {{data-1: datahost}}
        stop_timeout: 1
        lifecycle:
          running: [{{type: rexec, command: "cat /shared/marker", attempts: 3}}]
      app-2: {{ship: b, command: "httpd -f -p 8081", ports: {{web: 8081}}, networks: [appnet], stop_timeout: 1}}
      app-3: {{ship: c, command: "httpd -f -p 8081", ports: {{web: 8081}}, stop_timeout: 1}}
  front:
    image: maestro-test:latest
    requires: [app]
    wants_info: [data]
    lifecycle:
      running:
        - {{type: exec, command: 'test "$SERVICE_NAME" = front && test "$APP_APP_2_WEB_PORT" = 8081', attempts: 3}}
        - {{type: sleep, wait: 0.2}}
      pre-stop: [{{type: exec, command: "true", attempts: 1}}]
      stopped: [{{type: sleep, wait: 0.1}}]
    instances:
      front-1: {{ship: b, command: sleep 3600, networks: [appnet], stop_timeout: 1}}
      front-2: {{ship: c, command: sleep 3600, stop_timeout: 1{front2_extra}}}
"#,
        shared = shared_dir.display(),
    )
}

/// Instance -> (bed ship name, instances it requires).
fn topology(ships: &Ships) -> BTreeMap<&'static str, (String, Vec<&'static str>)> {
    let (a, b, c) = (
        ships.ship1.name.clone(),
        ships.ship2.name.clone(),
        ships.inner1.name.clone(),
    );
    let stores = vec!["store-1", "store-2", "store-3"];
    let apps = vec!["app-1", "app-2", "app-3"];
    let mut app1 = stores.clone();
    app1.push("data-1");
    BTreeMap::from([
        ("data-1", (a.clone(), vec![])),
        ("store-1", (a.clone(), vec![])),
        ("store-2", (b.clone(), vec![])),
        ("store-3", (c.clone(), vec![])),
        ("app-1", (a, app1)),
        ("app-2", (b.clone(), stores.clone())),
        ("app-3", (c.clone(), stores)),
        ("front-1", (b, apps.clone())),
        ("front-2", (c, apps)),
    ])
}

/// Runs maestro to its end, at most `support::RUN_LIMIT` (a hang fails the test loudly).
fn maestro(file: &Path, home: &Path, args: &[&str]) -> Run {
    support::run(common::maestro(home).arg("-f").arg(file).args(args))
}

fn kind(e: &Value) -> &str {
    e["event"].as_str().unwrap_or_default()
}

fn instance(e: &Value) -> &str {
    e["instance"].as_str().unwrap_or_default()
}

/// Position in the stream of the first event of `what` for `inst`, after `from`.
fn position(events: &[Value], from: usize, what: &str, inst: &str) -> usize {
    events
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| kind(e) == what && instance(e) == inst)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no {what} for {inst} after event {from}"))
}

/// Outcome of every job_done, by instance.
fn outcomes(events: &[Value]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter(|e| kind(e) == "job_done")
        .map(|e| {
            (
                instance(e).to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn inspect(bed: &TestBed, ship: &str, name: &str) -> Value {
    let text = bed.docker_ok(ship, &["inspect", name]);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v[0].clone()
}

fn container_ids(
    bed: &TestBed,
    topo: &BTreeMap<&str, (String, Vec<&str>)>,
) -> BTreeMap<String, String> {
    topo.iter()
        .map(|(inst, (ship, _))| {
            (
                inst.to_string(),
                bed.docker_ok(ship, &["inspect", "-f", "{{.Id}}", inst]),
            )
        })
        .collect()
}

fn remove_all(bed: &TestBed, topo: &BTreeMap<&str, (String, Vec<&str>)>) {
    for (inst, (ship, _)) in topo {
        let _ = bed.docker_cli(ship, &["rm", "-f", inst]);
    }
}

fn assert_ok(run: &Run, what: &str) {
    let events = run.events();
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| matches!(kind(e), "job_failed" | "job_skipped" | "job_cancelled"))
        .collect();
    assert_eq!(
        run.code, 0,
        "{what} failed: {failures:#?}\nstderr: {}",
        run.stderr
    );
}

/// The container's environment with the bed's addresses replaced by names, so the golden
/// file does not depend on which subnet the bed got.
fn env_golden_text(container: &Value, ships: &Ships) -> String {
    let mut vars: Vec<String> = container["Config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // Docker adds PATH for images without one.
    vars.retain(|v| !v.starts_with("PATH="));
    vars.sort();
    let mut text = vars.join("\n");
    text.push('\n');
    text.replace(&ships.ship1.ip, "<ip of a>")
        .replace(&ships.ship2.ip, "<ip of b>")
        .replace(&ships.inner1.ip, "<ip of c>")
}

/// A `start` that found every instance running with its spec: nothing to do anywhere.
fn assert_all_already_running(run: &Run) {
    let outcomes = outcomes(&run.events());
    assert!(
        outcomes.values().all(|o| o == "already running"),
        "{outcomes:?}"
    );
}

/// In `events[from..]`, every instance starts only after everything it requires is done, and
/// (with `reverse`) only after everything that requires it is done.
fn assert_order(
    events: &[Value],
    from: usize,
    topo: &BTreeMap<&str, (String, Vec<&str>)>,
    reverse: bool,
) {
    for (inst, (_, requires)) in topo {
        for dep in requires {
            let (first, then) = if reverse {
                (*inst, *dep)
            } else {
                (*dep, *inst)
            };
            let done = position(events, from, "job_done", first);
            let started = position(events, from, "job_started", then);
            assert!(
                done < started,
                "{then} began (event {started}) before {first} was done (event {done})"
            );
        }
    }
}

#[test]
fn stop_kill_and_restart_refuse_to_act_on_everything_without_a() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("env.yaml");
    std::fs::write(
        &file,
        "name: t\nships: {a: {ip: 10.0.0.1}}\nservices:\n  s: {image: x, instances: {s-1: {ship: a}}}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for command in ["stop", "kill", "restart"] {
        let run = maestro(&file, dir.path(), &[command]);
        assert_eq!(run.code, 2, "{command}: {}", run.stderr);
        assert!(run.stderr.contains("-a"), "{command}: {}", run.stderr);
        assert!(run.events().is_empty());
    }
}

#[test]
fn lifecycle_on_the_bed() {
    let bed = bed();
    let ships = ships(&bed);
    let topo = topology(&ships);
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let shared = work.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(shared.join("marker"), "hello\n").unwrap_or_else(|e| panic!("{e}"));
    let file = work.path().join("env.yaml");
    let write_env = |extra: &str| {
        std::fs::write(&file, environment_yaml(&bed, &ships, &shared, extra))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    write_env("");
    remove_all(&bed, &topo);
    let _ = bed.docker_cli(&ships.ship2.name, &["network", "rm", "appnet"]);

    // start: everything comes up, in dependency order, independent instances together.
    let run = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&run, "start");
    let done = outcomes(&run.events());
    assert_eq!(done.len(), topo.len());
    assert!(done.values().all(|o| o == "started"), "{done:?}");
    assert_order(&run.events(), 0, &topo, false);
    let first_done = run
        .events()
        .iter()
        .position(|e| kind(e) == "job_done")
        .unwrap_or(0);
    for level0 in ["data-1", "store-1", "store-2", "store-3"] {
        assert!(
            position(&run.events(), 0, "job_started", level0) < first_done,
            "{level0} did not overlap with the other independent instances"
        );
    }
    let checks: BTreeSet<String> = run
        .events()
        .iter()
        .filter(|e| kind(e) == "step" && e["step"]["step"] == "checking")
        .filter_map(|e| e["step"]["check"].as_str().map(str::to_string))
        .collect();
    for expected in ["tcp:http", "http:web", "rexec", "exec", "sleep", "health"] {
        assert!(
            checks.contains(expected),
            "no {expected} check in {checks:?}"
        );
    }

    // What Docker says about each container.
    for (inst, (ship, _)) in &topo {
        let c = inspect(&bed, ship, inst);
        assert_eq!(c["State"]["Running"], true, "{inst}");
        assert_eq!(c["Config"]["Hostname"], *inst);
        let labels = &c["Config"]["Labels"];
        assert_eq!(labels["io.maestro.environment"], ENV_NAME);
        assert_eq!(labels["io.maestro.instance"], *inst);
        let service = inst.split('-').next().unwrap_or_default();
        assert_eq!(labels["io.maestro.service"], service);
        assert_eq!(
            labels["io.maestro.spec-hash"].as_str().map(str::len),
            Some(64),
            "{inst}"
        );
    }
    let store2 = inspect(&bed, &ships.ship2.name, "store-2");
    assert_eq!(
        store2["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"],
        "18080"
    );
    assert_eq!(
        store2["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"],
        "18080"
    );
    let data1 = inspect(&bed, &ships.ship1.name, "data-1");
    let mounts = data1["Mounts"].as_array().cloned().unwrap_or_default();
    assert!(mounts.iter().any(|m| m["Type"] == "bind"
        && m["Source"] == shared.display().to_string()
        && m["Destination"] == "/shared"));
    assert!(
        mounts
            .iter()
            .any(|m| m["Type"] == "volume" && m["Destination"] == "/cache")
    );
    let app1 = inspect(&bed, &ships.ship1.name, "app-1");
    let app1_mounts: BTreeSet<String> = app1["Mounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["Destination"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(app1_mounts.contains("/shared") && app1_mounts.contains("/cache"));
    assert_eq!(app1["HostConfig"]["VolumesFrom"][0], "data-1");
    assert_eq!(app1["HostConfig"]["Links"][0], "/data-1:/app-1/datahost");
    let app2 = inspect(&bed, &ships.ship2.name, "app-2");
    assert!(app2["NetworkSettings"]["Networks"]["appnet"].is_object());
    let store3 = inspect(&bed, &ships.inner1.name, "store-3");
    let store3_env = env_golden_text(&store3, &ships);
    assert!(store3_env.contains("LEVEL=instance\n"), "{store3_env}");
    golden::check(
        "orchestrate_front-2.env",
        &env_golden_text(&inspect(&bed, &ships.inner1.name, "front-2"), &ships),
    );

    // start again: nothing to do, no container touched.
    let ids = container_ids(&bed, &topo);
    let again = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&again, "second start");
    assert_all_already_running(&again);
    assert!(!again.events().iter().any(|e| kind(e) == "step"
        && matches!(
            e["step"]["step"].as_str(),
            Some("creating" | "removing" | "stopping")
        )));
    assert_eq!(container_ids(&bed, &topo), ids);

    // A changed spec re-creates that container only.
    write_env(", env: {CHANGED: \"1\"}");
    let changed = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&changed, "start after a change");
    let outcomes_changed = outcomes(&changed.events());
    assert_eq!(outcomes_changed["front-2"], "re-created");
    assert_eq!(
        outcomes_changed
            .values()
            .filter(|o| *o == "already running")
            .count(),
        topo.len() - 1
    );
    let new_ids = container_ids(&bed, &topo);
    for (inst, id) in &ids {
        assert_eq!(id != &new_ids[inst], inst == "front-2", "{inst}");
    }
    let front2 = inspect(&bed, &ships.inner1.name, "front-2");
    assert!(env_golden_text(&front2, &ships).contains("CHANGED=1\n"));

    // restart --only-if-changed: nothing changed since, nothing is touched.
    let unchanged = maestro(
        &file,
        work.path(),
        &["--json", "restart", "-a", "--only-if-changed"],
    );
    assert_ok(&unchanged, "restart --only-if-changed");
    assert!(!unchanged.events().iter().any(|e| kind(e) == "step"
        && matches!(e["step"]["step"].as_str(), Some("stopping" | "creating"))));
    assert_eq!(container_ids(&bed, &topo), new_ids);

    // A rolling restart: one instance at a time, each stopped then started.
    let rolling = maestro(
        &file,
        work.path(),
        &[
            "--json",
            "restart",
            "--step-delay",
            "0.2",
            "--stop-start-delay",
            "0.1",
            "-s",
            "store",
        ],
    );
    assert_ok(&rolling, "rolling restart");
    let rolled = outcomes(&rolling.events());
    assert_eq!(rolled.len(), 3, "{rolled:?}");
    assert!(rolled.values().all(|o| o == "restarted"), "{rolled:?}");
    for (before, after) in [("store-1", "store-2"), ("store-2", "store-3")] {
        assert!(
            position(&rolling.events(), 0, "job_done", before)
                < position(&rolling.events(), 0, "job_started", after)
        );
    }

    // restart: all stopped dependents first, then all started dependencies first.
    let restart = maestro(&file, work.path(), &["--json", "restart", "-a"]);
    assert_ok(&restart, "restart");
    let plans: Vec<usize> = restart
        .events()
        .iter()
        .enumerate()
        .filter(|(_, e)| kind(e) == "plan_started")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(plans.len(), 2, "restart runs a stop plan then a start plan");
    assert_order(&restart.events(), plans[0], &topo, true);
    let last_stop = restart.events()[..plans[1]]
        .iter()
        .rposition(|e| kind(e) == "job_done")
        .unwrap_or(0);
    let first_start = position(&restart.events(), plans[1], "job_started", "store-1");
    assert!(last_stop < first_start);
    assert_order(&restart.events(), plans[1], &topo, false);
    for e in &restart.events()[plans[1]..] {
        if kind(e) == "job_done" {
            assert_eq!(e["outcome"], "started", "{e}");
        }
    }

    // restart of instances none of which depends on another (the stores need nothing, and
    // what needs them is not restarted): one run, each restarted in place with one request,
    // the same containers started again, their running checks passed.
    let before = container_ids(&bed, &topo);
    let started_at =
        |inst: &str, ship: &str| inspect(&bed, ship, inst)["State"]["StartedAt"].clone();
    let store3_before = started_at("store-3", &ships.inner1.name);
    let steps = |run: &Run| -> Vec<String> {
        run.events()
            .iter()
            .filter(|e| kind(e) == "step")
            .filter_map(|e| e["step"]["step"].as_str().map(str::to_string))
            .collect()
    };
    let runs = |run: &Run| {
        run.events()
            .iter()
            .filter(|e| kind(e) == "plan_started")
            .count()
    };
    let in_place = maestro(&file, work.path(), &["--json", "restart", "-s", "store"]);
    assert_ok(&in_place, "restart in place");
    assert_eq!(runs(&in_place), 1, "one run: no stop half");
    let restarted = outcomes(&in_place.events());
    assert_eq!(restarted.len(), 3, "{restarted:?}");
    assert!(
        restarted.values().all(|o| o == "restarted"),
        "{restarted:?}"
    );
    let seen = steps(&in_place);
    assert!(seen.iter().any(|s| s == "restarting"), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|s| ["creating", "removing", "stopping"].contains(&s.as_str())),
        "{seen:?}"
    );
    assert_eq!(
        container_ids(&bed, &topo),
        before,
        "restarted in place, not re-created"
    );
    assert_ne!(started_at("store-3", &ships.inner1.name), store3_before);

    // front has `stopped` checks, which need the moment between stop and start: each front
    // instance is stopped, then started again (re-created), still in one run.
    let two_steps = maestro(&file, work.path(), &["--json", "restart", "-s", "front"]);
    assert_ok(&two_steps, "restart with stopped checks");
    assert_eq!(runs(&two_steps), 1);
    assert!(
        outcomes(&two_steps.events())
            .values()
            .all(|o| o == "restarted")
    );
    let seen = steps(&two_steps);
    assert!(
        seen.iter().any(|s| s == "stopping") && seen.iter().any(|s| s == "creating"),
        "{seen:?}"
    );
    let after = container_ids(&bed, &topo);
    for (inst, id) in &before {
        assert_eq!(id != &after[inst], inst.starts_with("front"), "{inst}");
    }

    // kill one instance, then stop everything: dependents first.
    let kill = maestro(&file, work.path(), &["--json", "kill", "front-2"]);
    assert_ok(&kill, "kill");
    assert_eq!(outcomes(&kill.events())["front-2"], "killed");
    assert_eq!(
        inspect(&bed, &ships.inner1.name, "front-2")["State"]["Running"],
        false
    );
    let stop = maestro(&file, work.path(), &["--json", "stop", "-a"]);
    assert_ok(&stop, "stop -a");
    assert_order(&stop.events(), 0, &topo, true);
    let stopped = outcomes(&stop.events());
    assert_eq!(stopped["front-2"], "nothing to do");
    assert_eq!(stopped["store-3"], "stopped");
    for (inst, (ship, _)) in &topo {
        assert_eq!(
            inspect(&bed, ship, inst)["State"]["Running"],
            false,
            "{inst}"
        );
    }

    // --reuse starts the stopped container as it is.
    let before = container_ids(&bed, &topo);
    let reuse = maestro(
        &file,
        work.path(),
        &["--json", "start", "--reuse", "-i", "data-1"],
    );
    assert_ok(&reuse, "start --reuse");
    assert_eq!(outcomes(&reuse.events()).len(), 1);
    assert_eq!(outcomes(&reuse.events())["data-1"], "started");
    assert_eq!(container_ids(&bed, &topo)["data-1"], before["data-1"]);

    // clean removes the stopped containers and leaves the running one alone.
    let clean = maestro(&file, work.path(), &["--json", "clean"]);
    assert_ok(&clean, "clean");
    for (inst, outcome) in outcomes(&clean.events()) {
        let expected = if inst == "data-1" {
            "nothing to do"
        } else {
            "removed"
        };
        assert_eq!(outcome, expected, "{inst}");
    }
    for (inst, (ship, _)) in &topo {
        let exists = bed.docker_cli(ship, &["inspect", inst]).status.success();
        assert_eq!(exists, *inst == "data-1", "{inst}");
    }
    let _ = bed.docker_cli(&ships.ship1.name, &["rm", "-f", "data-1"]);
}

/// A ship that cannot be reached fails its own instances, skips what waits on them, and the
/// rest of the run goes on.
#[test]
fn an_unreachable_ship_fails_only_its_own_instances() {
    let bed = bed();
    let ships = ships(&bed);
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = work.path().join("env.yaml");
    // An address in the inner subnet without the bastion: no route from here.
    let ghost_ip = {
        let mut parts: Vec<&str> = ships.inner1.ip.split('.').collect();
        parts[3] = "250";
        parts.join(".")
    };
    let yaml = format!(
        r#"name: ghosts
ship_defaults:
  timeout: 3
ships:
{a}  ghost: {{ip: {ghost_ip}, ssh: {ssh}}}
services:
  lost:
    image: maestro-test:latest
    instances: {{lost-1: {{ship: ghost, command: sleep 3600}}}}
  waiting:
    image: maestro-test:latest
    requires: [lost]
    instances: {{waiting-1: {{ship: a, command: sleep 3600}}}}
  alone:
    image: maestro-test:latest
    instances: {{alone-1: {{ship: a, command: sleep 3600, stop_timeout: 1}}}}
  broken:
    image: maestro-test:latest
    instances: {{broken-1: {{ship: a, command: "sh -c 'echo fatal: no config; exit 3'"}}}}
"#,
        a = bed.ship_yaml(&ships.ship1.name, "a"),
        ssh = bed.ssh_yaml(""),
    );
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    let _ = bed.docker_cli(
        &ships.ship1.name,
        &["rm", "-f", "alone-1", "waiting-1", "broken-1"],
    );
    let run = maestro(&file, work.path(), &["--json", "start"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let by_kind: HashMap<String, String> = run
        .events()
        .iter()
        .filter(|e| matches!(kind(e), "job_done" | "job_failed" | "job_skipped"))
        .map(|e| (instance(e).to_string(), kind(e).to_string()))
        .collect();
    assert_eq!(by_kind["lost-1"], "job_failed");
    assert_eq!(by_kind["waiting-1"], "job_skipped");
    assert_eq!(by_kind["alone-1"], "job_done");
    let failed = run
        .events()
        .iter()
        .find(|e| kind(e) == "job_failed")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        failed.contains("ghost") || failed.contains(&ghost_ip),
        "{failed}"
    );
    let _ = bed.docker_cli(&ships.ship1.name, &["rm", "-f", "alone-1"]);
}

/// `pull` and `start` get an image from a private registry with the file's `registries`
/// credentials; without them the job fails and says why.
#[test]
fn pull_from_a_private_registry_with_the_files_credentials() {
    let bed = bed();
    let ships = ships(&bed);
    let ship = &ships.ship1;
    let _registry = common::PrivateRegistry::start(&ship.netns, "maestro", "s3cret")
        .unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let client_config = work.path().join("docker-config");
    std::fs::create_dir_all(&client_config).unwrap_or_else(|e| panic!("{e}"));
    let socket = format!("unix://{}", ship.docker_socket.display());
    let cli = |args: &[&str]| {
        let out = Command::new("docker")
            .arg("-H")
            .arg(&socket)
            .args(args)
            .env("DOCKER_CONFIG", &client_config)
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap_or_else(|e| panic!("docker: {e}"));
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let image = format!("{}/maestro/pulled:1", common::PrivateRegistry::ADDRESS);
    let _ = Command::new("docker")
        .args(["-H", &socket, "rm", "-f", "orch-builder", "pulled-1"])
        .output();
    cli(&[
        "run",
        "--name",
        "orch-builder",
        "maestro-test:latest",
        "dd",
        "if=/dev/urandom",
        "of=/blob",
        "bs=1024",
        "count=2048",
    ]);
    cli(&["commit", "orch-builder", &image]);
    cli(&["rm", "orch-builder"]);
    let login = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo s3cret | docker -H {socket} login -u maestro --password-stdin {}",
            common::PrivateRegistry::ADDRESS
        ))
        .env("DOCKER_CONFIG", &client_config)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    cli(&["push", &image]);
    cli(&["rmi", &image]);

    let yaml = |credentials: &str| {
        format!(
            r#"name: pulls
registries:
  local:
    registry: http://{address}
{credentials}    retry: {{attempts: 2, when: [503]}}
ships:
{ship_entry}services:
  pulled:
    image: {image}
    instances: {{pulled-1: {{ship: a, command: sleep 3600, stop_timeout: 1}}}}
"#,
            address = common::PrivateRegistry::ADDRESS,
            ship_entry = bed.ship_yaml(&ship.name, "a"),
        )
    };
    let file = work.path().join("env.yaml");

    // No credentials in the file and none in the (empty) client config: refused.
    std::fs::write(&file, yaml("")).unwrap_or_else(|e| panic!("{e}"));
    let refused = maestro(&file, work.path(), &["--json", "pull"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let failure = refused
        .events()
        .iter()
        .find(|e| kind(e) == "job_failed")
        .map(|e| e["reason"].to_string())
        .unwrap_or_default();
    assert!(failure.contains("auth"), "{failure}");

    std::fs::write(&file, yaml("    username: maestro\n    password: s3cret\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let pulled = maestro(&file, work.path(), &["--json", "pull"]);
    assert_ok(&pulled, "pull");
    assert_eq!(outcomes(&pulled.events())["pulled-1"], "pulled");
    let percents: Vec<u64> = pulled
        .events()
        .iter()
        .filter(|e| kind(e) == "step" && e["step"]["step"] == "pulling")
        .filter_map(|e| e["step"]["percent"].as_u64())
        .collect();
    assert_eq!(percents.last(), Some(&100), "{percents:?}");

    // start pulls a missing image itself.
    cli(&["rmi", &image]);
    let started = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&started, "start with a missing image");
    assert_eq!(outcomes(&started.events())["pulled-1"], "started");
    assert!(
        started
            .events()
            .iter()
            .any(|e| kind(e) == "step" && e["step"]["step"] == "pulling")
    );
    let _ = Command::new("docker")
        .args(["-H", &socket, "rm", "-f", "pulled-1"])
        .output();
    let _ = Command::new("docker")
        .args(["-H", &socket, "rmi", &image])
        .output();
}

/// Ctrl-C while a start waits on its `running` checks: the run ends with 130, the job is
/// reported as cancelled with the state it left, and what had not begun is not attempted.
#[test]
fn ctrl_c_during_checks_cancels_and_says_what_was_left() {
    use std::io::{BufRead, BufReader};

    let bed = bed();
    let ships = ships(&bed);
    let ship = &ships.ship2;
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = work.path().join("env.yaml");
    let yaml = format!(
        r#"name: cancels
ships:
{ship_entry}services:
  slow:
    image: maestro-test:latest
    lifecycle:
      running: [{{type: exec, command: "false", attempts: 60}}]
    instances: {{slow-1: {{ship: b, command: sleep 3600, stop_timeout: 1}}}}
  after:
    image: maestro-test:latest
    requires: [slow]
    instances: {{after-1: {{ship: b, command: sleep 3600}}}}
"#,
        ship_entry = bed.ship_yaml(&ship.name, "b"),
    );
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    let _ = bed.docker_cli(&ship.name, &["rm", "-f", "slow-1", "after-1"]);
    let mut child = common::maestro(work.path())
        .arg("-f")
        .arg(&file)
        .args(["--json", "start"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    // Reading stdout blocks until maestro exits: a watchdog kills it past the run limit, so a
    // hang fails the test instead of hanging the suite.
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let pid = child.id().to_string();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(support::RUN_LIMIT).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let mut events: Vec<Value> = Vec::new();
    let mut signalled = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if !signalled && kind(&event) == "step" && event["step"]["check"] == "exec" {
            signalled = true;
            let status = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(status.success());
        }
        events.push(event);
    }
    let _ = done.send(());
    let _ = watchdog.join();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(signalled, "the check never began: {events:#?}");
    assert_eq!(status.code(), Some(130));
    let cancelled: Vec<&Value> = events
        .iter()
        .filter(|e| kind(e) == "job_cancelled")
        .collect();
    let slow = cancelled
        .iter()
        .find(|e| instance(e) == "slow-1")
        .unwrap_or_else(|| panic!("{events:#?}"));
    let reason = slow["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("running checks") && reason.contains("left running"),
        "{reason}"
    );
    assert!(cancelled.iter().any(|e| instance(e) == "after-1"));
    assert!(
        !events
            .iter()
            .any(|e| kind(e) == "job_started" && instance(e) == "after-1")
    );
    let _ = bed.docker_cli(&ship.name, &["rm", "-f", "slow-1", "after-1"]);
}

/// `start` decides "already running" from one container list per ship; a container whose
/// image tag now names another image is still re-created, and only that one.
#[test]
fn a_changed_image_is_re_created_and_the_rest_left_alone() {
    let bed = bed();
    let ships = ships(&bed);
    let ship = &ships.ship2;
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = work.path().join("env.yaml");
    let image = "orch-imagechange:latest";
    let cleanup = || {
        let _ = bed.docker_cli(
            &ship.name,
            &["rm", "-f", "ic-moved-1", "ic-fixed-1", "ic-builder"],
        );
        let _ = bed.docker_cli(&ship.name, &["rmi", "-f", image]);
    };
    cleanup();
    bed.docker_ok(&ship.name, &["tag", "maestro-test:latest", image]);
    let yaml = format!(
        r#"name: imagechange
ship_defaults:
  timeout: 10
  ssh: {{user: root, identity_files: [{key}], known_hosts_file: {kh}}}
ships:
  b: {{ip: {ip}, socket_path: {sock}}}
services:
  fixed:
    image: maestro-test:latest
    instances: {{ic-fixed-1: {{ship: b, command: sleep 3600, stop_timeout: 1}}}}
  moved:
    image: {image}
    requires: [fixed]
    instances: {{ic-moved-1: {{ship: b, command: sleep 3600, stop_timeout: 1}}}}
"#,
        key = bed.key().display(),
        kh = bed.known_hosts().display(),
        ip = ship.ip,
        sock = ship.docker_socket.display(),
    );
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    let first = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&first, "first start");
    let again = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&again, "second start");
    assert_all_already_running(&again);
    let fixed_id = bed.docker_ok(&ship.name, &["inspect", "-f", "{{.Id}}", "ic-fixed-1"]);
    let moved_id = bed.docker_ok(&ship.name, &["inspect", "-f", "{{.Id}}", "ic-moved-1"]);

    // The tag now names another image (a commit of a container: a new id).
    bed.docker_ok(
        &ship.name,
        &["run", "--name", "ic-builder", image, "touch", "/moved"],
    );
    bed.docker_ok(&ship.name, &["commit", "ic-builder", image]);
    let changed = maestro(&file, work.path(), &["--json", "start"]);
    assert_ok(&changed, "start after the image changed");
    let outcomes_changed = outcomes(&changed.events());
    assert_eq!(
        outcomes_changed["ic-moved-1"], "re-created",
        "{outcomes_changed:?}"
    );
    assert_eq!(outcomes_changed["ic-fixed-1"], "already running");
    assert_eq!(
        bed.docker_ok(&ship.name, &["inspect", "-f", "{{.Id}}", "ic-fixed-1"]),
        fixed_id
    );
    assert_ne!(
        bed.docker_ok(&ship.name, &["inspect", "-f", "{{.Id}}", "ic-moved-1"]),
        moved_id
    );
    let image_id = bed.docker_ok(&ship.name, &["image", "inspect", "-f", "{{.Id}}", image]);
    assert_eq!(
        bed.docker_ok(&ship.name, &["inspect", "-f", "{{.Image}}", "ic-moved-1"]),
        image_id
    );
    cleanup();
}
