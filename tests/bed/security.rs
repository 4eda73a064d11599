//! Security through the binary: secrets never appear in what maestro prints (dump, validate,
//! errors, `--json`, plan, start), host keys are never trusted silently, and a private key
//! that others can read gets a warning.
//!
//! The masking facility itself is unit-tested in src/secrets.rs; these tests run
//! `maestro` as an operator would and search its whole output for the secret texts.

use crate::common;
use common::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{ContactRecorder, Run, run_maestro};

/// Secret texts used below; none may ever be printed.
const REGISTRY_PASSWORD: &str = "reg-pass-0001";
const DB_PASSWORD: &str = "db-pass-0002";
const PROCESS_TOKEN: &str = "tok-0003-from-process";
const CUSTOM_CRED: &str = "cred-0005";
const PASSPHRASE: &str = "phrase-0006";
const SECRETS: &[&str] = &[
    REGISTRY_PASSWORD,
    DB_PASSWORD,
    PROCESS_TOKEN,
    CUSTOM_CRED,
    PASSPHRASE,
];
/// Not a secret: must stay visible (masking is not a blanket).
const PLAIN_VALUE: &str = "visible-0004";

fn environment_file(port: u16) -> String {
    format!(
        r#"name: sec
registries:
  private: {{registry: "https://reg.example.com:5000/v1/", username: deploy, password: "{REGISTRY_PASSWORD}"}}
ships:
  ship1: {{ip: 127.0.0.1, ssh: {{user: root, port: {port}}}}}
services:
  web:
    image: reg.example.com:5000/web
    env:
      DB_PASSWORD: "{DB_PASSWORD}"
      API_TOKEN: "{{{{ env.DEPLOY_TOKEN }}}}"
      PLAIN: {PLAIN_VALUE}
      CUSTOM_CRED: {CUSTOM_CRED}
    instances:
      web1:
        ship: ship1
        command: "serve --auth {{{{ env.DEPLOY_TOKEN }}}}"
secrets:
  patterns: ["*_CRED"]
"#
    )
}

const ENVS: &[(&str, &str)] = &[
    ("DEPLOY_TOKEN", PROCESS_TOKEN),
    ("MAESTRO_SSH_PASSPHRASE", PASSPHRASE),
];

fn assert_no_secret(what: &str, run: &Run) {
    for secret in SECRETS {
        assert!(
            !run.all().contains(secret),
            "{what}: the secret {secret:?} was printed\n{run}"
        );
    }
    assert!(!run.stderr.contains("panicked"), "{what}: {run}");
}

#[test]
fn dump_masks_every_kind_of_secret_and_nothing_else() {
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("env.yaml"), environment_file(recorder.port)).expect("write");
    for args in [
        &["-f", "env.yaml", "dump"][..],
        &["-f", "env.yaml", "dump", "--json"][..],
    ] {
        let run = run_maestro(dir.path(), args, ENVS);
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert_no_secret(&format!("{args:?}"), &run);
        assert!(run.stdout.contains(PLAIN_VALUE), "{args:?}: {run}");
        assert!(run.stdout.contains("***"), "{args:?}: {run}");
        assert!(
            run.stdout.contains("serve --auth ***"),
            "a process secret is masked wherever it was templated: {run}"
        );
    }
    assert_eq!(recorder.contacts(), 0);
}

#[test]
fn validate_deptree_and_json_reports_show_no_secret() {
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("env.yaml"), environment_file(recorder.port)).expect("write");
    for args in [
        &["-f", "env.yaml", "validate"][..],
        &["-f", "env.yaml", "validate", "--json"][..],
        &["-f", "env.yaml", "deptree", "-r"][..],
    ] {
        let run = run_maestro(dir.path(), args, ENVS);
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert_no_secret(&format!("{args:?}"), &run);
    }
}

