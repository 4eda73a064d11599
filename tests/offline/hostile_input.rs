//! Hostile and broken environment files, through the binary: every command that reads the
//! file (`validate`, `status`, `start`, `plan`) refuses it with a located message (file, line,
//! column, field), exit code 2, and contacts no ship: the ships of these files point at a
//! listener that records every connection, and it must record none.
//!
//! tests/offline/config_errors.rs checks the messages of the config layer in depth; here each kind of
//! bad input is checked once more at the level an operator sees it. Crashes found by the fuzz
//! target (fuzz/fuzz_targets/config_load.rs) become cases at the end of [`CASES`].
//!
//! docs/reliability.md lists these cases; `reliability_doc_lists_every_hostile_input` keeps
//! it in step.

use crate::common;
use common::support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{ContactRecorder, RUN_LIMIT, Run, run_maestro};

/// The commands that must refuse a bad file before contacting anything.
const COMMANDS: &[&str] = &["validate", "status", "start", "plan"];

/// Ships of every case: both reach the recorder (`PORT` is replaced by its port).
const SHIPS: &str = "ships:\n  ship1: {ip: 127.0.0.1, ssh: {user: root, port: PORT}}\n  ship2: {ip: 127.0.0.1, ssh: {user: root, port: PORT}}\n";

