//! Every example and fixture loads, and resolves the way the docs say.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use maestro::config::{self, Check, CommandSpec, JumpHost, KnownHostsPolicy, Protocol, VolumeMode};

/// The variables `./demo.sh` exports for the examples (addresses of the test bed).
fn demo_vars() -> BTreeMap<String, String> {
    [
        ("DEMO_SSH_KEY", "/bed/id_ed25519"),
        ("DEMO_KNOWN_HOSTS", "/bed/known_hosts"),
        ("DEMO_SSH_USER", "root"),
        ("DEMO_SHIP1_IP", "10.200.0.11"),
        ("DEMO_SHIP2_IP", "10.200.0.12"),
        ("DEMO_SHIP3_IP", "10.200.0.13"),
        ("DEMO_INNER1_IP", "10.200.1.21"),
        ("DEMO_INNER2_IP", "10.200.1.22"),
        ("DEMO_BASTION_IP", "10.200.0.10"),
        ("DEMO_SHIP1_DOCKER_SOCKET", "/bed/ship1/docker.sock"),
        ("DEMO_SHIP2_DOCKER_SOCKET", "/bed/ship2/docker.sock"),
        ("DEMO_SHIP3_DOCKER_SOCKET", "/bed/ship3/docker.sock"),
        ("DEMO_INNER1_DOCKER_SOCKET", "/bed/inner1/docker.sock"),
        ("DEMO_INNER2_DOCKER_SOCKET", "/bed/inner2/docker.sock"),
        ("DEMO_IMAGE", "maestro-test:latest"),
        ("DEMO_REGISTRY", "10.200.0.1:5000"),
        ("DEMO_REGISTRY_USER", "maestro"),
        ("DEMO_REGISTRY_PASSWORD", "not-a-real-password"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The examples are templates over the DEMO_* variables; fixtures are plain MaestroNG files
/// (rendered with the process environment, as `maestro -f` does).
fn load_with(path: &str, extra: &[(&str, &str)]) -> config::Environment {
    let loaded = if path.starts_with("examples/") {
        let mut vars = demo_vars();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        std::fs::read_to_string(path)
            .map_err(|e| panic!("{path}: {e}"))
            .and_then(|text| config::load_str_with_vars(&text, path, Path::new("examples"), &vars))
    } else {
        config::load(Path::new(path))
    };
    match loaded {
        Ok(env) => env,
        Err(e) => panic!("{path} should load:\n{e}"),
    }
}

fn load(path: &str) -> config::Environment {
    load_with(path, &[])
}

/// Every example file, as `examples/NAME.yaml`.
fn examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir("examples")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|path| path.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_loads() {
    let files = examples();
    for file in &files {
        load(file);
    }
    assert!(
        files.len() >= 4,
        "expected the examples to be there, found {files:?}"
    );
}

/// What makes an example runnable on the test bed: every ship is one of the bed's, reached
/// over SSH with its key and known_hosts, at its Docker socket, and every container runs the
/// bed's image (no internet there).
#[test]
fn every_example_runs_on_the_bed_as_rendered() {
    let vars = demo_vars();
    let bed_ips: Vec<&str> = vars
        .iter()
        .filter(|(k, _)| k.ends_with("_IP") && *k != "DEMO_BASTION_IP")
        .map(|(_, v)| v.as_str())
        .collect();
    for file in examples() {
        let env = load(&file);
        assert!(!env.ships.is_empty(), "{file}");
        for ship in &env.ships {
            assert!(bed_ips.contains(&ship.ip.as_str()), "{file}: {}", ship.name);
            let socket = ship.socket_path.as_deref().unwrap_or_default();
            assert!(
                socket.starts_with("/bed/"),
                "{file}: {} at {socket}",
                ship.name
            );
            let ssh = ship.ssh.as_ref().unwrap_or_else(|| panic!("{file}: ssh"));
            assert_eq!(ssh.user.as_deref(), Some("root"), "{file}: {}", ship.name);
            assert_eq!(
                ssh.known_hosts_file.as_deref(),
                Some(Path::new("/bed/known_hosts"))
            );
            let inner = ship.ip.starts_with("10.200.1.");
            assert_eq!(
                inner,
                !ssh.jump.is_empty(),
                "{file}: {} and the bastion",
                ship.name
            );
        }
        for (_, instance) in env.instances() {
            assert_eq!(
                instance.image, "maestro-test:latest",
                "{file}: {}",
                instance.name
            );
        }
    }
}

#[test]
fn minimal_example() {
    let env = load("examples/minimal.yaml");
    assert_eq!(env.name, "minimal");
    assert_eq!(env.schema, 1);
    assert_eq!((env.ships.len(), env.services.len()), (1, 1));
    let (_, hello) = env.instance("hello-1").expect("hello-1");
    assert_eq!(hello.image, "maestro-test:latest");
    assert_eq!(hello.stop_timeout, 10);
    assert_eq!(
        hello.command,
        Some(CommandSpec::Exec(vec!["sleep".into(), "3600".into()]))
    );
    let ship = env.ship("ship1").expect("ship");
    assert_eq!(ship.timeout.as_secs(), 5);
    assert_eq!(ship.endpoint, "10.200.0.11");
    assert_eq!(ship.socket_path.as_deref(), Some("/bed/ship1/docker.sock"));
    let ssh = ship.ssh.as_ref().expect("over SSH");
    assert!(ssh.jump.is_empty());
    assert_eq!(ssh.known_hosts, KnownHostsPolicy::Strict);
}

/// The file of MaestroNG's README, verbatim, still loads (the runnable example took its place).
#[test]
fn maestrong_readme_file_schema_1_volumes_are_container_first() {
    let env = load("tests/fixtures/maestrong-readme.yaml");
    assert_eq!(env.schema, 1);
    let (_, zk) = env.instance("zk").expect("zk");
    assert_eq!(zk.volumes[0].container, "/var/lib/zookeeper");
    assert_eq!(zk.volumes[0].host, "/data/zookeeper");
    assert_eq!(zk.ports[0].exposed.start, 2181);
    assert_eq!(env.ship("vm2.ore1").map(|s| s.docker_port), Some(4244));
    assert_eq!(
        env.service("kafka").map(|s| s.requires.clone()),
        Some(vec!["zookeeper".to_owned()])
    );
}

#[test]
fn zookeeper_kafka_keeps_the_readme_shape() {
    let env = load("examples/zookeeper-kafka.yaml");
    assert_eq!(env.schema, 1);
    let (_, zk) = env.instance("zk-1").expect("zk-1");
    assert_eq!(zk.ship, "vm1.ore1");
    assert_eq!(
        zk.volumes[0].container, "/var/lib/zookeeper",
        "schema 1: container first"
    );
    assert_eq!(zk.volumes[0].host, "/srv/zookeeper");
    assert_eq!(zk.port("client").map(|p| p.exposed.start), Some(2181));
    assert!(matches!(zk.lifecycle.running[..], [Check::Tcp { ref port, .. }] if port == "client"));
    assert_eq!(
        env.service("kafka").map(|s| s.requires.clone()),
        Some(vec!["zookeeper".to_owned()])
    );
    let mut broker_ships = Vec::new();
    for (n, name) in ["kafka-1", "kafka-2"].iter().enumerate() {
        let (_, broker) = env.instance(name).expect("broker");
        let id = (n + 1).to_string();
        assert_eq!(broker.env.get("BROKER_ID"), Some(&id));
        assert_eq!(
            broker.port("broker").map(|p| p.exposed.start),
            Some(9092),
            "inherited"
        );
        assert!(
            matches!(broker.lifecycle.running[..], [Check::Tcp { ref port, .. }] if port == "broker")
        );
        assert_eq!(broker.volumes[0].container, "/var/lib/kafka");
        // The stand-in reaches zookeeper through the auto-configuration variables.
        let Some(CommandSpec::Exec(argv)) = &broker.command else {
            panic!("{name}: command {:?}", broker.command)
        };
        assert!(
            argv[2].contains("$ZOOKEEPER_ZK_1_HOST")
                && argv[2].contains("$ZOOKEEPER_ZK_1_CLIENT_PORT")
        );
        broker_ships.push(broker.ship.clone());
    }
    assert_eq!(
        broker_ships,
        ["vm2.ore1", "vm3.ore1"],
        "brokers on different ships"
    );
    let vars =
        maestro::orchestrate::plan::autoconf::container_env_of(&env, "kafka-1").expect("env");
    assert_eq!(
        vars.get("ZOOKEEPER_ZK_1_HOST").map(String::as_str),
        Some("10.200.0.11")
    );
    assert_eq!(
        vars.get("ZOOKEEPER_ZK_1_CLIENT_PORT").map(String::as_str),
        Some("2181")
    );

    // A real deployment names its images; the containers keep their place.
    let real = load_with(
        "examples/zookeeper-kafka.yaml",
        &[
            ("ZOOKEEPER_IMAGE", "zookeeper:3.4.5"),
            ("KAFKA_IMAGE", "kafka:latest"),
        ],
    );
    assert_eq!(
        real.instance("zk-1").map(|(_, i)| i.image.as_str()),
        Some("zookeeper:3.4.5")
    );
    assert_eq!(
        real.instance("kafka-2").map(|(_, i)| i.image.as_str()),
        Some("kafka:latest")
    );
}

#[test]
fn webapp_bastion_resolves_inheritance_and_ssh() {
    let env = load("examples/webapp-bastion.yaml");
    assert_eq!(env.schema, 2);
    for name in ["app1", "db1"] {
        let ship = env.ship(name).expect("ship");
        let ssh = ship.ssh.as_ref().expect("ssh from ship_defaults");
        assert_eq!(ssh.user.as_deref(), Some("root"));
        assert!(
            matches!(&ssh.jump[..], [JumpHost::Address { user: Some(u), host, .. }] if u == "root" && host == "10.200.0.10"),
            "{name} through the bastion: {:?}",
            ssh.jump
        );
        assert_eq!(ssh.known_hosts, KnownHostsPolicy::Strict);
        assert_eq!(ship.timeout.as_secs(), 10);
    }
    assert_eq!(env.ship("app1").map(|s| s.ip.as_str()), Some("10.200.1.21"));
    assert_eq!(env.ship("db1").and_then(|s| s.max_concurrency), Some(1));

    let (_, web) = env.instance("web-1").expect("web-1");
    assert_eq!(web.image, "maestro-test:latest");
    assert_eq!(web.env.get("WORKERS").map(String::as_str), Some("4"));
    assert_eq!(
        web.env.get("FEATURES").map(String::as_str),
        Some("search export")
    );
    let http = web.port("http").expect("inherited port");
    assert_eq!((http.exposed.start, http.external.start), (8080, 80));
    assert_eq!(http.protocol, Protocol::Tcp);
    assert!(
        matches!(web.lifecycle.running[0], Check::Http { ref path, max_wait: 120, .. } if path == "/health")
    );
    assert!(web.healthcheck.is_some());
    assert_eq!(web.labels.get("tier").map(String::as_str), Some("frontend"));
    assert_eq!(web.volumes[0].host, "/srv/webapp/config");
    assert_eq!(web.volumes[0].container, "/etc/webapp");
    assert_eq!(web.volumes[0].mode, VolumeMode::ReadOnly);
    assert_eq!(web.restart.and_then(|r| r.retries), Some(3));
    let vars = maestro::orchestrate::plan::autoconf::container_env_of(&env, "web-1").expect("env");
    assert_eq!(
        vars.get("POSTGRES_DB_HOST").map(String::as_str),
        Some("10.200.1.22")
    );
    assert_eq!(
        vars.get("POSTGRES_DB_SQL_PORT").map(String::as_str),
        Some("5432")
    );

    let (_, db) = env.instance("db").expect("db");
    assert_eq!(db.limits.memory, Some(1 << 30));
    assert_eq!(
        db.port("sql").and_then(|p| p.bind_ip.clone()).as_deref(),
        Some("10.200.1.22")
    );
    assert_eq!(db.stop_timeout, 30);

    // Images named after the registry's host are pulled with its credentials.
    let reg = env
        .registry_for_image("10.200.0.1:5000/webapp:1.4.2")
        .expect("registry by host");
    assert_eq!(reg.name, "private");
    assert_eq!(format!("{:?}", reg.password), "Some(***)");
    assert_eq!(reg.retry.attempts, 5);
}

#[test]
fn demo_has_three_ships_and_one_behind_a_bastion() {
    let env = load("examples/demo.yaml");
    assert_eq!(env.ships.len(), 4);
    let inner = env.ship("inner1").expect("inner1");
    let ssh = inner.ssh.as_ref().expect("ssh");
    assert_eq!(ssh.user.as_deref(), Some("root"));
    assert!(matches!(&ssh.jump[0], JumpHost::Address { host, .. } if host == "10.200.0.10"));
    assert!(env.instance("api-1").is_some() && env.instance("api-2").is_some());
    for (_, i) in env.instances() {
        assert_eq!(i.image, "maestro-test:latest");
    }
}

#[test]
fn maestrong_style_file_with_jinja_and_anchors() {
    let env = load("tests/fixtures/maestrong-jinja.yaml");
    assert_eq!(env.schema, 2);
    assert_eq!(env.ships.len(), 3, "ships come from the included file");
    let node2 = env.ship("node2").expect("node2");
    assert_eq!(node2.ip, "10.1.0.12");
    assert_eq!(node2.docker_port, 2376);
    assert_eq!(node2.timeout.as_secs(), 30);
    let tunnel = node2.ssh_tunnel.as_ref().expect("ssh_tunnel from defaults");
    assert_eq!((tunnel.user.as_str(), tunnel.port), ("ops", 22));
    let ssh = node2.ssh.as_ref().expect("ssh derived from ssh_tunnel");
    assert_eq!(ssh.user.as_deref(), Some("ops"));
    assert!(ssh.identity_files[0].ends_with(".ssh/id_rsa"));

    let (_, zk2) = env.instance("zk-2").expect("zk-2 from the loop");
    assert_eq!(zk2.env.get("ZOOKEEPER_ID").map(String::as_str), Some("2"));
    assert_eq!(
        zk2.env.get("ZOOKEEPER_SERVERS").map(String::as_str),
        Some("zk-1 zk-2 zk-3")
    );
    assert_eq!(zk2.env.get("LOG_LEVEL").map(String::as_str), Some("info"));
    assert_eq!(zk2.limits.memory, Some(2 << 30));
    assert_eq!(zk2.limits.swap, Some(512 << 20));
    assert_eq!(zk2.ports.len(), 3);
    assert_eq!(zk2.lifecycle.running.len(), 1);
    assert_eq!(zk2.volumes[0].host, "/var/lib/zookeeper/2");

    let (_, b1) = env.instance("broker-1").expect("broker-1");
    assert_eq!(b1.env.get("HEAP").map(String::as_str), Some("4g"));
    assert_eq!(b1.limits.memory, Some(6 << 30), "merge key overridden");
    assert_eq!(b1.limits.swap, Some(512 << 20));
    assert_eq!(
        b1.port("jmx").map(|p| (p.exposed.start, p.external.start)),
        Some((7199, 17200))
    );
    assert_eq!(b1.restart.and_then(|r| r.retries), Some(5));
    assert_eq!(b1.ulimits.len(), 2);
    assert_eq!(b1.labels.get("broker").map(String::as_str), Some("1"));
    assert!(matches!(b1.lifecycle.pre_stop[0], Check::Sleep { wait } if wait == 2.0));

    let (monitor, m) = env.instance("monitor-1").expect("monitor-1");
    assert!(monitor.omit);
    assert_eq!(m.extra_hosts[0].address, "10.1.0.12");
    assert_eq!(m.port("stats").map(|p| p.protocol), Some(Protocol::Udp));
    assert_eq!(
        m.port("ui").and_then(|p| p.bind_ip.clone()).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        m.command,
        Some(CommandSpec::Shell("/bin/monitor --all".into()))
    );
    assert_eq!(m.networks[0].aliases, vec!["mon".to_owned()]);
    assert_eq!(env.audit[0].kind(), "log");
    assert!(env.audit[0].ignore_errors);
}

/// MaestroNG's shipped ZooKeeper + Kafka example in shape: `.items()`, `list.append` in a
/// `{% set %}`, `'{}:{}'.format()` (it failed with "map has no method named items" before).
#[test]
fn maestrong_zookeeper_kafka_example_loads() {
    let env = load("tests/fixtures/maestrong-zookeeper-kafka.yaml");
    assert_eq!(env.name, "zk-kafka");
    assert_eq!(env.ship("docker1").map(|s| s.docker_port), Some(4243));
    let (_, zk2) = env.instance("zk-node-2").expect("zk-node-2");
    assert_eq!(
        zk2.env.get("ZOOKEEPER_SERVER_IDS").map(String::as_str),
        Some("zk-node-1:1,zk-node-2:2,zk-node-3:3")
    );
    assert_eq!(zk2.env.get("SERVER_ID").map(String::as_str), Some("2"));
    assert_eq!(
        zk2.port("client")
            .map(|p| (p.exposed.start, p.external.start)),
        Some((2181, 2182))
    );
    let (_, k3) = env.instance("kafka-3").expect("kafka-3");
    assert_eq!(k3.port("broker").map(|p| p.external.start), Some(9094));
    assert_eq!(
        k3.env.get("ZOOKEEPER_BASE").map(String::as_str),
        Some("/zk-kafka/kafka"),
        "the loop's `name` does not leak out of the loop"
    );
    assert_eq!(k3.stop_timeout, 60);
    assert_eq!(env.instances().count(), 7);
}

/// Every Python idiom maestro supports in templates, with the values Jinja2 renders (the
/// rendered text of this file was compared byte for byte with Jinja2 3.1's).
#[test]
fn maestrong_python_idioms_render_as_jinja2() {
    let env = load("tests/fixtures/maestrong-python-idioms.yaml");
    assert_eq!(env.name, "python-idioms");
    let ships: Vec<(&str, &str)> = env
        .ships
        .iter()
        .map(|s| (s.name.as_str(), s.ip.as_str()))
        .collect();
    assert_eq!(
        ships,
        [
            ("node1", "10.2.0.11"),
            ("node2", "10.2.0.12"),
            ("node3", "10.2.0.13")
        ]
    );
    let zk = env.service("zookeeper").expect("zookeeper");
    let (_, zk1) = env.instance("zk-1").expect("zk-1");
    assert_eq!(zk1.image, "registry.example.com:5000/zookeeper:3.4");
    let get = |k: &str| zk1.env.get(k).map(String::as_str);
    for (key, value) in [
        ("BANNER", "included"),
        ("SERVERS", "node1,node2,node3"),
        ("FIRST_UPPER", "NODE1"),
        ("IS_NODE", "True"),
        ("ENDS_3", "True"),
        ("TITLE", "Zoo Keeper"),
        ("CAP", "Zookeeper"),
        ("REPLACED", "a_b_c"),
        ("LSTRIP", "x--"),
        ("RSTRIP", "--x"),
        ("COUNT_E", "3"),
        ("FIND_K", "3"),
        ("DIGITS", "True"),
        ("PADDED", "   42|ab   |3.14|100%"),
        ("NAMED", "a-b-a/c"),
        ("PORT_LIST", "client peer election"),
        ("PORT_SUM", "8957"),
        ("MISSING", "None"),
        ("JMX", "7199"),
        ("UNSET", "None"),
        ("ID", "1"),
        ("EVEN", "False"),
    ] {
        assert_eq!(get(key), Some(value), "{key}");
    }
    assert_eq!(zk.instances.len(), 3);
    let (_, zk2) = env.instance("zk-2").expect("zk-2");
    assert_eq!(zk2.env.get("EVEN").map(String::as_str), Some("True"));
    let ports: Vec<(&str, u16)> = zk2
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.exposed.start))
        .collect();
    assert_eq!(
        ports,
        [("client", 2181), ("peer", 2888), ("election", 3888)],
        "dict order as written"
    );
}

#[test]
fn envfiles_merge_in_maestrong_precedence() {
    let env = load("tests/fixtures/envfiles.yaml");
    let (_, app) = env.instance("app-1").expect("app-1");
    let get = |k: &str| app.env.get(k).map(String::as_str);
    assert_eq!(get("A"), Some("from-service-env"));
    assert_eq!(get("B"), Some("from-instance-file"));
    assert_eq!(get("C"), Some("exported"));
    assert_eq!(get("D"), Some("from-instance-env"));
    assert_eq!(
        get("E"),
        Some("1.0"),
        "numbers print as MaestroNG (Python) prints them"
    );
    assert_eq!(get("F"), Some("True"));
}

#[test]
fn plan_and_deptree_on_examples() {
    use maestro::orchestrate::plan::select::{self, Graph, Selection};
    let mut files = examples();
    files.extend([
        "tests/fixtures/maestrong-readme.yaml".to_owned(),
        "tests/fixtures/maestrong-jinja.yaml".to_owned(),
        "tests/fixtures/maestrong-zookeeper-kafka.yaml".to_owned(),
        "tests/fixtures/maestrong-python-idioms.yaml".to_owned(),
    ]);
    for file in &files {
        let env = load(file);
        let graph = Graph::new(&env);
        assert!(graph.topological_order().is_ok(), "{file}");
        let plan = select::select(&env, &graph, &Selection::default()).expect("plan");
        assert!(!plan.is_empty(), "{file}");
        for (i, step) in plan.steps.iter().enumerate() {
            assert!(step.deps.iter().all(|d| *d < i), "{file}: deps come first");
        }
        assert!(
            !select::render_deptree(&env, &[], true)
                .expect("deptree")
                .is_empty()
        );
    }
    let env = load("tests/fixtures/maestrong-readme.yaml");
    assert_eq!(
        select::render_deptree(&env, &["kafka".into()], true).expect("deptree"),
        "kafka (kafka-broker on vm2.ore1)\n└── zookeeper\n"
    );
    let env = load("examples/zookeeper-kafka.yaml");
    assert_eq!(
        select::render_deptree(&env, &["kafka".into()], true).expect("deptree"),
        "kafka (kafka-1 on vm2.ore1, kafka-2 on vm3.ore1)\n└── zookeeper\n"
    );
    let env = load("examples/demo.yaml");
    let graph = Graph::new(&env);
    let plan = select::select(&env, &graph, &Selection::default()).expect("plan");
    let order: Vec<&str> = plan.instances().collect();
    assert_eq!(order, vec!["store-1", "api-1", "api-2", "frontend-1"]);
}

/// A large environment loads and plans in reasonable time (quadratic work would show here).
#[test]
fn large_environment_loads_and_plans_quickly() {
    use maestro::orchestrate::plan::select::{self, Graph, Selection};
    let mut text = String::from("name: big\nships:\n");
    for s in 0..50 {
        text.push_str(&format!("  ship{s}: {{ip: 10.0.{s}.1}}\n"));
    }
    text.push_str("services:\n");
    for svc in 0..400 {
        text.push_str(&format!("  svc{svc}:\n    image: img:{svc}\n"));
        if svc > 0 {
            text.push_str(&format!("    requires: [svc{}]\n", svc - 1));
        }
        text.push_str("    instances:\n");
        for i in 0..5 {
            let port = 10000 + svc * 5 + i;
            text.push_str(&format!(
                "      svc{svc}-{i}: {{ship: ship{}, ports: {{p: {port}}}}}\n",
                (svc + i) % 50
            ));
        }
    }
    let started = std::time::Instant::now();
    let env = config::load_str(&text, "big.yaml", Path::new(".")).expect("loads");
    println!("loaded in {:?}", started.elapsed());
    let graph = Graph::new(&env);
    let plan = select::select(&env, &graph, &Selection::default()).expect("plan");
    assert_eq!(plan.steps.len(), 2000);
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 20, "took {elapsed:?}");
    println!("2000 instances loaded and planned in {elapsed:?}");
}

