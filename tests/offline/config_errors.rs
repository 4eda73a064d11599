//! Every kind of bad input gets a message that says where and what: file, line, field path
//! and, for misspellings, a suggestion. These tests check the message itself.

use crate::common;

use std::io::Write;
use std::path::PathBuf;

use maestro::config::{self, ConfigError};

const SHIPS: &str = "ships:\n  ship1: {ip: 10.0.0.1}\n  ship2: {ip: 10.0.0.2}\n";

/// Writes `text` as `env.yaml` in a fresh directory and loads it; returns the error.
fn load_err(text: &str) -> (ConfigError, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(&path, text).expect("write");
    match config::load(&path) {
        Ok(env) => panic!("expected an error, got {env:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            (e, msg)
        }
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in:\n{msg}");
    }
}

#[test]
fn missing_file() {
    let path = PathBuf::from("/nonexistent/dir/maestro.yaml");
    let err = config::load(&path).expect_err("error");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert_eq!(err.exit_code(), 2);
    assert_has(
        &err.to_string(),
        &[
            "cannot read environment file /nonexistent/dir/maestro.yaml",
            "No such file",
        ],
    );
}

#[test]
fn empty_file() {
    let (_, msg) = load_err("");
    assert_has(&msg, &["env.yaml", "the environment file is empty"]);
    let (_, msg) = load_err("# only a comment\n\n");
    assert_has(&msg, &["the environment file is empty"]);
}

#[test]
fn non_mapping_document() {
    let (_, msg) = load_err("- a\n- b\n");
    assert_has(
        &msg,
        &[
            "env.yaml:1:1",
            "must be a mapping with `name`, `ships` and `services`, found a list",
        ],
    );
    let (_, msg) = load_err("just a string\n");
    assert_has(&msg, &["found a string"]);
}

#[test]
fn malformed_yaml() {
    let (err, msg) = load_err("name: x\nships: {a: [1, 2\n");
    assert!(matches!(err, ConfigError::Yaml(_)));
    assert_has(&msg, &["invalid YAML", "env.yaml:2:"]);
}

#[test]
fn duplicate_key() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  web:\n    image: a\n    image: b\n    instances: {{}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "env.yaml:8:5",
            "duplicate mapping key: image",
            "may appear only once",
            "^^^^^",
        ],
    );
}

#[test]
fn alias_bomb() {
    let mut text = String::from("name: x\nships: {}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let (err, msg) = load_err(&text);
    assert!(matches!(err, ConfigError::Yaml(_)), "{msg}");
    assert_has(&msg, &["alias", "env.yaml:"]);
}

#[test]
fn huge_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.yaml");
    let mut f = std::fs::File::create(&path).expect("create");
    let line = format!("# {}\n", "x".repeat(1022));
    for _ in 0..(10 * 1024 + 1) {
        f.write_all(line.as_bytes()).expect("write");
    }
    drop(f);
    let err = config::load(&path).expect_err("error");
    assert!(matches!(err, ConfigError::TooLarge { .. }));
    assert_has(&err.to_string(), &["big.yaml", "limited to 10 MB"]);
}

#[test]
fn wrong_type() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  web:\n    image: a\n    instances:\n      web1:\n        ship: ship1\n        privileged: [yes]\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "env.yaml:11:21",
            "expected true or false, found a list",
            "field: services.web.instances.web1.privileged",
        ],
    );
}

#[test]
fn template_undefined_variable() {
    let (err, msg) =
        load_err("name: x\nships:\n  a: {ip: \"{{ env.MAESTRO_SURELY_UNSET_VAR }}\"}\n");
    assert!(matches!(err, ConfigError::Template(_)));
    assert_has(
        &msg,
        &["env.yaml:3:", "undefined value", "MAESTRO_SURELY_UNSET_VAR"],
    );
}

#[test]
fn template_syntax_error() {
    let (_, msg) = load_err("name: x\n{% if %}\n");
    assert_has(&msg, &["env.yaml:2:", "template syntax error"]);
}

#[test]
fn missing_required_keys() {
    let (_, msg) = load_err(&format!("{SHIPS}services: {{}}\n"));
    assert_has(&msg, &["missing the required key `name`"]);
    let (_, msg) = load_err("name: x\nservices: {}\n");
    assert_has(&msg, &["missing the required key `ships`"]);
    let (_, msg) = load_err(&format!(
        "name: x\n{SHIPS}services:\n  web:\n    instances: {{}}\n"
    ));
    assert_has(
        &msg,
        &[
            "service `web` is missing the required key `image`",
            "env.yaml:6:3",
            "field: services.web",
        ],
    );
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  web:\n    image: a\n    instances:\n      web1:\n        ship: ship1\n        volums: {{}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "unknown key `volums` in instance `web1`",
            "env.yaml:11:9",
            "field: services.web.instances.web1.volums",
            "did you mean `volumes`?",
            "^^^^^^",
        ],
    );
    let (_, msg) = load_err("name: x\nships:\n  a: {ip: 1.2.3.4, dockr_port: 1}\n");
    assert_has(
        &msg,
        &[
            "unknown key `dockr_port` in ship `a`",
            "did you mean `docker_port`?",
        ],
    );
}

#[test]
fn unknown_top_level_keys_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(&path, "name: x\nanchors: {a: 1}\nships: {}\n").expect("write");
    assert!(config::load(&path).is_ok());
}