/// `status`, `plan` and `start` against a ship that cannot be reached: whatever they report
/// (per ship failures, plans, summaries, `--json` events) holds no secret.
#[test]
fn commands_that_contact_ships_show_no_secret_even_when_failing() {
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("env.yaml"), environment_file(recorder.port)).expect("write");
    for args in [
        &["-f", "env.yaml", "status"][..],
        &["-f", "env.yaml", "status", "--json"][..],
        &["-f", "env.yaml", "plan"][..],
        &["-f", "env.yaml", "plan", "--json"][..],
        &["-f", "env.yaml", "start", "--plain"][..],
        &["-f", "env.yaml", "start", "--json"][..],
        &["-f", "env.yaml", "ships"][..],
        &["-f", "env.yaml", "ships", "--json"][..],
    ] {
        let run = run_maestro(dir.path(), args, ENVS);
        assert_no_secret(&format!("{args:?}"), &run);
    }
}

/// A file that fails to load has not told maestro its secrets, but the error snippet quotes
/// its lines: values of secret names are masked there, and known secrets anywhere.
#[test]
fn error_messages_mask_secrets_they_quote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "name: x\nships:\n  ship1: {{ip: 127.0.0.1}}\nservices:\n  web:\n    image: a\n    instances:\n      web1: {{ship: shipp1, env: {{DB_PASSWORD: {DB_PASSWORD}}}}}\n"
    );
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "validate"], ENVS);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("env.yaml:8:"), "{run}");
    assert!(run.stderr.contains("DB_PASSWORD: ***"), "{run}");
    assert_no_secret("snippet", &run);

    let text = format!(
        "name: x\nships:\n  ship1: {{ip: 127.0.0.1}}\nservices:\n  web:\n    image: a\n    instances:\n      web1: {{ship: {PASSPHRASE}}}\n"
    );
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "validate"], ENVS);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("unknown ship `***`"), "{run}");
    assert_no_secret("passphrase in a message", &run);
}

#[test]
fn secret_pattern_variable_replaces_the_default_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "name: x\nships:\n  ship1: {{ip: 127.0.0.1}}\nservices:\n  web:\n    image: a\n    env: {{DB_PASSWORD: {DB_PASSWORD}, SESSION_SEED: seed-0007}}\n    instances: {{web1: {{ship: ship1}}}}\n"
    );
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    let run = run_maestro(
        dir.path(),
        &["-f", "env.yaml", "dump"],
        &[("MAESTRO_SECRET_PATTERNS", "*_seed, OTHER")],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stdout.contains("seed-0007"), "{run}");
    assert!(
        run.stdout.contains(DB_PASSWORD),
        "the default patterns were replaced: {run}"
    );
}

#[test]
fn secrets_section_is_checked_like_the_rest_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "name: x\nships:\n  ship1: {ip: 127.0.0.1}\n";
    std::fs::write(
        dir.path().join("env.yaml"),
        format!("{base}secrets:\n  patern: [\"*_CRED\"]\n"),
    )
    .expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "validate"], &[]);
    assert_eq!(run.code, 2, "{run}");
    for part in [
        "unknown key `patern` in `secrets`",
        "env.yaml:5:3",
        "did you mean `patterns`?",
    ] {
        assert!(run.stderr.contains(part), "{part}: {run}");
    }
    std::fs::write(
        dir.path().join("env.yaml"),
        format!("{base}secrets:\n  patterns: [\"*_CRED\", \"[oops\"]\n"),
    )
    .expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "validate"], &[]);
    assert_eq!(run.code, 2, "{run}");
    for part in [
        "invalid secret name pattern `[oops`",
        "env.yaml:5:",
        "field: secrets.patterns[1]",
    ] {
        assert!(run.stderr.contains(part), "{part}: {run}");
    }
}