#[test]
fn dump_masks_secrets() {
    let env = load("examples/webapp-bastion.yaml");
    let dumped = serde_json::to_string(&env).expect("serializes");
    assert!(dumped.contains("\"password\":\"***\""), "{dumped}");
    assert!(!dumped.contains("not-a-real-password"));
    assert!(!format!("{env:?}").contains("not-a-real-password"));
    // What `maestro dump` prints, in both forms.
    for text in [
        config::to_schema2_yaml(&env, config::Reveal::Masks).expect("yaml"),
        config::to_schema2_json(&env, config::Reveal::Masks).expect("json"),
    ] {
        assert!(text.contains("***"), "{text}");
        assert!(!text.contains("not-a-real-password"), "{text}");
    }
    let shown = config::to_schema2_yaml(&env, config::Reveal::Secrets).expect("yaml");
    assert!(shown.contains("password: not-a-real-password"), "{shown}");
}

#[test]
fn a_null_env_value_unsets_the_variable_as_in_maestrong() {
    let env = maestro::config::load_str(
        "name: t\nships: {a: {ip: 10.0.0.1}}\nservices:\n  web:\n    image: x\n    env: {KEEP: 1, DROP: gone, LATER: null}\n    instances:\n      web-1: {ship: a, env: {DROP: null, LATER: back, EMPTY: ''}}\n",
        "t.yaml",
        std::path::Path::new("."),
    )
    .expect("loads");
    let (_, web) = env.instance("web-1").expect("web-1");
    // The instance's null wins over the service's value, and a later value over a null.
    assert_eq!(web.unset_env.iter().collect::<Vec<_>>(), ["DROP"]);
    assert_eq!(web.env.get("LATER").map(String::as_str), Some("back"));
    assert_eq!(web.env.get("EMPTY").map(String::as_str), Some(""));
    assert!(!web.env.contains_key("DROP"));
}

