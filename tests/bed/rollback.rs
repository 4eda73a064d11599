//! History and rollback end to end on the test bed: deploy v1, then v2 (two tags of the test
//! image that differ in a file the `running` checks read), roll back to v1 with the checks,
//! then a v3 whose checks fail, and a rollback to the last good deployment. `history` is
//! checked at each step; no label holds the value of a variable.
//!
//! Needs root. Uses the bed named by `MAESTRO_TESTBED` if set, else brings up its own.

use crate::common;
use common::support::{self, Run};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{SharedBed, TestBed};
use serde_json::Value;

const SECRET: &str = "rb-secret-0001";
const ENV: &str = "rb";
const DB: &str = "rb-db-1";
const APP: &str = "rb-app-1";

fn bed() -> SharedBed {
    TestBed::shared()
}

/// The two ships of the test: one reached directly (`a`, runs the db) and one through the
/// bastion (`c`, runs the app, which requires the db).
fn ships(bed: &TestBed) -> (String, String) {
    (
        bed.outer_ships()[0].name.clone(),
        bed.inner_ships()[0].name.clone(),
    )
}

/// `maestro-rb:TAG` on both ships: the test image with `/version` holding `text`.
fn build_images(bed: &TestBed) {
    let (a, c) = ships(bed);
    for ship in [&a, &c] {
        for (tag, text) in [("v1", "ok v1"), ("v2", "ok v2"), ("v3", "bad v3")] {
            let builder = format!("rb-builder-{tag}");
            let _ = bed.docker_cli(ship, &["rm", "-f", &builder]);
            bed.docker_ok(
                ship,
                &[
                    "run",
                    "--name",
                    &builder,
                    "maestro-test:latest",
                    "sh",
                    "-c",
                    &format!("echo '{text}' > /version"),
                ],
            );
            bed.docker_ok(ship, &["commit", &builder, &format!("maestro-rb:{tag}")]);
            bed.docker_ok(ship, &["rm", &builder]);
        }
    }
}

/// Removes every container of the test.
fn remove_everything(bed: &TestBed) {
    for (ship, id) in containers(bed) {
        let _ = bed.docker_cli(&ship, &["rm", "-f", &id]);
    }
}