#[test]
fn unknown_ship_suggests() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  web:\n    image: a\n    instances:\n      web1: {{ship: shipp1}}\n"
    );
    let (err, msg) = load_err(&text);
    assert!(matches!(err, ConfigError::Semantic(_)));
    assert_has(
        &msg,
        &[
            "unknown ship `shipp1`",
            "env.yaml:9:20",
            "field: services.web.instances.web1.ship",
            "did you mean `ship1`?",
        ],
    );
}

#[test]
fn unknown_required_service_suggests() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  kafka:\n    image: a\n    instances: {{k1: {{ship: ship1}}}}\n  web:\n    image: b\n    requires: [kafak]\n    instances: {{w1: {{ship: ship1}}}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "unknown service `kafak` in `requires`",
            "env.yaml:11:16",
            "field: services.web.requires[0]",
            "did you mean `kafka`?",
        ],
    );
}

#[test]
fn dependency_cycle_is_printed() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    requires: [b]\n    instances: {{a1: {{ship: ship1}}}}\n  b:\n    image: b\n    requires: [a]\n    instances: {{b1: {{ship: ship1}}}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "dependency cycle: a -> b -> a",
            "env.yaml:8:16",
            "field: services.a.requires[0]",
        ],
    );
}

#[test]
fn instance_cycle_through_links_is_printed() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances: {{a1: {{ship: ship1, links: [b1]}}}}\n  b:\n    image: b\n    instances: {{b1: {{ship: ship1, volumes_from: a1}}}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &["dependency cycle between instances: a1 -> b1 -> a1"],
    );
}

#[test]
fn duplicate_instance_names_across_services() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      same: {{ship: ship1}}\n  b:\n    image: b\n    instances:\n      same: {{ship: ship2}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "duplicate instance name `same`",
            "already an instance of service `a`",
            "env.yaml:13:7",
            "field: services.b.instances.same",
        ],
    );
}

#[test]
fn host_port_published_twice_on_one_ship() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1: {{ship: ship1, ports: {{http: \"80:8080\"}}}}\n      a2: {{ship: ship2, ports: {{http: \"80:8080\"}}}}\n  b:\n    image: b\n    instances:\n      b1:\n        ship: ship1\n        ports:\n          web: 8080\n          dns: 53/udp\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "host port 8080/tcp on ship `ship1` is published by both `a1` (port `http`) and `b1` (port `web`)",
            "env.yaml:17:16",
            "field: services.b.instances.b1.ports.web",
        ],
    );
    assert!(!msg.contains("a2"), "{msg}");
}

#[test]
fn invalid_port_specs() {
    let base = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n        ports:\n"
    );
    let (_, msg) = load_err(&format!("{base}          http: \"80:abc\"\n"));
    assert_has(
        &msg,
        &[
            "invalid port spec \"80:abc\" for port `http`",
            "\"abc\" is not a port number",
            "env.yaml:12:17",
            "field: services.a.instances.a1.ports.http",
        ],
    );
    let (_, msg) = load_err(&format!("{base}          dns: \"53/udp:53/tcp\"\n"));
    assert_has(&msg, &["protocols do not match"]);
    let (_, msg) = load_err(&format!("{base}          big: 70000\n"));
    assert_has(&msg, &["port 70000 is out of range"]);
    let (_, msg) = load_err(&format!(
        "{base}          long: {{exposed: 80, external: [not-an-ip, 80]}}\n"
    ));
    assert_has(&msg, &["\"not-an-ip\" is not an IP address"]);
}

#[test]
fn invalid_volume_specs() {
    let base = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n        volumes:\n"
    );
    let (_, msg) = load_err(&format!("{base}          data: /srv/data\n"));
    assert_has(
        &msg,
        &[
            "invalid volume: container path \"data\" must be absolute",
            "schema 1",
            "env.yaml:12:11",
            "field: services.a.instances.a1.volumes.data",
        ],
    );
    let (_, msg) = load_err(&format!(
        "{base}          /data: {{target: /srv, mode: rx}}\n"
    ));
    assert_has(&msg, &["invalid volume mode \"rx\""]);
    let (_, msg) = load_err(&format!("{base}          /data: ./relative\n"));
    assert_has(
        &msg,
        &["host path \"./relative\" must be absolute or a volume name"],
    );
}

#[test]
fn invalid_restart_specs() {
    let base = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n"
    );
    let (_, msg) = load_err(&format!("{base}        restart: allways\n"));
    assert_has(
        &msg,
        &[
            "invalid restart policy \"allways\"",
            "did you mean `always`?",
            "env.yaml:11:18",
        ],
    );
    let (_, msg) = load_err(&format!("{base}        restart: on-failure:x\n"));
    assert_has(&msg, &["retries must be a whole number"]);
    let (_, msg) = load_err(&format!(
        "{base}        restart: {{name: always, retries: 3}}\n"
    ));
    assert_has(&msg, &["retries are only allowed with on-failure"]);
}

#[test]
fn invalid_size_specs() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    limits: {{memory: 12q}}\n    instances:\n      a1: {{ship: ship1}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "invalid size \"12q\"",
            "env.yaml:8:22",
            "field: services.a.limits.memory",
        ],
    );
}

#[test]
fn volumes_from_must_be_on_the_same_ship_and_known() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  data:\n    image: a\n    instances:\n      data1: {{ship: ship1}}\n  app:\n    image: b\n    instances:\n      app1: {{ship: ship2, volumes_from: [data1, dat2]}}\n"
    );
    let (err, msg) = load_err(&text);
    assert_eq!(err.diagnostics().len(), 2, "{msg}");
    assert_has(
        &msg,
        &[
            "volumes_from: instance `data1` runs on ship `ship1`, but `app1` runs on `ship2`",
            "volumes_from: unknown instance `dat2`",
            "did you mean `data1`?",
            "field: services.app.instances.app1.volumes_from[1]",
            "2 errors found",
        ],
    );
}

