//! Every file of examples/ runs on the test bed, the way `./demo.sh examples/X.yaml` runs it:
//! the built binary gets the DEMO_* variables of the bed, `start`s the example, and the test
//! checks through Docker that each container runs and does what the example is about, then
//! that `status` agrees, and that `stop -a` and `clean` leave nothing of it behind.
//!
//! Needs root and a bed with 3 outer ships and 2 inner ones (the shared bed of `./test.sh`,
//! or the one `TestBed::shared()` brings up). The examples use distinct container names and
//! host ports, so they run side by side; other test binaries run before or after this one.

use crate::common;
use common::support::{self, Run};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{SharedBed, TestBed};
use serde_json::Value;

/// The DEMO_* variables `./demo.sh` writes to target/demo/demo.env, for `bed`.
fn demo_vars(bed: &TestBed) -> BTreeMap<String, String> {
    let outer = bed.outer_ships();
    let inner = bed.inner_ships();
    assert!(
        outer.len() >= 3 && inner.len() >= 2,
        "the examples need a bed with 3 outer ships and 2 inner ones (bed.sh up --ships 3 --inner 2)"
    );
    let mut vars = BTreeMap::new();
    let mut set = |k: String, v: String| {
        vars.insert(k, v);
    };
    for (n, ship) in outer.iter().take(3).enumerate() {
        set(format!("DEMO_SHIP{}_IP", n + 1), ship.ip.clone());
        set(
            format!("DEMO_SHIP{}_DOCKER_SOCKET", n + 1),
            ship.docker_socket.display().to_string(),
        );
    }
    for (n, ship) in inner.iter().take(2).enumerate() {
        set(format!("DEMO_INNER{}_IP", n + 1), ship.ip.clone());
        set(
            format!("DEMO_INNER{}_DOCKER_SOCKET", n + 1),
            ship.docker_socket.display().to_string(),
        );
    }
    set("DEMO_BASTION_IP".into(), bed.bastion().ip.clone());
    set("DEMO_SSH_KEY".into(), bed.key().display().to_string());
    set(
        "DEMO_KNOWN_HOSTS".into(),
        bed.known_hosts().display().to_string(),
    );
    set("DEMO_SSH_USER".into(), bed.user.clone());
    set("DEMO_IMAGE".into(), bed.image.clone());
    // webapp-bastion names the registry in its `registries` block; no container pulls from it.
    let (address, user, password) = match &bed.registry {
        Some(r) => (r.address.clone(), r.user.clone(), r.password.clone()),
        None => (
            "registry.invalid:5000".into(),
            "nobody".into(),
            "unused".into(),
        ),
    };
    set("DEMO_REGISTRY".into(), address);
    set("DEMO_REGISTRY_USER".into(), user);
    set("DEMO_REGISTRY_PASSWORD".into(), password);
    vars
}

/// One example on the bed: its file, and where each of its containers runs (bed ship names).
struct Example {
    bed: SharedBed,
    file: PathBuf,
    home: tempfile::TempDir,
    vars: BTreeMap<String, String>,
    /// instance -> bed ship
    placement: BTreeMap<&'static str, String>,
    /// The image its containers run (the bed's, unless the example builds one).
    image: String,
}