/// One bad input: the file (with `{SHIPS}` standing for [`SHIPS`]), what the message must
/// contain, and what the tool does, in words, for docs/reliability.md.
struct Case {
    name: &'static str,
    input: &'static str,
    file: &'static str,
    expect: &'static [&'static str],
    outcome: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "malformed_yaml",
        input: "malformed YAML (an unclosed bracket)",
        file: "name: x\n{SHIPS}services:\n  web: {image: [a, b\n",
        expect: &["invalid YAML: unclosed bracket", "env.yaml:6:16"],
        outcome: "`invalid YAML` with the position of the fault, exit 2",
    },
    Case {
        name: "alias_bomb",
        input: "YAML alias bomb (9 levels of 10 aliases: a billion nodes)",
        file: "name: x\n{SHIPS}a0: &a0 [x, x, x, x, x, x, x, x, x, x]\na1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\na2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\na3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\na4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\na5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\na6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\na7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]\na8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]\n",
        expect: &["an alias bomb?", "env.yaml:"],
        outcome: "refused while parsing once 50 000 aliased events were replayed (`an alias bomb?`), located, exit 2; each run uses under 5 s of CPU, measured (about 1 s in a debug build; expanding the billion nodes would take minutes)",
    },
    Case {
        name: "deep_nesting",
        input: "100 000 nested flow sequences (`[[[[...`)",
        file: "",
        expect: &["invalid YAML: recursion limit exceeded", "env.yaml:3:"],
        outcome: "refused by the parser's depth limit with a located message whose snippet shows a window of the 100 000-character line, no stack overflow, exit 2",
    },
    Case {
        name: "not_utf8",
        input: "a binary file (not UTF-8)",
        file: "",
        expect: &["cannot read environment file env.yaml", "not UTF-8 text"],
        outcome: "`not UTF-8 text`, exit 2",
    },
    Case {
        name: "unknown_key_did_you_mean",
        input: "a misspelt key (`volums`)",
        file: "name: x\n{SHIPS}services:\n  web:\n    image: a\n    instances:\n      web1:\n        ship: ship1\n        volums: {}\n",
        expect: &[
            "unknown key `volums` in instance `web1`",
            "env.yaml:11:9",
            "field: services.web.instances.web1.volums",
            "did you mean `volumes`?",
        ],
        outcome: "names the key, file:line:column, field path and `did you mean `volumes`?`, exit 2",
    },
    Case {
        name: "wrong_type",
        input: "a list where a boolean is expected",
        file: "name: x\n{SHIPS}services:\n  web:\n    image: a\n    instances:\n      web1:\n        ship: ship1\n        privileged: [yes]\n",
        expect: &[
            "expected true or false, found a list",
            "env.yaml:11:21",
            "field: services.web.instances.web1.privileged",
        ],
        outcome: "`expected true or false, found a list`, located, with the field path, exit 2",
    },
    Case {
        name: "dependency_cycle",
        input: "services that require each other",
        file: "name: x\n{SHIPS}services:\n  a:\n    image: a\n    requires: [b]\n    instances: {a1: {ship: ship1}}\n  b:\n    image: b\n    requires: [a]\n    instances: {b1: {ship: ship1}}\n",
        expect: &[
            "dependency cycle: a -> b -> a",
            "env.yaml:8:16",
            "field: services.a.requires[0]",
        ],
        outcome: "prints the cycle (`a -> b -> a`) at the `requires` entry that closes it, exit 2",
    },
    Case {
        name: "unknown_ship",
        input: "an instance placed on a ship that does not exist",
        file: "name: x\n{SHIPS}services:\n  web:\n    image: a\n    instances:\n      web1: {ship: shipp1}\n",
        expect: &[
            "unknown ship `shipp1`",
            "env.yaml:9:20",
            "field: services.web.instances.web1.ship",
            "did you mean `ship1`?",
        ],
        outcome: "`unknown ship`, located, with a suggestion, exit 2",
    },
    Case {
        name: "unknown_service",
        input: "`requires` naming a service that does not exist",
        file: "name: x\n{SHIPS}services:\n  kafka:\n    image: a\n    instances: {k1: {ship: ship1}}\n  web:\n    image: b\n    requires: [kafak]\n    instances: {w1: {ship: ship1}}\n",
        expect: &[
            "unknown service `kafak` in `requires`",
            "env.yaml:11:16",
            "field: services.web.requires[0]",
            "did you mean `kafka`?",
        ],
        outcome: "`unknown service`, located, with a suggestion, exit 2",
    },
    Case {
        name: "duplicate_instance_names",
        input: "two services with an instance of the same name",
        file: "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      same: {ship: ship1}\n  b:\n    image: b\n    instances:\n      same: {ship: ship2}\n",
        expect: &[
            "duplicate instance name `same`",
            "env.yaml:13:7",
            "field: services.b.instances.same",
            "already an instance of service `a`",
        ],
        outcome: "`duplicate instance name`, pointing at the second one and naming the first service, exit 2",
    },
    Case {
        name: "same_host_port_twice",
        input: "two instances publishing the same host port on one ship",
        file: "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1: {ship: ship1, ports: {http: \"80:8080\"}}\n  b:\n    image: b\n    instances:\n      b1:\n        ship: ship1\n        ports:\n          web: 8080\n",
        expect: &[
            "host port 8080/tcp on ship `ship1` is published by both `a1` (port `http`) and `b1` (port `web`)",
            "env.yaml:16:16",
            "field: services.b.instances.b1.ports.web",
        ],
        outcome: "names the ship, the port and both instances, located, exit 2",
    },
    Case {
        name: "invalid_port_spec",
        input: "a port spec that is not a port (`80:abc`)",
        file: "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n        ports:\n          http: \"80:abc\"\n",
        expect: &[
            "invalid port spec \"80:abc\" for port `http`",
            "env.yaml:12:17",
            "field: services.a.instances.a1.ports.http",
        ],
        outcome: "`invalid port spec` saying which part is wrong, located, exit 2",
    },
    Case {
        name: "invalid_volume_spec",
        input: "a volume whose container path is relative",
        file: "name: x\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      a1:\n        ship: ship1\n        volumes:\n          data: /srv/data\n",
        expect: &[
            "container path \"data\" must be absolute",
            "env.yaml:12:11",
            "field: services.a.instances.a1.volumes.data",
        ],
        outcome: "`invalid volume`, located, exit 2",
    },
    Case {
        name: "template_undefined_variable",
        input: "a Jinja2 template using an undefined variable",
        file: "name: x\n{SHIPS}services:\n  a:\n    image: \"{{ env.MAESTRO_SURELY_UNSET_VAR }}\"\n    instances: {a1: {ship: ship1}}\n",
        expect: &["env.yaml:7:", "undefined value", "MAESTRO_SURELY_UNSET_VAR"],
        outcome: "`undefined value` naming the variable, at its line in the template, exit 2",
    },
    Case {
        name: "many_nodes_9mb",
        input: "a 9 MB file of 260 000 list items (the node budget is 250 000), with a key given twice on line 2",
        file: "",
        expect: &[
            "invalid YAML: too many nodes: the document has more than 250000",
            "env.yaml:249997:3",
        ],
        outcome: "refused by a line-by-line count of nodes before the YAML is parsed (`too many nodes`, at the line where the count passes the budget; not the twice-given key that a parse would report first), exit 2",
    },
    Case {
        name: "huge_file_100mb",
        input: "a 100 MB file",
        file: "",
        expect: &["env.yaml is larger than", "limited to 10 MB"],
        outcome: "refused from its size before reading it (`limited to 10 MB`; the process reads under 1 MB in all, measured), exit 2",
    },
    Case {
        name: "huge_stdin_100mb",
        input: "100 MB on standard input (`-f -`)",
        file: "",
        expect: &["<stdin> is larger than", "limited to 10 MB"],
        outcome: "stops reading after 10 MB (at most 10 MB + 1 MB of the pipe is consumed, measured) and refuses (`limited to 10 MB`), exit 2",
    },
];