/// A secret that YAML or the template escaping spells differently in the dump (a quote, a
/// backslash, `{{`, a line break) is masked all the same: values are masked before the text
/// is made. `--show-secrets` prints it, in a file that loads back to the same value.
#[test]
fn dump_masks_secrets_whatever_their_yaml_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "name: x\nships:\n  ship1: {ip: 127.0.0.1}\nservices:\n  web:\n    image: a\n    \
                instances:\n      web1:\n        ship: ship1\n        env:\n          \
                DB_PASSWORD: \"q\\\"u{{ '{{' }}o\\\\te-0010\\nline\"\n          PLAIN: visible\n";
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    for args in [
        &["-f", "env.yaml", "dump"][..],
        &["-f", "env.yaml", "dump", "--json"][..],
    ] {
        let run = run_maestro(dir.path(), args, &[]);
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert!(
            run.stdout.contains("DB_PASSWORD") && run.stdout.contains("***"),
            "{run}"
        );
        assert!(!run.stdout.contains("te-0010"), "{args:?}: {run}");
        assert!(run.stdout.contains("visible"), "{run}");
    }
    let run = run_maestro(
        dir.path(),
        &["-f", "env.yaml", "dump", "--show-secrets"],
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    std::fs::write(dir.path().join("dumped.yaml"), &run.stdout).expect("write");
    let reloaded = maestro::config::load(&dir.path().join("dumped.yaml")).expect("reloads");
    let (_, web1) = reloaded.instance("web1").expect("web1");
    assert_eq!(
        web1.env.get("DB_PASSWORD").map(String::as_str),
        Some("q\"u{{o\\te-0010\nline")
    );
}

// --- on the test bed -------------------------------------------------------------------------

/// An environment file reaching bed ships over SSH with `key` and `known_hosts`.
fn bed_file(bed: &common::TestBed, ships: &[&str], key: &Path, known_hosts: &Path) -> String {
    let mut text = String::from("name: sec-bed\nships:\n");
    for name in ships {
        let ship = bed.ship(name);
        text.push_str(&support::ssh_ship_line(
            name,
            &ship.ip,
            key,
            known_hosts,
            &ship.docker_socket,
            ", ssh_timeout: 5",
        ));
    }
    text.push_str("services: {}\n");
    text
}

#[test]
fn ships_warns_about_a_private_key_others_can_read() {
    let bed = common::TestBed::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let loose = dir.path().join("id_loose");
    std::fs::copy(bed.key(), &loose).expect("copy key");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let ship = bed.outer_ships()[0].name.clone();
    std::fs::write(
        dir.path().join("env.yaml"),
        bed_file(&bed, &[&ship], &loose, bed.known_hosts()),
    )
    .expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "ships"], &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("warning:")
            && run.stdout.contains("id_loose")
            && run.stdout.contains("accessible by others"),
        "{run}"
    );

    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "ships"], &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stdout.contains("warning:"), "{run}");
}