/// As in MaestroNG, a link to a container that is not an instance of the file loads (Docker
/// links the container of that name on the ship, if there is one), with a warning that says a
/// near-miss of an instance; a link to itself is refused.
#[test]
fn links_to_containers_outside_the_file_load_with_a_warning() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  app:\n    image: b\n    instances:\n      app1:\n        ship: ship1\n        links: {{dbb: db, legacy-cache: cache}}\n  db:\n    image: d\n    instances:\n      db1: {{ship: ship1}}\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(&path, text).expect("write");
    let env = config::load(&path).expect("loads");
    let warnings: Vec<String> = env.warnings.0.iter().map(|w| w.as_warning()).collect();
    let all = warnings.join("\n");
    assert_eq!(warnings.len(), 2, "{all}");
    assert_has(
        &all,
        &[
            "warning: links: `dbb` is not an instance of this file: it is passed to Docker as it is",
            "env.yaml:11:",
            "did you mean `db1`? (an instance of this file)",
            "links: `legacy-cache` is not an instance of this file",
            "`maestro plan` says whether it does",
        ],
    );
    let app = env.services.iter().find(|s| s.name == "app").expect("app");
    assert_eq!(app.instances[0].links.len(), 2);
    let (_, msg) = load_err(&format!(
        "name: x\n{SHIPS}services:\n  app:\n    image: b\n    instances:\n      app1: {{ship: ship1, links: [app1]}}\n"
    ));
    assert_has(&msg, &["links: `app1` cannot link to itself"]);
}

#[test]
fn lifecycle_checks_are_validated() {
    let base = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n        ports: {{http: 80}}\n        lifecycle:\n          running:\n"
    );
    let (_, msg) = load_err(&format!("{base}            - {{type: tpc, port: http}}\n"));
    assert_has(
        &msg,
        &[
            "unknown lifecycle check type \"tpc\"",
            "did you mean `tcp`?",
            "env.yaml:14:",
        ],
    );
    let (_, msg) = load_err(&format!("{base}            - {{type: tcp, port: htp}}\n"));
    assert_has(
        &msg,
        &[
            "uses port `htp`, which is not one of its named ports",
            "did you mean `http`?",
        ],
    );
    let (_, msg) = load_err(&format!(
        "{base}            - {{type: http, port: http, max_wiat: 3}}\n"
    ));
    assert_has(
        &msg,
        &[
            "unknown key `max_wiat` in a http check",
            "did you mean `max_wait`?",
        ],
    );
}

#[test]
fn schema_and_ship_defaults_are_checked() {
    let (_, msg) = load_err("__maestro: {schema: 3}\nname: x\nships: {}\n");
    assert_has(
        &msg,
        &["unsupported schema 3 (expected 1 or 2)", "env.yaml:1:21"],
    );
    let (_, msg) = load_err("name: x\nship_defaults: {ip: 1.2.3.4}\nships: {}\n");
    assert_has(
        &msg,
        &["`ip` cannot have a default", "field: ship_defaults.ip"],
    );
    let (_, msg) = load_err("name: x\nship_defaults: {timeout: soon}\nships: {a: {ip: 1.2.3.4}}\n");
    assert_has(
        &msg,
        &["invalid duration \"soon\"", "field: ship_defaults.timeout"],
    );
}

#[test]
fn missing_envfile_points_at_the_envfile_entry() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    envfile: missing.env\n    instances:\n      a1: {{ship: ship1}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "cannot read envfile",
            "missing.env",
            "env.yaml:8:14",
            "field: services.a.envfile",
        ],
    );
}

#[test]
fn misspelt_top_level_section_is_not_silently_ignored() {
    let (_, msg) = load_err("name: x\nships: {}\nservics:\n  web: {image: a, instances: {}}\n");
    assert_has(
        &msg,
        &[
            "unknown top-level key `servics`",
            "env.yaml:3:1",
            "did you mean `services`?",
        ],
    );
}

#[test]
fn a_key_that_holds_anchors_beside_the_section_it_resembles_is_left_alone() {
    // MaestroNG's documentation parks anchors under `ship:` beside `ships:`.
    let env = maestro::config::load_str(
        "name: x\nship: &defaults {docker_port: 4243}\nships:\n  a: {ip: 10.0.0.1, <<: *defaults}\nservices: {}\n",
        "env.yaml",
        std::path::Path::new("."),
    )
    .expect("loads");
    assert_eq!(env.ships[0].docker_port, 4243);
    // When the section it resembles most is absent, such a key is the typo it looks like.
    let (_, msg) = load_err(&format!("name: x\n{SHIPS}services: {{}}\naudits: []\n"));
    assert_has(
        &msg,
        &["unknown top-level key `audits`", "did you mean `audit`?"],
    );
}

#[test]
fn missing_include_is_located() {
    let (err, msg) = load_err("name: x\n{% include \"nowhere.yaml\" %}\nships: {}\n");
    assert!(matches!(err, ConfigError::Template(_)));
    assert_has(&msg, &["env.yaml:2:", "template error", "nowhere.yaml"]);
}

