use std::collections::BTreeMap;

use super::*;

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([("HOME".to_owned(), "/home/op".to_owned())])
}

fn load_in(text: &str, base: &str) -> Environment {
    match crate::config::load_str_with_vars(text, "t.yaml", Path::new(base), &vars()) {
        Ok(env) => env,
        Err(e) => panic!("{e}\n{text}"),
    }
}

/// Writes `original` with the secrets and loads the output back: the same environment
/// (apart from its source and schema). Returns the written text.
fn reload(original: &Environment, base: &str) -> String {
    let written = match to_schema2_yaml(original, Reveal::Secrets) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    let mut reloaded = load_in(&written, base);
    reloaded.source = original.source.clone();
    reloaded.schema = original.schema;
    assert_eq!(&reloaded, original, "reloads differently:\n{written}");
    written
}

/// Loads `text` and [`reload`]s it; returns the environment and the written text.
fn round_trip_in(text: &str, base: &str) -> (Environment, String) {
    let original = load_in(text, base);
    let written = reload(&original, base);
    (original, written)
}

fn round_trip(text: &str) -> (Environment, String) {
    round_trip_in(text, "/cfg")
}

const SHIPS: &str = "name: t\nships:\n  s1: {ip: 10.0.0.1}\n  s2: {ip: 10.0.0.2}\n";

/// An environment of one instance `a1` on `s1` with the given instance settings (flow
/// mapping entries).
fn one_instance(settings: &str) -> String {
    format!(
        "__maestro: {{schema: 2}}\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      \
         a1: {{ship: s1, {settings}}}\n      b1: {{ship: s1}}\n"
    )
}

#[test]
fn ports_keep_protocol_bind_address_and_ranges() {
    let (_, written) = round_trip(&one_instance(
        "ports: {web: \"80:8080\", dns: 53/udp, same: 9000, range: \"7000-7002:17000-17002/udp\", \
         pick: \"6000:16000-16010\", \
         bound: {exposed: 5432/udp, external: [127.0.0.1, 15432]}, \
         both: {exposed: 4000, external: [\"::1\", \"14000-14000\"]}}",
    ));
    for form in [
        "web: 80:8080",
        "dns: 53:53/udp",
        "same: 9000:9000",
        "range: 7000-7002:17000-17002/udp",
        "pick: 6000:16000-16010",
        "exposed: 5432/udp",
        "- \"127.0.0.1\"\n",
        "- \"::1\"\n",
    ] {
        assert!(written.contains(form), "{form}:\n{written}");
    }
}

#[test]
fn volumes_are_host_first_and_read_only_in_the_long_form() {
    let (_, written) = round_trip(&one_instance(
        "volumes: {/srv/data: /data, named-vol: {target: /cache, mode: ro}, \
         /etc/conf: {target: /conf, mode: rw}}",
    ));
    assert!(written.contains("/srv/data: /data"), "{written}");
    assert!(
        written.contains("named-vol:\n            target: /cache\n            mode: ro"),
        "{written}"
    );
    assert!(written.contains("/etc/conf: /conf"), "{written}");

    // Schema 1 (container path first) comes out host first.
    let schema1 =
        one_instance("volumes: {/data: /srv/data}").replace("__maestro: {schema: 2}\n", "");
    let (env, written) = round_trip(&schema1);
    assert_eq!(env.schema, 1);
    assert!(written.contains("/srv/data: /data"), "{written}");
}

#[test]
fn a_host_path_bound_twice_cannot_be_written_in_schema_2() {
    let schema1 =
        one_instance("volumes: {/a: /srv/x, /b: /srv/x}").replace("__maestro: {schema: 2}\n", "");
    let env = load_in(&schema1, "/cfg");
    let err = to_schema2(&env, Reveal::Secrets)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("`a1` binds `/srv/x` more than once")),
        "{err:?}"
    );
}