/// Host keys through the CLI: unknown refused with the fingerprint and how to accept it;
/// `--accept-new-host-keys` records it; a changed key is refused even then.
#[test]
fn ships_never_trusts_a_host_key_silently() {
    let bed = common::TestBed::shared();
    let outer = bed.outer_ships();
    let (ship, other) = (outer[0].clone(), outer[1].clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, "").expect("empty known_hosts");
    std::fs::write(
        dir.path().join("env.yaml"),
        bed_file(&bed, &[&ship.name], bed.key(), &known),
    )
    .expect("write");

    let run = run_maestro(dir.path(), &["-f", "env.yaml", "ships"], &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("host-key-unknown"), "{run}");
    assert!(run.stdout.contains(&ship.host_key_fingerprint), "{run}");
    assert_eq!(std::fs::read_to_string(&known).expect("read"), "");

    let run = run_maestro(
        dir.path(),
        &["-f", "env.yaml", "ships", "--accept-new-host-keys"],
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    let recorded = std::fs::read_to_string(&known).expect("read");
    assert!(recorded.contains(&ship.ip), "{recorded}");

    let run = run_maestro(dir.path(), &["-f", "env.yaml", "ships"], &[]);
    assert_eq!(run.code, 0, "strict mode accepts the recorded key: {run}");

    // The ship now presents another key than the recorded one: pretend by recording the key
    // of another ship under this ship's address.
    let other_key = std::fs::read_to_string(
        other
            .host_key_public
            .as_ref()
            .expect("bed.json names host_key_public"),
    )
    .expect("read other host key");
    let mut fields = other_key.split_whitespace();
    let (kind, blob) = (
        fields.next().expect("key type"),
        fields.next().expect("key blob"),
    );
    std::fs::write(&known, format!("{} {kind} {blob}\n", ship.ip)).expect("write");
    for extra in [&[][..], &["--accept-new-host-keys"][..]] {
        let mut args = vec!["-f", "env.yaml", "ships"];
        args.extend_from_slice(extra);
        let run = run_maestro(dir.path(), &args, &[]);
        assert_eq!(run.code, 1, "{extra:?}: {run}");
        assert!(run.stdout.contains("host-key-changed"), "{extra:?}: {run}");
    }
}

/// Without MAESTRO_SSH_PASSPHRASE, on a terminal, the passphrase is asked (ui's prompt,
/// which transport calls): what is typed is not echoed, and the terminal is left as it was.
/// Driven on a pseudo-terminal by tests/pty_drive.py.
#[test]
fn a_passphrase_typed_at_the_prompt_is_not_echoed() {
    if std::env::var_os("MAESTRO_SKIP_PTY_TESTS").is_some() {
        return;
    }
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("env.yaml"),
        bed_file(&bed, &[&ship], bed.encrypted_key(), bed.known_hosts()),
    )
    .expect("write");
    let passphrase = bed.passphrase().to_string();
    let steps = serde_json::json!([
        {"expect": "Enter passphrase for key"},
        {"send": format!("{passphrase}\r")},
    ]);
    let steps_file = dir.path().join("steps.json");
    std::fs::write(&steps_file, steps.to_string()).expect("write steps");
    let maestro = support::maestro_command(dir.path(), &["-f", "env.yaml", "ships"], &[]);
    let mut driver = std::process::Command::new("python3");
    driver.env_clear();
    for (key, value) in maestro.get_envs() {
        if let Some(value) = value {
            driver.env(key, value);
        }
    }
    driver
        .env("TERM", "xterm")
        .current_dir(dir.path())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty_drive.py"))
        .arg(&steps_file)
        .arg("--")
        .arg(maestro.get_program())
        .args(maestro.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let child = driver.spawn().unwrap_or_else(|e| {
        panic!("this test needs python3 ({e}); MAESTRO_SKIP_PTY_TESTS=1 skips it")
    });
    let run = support::finish_within(child, support::RUN_LIMIT, started);
    assert_eq!(run.code, 0, "the driver failed: {run}");
    let out: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    assert_eq!(out["failed"], serde_json::Value::Null, "{out:#}");
    assert_eq!(out["exit"], 0, "{out:#}");
    assert_eq!(
        out["restored"], true,
        "the terminal was left changed: {out:#}"
    );
    let output = out["output"].as_str().unwrap_or_default();
    assert!(
        !output.contains(&passphrase),
        "the passphrase was echoed: {out:#}"
    );
}

/// The passphrase of an encrypted key is used and never shown.
#[test]
fn encrypted_key_passphrase_is_never_printed() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("env.yaml"),
        bed_file(&bed, &[&ship], bed.encrypted_key(), bed.known_hosts()),
    )
    .expect("write");
    let passphrase = bed.passphrase().to_string();
    for args in [
        &["-f", "env.yaml", "ships"][..],
        &["-f", "env.yaml", "ships", "--json"][..],
    ] {
        let run = run_maestro(
            dir.path(),
            args,
            &[("MAESTRO_SSH_PASSPHRASE", passphrase.as_str())],
        );
        assert_eq!(run.code, 0, "{args:?}: {run}");
        assert!(!run.all().contains(&passphrase), "{args:?}: {run}");
    }
    let run = run_maestro(
        dir.path(),
        &["-f", "env.yaml", "ships"],
        &[("MAESTRO_SSH_PASSPHRASE", "wrong-phrase-0008")],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(!run.all().contains("wrong-phrase-0008"), "{run}");
}

/// The bed's file for one ship, as environment `name`, with `services` (YAML) as its services.
fn one_ship_file(bed: &common::TestBed, ship: &str, name: &str, services: &str) -> String {
    let text = bed_file(bed, &[ship], bed.key(), bed.known_hosts())
        .replace("services: {}\n", "")
        .replace("name: sec-bed", &format!("name: {name}"));
    text + services
}