/// Python idioms that fail still point at the line, also past a line the `%` rewrite touched
/// and inside an included file.
#[test]
fn python_idiom_errors_are_located() {
    let (err, msg) = load_err(
        "name: x\nport: \"{{ '%d' %\n  'not a number' }}\"\nb: {{ 'x'.nosuchmethod() }}\n",
    );
    assert!(matches!(err, ConfigError::Template(_)));
    assert_has(&msg, &["env.yaml:2:", "template error"]);
    let (_, msg) = load_err("name: x\nport: \"{{ '%s' % 1 }}\"\nb: {{ 'x'.nosuchmethod() }}\n");
    assert_has(&msg, &["env.yaml:3:", "nosuchmethod"]);
    let (_, msg) = load_err("name: x\na: {{ (1, 2).append(3) }}\n");
    assert_has(&msg, &["env.yaml:2:", "cannot append"]);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("part.yaml"),
        "a: 1\nb: {{ {'k': 1}.pop('k') }}\n",
    )
    .expect("write");
    let path = dir.path().join("env.yaml");
    std::fs::write(&path, "name: x\n{% include 'part.yaml' %}\n").expect("write");
    let msg = config::load(&path).expect_err("error").to_string();
    assert_has(&msg, &["part.yaml:2:", "pop"]);
}

#[test]
fn bad_envfile_line_names_the_envfile_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.env"), "OK=1\nnot a pair\n").expect("write");
    let path = dir.path().join("env.yaml");
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1: {{ship: ship1, envfile: bad.env}}\n"
    );
    std::fs::write(&path, text).expect("write");
    let msg = config::load(&path).expect_err("error").to_string();
    assert_has(
        &msg,
        &[
            "bad.env:2: expected KEY=VALUE, found \"not a pair\"",
            "env.yaml:9:",
            "field: services.a.instances.a1.envfile",
        ],
    );
}

#[test]
fn unknown_key_in_ssh_block() {
    let (_, msg) =
        load_err("name: x\nships:\n  a:\n    ip: 1.2.3.4\n    ssh: {user: root, jumps: [b]}\n");
    assert_has(
        &msg,
        &[
            "unknown key `jumps` in `ssh`",
            "env.yaml:5:23",
            "did you mean `jump`?",
            "field: ships.a.ssh.jumps",
        ],
    );
}

#[test]
fn unknown_jump_ship_or_bad_address() {
    let (_, msg) = load_err(
        "name: x\nships:\n  bastion: {ip: 1.2.3.4}\n  a: {ip: 1.2.3.5, ssh: {jump: [\"bad host\"]}}\n",
    );
    assert_has(&msg, &["invalid jump host \"bad host\"", "env.yaml:4:33"]);
    let (_, msg) = load_err("name: x\nships:\n  a: {ip: 1.2.3.5, ssh: {jump: a}}\n");
    assert_has(
        &msg,
        &[
            "ship `a` cannot be its own jump host",
            "give `a` `ssh: {jump: []}`",
        ],
    );
}

/// `ssh` is maestro's own key: a ship's block is merged key by key with `ship_defaults`' one
/// (MaestroNG's keys are still replaced whole), and `jump: []` makes the bastion direct.
#[test]
fn ship_ssh_is_merged_with_the_defaults_key_by_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        concat!(
            "name: x\n",
            "ship_defaults:\n",
            "  timeout: 10\n",
            "  ssh: {user: deploy, port: 2222, jump: [bastion]}\n",
            "ships:\n",
            "  bastion: {ip: 10.0.0.1, ssh: {jump: []}}\n",
            "  app: {ip: 10.0.1.1, ssh: {port: 22}}\n",
            "  db: {ip: 10.0.1.2, timeout: 3}\n",
        ),
    )
    .expect("write");
    let env = config::load(&path).expect("loads");
    let ship = |name: &str| {
        env.ships
            .iter()
            .find(|s| s.name == name)
            .expect("ship")
            .clone()
    };
    let ssh = |name: &str| ship(name).ssh.expect("ssh");
    assert_eq!(ssh("app").user.as_deref(), Some("deploy"));
    assert_eq!(ssh("app").port, 22, "the ship's own key wins");
    assert_eq!(ssh("app").jump.len(), 1, "the default jump host is kept");
    assert_eq!(ssh("bastion").user.as_deref(), Some("deploy"));
    assert!(ssh("bastion").jump.is_empty(), "jump: [] is direct");
    assert_eq!(ship("db").timeout, std::time::Duration::from_secs(3));
}

#[test]
fn instance_names_that_maestro_gives_its_own_containers_are_refused() {
    for (name, why) in [
        (
            "web-1.replaced",
            "ends in `.replaced`, which maestro gives the containers it keeps for `rollback`",
        ),
        ("web-1.previous", "ends in `.previous`"),
        (
            "maestro-lock.x.ship1",
            "starts with `maestro-lock.`, which names maestro's deploy lock",
        ),
    ] {
        let text = format!(
            "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      {name}: {{ship: ship1}}\n"
        );
        let (_, msg) = load_err(&text);
        assert_has(
            &msg,
            &[
                &format!("invalid instance name `{name}`"),
                why,
                "rename the instance",
                "env.yaml:9:7",
            ],
        );
    }
}

#[test]
fn instance_names_must_be_valid_container_names() {
    let text = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      \"web 1\": {{ship: ship1}}\n"
    );
    let (_, msg) = load_err(&text);
    assert_has(
        &msg,
        &[
            "invalid instance name `web 1`",
            "env.yaml:9:7",
            "field: services.a.instances.web 1",
        ],
    );
}