/// (ship, container id) of every container of the test, kept ones included, on both ships.
fn containers(bed: &TestBed) -> Vec<(String, String)> {
    let (a, c) = ships(bed);
    let filter = format!("label=io.maestro.environment={ENV}");
    [a, c]
        .into_iter()
        .flat_map(|ship| {
            let ids = bed.docker_ok(&ship, &["ps", "-aq", "--filter", &filter]);
            ids.split_whitespace()
                .map(|id| (ship.clone(), id.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

struct Cleanup(SharedBed);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_everything(&self.0);
    }
}

/// The environment with both instances on `maestro-rb:TAG`; a `running` check reads
/// `/version` and passes when it says `ok`.
fn write_environment(bed: &TestBed, dir: &Path, tag: &str) -> PathBuf {
    let (a, c) = ships(bed);
    let check = "lifecycle: {running: [{type: rexec, command: \"grep -q ok /version\", \
                 attempts: 2}]}";
    let instance = |name: &str, ship: &str| {
        format!(
            "      {name}:\n        ship: {ship}\n        command: sleep 3600\n        \
             stop_timeout: 1\n        {check}\n"
        )
    };
    let yaml = format!(
        "name: {ENV}\nships:\n{}{}services:\n  db:\n    image: maestro-rb:{tag}\n    \
         env: {{DB_PASSWORD: {SECRET}}}\n    instances:\n{}  app:\n    image: \
         maestro-rb:{tag}\n    requires: [db]\n    instances:\n{}",
        bed.ship_yaml(&a, "a"),
        bed.ship_yaml(&c, "c"),
        instance(DB, "a"),
        instance(APP, "c"),
    );
    let file = dir.join("env.yaml");
    std::fs::write(&file, yaml).expect("write env");
    file
}

fn run(dir: &Path, file: &Path, holder: &str, args: &[&str]) -> Run {
    let file = file.display().to_string();
    let mut all = vec!["-f", file.as_str()];
    all.extend_from_slice(args);
    support::run_maestro(dir, &all, &[("MAESTRO_LOCK_HOLDER", holder)])
}

fn outcomes(run: &Run) -> BTreeMap<String, String> {
    run.events()
        .iter()
        .filter(|e| e["event"] == "job_done")
        .map(|e| {
            (
                e["instance"].as_str().unwrap_or_default().to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Per instance, its deployments as (role, image, by) from `history --json`.
fn history(dir: &Path, file: &Path) -> BTreeMap<String, Vec<(String, String, String)>> {
    let out = run(dir, file, "observer", &["--json", "history"]);
    assert_eq!(out.code, 0, "{out}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    report["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            let rows = i["deployments"]
                .as_array()
                .expect("deployments")
                .iter()
                .map(|d| {
                    (
                        d["role"].as_str().unwrap_or_default().to_string(),
                        d["record"]["image"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        d["record"]["by"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            (i["instance"].as_str().unwrap_or_default().to_string(), rows)
        })
        .collect()
}

fn row(role: &str, image: &str, by: &str) -> (String, String, String) {
    (role.to_string(), image.to_string(), by.to_string())
}

fn version(bed: &TestBed, ship: &str, container: &str) -> String {
    bed.docker_ok(ship, &["exec", container, "cat", "/version"])
        .trim()
        .to_string()
}

fn image_id(bed: &TestBed, ship: &str, reference: &str) -> String {
    bed.docker_ok(ship, &["inspect", "-f", "{{.Id}}", reference])
        .trim()
        .to_string()
}

fn container_image(bed: &TestBed, ship: &str, container: &str) -> String {
    bed.docker_ok(ship, &["inspect", "-f", "{{.Image}}", container])
        .trim()
        .to_string()
}

/// No label of any container of the test holds the variable's value.
fn assert_no_secret_in_labels(bed: &TestBed) {
    for (ship, id) in containers(bed) {
        let labels = bed.docker_ok(&ship, &["inspect", "-f", "{{json .Config.Labels}}", &id]);
        let labels = support::labels_unpacked(&labels);
        assert!(!labels.contains(SECRET), "{id} on {ship}: {labels}");
    }
}

#[test]
fn deploy_v1_then_v2_roll_back_to_v1_then_a_failed_v3_rolls_back_to_the_last_good() {
    let bed = bed();
    let (a, c) = ships(&bed);
    remove_everything(&bed);
    let _cleanup = Cleanup(bed.clone());
    build_images(&bed);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();

    let file = write_environment(&bed, dir, "v1");
    let v1 = run(dir, &file, "alice@laptop", &["--json", "start"]);
    assert_eq!(v1.code, 0, "{v1}");
    let h = history(dir, &file);
    assert_eq!(h[DB], vec![row("current", "maestro-rb:v1", "alice@laptop")]);

    let file = write_environment(&bed, dir, "v2");
    let v2 = run(dir, &file, "bob@ci", &["--json", "start"]);
    assert_eq!(v2.code, 0, "{v2}");
    assert_eq!(outcomes(&v2)[DB], "re-created", "{v2}");
    assert_eq!(version(&bed, &a, DB), "ok v2");
    let h = history(dir, &file);
    for instance in [DB, APP] {
        assert_eq!(
            h[instance],
            vec![
                row("current", "maestro-rb:v2", "bob@ci"),
                row("rollback-target", "maestro-rb:v1", "alice@laptop"),
            ],
            "{instance}"
        );
    }
    assert_no_secret_in_labels(&bed);

    // Without names or -a, rollback refuses, like stop.
    let bare = run(dir, &file, "carol@laptop", &["rollback"]);
    assert_eq!(bare.code, 2, "{bare}");
    assert!(
        bare.stderr
            .contains("`rollback` needs the names of the services or instances"),
        "{bare}"
    );

    let back = run(dir, &file, "carol@laptop", &["--json", "rollback", "-a"]);
    assert_eq!(back.code, 0, "{back}");
    let done = outcomes(&back);
    assert_eq!(done[DB], "rolled back", "{back}");
    assert_eq!(done[APP], "rolled back", "{back}");
    // In dependency order: the db is back (and checked) before the app starts coming back.
    let events = back.events();
    let position = |event: &str, instance: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["instance"] == instance)
            .unwrap_or_else(|| panic!("no {event} for {instance}: {back}"))
    };
    assert!(
        position("job_done", DB) < position("job_started", APP),
        "{back}"
    );
    for (ship, instance) in [(&a, DB), (&c, APP)] {
        assert_eq!(version(&bed, ship, instance), "ok v1");
        assert_eq!(
            container_image(&bed, ship, instance),
            image_id(&bed, ship, "maestro-rb:v1")
        );
    }
    // A second rollback would undo the first: v2 is what is kept now.
    let h = history(dir, &file);
    assert_eq!(
        h[DB],
        vec![
            row("rollback-target", "maestro-rb:v2", "bob@ci"),
            row("current", "maestro-rb:v1", "alice@laptop"),
        ]
    );
    let text = run(dir, &file, "observer", &["history", DB]);
    assert_eq!(text.code, 0, "{text}");
    assert!(
        text.stdout.contains("kept: rollback returns here") && text.stdout.contains("bob@ci"),
        "{text}"
    );

    // v2 again; a stopped container started again unchanged is no new deployment.
    let file = write_environment(&bed, dir, "v2");
    assert_eq!(run(dir, &file, "bob@ci", &["start"]).code, 0);
    assert_eq!(run(dir, &file, "bob@ci", &["stop", DB, APP]).code, 0);
    assert_eq!(run(dir, &file, "bob@ci", &["start"]).code, 0);
    let roles = || -> Vec<(String, String)> {
        history(dir, &file)[DB]
            .iter()
            .map(|(role, image, _)| (role.clone(), image.clone()))
            .collect()
    };
    let pair = |role: &str, image: &str| (role.to_string(), image.to_string());
    assert_eq!(
        roles(),
        vec![
            pair("current", "maestro-rb:v2"),
            pair("rollback-target", "maestro-rb:v1")
        ]
    );

    // Then a v3 whose checks fail: v2 stays the rollback point.
    let file = write_environment(&bed, dir, "v3");
    let v3 = run(dir, &file, "dave@laptop", &["--json", "start"]);
    assert_eq!(v3.code, 1, "the v3 checks fail: {v3}");
    assert_eq!(
        roles(),
        vec![
            pair("current", "maestro-rb:v3"),
            pair("rollback-target", "maestro-rb:v2"),
            pair("older", "maestro-rb:v1"),
        ]
    );
    // `clean` prunes what is older than the rollback point, and keeps the point.
    assert_eq!(run(dir, &file, "dave@laptop", &["clean", DB]).code, 0);
    assert_eq!(
        roles(),
        vec![
            pair("current", "maestro-rb:v3"),
            pair("rollback-target", "maestro-rb:v2"),
            pair("removed", "maestro-rb:v1"),
        ]
    );
    let back = run(dir, &file, "dave@laptop", &["--json", "rollback", "db"]);
    assert_eq!(back.code, 0, "{back}");
    assert_eq!(version(&bed, &a, DB), "ok v2");
    // The failed v3 is gone: nothing is left to return to.
    assert_eq!(
        roles(),
        vec![
            pair("current", "maestro-rb:v2"),
            pair("removed", "maestro-rb:v1")
        ]
    );
    assert_no_secret_in_labels(&bed);

    // An instance with nothing kept is left as it is.
    remove_everything(&bed);
    let file = write_environment(&bed, dir, "v1");
    assert_eq!(run(dir, &file, "alice@laptop", &["start"]).code, 0);
    let nothing = run(dir, &file, "alice@laptop", &["--json", "rollback", "-a"]);
    assert_eq!(nothing.code, 0, "{nothing}");
    assert_eq!(outcomes(&nothing)[DB], "nothing to do", "{nothing}");
    assert!(
        nothing
            .stdout
            .contains("no earlier deployment is kept: nothing to return to"),
        "{nothing}"
    );
}

/// The restart policy of `container` on `ship`, as Docker applies it.
fn restart_policy(bed: &TestBed, ship: &str, container: &str) -> String {
    bed.docker_ok(
        ship,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            container,
        ],
    )
    .trim()
    .to_string()
}

#[test]
fn kept_containers_stay_down_and_status_warns_when_one_runs() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = ships(&bed);
    let web = "rbk-web-1";
    let kept = format!("{web}.previous");
    let cleanup = || {
        for name in [web, kept.as_str(), &format!("{web}.replaced")] {
            let _ = bed.docker_cli(&a, &["rm", "-f", name]);
        }
    };
    cleanup();
    let write = |version: &str| {
        let yaml = format!(
            "name: rbk\nships:\n{}services:\n  web:\n    image: maestro-test:latest\n    \
             instances:\n      {web}:\n        ship: a\n        command: sleep 3600\n        \
             stop_timeout: 1\n        restart: always\n        env: {{VERSION: \"{version}\"}}\n",
            bed.ship_yaml(&a, "a"),
        );
        let file = dir.path().join("env.yaml");
        std::fs::write(&file, yaml).expect("write env");
        file
    };
    let file = write("1");
    let first = run(dir.path(), &file, "kim@desk", &["--json", "start"]);
    assert_eq!(first.code, 0, "{first}");
    let file = write("2");
    let second = run(dir.path(), &file, "kim@desk", &["--json", "start"]);
    assert_eq!(second.code, 0, "{second}");

    // Set aside, the first deployment cannot come back by itself (a daemon restart, a
    // reboot); the current one keeps the file's policy.
    assert_eq!(restart_policy(&bed, &a, &kept), "no");
    assert_eq!(restart_policy(&bed, &a, web), "always");

    // Started behind maestro's back, it is warned about, naming it.
    bed.docker_ok(&a, &["start", &kept]);
    let status = run(dir.path(), &file, "kim@desk", &["status"]);
    assert!(
        status.stderr.contains(&format!(
            "warning: ship a: {kept}, kept for `maestro rollback`, is running beside {web}"
        )),
        "{status}"
    );
    let json = run(dir.path(), &file, "kim@desk", &["--json", "status"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(
        doc["instances"][0]["kept_running"],
        serde_json::json!([kept]),
        "{json}"
    );
    bed.docker_ok(&a, &["stop", "-t", "0", &kept]);

    // Rolled back, the first deployment runs with its own policy again; the one it replaced
    // is set aside with `no`.
    let back = run(dir.path(), &file, "kim@desk", &["--json", "rollback", web]);
    assert_eq!(back.code, 0, "{back}");
    assert_eq!(restart_policy(&bed, &a, web), "always");
    assert_eq!(restart_policy(&bed, &a, &kept), "no");
    let quiet = run(dir.path(), &file, "kim@desk", &["status"]);
    assert!(!quiet.stderr.contains("kept for"), "{quiet}");
    cleanup();
}

#[test]
fn a_deployment_record_forged_with_escape_sequences_is_shown_without_them() {
    let bed = bed();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = ships(&bed);
    let web = "rbe-web-1";
    let _ = bed.docker_cli(&a, &["rm", "-f", web]);
    let yaml = format!(
        "name: rbe\nships:\n{}services:\n  web:\n    image: maestro-test:latest\n    \
         instances:\n      {web}: {{ship: a, command: sleep 3600}}\n",
        bed.ship_yaml(&a, "a"),
    );
    let file = dir.path().join("env.yaml");
    std::fs::write(&file, yaml).expect("write env");
    // Anyone who can use the daemon can write labels: a record whose operator clears the
    // screen and sets the terminal's title.
    let record = serde_json::json!({
        "at": 1, "by": "eve\u{1b}[2J\u{1b}]0;pwned\u{7}@x", "image": "maestro-test:latest",
        "image_id": "sha256:0", "spec_hash": "0",
    });
    bed.docker_ok(
        &a,
        &[
            "create",
            "--name",
            web,
            "--label",
            "io.maestro.environment=rbe",
            "--label",
            &format!("io.maestro.instance={web}"),
            "--label",
            &format!("io.maestro.deployment={record}"),
            "maestro-test:latest",
            "true",
        ],
    );
    for args in [&["history"][..], &["--json", "history"][..]] {
        let out = run(dir.path(), &file, "kim@desk", args);
        assert_eq!(out.code, 0, "{out}");
        assert!(
            !out.all().contains('\u{1b}') && !out.all().contains('\u{7}'),
            "{out:?}"
        );
        assert!(out.stdout.contains("eve?[2J?]0;pwned?@x"), "{out}");
    }
    let _ = bed.docker_cli(&a, &["rm", "-f", web]);
}