/// A real `start` of a container whose environment holds secrets: the event stream (plain
/// and `--json`) and `status` never show them. Skipped while `start` is not in this build.
#[test]
fn start_and_status_on_the_bed_show_no_secret() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = one_ship_file(
        &bed,
        &ship,
        "secbed",
        &format!(
            "services:\n  sec:\n    image: {}\n    env: {{DB_PASSWORD: \"{DB_PASSWORD}\", API_TOKEN: \"{{{{ env.DEPLOY_TOKEN }}}}\"}}\n    instances:\n      secbed-1: {{ship: {ship}, command: \"sh -c 'echo $DB_PASSWORD $API_TOKEN; sleep 600'\"}}\n",
            bed.image
        ),
    );
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "start", "--json"], ENVS);
    assert_no_secret("start --json", &run);
    for args in [
        &["-f", "env.yaml", "status", "--json"][..],
        &["-f", "env.yaml", "status", "-F"][..],
        &["-f", "env.yaml", "logs", "secbed-1"][..],
        &["-f", "env.yaml", "start", "--plain"][..],
        &["-f", "env.yaml", "plan"][..],
        &["-f", "env.yaml", "stop", "-a", "--plain"][..],
    ] {
        let run = run_maestro(dir.path(), args, ENVS);
        assert_no_secret(&format!("{args:?}"), &run);
    }
    let _ = bed.docker_cli(&ship, &["rm", "-f", "secbed-1"]);
}

/// A daemon's error text can carry a secret the file put elsewhere (here the image reference,
/// which the daemon quotes when it refuses it): `plan` prints it on stderr as a warning, and
/// `start` as the job's failure, both masked.
#[test]
fn a_secret_in_a_daemons_error_is_masked_on_stderr() {
    const IN_IMAGE: &str = "Hunter2Secret0007";
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    // Upper case makes the reference invalid, and the daemon's refusal quotes it.
    let text = one_ship_file(
        &bed,
        &ship,
        "secdaemon",
        &format!(
            "services:\n  sec:\n    image: registry.local/{IN_IMAGE}:1\n    env: {{DB_PASSWORD: \"{IN_IMAGE}\"}}\n    instances:\n      secdaemon-1: {{ship: {ship}}}\n"
        ),
    );
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    for (args, expected_code) in [
        (&["-f", "env.yaml", "plan"][..], 0),
        (&["-f", "env.yaml", "start", "--plain"][..], 1),
    ] {
        let run = run_maestro(dir.path(), args, ENVS);
        assert_eq!(run.code, expected_code, "{args:?}: {run}");
        // The daemon's words are there, the secret is not.
        // plan warns on stderr; start's plain renderer reports the job on stdout.
        let shown = if args[2] == "plan" {
            &run.stderr
        } else {
            &run.stdout
        };
        assert!(
            shown.contains("invalid reference format"),
            "{args:?}: the daemon's error is not shown\n{run}"
        );
        assert!(
            run.all().contains("registry.local/***:1"),
            "{args:?}: {run}"
        );
        assert!(
            !run.all().contains(IN_IMAGE),
            "{args:?}: the secret was printed\n{run}"
        );
    }
    let _ = bed.docker_cli(&ship, &["rm", "-f", "secdaemon-1"]);
}

/// A host name from ssh_config's `HostName` that holds shell metacharacters is never put into
/// a ProxyCommand or a `Match exec` command, which run through `sh -c`: the connection is
/// refused with the reason, and the command in the name does not run (OpenSSH 9.6 refuses
/// such names for the same reason, CVE-2023-51385). Addresses in the environment file itself
/// are refused when it loads (tests/offline/config_errors.rs).
#[test]
fn names_with_shell_metacharacters_never_reach_a_proxy_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("env.yaml");
    std::fs::write(
        &file,
        "name: n\nships:\n  web: {ip: web, ssh: {user: root}}\n  db: {ip: db, ssh: {user: root}}\nservices: {}\n",
    )
    .expect("write environment");
    let proxied = dir.path().join("proxied");
    let matched = dir.path().join("matched");
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host web\n  HostName 10.0.0.1$(touch {})\n  ProxyCommand nc %h %p\n\
             Host db\n  HostName 10.0.0.2;touch${{IFS}}{}\n\
             Match originalhost db exec \"test %h = x\"\n  User nobody\n",
            proxied.display(),
            matched.display()
        ),
    )
    .expect("write ssh_config");
    let out = common::maestro(dir.path())
        .env("MAESTRO_SSH_CONFIG", &config)
        .arg("-f")
        .arg(&file)
        .args(["ships", "--json"])
        .output()
        .expect("run maestro");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "refusing to run the ProxyCommand `nc %h %p`: %h would be `10.0.0.1$(touch {})`",
            proxied.display()
        )),
        "{report}"
    );
    assert!(
        report.contains("refusing to run `Match exec test %h = x`: %h would be `10.0.0.2;touch"),
        "{report}"
    );
    assert!(!proxied.exists(), "the ProxyCommand ran the name's command");
    assert!(!matched.exists(), "Match exec ran the name's command");
}