#[test]
fn https_check_verify_takes_true_false_or_a_ca_file() {
    let base = format!(
        "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n        ports: {{https: 443}}\n        lifecycle:\n          running:\n"
    );
    let check = |options: &str| {
        format!(
            "{base}            - {{type: http, scheme: https, port: https, requests_options: {options}}}\n"
        )
    };
    let (_, msg) = load_err(&check("{verify: 3}"));
    assert_has(
        &msg,
        &[
            "env.yaml:14:",
            "field: services.a.instances.a1.lifecycle.running[0].requests_options.verify",
            "expected true, false or the path of a PEM file of CA certificates, found an integer",
        ],
    );
    let (_, msg) = load_err(&check("{verify: missing-ca.pem}"));
    assert_has(
        &msg,
        &[
            "env.yaml:14:",
            "requests_options.verify",
            "cannot read",
            "missing-ca.pem",
        ],
    );
    let (_, msg) = load_err(&check("{verify: false, timeout: 3}"));
    assert_has(
        &msg,
        &[
            "unknown key `timeout` in `requests_options` (maestro supports only `verify`)",
            "requests_options.timeout",
        ],
    );

    // A file that is not PEM, then one that is: relative paths are the environment file's.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("junk.pem"), "hello\n").expect("write");
    let load = |options: &str| {
        let path = dir.path().join("env.yaml");
        std::fs::write(&path, check(options)).expect("write");
        config::load(&path)
    };
    let err = load("{verify: junk.pem}").expect_err("junk refused");
    assert_has(&err.to_string(), &["holds no PEM certificate", "junk.pem"]);
    let verify_of =
        |env: &config::Environment| match &env.services[0].instances[0].lifecycle.running[0] {
            config::Check::Http { verify, .. } => verify.clone(),
            other => panic!("not an http check: {other:?}"),
        };
    let env = load("{verify: ca.pem}").expect("a CA file");
    assert_eq!(
        verify_of(&env),
        config::TlsVerify::CaFile(dir.path().join("ca.pem"))
    );
    let env = load("{verify: false}").expect("false");
    assert_eq!(verify_of(&env), config::TlsVerify::Off);
    let env = load("{}").expect("empty");
    assert_eq!(verify_of(&env), config::TlsVerify::SystemRoots);
}

#[test]
fn auditors_of_every_maestrong_type_load_with_their_keys() {
    use maestro::config::{AuditLevel, AuditTarget};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        format!(
            "name: x\n{SHIPS}services: {{}}\naudit:\n\
             \x20 - {{type: log, file: /tmp/audit.log, level: debug}}\n\
             \x20 - {{type: http, endpoint: 'http://127.0.0.1:9/hook', payload: {{text: '{{who}} {{action}} {{what}}', tags: [a, '{{action}}']}}, headers: {{X-Token: t}}, method: get, timeout: 5}}\n\
             \x20 - {{type: slack, channel: '#ops', token: xoxb-1, name: Maestro, icon: ':robot_face:'}}\n\
             \x20 - {{type: hipchat, room: ops, token: hc-1}}\n\
             \x20 - {{type: exec, script: /usr/local/bin/notify, args: '--action {{action}}', ignore_errors: true}}\n"
        ),
    )
    .expect("write");
    let env = config::load(&path).expect("loads");
    let kinds: Vec<&str> = env.audit.iter().map(|a| a.kind()).collect();
    assert_eq!(kinds, ["log", "http", "slack", "hipchat", "exec"]);
    assert_eq!(env.audit[0].level, AuditLevel::Debug);
    assert_eq!(env.audit[1].level, AuditLevel::Info);
    match &env.audit[1].target {
        AuditTarget::Http {
            endpoint,
            payload,
            headers,
            method,
            timeout,
        } => {
            assert_eq!(endpoint, "http://127.0.0.1:9/hook");
            assert_eq!(payload["text"], "{who} {action} {what}");
            assert_eq!(payload["tags"][1], "{action}");
            assert_eq!(headers.get("X-Token").map(String::as_str), Some("t"));
            assert_eq!(method, "GET");
            assert_eq!(timeout.as_secs(), 5);
        }
        other => panic!("{other:?}"),
    }
    assert!(env.audit[4].ignore_errors);
    assert!(!env.audit[2].ignore_errors);
}

#[test]
fn auditors_missing_a_key_or_of_an_unknown_type_are_refused_where_written() {
    let cases: &[(&str, &[&str])] = &[
        (
            "{type: slack, channel: '#ops'}",
            &[
                "env.yaml:7",
                "audit[0]",
                "a slack auditor is missing the required key `token`",
            ],
        ),
        (
            "{type: http}",
            &[
                "audit[0]",
                "a http auditor is missing the required key `endpoint`",
            ],
        ),
        (
            "{type: webhook, url: 'http://x'}",
            &[
                "unknown auditor type \"webhook\" (expected log, http, slack, hipchat, exec)",
                "MaestroNG's webhook auditor is `type: http`, with `endpoint`",
            ],
        ),
        (
            "{type: log, file: /tmp/a, level: warn}",
            &[
                "audit[0].level",
                "unknown audit level `warn` (expected info or debug)",
            ],
        ),
        (
            "{type: http, endpoint: 'http://x', method: PUT}",
            &[
                "audit[0].method",
                "invalid HTTP method `PUT` (expected GET or POST)",
            ],
        ),
        (
            "{type: log, file: /tmp/a, url: 'http://x'}",
            &["audit[0].url", "unknown key `url` in a log auditor"],
        ),
    ];
    for (auditor, parts) in cases {
        let (_, msg) = load_err(&format!(
            "name: x\n{SHIPS}services: {{}}\naudit:\n  - {auditor}\n"
        ));
        assert_has(&msg, parts);
    }
}