impl Example {
    /// `placement`: (instance, which bed ship it is on: `ship1`.. for the DEMO_SHIPn ships,
    /// `inner1`.. for DEMO_INNERn).
    fn new(file: &str, placement: &[(&'static str, &str)]) -> Example {
        let bed = TestBed::shared();
        let vars = demo_vars(&bed);
        let outer: Vec<String> = bed.outer_ships().iter().map(|s| s.name.clone()).collect();
        let inner: Vec<String> = bed.inner_ships().iter().map(|s| s.name.clone()).collect();
        let bed_ship = |role: &str| -> String {
            let (list, n) = match role.strip_prefix("inner") {
                Some(n) => (&inner, n),
                None => (&outer, role.trim_start_matches("ship")),
            };
            let index: usize = n.parse().unwrap_or_else(|e| panic!("{role}: {e}"));
            list[index - 1].clone()
        };
        let placement = placement
            .iter()
            .map(|(instance, role)| (*instance, bed_ship(role)))
            .collect();
        let example = Example {
            bed: bed.clone(),
            file: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(file),
            home: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            image: bed.image.clone(),
            vars,
            placement,
        };
        // Leftovers of an interrupted run would make `start` re-create rather than create.
        example.remove_containers();
        example
    }

    fn ip(&self, var: &str) -> &str {
        &self.vars[var]
    }

    fn maestro(&self, args: &[&str]) -> Run {
        support::run(
            common::maestro(self.home.path())
                .arg("-f")
                .arg(&self.file)
                .args(args)
                .envs(&self.vars),
        )
    }

    /// Runs a lifecycle command with `--json` and asserts every instance ended in `outcome`.
    fn command(&self, args: &[&str], outcome: &str) {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.maestro(&all);
        let outcomes: BTreeMap<String, String> = run
            .events()
            .iter()
            .filter(|e| e["event"] == "job_done")
            .map(|e| {
                (
                    e["instance"].as_str().unwrap_or_default().to_owned(),
                    e["outcome"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let expected: BTreeMap<String, String> = self
            .placement
            .keys()
            .map(|i| (i.to_string(), outcome.to_owned()))
            .collect();
        assert!(
            run.code == 0 && outcomes == expected,
            "{} {args:?}: exit {}, outcomes {outcomes:?}, expected {expected:?}\nstdout:\n{}\nstderr:\n{}\n{}",
            self.file.display(),
            run.code,
            run.stdout,
            run.stderr,
            self.last_logs()
        );
    }

    /// The last log lines of every container, to explain a failure.
    fn last_logs(&self) -> String {
        let mut text = String::new();
        for (instance, ship) in &self.placement {
            let out = self
                .bed
                .docker_cli(ship, &["logs", "--tail", "20", instance]);
            text.push_str(&format!(
                "--- logs of {instance} on {ship}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        text
    }

    fn inspect(&self, instance: &str) -> Value {
        let ship = &self.placement[instance];
        let text = self.bed.docker_ok(ship, &["inspect", instance]);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        v[0].clone()
    }

    /// `docker exec` in the container, asserting success; trimmed stdout.
    fn exec(&self, instance: &str, argv: &[&str]) -> String {
        let mut args = vec!["exec", instance];
        args.extend_from_slice(argv);
        self.bed.docker_ok(&self.placement[instance], &args)
    }

    fn logs(&self, instance: &str) -> String {
        let out = self
            .bed
            .docker_cli(&self.placement[instance], &["logs", instance]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The container's environment as a map.
    fn container_env(&self, instance: &str) -> BTreeMap<String, String> {
        self.inspect(instance)["Config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Containers of this example's environment on its ships (by maestro's label).
    fn containers_left(&self, environment: &str) -> Vec<String> {
        let mut ships: Vec<&String> = self.placement.values().collect();
        ships.sort();
        ships.dedup();
        let filter = format!("label=io.maestro.environment={environment}");
        ships
            .into_iter()
            .flat_map(|ship| {
                self.bed
                    .docker_ok(
                        ship,
                        &["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
                    )
                    .lines()
                    .map(|name| format!("{name} on {ship}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn remove_containers(&self) {
        for (instance, ship) in &self.placement {
            let _ = self.bed.docker_cli(ship, &["rm", "-f", instance]);
        }
    }

    /// The whole round: start, containers running with maestro's labels, `check` (what the
    /// example is about), status, stop, clean, nothing left.
    fn run(&self, environment: &str, check: impl FnOnce(&Example)) {
        self.command(&["start"], "started");
        for (instance, ship) in &self.placement {
            let c = self.inspect(instance);
            assert_eq!(
                c["State"]["Status"], "running",
                "{instance} on {ship}: {}",
                c["State"]
            );
            let labels = &c["Config"]["Labels"];
            assert_eq!(labels["io.maestro.environment"], environment, "{instance}");
            assert_eq!(labels["io.maestro.instance"], *instance);
            assert_eq!(c["Config"]["Image"], self.image.as_str(), "{instance}");
            let env = self.container_env(instance);
            assert_eq!(
                env.get("MAESTRO_ENVIRONMENT_NAME").map(String::as_str),
                Some(environment)
            );
        }

        check(self);

        let status = self.maestro(&["status", "--json"]);
        assert_eq!(
            status.code, 0,
            "status: {}\n{}",
            status.stderr, status.stdout
        );
        let doc = status.document();
        assert_eq!(doc["environment"], environment);
        assert_eq!(doc["ok"], true, "{doc:#}");
        let states: BTreeMap<&str, &str> = doc["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i["instance"].as_str().unwrap_or_default(),
                    i["state"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        let all_running: BTreeMap<&str, &str> =
            self.placement.keys().map(|i| (*i, "running")).collect();
        assert_eq!(states, all_running, "status --json");

        self.command(&["stop", "-a"], "stopped");
        for instance in self.placement.keys() {
            let state = &self.inspect(instance)["State"];
            assert_eq!(state["Running"], false, "{instance} after stop: {state}");
        }
        self.command(&["clean"], "removed");
        let left = self.containers_left(environment);
        assert!(left.is_empty(), "left after clean: {left:?}");
    }
}

impl Drop for Example {
    /// A failed assertion must not leave containers on the shared bed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.remove_containers();
        }
    }
}

#[test]
fn minimal_runs_on_the_bed() {
    let ex = Example::new("minimal.yaml", &[("hello-1", "ship1")]);
    ex.run("minimal", |ex| {
        let c = ex.inspect("hello-1");
        assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sleep", "3600"]));
        assert_eq!(c["HostConfig"]["Init"], true);
    });
}

#[test]
fn zookeeper_kafka_brokers_find_zookeeper_through_auto_configuration() {
    let ex = Example::new(
        "zookeeper-kafka.yaml",
        &[
            ("zk-1", "ship1"),
            ("kafka-1", "ship2"),
            ("kafka-2", "ship3"),
        ],
    );
    ex.run("zookeeper-kafka", |ex| {
        let zk = format!("{}:2181", ex.ip("DEMO_SHIP1_IP"));
        assert!(
            ex.logs("zk-1").contains("serving on port 2181"),
            "{}",
            ex.logs("zk-1")
        );
        for (n, broker) in ["kafka-1", "kafka-2"].iter().enumerate() {
            let env = ex.container_env(broker);
            assert_eq!(
                env.get("ZOOKEEPER_ZK_1_HOST"),
                Some(&ex.ip("DEMO_SHIP1_IP").to_owned())
            );
            assert_eq!(
                env.get("ZOOKEEPER_ZK_1_CLIENT_PORT").map(String::as_str),
                Some("2181")
            );
            assert_eq!(
                env.get("KAFKA_INSTANCES").map(String::as_str),
                Some("kafka-1,kafka-2")
            );
            // The broker reached zookeeper at the injected address before it listened.
            let logs = ex.logs(broker);
            let id = n + 1;
            assert!(
                logs.contains(&format!("broker {id}: registered with zookeeper at {zk}")),
                "{broker}: {logs}"
            );
            assert_eq!(
                ex.exec(broker, &["cat", "/var/lib/kafka/meta.properties"]),
                format!("broker.id={id}")
            );
            let mounts = ex.inspect(broker)["Mounts"].clone();
            assert_eq!(mounts[0]["Source"], format!("/srv/kafka-{id}"), "{mounts}");
            assert_eq!(mounts[0]["Destination"], "/var/lib/kafka");
        }
        // Each broker answers on its named port, at its ship's address.
        let answer = ex.exec(
            "kafka-1",
            &[
                "sh",
                "-c",
                &format!("echo | nc -w 2 {} 9092", ex.ip("DEMO_SHIP3_IP")),
            ],
        );
        assert_eq!(answer, "broker-2");
    });
}

#[test]
fn webapp_behind_the_bastion_serves_health_from_its_database() {
    let ex = Example::new(
        "webapp-bastion.yaml",
        &[("db", "inner2"), ("web-1", "inner1")],
    );
    ex.run("webapp", |ex| {
        let db = format!("{}:5432", ex.ip("DEMO_INNER2_IP"));
        let env = ex.container_env("web-1");
        assert_eq!(
            env.get("POSTGRES_DB_HOST"),
            Some(&ex.ip("DEMO_INNER2_IP").to_owned())
        );
        assert_eq!(
            env.get("POSTGRES_DB_SQL_PORT").map(String::as_str),
            Some("5432")
        );
        let health = ex.exec(
            "web-1",
            &["wget", "-q", "-O-", "http://127.0.0.1:8080/health"],
        );
        assert_eq!(
            health,
            format!("ok database={db} workers=4 features=search export")
        );
        // Published on the ship's port 80, reachable on the inner network (from inner1).
        let out = ex.bed.ssh(
            &ex.placement["web-1"],
            &format!(
                "busybox wget -q -O- http://{}:80/health",
                ex.ip("DEMO_INNER1_IP")
            ),
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&db),
            "{out:?}"
        );

        let web = ex.inspect("web-1");
        assert_eq!(
            web["State"]["Health"]["Status"], "healthy",
            "maestro waited for it"
        );
        assert_eq!(web["Config"]["Labels"]["tier"], "frontend");
        assert_eq!(web["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(web["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
        let mount = &web["Mounts"][0];
        assert_eq!(
            (&mount["Source"], &mount["Destination"], &mount["RW"]),
            (
                &Value::from("/srv/webapp/config"),
                &Value::from("/etc/webapp"),
                &Value::from(false)
            )
        );

        let db_container = ex.inspect("db");
        let binding = &db_container["HostConfig"]["PortBindings"]["5432/tcp"][0];
        assert_eq!(
            binding["HostIp"],
            ex.ip("DEMO_INNER2_IP"),
            "private address only"
        );
        assert_eq!(binding["HostPort"], "5432");
        assert_eq!(db_container["HostConfig"]["Memory"], 1u64 << 30);
        assert_eq!(
            db_container["HostConfig"]["RestartPolicy"]["Name"],
            "unless-stopped"
        );
        assert!(ex.logs("db").contains("database app ready on port 5432"));
    });
}

#[test]
fn demo_runs_on_the_bed() {
    let ex = Example::new(
        "demo.yaml",
        &[
            ("store-1", "ship1"),
            ("api-1", "ship2"),
            ("api-2", "ship3"),
            ("frontend-1", "inner1"),
        ],
    );
    ex.run("demo", |ex| {
        let env = ex.container_env("frontend-1");
        assert_eq!(
            env.get("API_API_2_HOST"),
            Some(&ex.ip("DEMO_SHIP3_IP").to_owned())
        );
        let out = ex.bed.ssh(
            &ex.placement["frontend-1"],
            &format!(
                "busybox wget -q -O- http://{}:8000/",
                ex.ip("DEMO_INNER1_IP")
            ),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "frontend",
            "{out:?}"
        );
    });
}

#[test]
fn a_locally_built_image_reaches_hosts_behind_the_bastion_without_a_registry() {
    let mut ex = Example::new(
        "local-image-bastion.yaml",
        &[("web-1", "inner1"), ("web-2", "inner2")],
    );
    // "This machine's" daemon is the bed's third outer ship's; the image is built there from
    // the bed's image and one file, so that the hosts lack a layer of it.
    let builder = ex.bed.outer_ships()[2].docker_socket.display().to_string();
    let image = format!("maestro-example-local:{}", std::process::id());
    let ctx = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(ctx.path().join("index.html"), "built on this machine\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\nCOPY index.html /srv/index.html\n", ex.bed.image),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &image, "."])
        .current_dir(ctx.path())
        .env("DOCKER_HOST", format!("unix://{builder}"))
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap_or_else(|e| panic!("docker: {e}"));
    assert!(built.status.success(), "{built:?}");
    ex.vars.insert("WEB_IMAGE".into(), image.clone());
    ex.vars
        .insert("DOCKER_HOST".into(), format!("unix://{builder}"));
    ex.image = image.clone();
    ex.run("localimage", |ex| {
        for instance in ["web-1", "web-2"] {
            assert_eq!(
                ex.exec(instance, &["cat", "/srv/index.html"]),
                "built on this machine"
            );
        }
    });
    for ship in ["inner1", "inner2"] {
        let bed_ship = &ex.placement[if ship == "inner1" { "web-1" } else { "web-2" }];
        let _ = ex.bed.docker_cli(bed_ship, &["rmi", &image]);
    }
}