/// No label of a container holds a value of its environment, nor its command line: the spec
/// label records fingerprints of them. Change detection still works, and `plan` still shows
/// the field-by-field diff, reading old values from the container's own config, with the
/// values of secret-named variables masked on both sides.
#[test]
fn labels_hold_no_secret_and_plan_still_shows_what_changed() {
    const MODE_OLD: &str = "blue-0008";
    const MODE_NEW: &str = "green-0009";
    const NEW_PASSWORD: &str = "db-pass-0010-new";
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |password: &str, mode: &str| {
        one_ship_file(
            &bed,
            &ship,
            "seclabel",
            &format!(
                "services:\n  sec:\n    image: {}\n    env: {{DB_PASSWORD: \"{password}\", MODE: {mode}}}\n    instances:\n      seclabel-1: {{ship: {ship}, command: \"sh -c 'sleep 600' --token={PROCESS_TOKEN}\"}}\n",
                bed.image
            ),
        )
    };
    std::fs::write(dir.path().join("env.yaml"), file(DB_PASSWORD, MODE_OLD)).expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "start", "--plain"], ENVS);
    assert_eq!(run.code, 0, "{run}");
    let labels = bed.docker_ok(
        &ship,
        &[
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            "seclabel-1",
        ],
    );
    // The spec label is packed: read what it holds, as anyone can.
    let all = support::labels_unpacked(&labels);
    assert!(
        all.contains("io.maestro.spec") && all.contains("[\"DB_PASSWORD\",\"sha256:"),
        "{all}"
    );
    for value in [DB_PASSWORD, MODE_OLD, PROCESS_TOKEN] {
        assert!(!all.contains(value), "a label holds {value}: {all}");
    }
    // The container itself has them, as it must.
    let env = bed.docker_ok(
        &ship,
        &["inspect", "--format", "{{json .Config.Env}}", "seclabel-1"],
    );
    assert!(env.contains(DB_PASSWORD) && env.contains(MODE_OLD), "{env}");

    // Unchanged: nothing to do. Changed: re-created, with each field's old and new value.
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "plan"], ENVS);
    assert!(run.stdout.contains("nothing"), "{run}");
    std::fs::write(dir.path().join("env.yaml"), file(NEW_PASSWORD, MODE_NEW)).expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "plan"], ENVS);
    assert!(
        run.stdout
            .contains("recreate: the container spec changed (2 fields)"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(&format!("env.MODE: \"{MODE_OLD}\" -> \"{MODE_NEW}\"")),
        "the old value is read from the container: {run}"
    );
    assert!(
        run.stdout.contains("env.DB_PASSWORD: \"***\" -> \"***\""),
        "{run}"
    );
    assert!(!run.all().contains(NEW_PASSWORD), "{run}");
    assert_no_secret("plan", &run);
    let _ = bed.docker_cli(&ship, &["rm", "-f", "seclabel-1"]);
}