#[test]
fn a_volume_that_volumes_from_also_brings_is_a_conflict() {
    let (_, msg) = load_err(&format!(
        "name: x\n{SHIPS}services:\n  data:\n    image: d\n    instances:\n      data-1: {{ship: ship1, container_volumes: [/data]}}\n  app:\n    image: a\n    instances:\n      app-1: {{ship: ship1, volumes_from: [data-1], volumes: {{/data: /srv/data}}}}\n"
    ));
    assert_has(
        &msg,
        &[
            "env.yaml:13:42",
            "services.app.instances.app-1.volumes_from",
            "volume conflicts between `app-1` and `data-1`: both mount /data",
        ],
    );
}

#[test]
fn a_path_both_bind_mounted_and_container_only_is_refused_as_maestrong_refuses_it() {
    let (_, msg) = load_err(&format!(
        "name: x\n{SHIPS}services:\n  app:\n    image: a\n    instances:\n      app-1:\n        \
         ship: ship1\n        volumes: {{/data: /srv}}\n        container_volumes: [/data]\n"
    ));
    assert_has(
        &msg,
        &[
            "`/data` is both bind-mounted (volumes) and a container-only volume \
             (container_volumes) of `app-1`: keep one of the two",
            "services.app.instances.app-1.container_volumes",
        ],
    );
}

#[test]
fn top_level_keys_named_as_anchor_parks_are_never_typos() {
    for key in ["x-defaults", "_defaults", ".base"] {
        maestro::config::load_str(
            &format!("name: x\n{key}: &d {{docker_port: 4243}}\nships:\n  a: {{ip: 10.0.0.1, <<: *d}}\nservices: {{}}\n"),
            "env.yaml",
            std::path::Path::new("."),
        )
        .unwrap_or_else(|err| panic!("{key}: {err}"));
    }
}

/// With no `-f`, `maestro.yaml` or `maestro.yml` in the current directory, or `MAESTRO_FILE`.
#[test]
fn without_a_file_the_error_names_the_directory_and_how_to_name_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = common::maestro(dir.path())
        .arg("validate")
        .current_dir(dir.path())
        .output()
        .expect("run maestro");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("neither maestro.yaml nor maestro.yml is in")
            && stderr.contains(&dir.path().display().to_string())
            && stderr.contains("-f FILE (or MAESTRO_FILE=FILE)"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("maestro.yml"),
        "name: n\nships: {a: {ip: 10.0.0.1}}\nservices: {}\n",
    )
    .expect("write maestro.yml");
    let out = common::maestro(dir.path())
        .arg("validate")
        .current_dir(dir.path())
        .output()
        .expect("run maestro");
    assert!(
        out.status.success(),
        "maestro.yml is found: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::maestro(dir.path())
        .arg("validate")
        .env("MAESTRO_FILE", "elsewhere.yaml")
        .current_dir(dir.path())
        .output()
        .expect("run maestro");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("elsewhere.yaml"),
        "MAESTRO_FILE names the file"
    );
}

#[test]
fn a_docker_style_port_with_an_address_points_at_the_long_form() {
    let (_, msg) = load_err(&format!(
        "name: x\n{SHIPS}services:\n  w:\n    image: a\n    instances:\n      w1: {{ship: ship1, ports: {{web: \"127.0.0.1:8080:80\"}}}}\n"
    ));
    assert_has(
        &msg,
        &[
            "invalid port spec \"127.0.0.1:8080:80\" for port `web`",
            "this is docker's `-p ADDRESS:HOST:CONTAINER`; here the container port comes first",
            "`{exposed: 80, external: [127.0.0.1, 8080]}`",
        ],
    );
}

#[test]
fn a_volume_written_host_first_in_a_schema_1_file_says_how_to_write_it() {
    let (_, msg) = load_err(&format!(
        "name: x\n{SHIPS}services:\n  w:\n    image: a\n    instances:\n      w1: {{ship: ship1, volumes: {{./data: /var/lib/x}}}}\n"
    ));
    assert_has(
        &msg,
        &[
            "container path \"./data\" must be absolute (schema 1: the key is the container path)",
            "help: schema 1 (the default) writes `/container: /host`; to write the host path first, as compose does, put `__maestro: {schema: 2}` at the top of the file",
        ],
    );
}