#[test]
fn unset_variables_are_null_among_the_set_ones() {
    let text = format!(
        "{SHIPS}services:\n  a:\n    image: a\n    env: {{GONE: x, KEEP: 1, EMPTY: ''}}\n    \
         instances:\n      a1: {{ship: s1, env: {{GONE: null, ALSO: ~}}}}\n"
    );
    let (env, written) = round_trip(&text);
    let (_, a1) = env.instance("a1").unwrap_or_else(|| panic!("a1"));
    assert_eq!(a1.unset_env.len(), 2);
    assert!(
        written.contains(
            "ALSO: null\n          EMPTY: \"\"\n          GONE: null\n          KEEP: \"1\""
        ),
        "{written}"
    );
}

#[test]
fn jump_hosts_keep_addresses_and_ship_references() {
    let text = "name: t\nships:\n  gw: {ip: 10.0.0.1, ssh: {user: ops}}\n  \
                inner: {ip: 10.0.1.1, ssh: {user: root, port: 2222, key: [keys/a, ~/b], \
                jump: [gw, \"ops@bastion:2200\", bastion2, \"fe80::1\", \"u@h\"], \
                known_hosts: accept_new, known_hosts_file: kh}}\n";
    let (_, written) = round_trip(text);
    for form in [
        "- gw\n",
        "- ops@bastion:2200\n",
        "- bastion2\n",
        "- fe80::1\n",
        "- u@h\n",
        "known_hosts: accept-new",
        "known_hosts_file: /cfg/kh",
        "- /cfg/keys/a\n",
        "- /home/op/b\n",
        "port: 2222",
    ] {
        assert!(written.contains(form), "{form}:\n{written}");
    }
}

#[test]
fn ssh_tunnel_is_kept_and_an_ssh_block_written_only_when_it_says_more() {
    let text = "name: t\nships:\n  \
                a: {ip: 10.0.0.1, ssh_tunnel: {user: ops, key: id}}\n  \
                b: {ip: 10.0.0.2, ssh_tunnel: {user: ops, key: id, port: 2200}, \
                ssh: {user: other, jump: a}}\n  \
                c: {ip: 10.0.0.3, docker_port: 2375}\n  \
                d: {ip: 10.0.0.4, tls: true, endpoint: \"unix:///run/d.sock\"}\n";
    let (env, written) = round_trip(text);
    assert_eq!(written.matches("ssh_tunnel:").count(), 2, "{written}");
    assert_eq!(written.matches("ssh:").count(), 1, "{written}");
    // Given, written; not given, left to its default (see the module header).
    assert_eq!(written.matches("docker_port:").count(), 1, "{written}");
    assert_eq!(env.ship("d").map(|s| s.docker_port), Some(2376));
}

#[test]
fn relative_paths_stay_relative_to_the_file() {
    let text = "name: t\nships:\n  a: {ip: 10.0.0.1, tls_cert: certs/c.pem, tls_key: /abs/k.pem, \
                ssh_tunnel: {user: ops, key: ../keys/id}}\n";
    let (env, written) = round_trip_in(text, "deploy");
    assert!(written.contains("tls_cert: certs/c.pem"), "{written}");
    assert!(written.contains("tls_key: /abs/k.pem"), "{written}");
    assert!(written.contains("key: ../keys/id"), "{written}");
    let key = env
        .ship("a")
        .and_then(|s| s.ssh_tunnel.clone())
        .map(|t| t.key);
    assert_eq!(key.as_deref(), Some(Path::new("deploy/../keys/id")));
    round_trip_in(text, ".");
}