/// maestro changes or removes only containers that carry its labels for this environment and
/// instance. A container with an instance's name that is someone else's (no labels, or
/// another environment's) is refused, named with its labels, and left exactly as it was;
/// `--adopt` takes it over (the path from a MaestroNG deployment).
#[test]
fn a_foreign_container_is_refused_and_left_alone_until_adopted() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].name.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let service = |env_name: &str| {
        one_ship_file(
            &bed,
            &ship,
            env_name,
            &format!(
                "services:\n  own:\n    image: {}\n    instances:\n      secown-1: {{ship: {ship}, command: \"sleep 600\"}}\n",
                bed.image
            ),
        )
    };
    let _ = bed.docker_cli(&ship, &["rm", "-f", "secown-1"]);
    let foreign_id = bed.docker_ok(
        &ship,
        &[
            "create",
            "--name",
            "secown-1",
            "--label",
            "owner=someone-else",
            &bed.image,
            "sleep",
            "600",
        ],
    );
    let state = || {
        bed.docker_ok(
            &ship,
            &[
                "inspect",
                "--format",
                "{{.Id}} {{.State.Status}} {{json .Config.Labels}}",
                "secown-1",
            ],
        )
    };
    let before = state();
    std::fs::write(dir.path().join("env.yaml"), service("secown")).expect("write");
    // plan says beforehand what start would do: refuse it.
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "plan"], ENVS);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout
            .contains("refused: not this environment's container")
            && run.stdout.contains("1 refused (not this environment's)")
            && run.stderr.contains("owner=someone-else")
            && run.stderr.contains("--adopt"),
        "{run}"
    );
    for args in [
        &["-f", "env.yaml", "start", "--plain"][..],
        &["-f", "env.yaml", "restart", "secown-1", "--plain"][..],
        &["-f", "env.yaml", "clean", "--plain"][..],
    ] {
        let run = run_maestro(dir.path(), args, ENVS);
        assert_eq!(run.code, 1, "{args:?}: {run}");
        assert!(
            run.stdout.contains(&format!(
                "container secown-1 on {ship} is not this environment's: it has none of \
                 maestro's labels for this instance (its labels are owner=someone-else)"
            )) && run.stdout.contains("--adopt"),
            "{args:?}: {run}"
        );
        assert_eq!(state(), before, "{args:?} changed the foreign container");
    }
    assert!(before.starts_with(foreign_id.trim()), "{before}");

    // Taken over explicitly: re-created with this environment's labels, and running.
    let run = run_maestro(
        dir.path(),
        &["-f", "env.yaml", "start", "--adopt", "--plain"],
        ENVS,
    );
    assert_eq!(run.code, 0, "{run}");
    let after = state();
    assert!(
        !after.starts_with(foreign_id.trim()),
        "not re-created: {after}"
    );
    assert!(
        after.contains("running") && after.contains("\"io.maestro.environment\":\"secown\""),
        "{after}"
    );

    // Another environment with an instance of the same name on the ship cannot touch it.
    std::fs::write(dir.path().join("other.yaml"), service("secother")).expect("write");
    let run = run_maestro(
        dir.path(),
        &["-f", "other.yaml", "stop", "-a", "--plain"],
        ENVS,
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout
            .contains("it belongs to the environment `secown`"),
        "{run}"
    );
    assert_eq!(state(), after, "the other environment changed it");
    let _ = bed.docker_cli(&ship, &["rm", "-f", "secown-1"]);
}