/// Addresses and user names reach a shell when a ProxyCommand runs (`nc %h %p` through
/// `sh -c`): anything that is not a host name, an IP address or a user name is refused when
/// the file loads, located, before any command could run.
#[test]
fn addresses_and_users_with_shell_metacharacters_are_refused_where_written() {
    let services = "services:\n  a:\n    image: a\n    instances:\n      a1: {ship: s}\n";
    let (_, msg) = load_err(&format!(
        "name: x\nships:\n  s: {{ip: \"10.231.1.2$(touch /tmp/x)\"}}\n{services}"
    ));
    assert_has(
        &msg,
        &[
            "env.yaml:3",
            "ships.s.ip",
            "`10.231.1.2$(touch /tmp/x)` is not a host name or an IP address: `$` cannot be in one",
            "addresses reach a shell when a ProxyCommand runs",
        ],
    );
    let (_, msg) = load_err(&format!(
        "name: x\nships:\n  s:\n    ip: 10.0.0.1\n    ssh: {{user: \"deploy;id\"}}\n{services}"
    ));
    assert_has(
        &msg,
        &[
            "env.yaml:5",
            "ships.s.ssh.user",
            "`deploy;id` is not a user name: `;` cannot be in one",
        ],
    );
    let (_, msg) = load_err(&format!(
        "name: x\nships:\n  s:\n    ip: 10.0.0.1\n    ssh: {{jump: [\"ops@gate$(id)\", \"o`id`@gate\"]}}\n{services}"
    ));
    assert_has(
        &msg,
        &[
            "ships.s.ssh.jump[0]",
            "invalid jump host",
            "its host `gate$(id)` `$` cannot be in one",
        ],
    );
    let (_, msg) = load_err(&format!(
        "name: x\nships:\n  s: {{ip: 10.0.0.1, endpoint: \"-oProxyCommand=x\"}}\n{services}"
    ));
    assert_has(&msg, &["ships.s.endpoint", "it starts with `-`"]);
    let (_, msg) = load_err(&format!(
        "name: x\nships:\n  s:\n    ip: 10.0.0.1\n    ssh_tunnel: {{user: \"a b\", key: k}}\n{services}"
    ));
    assert_has(
        &msg,
        &["ships.s.ssh_tunnel.user", "a space cannot be in one"],
    );
    // Names as they are: host names, IPv4, IPv6, users with a domain or a trailing `$`.
    for (ip, user) in [
        ("docker-1.prod_eu.example.com", "deploy"),
        ("fe80::1%eth0", "ops@corp.example"),
        ("[::1]", "HOST$"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("env.yaml");
        std::fs::write(
            &path,
            format!(
                "name: x\nships:\n  s: {{ip: \"{ip}\", ssh: {{user: \"{user}\"}}}}\n{services}"
            ),
        )
        .expect("write");
        assert!(config::load(&path).is_ok(), "{ip} {user}");
    }
}

#[test]
fn a_ship_address_with_a_user_or_a_port_says_where_each_part_goes() {
    for (address, parts) in [
        (
            "deploy@10.0.1.10",
            &[
                "`deploy@10.0.1.10` puts a user in the address",
                "`ssh: {user: deploy}`",
                "(`10.0.1.10`)",
                "env.yaml:3:",
            ][..],
        ),
        (
            "10.0.1.10:2222",
            &[
                "`10.0.1.10:2222` has a port in the address",
                "`ssh: {port: 2222}`",
                "`docker_port: 2222`",
            ][..],
        ),
    ] {
        let text = format!("name: x\nships:\n  ship1: {{ip: \"{address}\"}}\nservices: {{}}\n");
        let (_, msg) = load_err(&text);
        assert_has(&msg, parts);
        assert!(!msg.contains("shell"), "{msg}");
    }
    // An IPv6 address is an address.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        "name: x\nships:\n  ship1: {ip: \"fd00::10\"}\nservices: {}\n",
    )
    .expect("write");
    assert!(config::load(&path).is_ok());
}

#[test]
fn compose_key_names_point_at_their_names_here() {
    for (key, value, expected) in [
        (
            "environment",
            "{A: b}",
            "docker compose's `environment` is `env` here",
        ),
        (
            "depends_on",
            "[db]",
            "docker compose's `depends_on` is `requires` here",
        ),
        ("restart", "always", "`restart` is set per instance here"),
        (
            "container_name",
            "web",
            "an instance's name is its container's name",
        ),
    ] {
        let text = format!(
            "name: x\n{SHIPS}services:\n  web:\n    image: a\n    {key}: {value}\n    instances:\n      web-1: {{ship: ship1}}\n"
        );
        let (_, msg) = load_err(&text);
        assert_has(&msg, &[&format!("unknown key `{key}`"), expected]);
        assert!(!msg.contains("did you mean"), "{msg}");
    }
}