/// A newcomer runs `maestro -f examples/X.yaml validate` before setting anything: every
/// example validates with no DEMO_* variable set (their defaults are placeholders).
#[test]
fn every_example_validates_as_it_is() {
    let home = tempfile::tempdir().expect("temp home");
    for entry in std::fs::read_dir("examples").expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = common::maestro(home.path())
            .arg("-f")
            .arg(&path)
            .arg("validate")
            .output()
            .expect("run maestro");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every file of examples/ and tests/fixtures/ (and its parity/ directory when present), in
/// name order; those that do not load on their own (included pieces, envfiles, deliberately
/// broken files) are left out by the caller.
fn every_environment_file() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["examples", "tests/fixtures", "tests/fixtures/parity"] {
        let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
        let mut here: Vec<String> = entries
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .map(|path| path.display().to_string())
            .collect();
        here.sort();
        files.extend(here);
    }
    files
}

/// `maestro dump` writes a file that loads again into the same environment (apart from where
/// it was read from, and the schema, always 2) and the same start order, for every example
/// and fixture.
#[test]
fn dump_reloads_into_the_same_environment_and_start_order() {
    use maestro::orchestrate::plan::spec;
    let mut round_trips = 0;
    for file in every_environment_file() {
        let vars = demo_vars();
        let original = if file.starts_with("examples/") {
            let text = std::fs::read_to_string(&file).expect("readable");
            config::load_str_with_vars(&text, &file, Path::new("examples"), &vars)
        } else {
            config::load(Path::new(&file))
        };
        let Ok(original) = original else {
            println!("{file}: does not load on its own, left out");
            continue;
        };
        let written = config::to_schema2_yaml(&original, config::Reveal::Secrets)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let reloaded = config::load_str_with_vars(&written, "dump.yaml", &original.base_dir, &vars)
            .unwrap_or_else(|e| panic!("{file}: the dump does not load:\n{e}\n{written}"));
        let mut expected = original.clone();
        expected.source = reloaded.source.clone();
        expected.schema = 2;
        assert_eq!(
            reloaded, expected,
            "{file}: the dump reloads differently:\n{written}"
        );
        let order = |env: &config::Environment| {
            spec::start_order(env).unwrap_or_else(|e| panic!("{file}: {e}"))
        };
        assert_eq!(order(&reloaded), order(&original), "{file}: start order");
        // The JSON form is the same document.
        let json = config::to_schema2_json(&original, config::Reveal::Secrets).expect("json");
        let as_json: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(as_json["name"], serde_json::json!(original.name), "{file}");
        round_trips += 1;
    }
    assert!(round_trips >= 9, "only {round_trips} files round-tripped");
}