#[test]
fn template_syntax_in_values_survives_the_render_of_the_reload() {
    // Set in the model: written in a file they would be rendered on the first load.
    let mut env = load_in(&one_instance("image: x"), "/cfg");
    let values = [
        "{{ not_a_var }}",
        "{% raw %}x{% endraw %}",
        "{#c#}",
        "{{{x}}}",
        "{-{ ok",
        "{%- if x %}",
        "end {{",
        "}}{{",
        "'{{'",
    ];
    let Some(a1) = env.services[0].instances.first_mut() else {
        panic!("a1");
    };
    for (i, v) in values.iter().enumerate() {
        a1.env.insert(format!("V{i}"), (*v).to_owned());
    }
    a1.labels.insert("k{{".into(), "{%-".into());
    a1.command = Some(CommandSpec::Shell("echo '{{'".into()));
    env.name = "{# name #}".into();
    let written = reload(&env, "/cfg");
    assert!(written.contains("{{ '{{' }} not_a_var }}"), "{written}");
    // JSON is not a template: the values as they are.
    let json = to_schema2_json(&env, Reveal::Secrets).unwrap_or_default();
    assert!(json.contains("\"V0\": \"{{ not_a_var }}\""), "{json}");
}

#[test]
fn strings_that_look_like_other_things_stay_strings() {
    let tricky = [
        "1",
        "1.0",
        "0755",
        "1e3",
        "0x1F",
        "0o17",
        "1_000",
        "12:30",
        ".inf",
        "-.5",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "true",
        "False",
        "null",
        "~",
        "",
        " lead",
        "trail ",
        "a: b",
        "- x",
        "#x",
        "x #y",
        "multi\nline",
        "ends\n",
        "two\n\n",
        "\ttab",
        "it's",
        "\"dq\"",
        "é ü",
        "[x]",
        "{x}",
        "*star",
        "&amp",
        "!bang",
        "%pct",
        "@at",
        "`tick",
        "<<",
        "back\\slash",
        "2001-01-01",
        "a  b   c  d e f g h i j k l m n o p q r s t u v w x y z \
         aa bb cc dd ee ff gg hh ii jj kk ll mm nn",
        "\u{7}bell",
        "cr\r\nlf",
        "\n",
        "\nlead",
        "123\n",
        "true\n\n",
        " x \n ",
        "multi\n\nlines\n  indented\n",
        "a234567890123456789012345678901234567890123456789012345678901234567890123456789012345",
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890123",
        "80:50",
        "1:30.5",
        "0b101",
        "010",
        "+1",
        "-1",
        "1.2.3",
        "-",
        "?",
        "? x",
        ": x",
        "x:",
        "'",
        "\"",
        "1e+3",
        "1.0e+3",
        ".5",
        "0.",
        ".NaN",
        "Yes",
        "ON",
        "=",
        "1_0.5",
    ];
    let env_entries: Vec<String> = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| format!("V{i}: {}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    let (env, _) = round_trip(&one_instance(&format!(
        "env: {{{}}}, workdir: \"0\", username: \"1000\", stop_signal: \"9\"",
        env_entries.join(", ")
    )));
    let (_, a1) = env.instance("a1").unwrap_or_else(|| panic!("a1"));
    for (i, v) in tricky.iter().enumerate() {
        assert_eq!(a1.env.get(&format!("V{i}")).map(String::as_str), Some(*v));
    }
}

#[test]
fn keys_that_look_like_other_things_stay_names() {
    let text = "name: \"1.0\"\nships:\n  \"yes\": {ip: 10.0.0.1}\n  \"010\": {ip: 10.0.0.2}\n\
                services:\n  \"on\":\n    image: a\n    instances:\n      \"1\":\n        \
                ship: \"yes\"\n        ports: {\"no\": 80}\n        \
                env: {\"off\": \"y\", \"null\": \"~\", \"12:30\": x}\n        \
                labels: {\"true\": \"false\", \"<<\": m}\n        extra_hosts: {\"0x10\": {ship: \"010\"}}\n";
    let (env, _) = round_trip(text);
    assert_eq!(env.ships[1].name, "010");
    assert_eq!(env.services[0].instances[0].name, "1");
    let labels = &env.services[0].instances[0].labels;
    assert_eq!(
        labels.get("<<").map(String::as_str),
        Some("m"),
        "not a merge key"
    );
}