fn case(name: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// Writes the case's file (or `content` when given) as env.yaml in a fresh directory, runs
/// every command of [`COMMANDS`] on it, and checks the refusal.
fn refuse_everywhere(case: &Case, content: Option<Vec<u8>>) {
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    let bytes = content.unwrap_or_else(|| {
        case.file
            .replace(
                "{SHIPS}",
                &SHIPS.replace("PORT", &recorder.port.to_string()),
            )
            .into_bytes()
    });
    std::fs::write(&path, &bytes).expect("write env.yaml");
    for command in COMMANDS {
        let run = run_maestro(dir.path(), &["-f", "env.yaml", command], &[]);
        assert_refused(case, command, &run);
    }
    assert_eq!(
        recorder.contacts(),
        0,
        "{}: a ship was contacted for a file that does not load",
        case.name
    );
}

fn assert_refused(case: &Case, command: &str, run: &Run) {
    assert_eq!(run.code, 2, "{} / {command}: {run}", case.name);
    for part in case.expect {
        assert!(
            run.stderr.contains(part),
            "{} / {command}: expected {part:?} in stderr\n{run}",
            case.name
        );
    }
    assert!(
        run.stderr.len() < 8 * 1024,
        "{} / {command}: {} bytes of stderr",
        case.name,
        run.stderr.len()
    );
    assert!(
        !run.stderr.contains("panicked"),
        "{} / {command}: {run}",
        case.name
    );
    // How long a refusal takes is the benchmark's business; a run that hangs is killed after
    // RUN_LIMIT and fails the test (support::finish_within).
}

#[test]
fn malformed_yaml() {
    refuse_everywhere(case("malformed_yaml"), None);
}

/// CPU, not wall time: a loaded machine stretches the wall clock, not the work done. The
/// bomb expanded would be a billion nodes (minutes of CPU and gigabytes); refused, it costs a
/// fraction of a second.
#[test]
fn alias_bomb() {
    let case = case("alias_bomb");
    refuse_everywhere(case, None);
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = case.file.replace(
        "{SHIPS}",
        &SHIPS.replace("PORT", &recorder.port.to_string()),
    );
    std::fs::write(dir.path().join("env.yaml"), text).expect("write env.yaml");
    for command in COMMANDS {
        let run = run_maestro(dir.path(), &["-f", "env.yaml", command], &[]);
        assert_refused(case, command, &run);
        let cpu = run.cpu.expect("the CPU time of maestro, read from /proc");
        eprintln!("alias_bomb / {command}: {cpu:?} of CPU");
        assert!(
            cpu < Duration::from_secs(5),
            "{command}: {cpu:?} of CPU for a refused alias bomb\n{run}"
        );
    }
    assert_eq!(recorder.contacts(), 0);
}

#[test]
fn deep_nesting() {
    let mut text = String::from("name: x\nships: {}\nx: ");
    text.push_str(&"[".repeat(100_000));
    refuse_everywhere(case("deep_nesting"), Some(text.into_bytes()));
}

#[test]
fn not_utf8() {
    refuse_everywhere(
        case("not_utf8"),
        Some(b"name: x\n\xff\xfe\x00\x01ships: {}\n".to_vec()),
    );
}

#[test]
fn unknown_key_did_you_mean() {
    refuse_everywhere(case("unknown_key_did_you_mean"), None);
}

#[test]
fn wrong_type() {
    refuse_everywhere(case("wrong_type"), None);
}

#[test]
fn dependency_cycle() {
    refuse_everywhere(case("dependency_cycle"), None);
}

#[test]
fn unknown_ship() {
    refuse_everywhere(case("unknown_ship"), None);
}

#[test]
fn unknown_service() {
    refuse_everywhere(case("unknown_service"), None);
}

#[test]
fn duplicate_instance_names() {
    refuse_everywhere(case("duplicate_instance_names"), None);
}

#[test]
fn same_host_port_twice() {
    refuse_everywhere(case("same_host_port_twice"), None);
}

#[test]
fn invalid_port_spec() {
    refuse_everywhere(case("invalid_port_spec"), None);
}

#[test]
fn invalid_volume_spec() {
    refuse_everywhere(case("invalid_volume_spec"), None);
}

#[test]
fn template_undefined_variable() {
    refuse_everywhere(case("template_undefined_variable"), None);
}

/// The file is under the size limit, and parsing it up to the node budget takes seconds in a
/// debug build: it is refused from a count made before parsing. Line 2 is an error that a
/// parse would report at once (a key given twice): that it is not reported shows that the
/// file was not parsed.
#[test]
fn many_nodes_9mb() {
    let mut text = String::from("name: x\nname: y\nships: {}\nx:\n");
    for i in 0..260_000 {
        text.push_str(&format!("  - item-{i:06}-abcdefghijklmnopqrstu\n"));
    }
    assert!(text.len() > 9_000_000 && text.len() < 10 * 1024 * 1024);
    refuse_everywhere(case("many_nodes_9mb"), Some(text.into_bytes()));
}

/// A sparse 100 MB file: the size is refused from the file's metadata, so this is fast
/// whatever the disk.
#[test]
fn huge_file_100mb() {
    let case = case("huge_file_100mb");
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(100 * 1024 * 1024).expect("grow to 100 MB");
    drop(file);
    for command in COMMANDS {
        let run = support::run_counting_reads(&support::maestro_command(
            dir.path(),
            &["-f", "env.yaml", command],
            &[],
        ));
        assert_refused(case, command, &run);
        // Refused from the metadata: what the process read in all (its own files included)
        // is far below the 100 MB, and below the 10 MB a reading refusal would have taken.
        let read = run.read_bytes.expect("rchar of maestro and its shell");
        assert!(
            read < 1024 * 1024,
            "{command}: read {read} bytes of a file refused from its size\n{run}"
        );
    }
    assert_eq!(recorder.contacts(), 0);
}

/// 100 MB piped in: maestro must stop after the limit rather than buffer it all. What it
/// consumed is counted at the writing end of the pipe: what was written is what maestro read
/// plus what was left in the pipe's buffer (64 KB) when it closed its end.
#[test]
fn huge_stdin_100mb() {
    const MB: u64 = 1024 * 1024;
    let case = case("huge_stdin_100mb");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = common::maestro(dir.path())
        .args(["-f", "-", "validate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maestro");
    let started = Instant::now();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'#'; 64 * 1024];
        let mut written = 0u64;
        while written < 100 * MB {
            // maestro closes its end once it has read past the limit.
            match stdin.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        written
    });
    let run = support::finish_within(child, RUN_LIMIT, started);
    let written = writer.join().expect("writer thread");
    assert_refused(case, "validate", &run);
    assert!(
        (10 * MB..=11 * MB).contains(&written),
        "{written} bytes went into the pipe: maestro must read 10 MB and stop\n{run}"
    );
}

/// Each case's name is a test of this file and a row of docs/reliability.md.
#[test]
fn reliability_doc_lists_every_hostile_input() {
    let source = include_str!("hostile_input.rs");
    let rows: Vec<(String, String)> = CASES
        .iter()
        .map(|c| {
            assert!(
                source.contains(&format!("fn {}()", c.name)),
                "case {} has no test of that name",
                c.name
            );
            (format!("`{}`: {}", c.name, c.input), c.outcome.to_string())
        })
        .collect();
    support::check_doc_section(
        &support::docs_dir().join("reliability.md"),
        "hostile-input",
        &support::table(
            (
                "bad input (test in tests/offline/hostile_input.rs)",
                "what maestro does",
            ),
            &rows,
        ),
    );
}