/// `tls: true` on a ship reached on its TCP port is refused at load when the connector could
/// not use it (no verification, a file missing), with the fix; a `tls: false` ship or one over
/// SSH never is.
#[test]
fn tls_that_cannot_connect_is_refused_at_load() {
    let (_, msg) = load_err("name: x\nships:\n  s1: {ip: 10.0.0.1, tls: true}\n");
    assert_has(
        &msg,
        &[
            "TLS without verification (`tls_verify: false`, the default) is not supported",
            "env.yaml:3:",
            "field: ships.s1.tls",
            "set `tls_verify: true` with `tls_ca_cert`",
        ],
    );
    let (_, msg) = load_err(
        "name: x\nships:\n  s1: {ip: 10.0.0.1, tls: true, tls_verify: true, tls_cert: c.pem, tls_key: k.pem}\n",
    );
    assert_has(
        &msg,
        &[
            "TLS with verification needs `tls_ca_cert`",
            "field: ships.s1.tls_ca_cert",
        ],
    );
    let (_, msg) = load_err(
        "name: x\nships:\n  s1: {ip: 10.0.0.1, tls: true, tls_verify: true, tls_ca_cert: nowhere/ca.pem, \
         tls_cert: c.pem, tls_key: k.pem}\n",
    );
    assert_has(
        &msg,
        &[
            "invalid tls_ca_cert: cannot read",
            "nowhere/ca.pem",
            "field: ships.s1.tls_ca_cert",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        "name: x\nships:\n  off: {ip: 10.0.0.1, tls: false, tls_ca_cert: missing.pem}\n  \
         over-ssh: {ip: 10.0.0.2, tls: true, ssh: {user: deploy}}\n",
    )
    .expect("write");
    assert!(config::load(&path).is_ok());
}

/// compose's list forms of `ports` and `volumes` are refused with the mapping written out
/// from the user's own values, each side named; the written-out mapping loads.
#[test]
fn compose_lists_of_ports_and_volumes_get_the_mapping_written_out() {
    let (_, msg) = load_err(concat!(
        "name: x\n",
        "ships: {a: {ip: 1.2.3.4}}\n",
        "services:\n",
        "  web:\n",
        "    image: nginx\n",
        "    ports: [\"8080:80\", \"443\", \"127.0.0.1:9000:9000/udp\"]\n",
        "    instances: {web-1: {ship: a}}\n",
    ));
    let lines = [
        "    port-80: \"80:8080\"   # container 80, published on the ship as 8080",
        "    port-443: \"443\"",
        "    port-9000: {exposed: \"9000/udp\", external: [127.0.0.1, 9000]}",
    ];
    assert_has(
        &msg,
        &[
            "`ports` must be a mapping, found a list (compose's form)",
            "field: services.web.ports",
            "the container's port first",
            lines[0],
            lines[1],
            lines[2],
        ],
    );
    let (_, msg) = load_err(concat!(
        "__maestro: {schema: 2}\n",
        "name: x\n",
        "ships: {a: {ip: 1.2.3.4}}\n",
        "services:\n",
        "  web:\n",
        "    image: nginx\n",
        "    instances:\n",
        "      web-1: {ship: a, volumes: [\"/srv/data:/data\", \"/logs:/var/log:ro\", \"./x:/x\"]}\n",
    ));
    assert_has(
        &msg,
        &[
            "`volumes` must be a mapping, found a list (compose's form)",
            "maps the ship's path to the container's (schema 2)",
            "    /srv/data: /data",
            "    /logs: {target: /var/log, mode: ro}",
            "`./x` is relative: the ship's side must be an absolute path or a volume name",
        ],
    );
    // What the help wrote, pasted into the file, loads.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    let text = format!(
        "__maestro: {{schema: 2}}\nname: x\nships: {{a: {{ip: 1.2.3.4}}}}\nservices:\n  web:\n    \
         image: nginx\n    ports:\n{}\n    instances:\n      web-1:\n        ship: a\n        \
         volumes:\n          /srv/data: /data\n          /logs: {{target: /var/log, mode: ro}}\n",
        lines
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::fs::write(&path, text).expect("write");
    config::load(&path).expect("the written-out mapping loads");
}

/// A plain scalar of `env` or `labels` that YAML 1.1 types into something else (as PyYAML and
/// MaestroNG do) is warned about at `validate`, with the quoted form; `true` and quoted values
/// are not.
#[test]
fn validate_warns_when_yaml_1_1_changed_a_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("env.yaml"),
        concat!(
            "name: x\n",
            "ships: {a: {ip: 1.2.3.4}}\n",
            "services:\n",
            "  web:\n",
            "    image: nginx\n",
            "    env: {FEATURE: on, AT: 12:30, DEBUG: true, Q: \"off\"}\n",
            "    instances:\n",
            "      web-1: {ship: a, labels: {enabled: yes}}\n",
            "      web-2: {ship: a}\n",
        ),
    )
    .expect("write");
    let out = common::maestro(dir.path())
        .current_dir(dir.path())
        .args(["-f", "env.yaml", "validate"])
        .output()
        .expect("run maestro");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_has(
        &stderr,
        &[
            "warning: `on` is read as `True`: YAML 1.1 types plain `on`",
            "env.yaml:6:20",
            "field: services.web.env.FEATURE",
            "quote it to keep the text: `FEATURE: \"on\"`",
            "warning: `12:30` is read as `750`",
            "quote it to keep the text: `AT: \"12:30\"`",
            "warning: `yes` is read as `True`",
            "field: services.web.instances.web-1.labels.enabled",
        ],
    );
    assert_eq!(stderr.matches("warning: `on`").count(), 1, "{stderr}");
    assert!(!stderr.contains("warning: `true`"), "{stderr}");
    assert!(!stderr.contains("warning: `off`"), "{stderr}");
    assert_eq!(stderr.matches("warning: ").count(), 3, "{stderr}");
}

#[test]
fn ssh_persist_takes_a_duration_and_says_where_when_it_is_not_one() {
    let (_, msg) = load_err("name: x\nships: {a: {ip: 1.2.3.4, ssh: {persist: soon}}}\n");
    assert_has(
        &msg,
        &["invalid duration \"soon\"", "field: ships.a.ssh.persist"],
    );
    let (_, msg) =
        load_err("name: x\nship_defaults: {ssh: {persist: later}}\nships: {a: {ip: 1.2.3.4}}\n");
    assert_has(
        &msg,
        &[
            "invalid duration \"later\"",
            "field: ship_defaults.ssh.persist",
        ],
    );
    let (_, msg) = load_err("name: x\nships: {a: {ip: 1.2.3.4, ssh: {persits: 10m}}}\n");
    assert_has(&msg, &["unknown key `persits`", "persist"]);
    // And a good one loads, from the ship or its defaults.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        "name: x\nship_defaults: {ssh: {persist: 10m}}\nships: {a: {ip: 1.2.3.4}, \
         b: {ip: 1.2.3.5, ssh: {persist: 90}}}\n",
    )
    .expect("write");
    let env = config::load(&path).expect("loads");
    let persist = |name: &str| {
        env.ships
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.ssh.as_ref())
            .and_then(|ssh| ssh.persist)
    };
    assert_eq!(persist("a"), Some(std::time::Duration::from_secs(600)));
    assert_eq!(persist("b"), Some(std::time::Duration::from_secs(90)));
}