#[test]
fn registry_passwords_are_masked_unless_revealed() {
    let text = format!(
        "registries:\n  r: {{registry: \"https://r.example.com/\", username: u, password: \
         \"hunter2-pass\", email: a@b.c, retry: {{attempts: 2, when: [502]}}}}\n{SHIPS}"
    );
    let env = load_in(&text, "/cfg");
    let masked = to_schema2_yaml(&env, Reveal::Masks).unwrap_or_default();
    assert!(masked.contains("password: \"***\""), "{masked}");
    assert!(!masked.contains("hunter2"), "{masked}");
    let json = to_schema2_json(&env, Reveal::Masks).unwrap_or_default();
    assert!(!json.contains("hunter2") && json.contains("\"password\": \"***\""));
    let (_, shown) = round_trip(&text);
    assert!(shown.contains("password: hunter2-pass"), "{shown}");
}

#[test]
fn mask_strings_masks_values_not_keys() {
    let mut doc = Document::Map(vec![
        ("SECRET".into(), Document::from("s3cret-value")),
        (
            "list".into(),
            Document::Seq(vec![Document::from("a s3cret-value b")]),
        ),
        ("n".into(), Document::Int(1)),
    ]);
    doc.mask_strings(&|s| s.replace("s3cret-value", "***"));
    assert_eq!(doc.get("SECRET"), Some(&Document::from("***")));
    assert_eq!(
        doc.get("list"),
        Some(&Document::Seq(vec![Document::from("a *** b")]))
    );
}

#[test]
fn durations_sizes_and_defaults_are_explicit() {
    let text = "name: t\nships:\n  a: {ip: 10.0.0.1, timeout: 1500ms, ssh_timeout: 0.1, \
                ssh: {persist: 10m}}\n  \
                b: {ip: 10.0.0.2, timeout: 1h, ssh_timeout: \"123.456789s\"}\n  \
                c: {ip: 10.0.0.3, timeout: 2.5}\n\
                services:\n  x:\n    image: x\n    instances:\n      x1:\n        ship: a\n        \
                limits: {memory: 1536m, swap: 1000, cpu: 512}\n        \
                healthcheck: {test: \"true\", interval: 250ms, start_period: 1m}\n";
    let (_, written) = round_trip(text);
    for form in [
        "timeout: 1.5\n",
        "ssh_timeout: 0.1\n",
        "persist: 600\n",
        "timeout: 3600\n",
        "ssh_timeout: 123.456789\n",
        "timeout: 2.5\n",
        "memory: 1536m",
        "swap: 1000",
        "cpu: 512",
        "interval: 0.25",
        "start_period: 60",
        "- CMD-SHELL\n",
        "stop_timeout: 10",
        "privileged: false",
        "tls: false",
        "omit: false",
    ] {
        assert!(written.contains(form), "{form}:\n{written}");
    }
}

#[test]
fn every_instance_setting_round_trips() {
    let (_, written) = round_trip(&one_instance(
        "image: other:1, command: [run, \"--x\", \"\"], entrypoint: /bin/sh -c, \
         container_volumes: [/cache], volumes_from: b1, links: [b1, \"b1:alias\"], \
         username: app, workdir: /w, privileged: true, cap_add: NET_ADMIN, cap_drop: [ALL], \
         extra_hosts: {db: {ship: s2}, fixed: 10.9.9.9}, net: bridge, restart: no, \
         dns: [1.1.1.1], stop_timeout: 0, log_driver: json-file, log_opt: {max-size: 10m}, \
         security_opt: [no-new-privileges], ulimits: {nofile: {soft: 1024, hard: 4096}, core: -1}, \
         labels: [a=1, b], networks: {front: {aliases: [w]}, back: null, ip: {ipv4_address: 10.1.1.1}}, \
         healthcheck: {test: [NONE]}, devices: [/dev/fuse, \"/dev/a:/dev/b:r\"], \
         tmpfs: [/run, \"/tmp:size=64m\"], init: false, stop_signal: SIGINT, \
         lifecycle: {pre-start: [{type: exec, command: [true, x], envfrom: stdin}], \
         running: [{type: http, port: 80, host: h, match_regex: ok, requests_options: {verify: false}}, \
         {type: rexec, command: ls, attempts: 3}], pre-stop: [{type: sleep, wait: 0.5}], \
         stopped: [{type: tcp, port: \"80\", max_wait: 5}]}",
    ));
    for form in [
        "db:\n            ship: s2",
        "fixed: \"10.9.9.9\"",
        "- b1:alias",
        "restart: \"no\"",
        "core: -1",
        "entrypoint: /bin/sh -c",
        "back: null",
        "verify: false",
        "- /dev/fuse:/dev/fuse:rwm",
    ] {
        assert!(written.contains(form), "{form}:\n{written}");
    }
    round_trip(&one_instance(
        "networks: [x, x], restart: \"on-failure:4\", ulimits: {nproc: 7}",
    ));
}