/// The README's habit (`POSTGRES_PASSWORD: example`, a service named `postgres`, a host under
/// example.com, a file under examples/): structured output is masked by field, never by
/// substring. Names, images, paths and hosts show as written, secret fields as `***`, free text
/// (a URL that holds the password) is masked where the secret appears, and a dump reloads.
#[test]
fn structured_output_masks_by_field_and_keeps_names() {
    let recorder = ContactRecorder::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("examples")).expect("mkdir");
    let text = format!(
        "name: shop\nships:\n  db1: {{ip: 127.0.0.1, ssh: {{port: {port}, jump: [bastion.example.com]}}}}\n\
         services:\n  postgres:\n    image: postgres:16\n    env:\n      POSTGRES_PASSWORD: example\n      \
         DATABASE_URL: \"postgres://app:example@db/app\"\n    instances:\n      postgres-1: {{ship: db1}}\n  \
         web:\n    image: example/web:1\n    requires: [postgres]\n    instances:\n      web-1: {{ship: db1}}\n\
         audit:\n  - {{type: slack, channel: ops, token: xoxb-slack-0011}}\n  \
         - {{type: hipchat, room: ops, token: hipchat-0012}}\n  \
         - {{type: http, endpoint: \"https://hooks.example.com/services/T0/B0/hook-0013\", \
         headers: {{Authorization: \"Bearer header-0014\"}}}}\n",
        port = recorder.port
    );
    std::fs::write(dir.path().join("examples/shop.yaml"), text).expect("write");
    let file = "examples/shop.yaml";

    let run = run_maestro(dir.path(), &["-f", file, "deptree", "-r"], &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("postgres (postgres-1 on db1)"), "{run}");

    let run = run_maestro(dir.path(), &["-f", file, "validate"], &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("examples/shop.yaml: environment `shop` is valid"),
        "{run}"
    );
    let run = run_maestro(dir.path(), &["-f", file, "validate", "--json"], &[]);
    assert!(
        run.stdout.contains(r#""file":"examples/shop.yaml""#),
        "{run}"
    );

    let run = run_maestro(dir.path(), &["-f", file, "dump"], &[]);
    assert_eq!(run.code, 0, "{run}");
    for shown in [
        "  postgres:\n",
        "image: postgres:16",
        "image: example/web:1",
        "- bastion.example.com",
        "POSTGRES_PASSWORD: \"***\"",
        "DATABASE_URL: postgres://app:***@db/app",
        "SERVICE_NAME: postgres",
        "endpoint: https://hooks.example.com/***",
    ] {
        assert!(run.stdout.contains(shown), "{shown}: {run}");
    }
    for hidden in [
        "xoxb-slack-0011",
        "hipchat-0012",
        "hook-0013",
        "header-0014",
        ":example@",
    ] {
        assert!(!run.stdout.contains(hidden), "{hidden}: {run}");
    }
    // The dump is a file that loads into the same services, instances and ships.
    std::fs::write(dir.path().join("dumped.yaml"), &run.stdout).expect("write");
    let again = run_maestro(dir.path(), &["-f", "dumped.yaml", "deptree", "-r"], &[]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stdout.contains("postgres (postgres-1 on db1)"),
        "{again}"
    );

    // Reports and events of a ship that cannot be reached keep the names too (a file without
    // the auditors and the jump host, which would be contacted).
    let text = format!(
        "name: shop\nships:\n  db1: {{ip: 127.0.0.1, ssh: {{port: {port}}}}}\n\
         services:\n  postgres:\n    image: postgres:16\n    env:\n      POSTGRES_PASSWORD: example\n      \
         DATABASE_URL: \"postgres://app:example@db/app\"\n    instances:\n      postgres-1: {{ship: db1}}\n",
        port = recorder.port
    );
    std::fs::write(dir.path().join("examples/local.yaml"), text).expect("write");
    let file = "examples/local.yaml";
    for args in [
        &["-f", file, "status", "--json"][..],
        &["-f", file, "start", "--json"][..],
    ] {
        let run = run_maestro(dir.path(), args, &[]);
        assert!(run.stdout.contains(r#""postgres-1""#), "{args:?}: {run}");
        assert!(!run.stdout.contains(":example@"), "{args:?}: {run}");
    }
}

/// `validate` warns about a secret that is also a name of the file or a common word (it will
/// be masked wherever that word appears, and it is weak), and one too short to be masked;
/// it never shows the value.
#[test]
fn validate_warns_about_weak_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "name: shop\nships:\n  db1: {ip: 127.0.0.1}\nservices:\n  postgres:\n    \
                image: postgres:16\n    env: {POSTGRES_PASSWORD: postgres, API_TOKEN: abc, \
                SESSION_SECRET: password, GOOD_SECRET: k3Jd9-xq0P-77aa}\n    \
                instances:\n      postgres-1: {ship: db1}\n";
    std::fs::write(dir.path().join("env.yaml"), text).expect("write");
    let run = run_maestro(dir.path(), &["-f", "env.yaml", "validate"], &[]);
    assert_eq!(run.code, 0, "{run}");
    for part in [
        "warning: env.yaml: service `postgres`: the value of POSTGRES_PASSWORD is a weak secret: \
         it is spelled like `postgres`, a name in this file",
        "the value of API_TOKEN is a weak secret: it is shorter than 4 characters, so it is \
         never masked in output",
        "the value of SESSION_SECRET is a weak secret: it is a common word",
        "= help: use a long random value",
    ] {
        assert!(run.stderr.contains(part), "{part}: {run}");
    }
    assert!(!run.stderr.contains("GOOD_SECRET"), "{run}");
    assert!(
        !run.stderr.contains("abc"),
        "the value is never shown: {run}"
    );
}