#[test]
fn auditors_secrets_and_the_provider_round_trip() {
    let text = format!(
        "{SHIPS}ship_provider: static\nsecrets: {{patterns: [\"*_CRED\"]}}\naudit:\n  \
         - {{type: log, file: /var/log/m.log, level: debug}}\n  \
         - {{type: http, endpoint: \"http://h/\", payload: {{t: \"{{what}}\", n: [1, 2.5, null, true]}}, \
         headers: {{X: y}}, method: get, timeout: 0.5}}\n  \
         - {{type: slack, channel: c, token: t, icon: i, ignore_errors: true}}\n  \
         - {{type: hipchat, room: r, token: t, name: n}}\n  \
         - {{type: exec, script: /s}}\n"
    );
    let (env, written) = round_trip(&text);
    assert_eq!(env.audit.len(), 5);
    assert!(written.contains("ship_provider: static"), "{written}");
    assert!(written.contains("- \"*_CRED\""), "{written}");
    assert!(written.contains("method: GET"), "{written}");
}

#[test]
fn an_https_check_keeps_its_ca_bundle() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap_or_else(|e| panic!("{e}"));
    let base = dir.path().display().to_string();
    let (_, written) = round_trip_in(
        &one_instance(
            "ports: {s: 443}, lifecycle: {running: [{type: http, port: s, scheme: https, \
             requests_options: {verify: ca.pem}}]}",
        ),
        &base,
    );
    assert!(
        written.contains(&format!("verify: {}", ca.display())),
        "{written}"
    );
}

#[test]
fn tiny_and_huge_numbers_keep_their_value() {
    let text = "name: t\nships:\n  a: {ip: 10.0.0.1, timeout: 0.000000001, ssh_timeout: 0.000123}\n  \
                b: {ip: 10.0.0.2, timeout: 123456.5, ssh_timeout: 1.000000001}\n\
                services:\n  x:\n    image: x\n    instances:\n      x1:\n        ship: a\n        \
                limits: {memory: 18446744073709551615}\n        \
                lifecycle: {running: [{type: sleep, wait: 0.0000001}, {type: sleep, wait: 100000000000000000000.0}, \
                {type: sleep, wait: 0.1}, {type: sleep, wait: 3}]}\n";
    round_trip(text);
}

#[test]
fn escaping_template_syntax() {
    assert_eq!(escape_template("a { b }"), "a { b }");
    assert_eq!(escape_template("{{x}}"), "{{ '{{' }}x}}");
    assert_eq!(escape_template("{%{#{"), "{{ '{%' }}{{ '{#' }}{");
    assert_eq!(escape_template("{{{"), "{{ '{{' }}{");
}

#[test]
fn an_empty_environment_is_still_a_file() {
    let (_, written) =
        round_trip("name: t\nships: {}\nservices:\n  a: {image: a, instances: {}}\n");
    assert!(written.contains("ships: {}"), "{written}");
    assert!(written.contains("instances: {}"), "{written}");
}
