//! Completion of the environment file's names, run the way the shells run it: the binary
//! with `COMPLETE=SHELL` and the words typed so far, and for bash the script of
//! `maestro completions bash` itself, sourced and called as bash calls it at a Tab.
//! No ship is contacted: completion reads only the file.

use std::path::Path;
use std::process::Output;

use crate::common;

const FILE: &str = r#"
name: comp
ships:
  alpha: {ip: 10.0.0.1}
  beta: {ip: 10.0.0.2}
services:
  web:
    image: busybox
    instances:
      web-1: {ship: alpha}
      web-2: {ship: beta}
  worker:
    image: busybox
    instances:
      worker-1: {ship: beta}
  db:
    image: busybox
    instances:
      db-1: {ship: alpha}
"#;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `COMPLETE=shell maestro -- WORDS` in `dir`, as the shell's function calls it: bash and zsh
/// say which word is completed; lines are split on newlines.
fn complete(dir: &Path, shell: &str, words: &[&str], envs: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = common::maestro(dir);
    cmd.current_dir(dir)
        .env("COMPLETE", shell)
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .arg("--")
        .args(words);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run maestro");
    assert_eq!(out.status.code(), Some(0), "{words:?}: {}", text(&out));
    assert!(out.stderr.is_empty(), "{words:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("env.yaml");
    std::fs::write(&file, FILE).expect("write");
    let file = file.display().to_string();
    (dir, file)
}

#[test]
fn services_and_instances_complete_from_the_file_named_by_f() {
    let (dir, file) = setup();
    let got = complete(
        dir.path(),
        "bash",
        &["maestro", "-f", &file, "logs", "w"],
        &[],
    );
    assert_eq!(got, ["web", "worker", "web-1", "web-2", "worker-1"]);
    let got = complete(
        dir.path(),
        "bash",
        &["maestro", "--file", &file, "restart", "-s", "web-"],
        &[],
    );
    assert_eq!(got, ["web-1", "web-2"]);
    let got = complete(
        dir.path(),
        "zsh",
        &["maestro", "-f", &file, "status", "-S", ""],
        &[],
    );
    assert_eq!(got, ["alpha:ship at 10.0.0.1", "beta:ship at 10.0.0.2"]);
    let got = complete(
        dir.path(),
        "fish",
        &["maestro", "-f", &file, "forward", "d"],
        &[],
    );
    assert_eq!(got, ["db-1\tinstance of db on alpha"]);
    let got = complete(
        dir.path(),
        "fish",
        &["maestro", "-f", &file, "forward", "b"],
        &[],
    );
    assert_eq!(got, ["beta\tship at 10.0.0.2"]);
}

/// Where people press Tab most: `exec NAME`, `exec -C GLOB`, `ssh SHIP`.
#[test]
fn exec_and_ssh_complete_names() {
    let (dir, file) = setup();
    let got = complete(
        dir.path(),
        "bash",
        &["maestro", "-f", &file, "exec", "web-"],
        &[],
    );
    assert_eq!(got, ["web-1", "web-2"]);
    let got = complete(
        dir.path(),
        "bash",
        &["maestro", "-f", &file, "exec", "-C", "w"],
        &[],
    );
    assert_eq!(got, ["web-1", "web-2", "worker-1"]);
    let got = complete(
        dir.path(),
        "bash",
        &["maestro", "-f", &file, "ssh", "a"],
        &[],
    );
    assert_eq!(got, ["alpha"]);
    let got = complete(
        dir.path(),
        "bash",
        &["maestro", "-f", &file, "exec", "-S", "b"],
        &[],
    );
    assert_eq!(got, ["beta"]);
}

#[test]
fn without_f_the_file_is_maestro_file_then_the_default_name() {
    let (dir, file) = setup();
    let words = ["maestro", "stop", "db"];
    assert_eq!(
        complete(dir.path(), "bash", &words, &[("MAESTRO_FILE", &file)]),
        ["db", "db-1"]
    );
    assert!(
        complete(dir.path(), "bash", &words, &[]).is_empty(),
        "no file here yet"
    );
    std::fs::write(dir.path().join("maestro.yml"), FILE).expect("write");
    assert_eq!(complete(dir.path(), "bash", &words, &[]), ["db", "db-1"]);
    // A file that does not load completes nothing, and says nothing mid-line.
    std::fs::write(dir.path().join("maestro.yml"), "services: [").expect("write");
    assert!(complete(dir.path(), "bash", &words, &[]).is_empty());
}

#[test]
fn the_bash_script_completes_names_when_bash_calls_it() {
    let (dir, file) = setup();
    let script = format!(
        r#"source <("$MAESTRO" completions bash) || exit 9
COMP_WORDS=(maestro -f "{file}" logs web-)
COMP_CWORD=4
COMP_TYPE=9
_clap_complete_maestro maestro web- logs
printf '%s\n' "${{COMPREPLY[@]}}"
"#
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("MAESTRO", env!("CARGO_BIN_EXE_maestro"))
        .env_remove("COMPLETE")
        .current_dir(dir.path())
        .output()
        .expect("bash");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "web-1\nweb-2\n",
        "{}",
        text(&out)
    );
}

#[test]
fn completions_prints_a_script_that_calls_maestro_back_for_each_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, call) in [
        ("bash", "COMPLETE=\"bash\""),
        ("zsh", "COMPLETE=\"zsh\""),
        ("fish", "COMPLETE=fish"),
    ] {
        let out = common::maestro(dir.path())
            .args(["completions", shell])
            .output()
            .expect("run maestro");
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(call), "{shell}:\n{script}");
        assert!(
            script.contains(env!("CARGO_BIN_EXE_maestro")),
            "{shell}: calls this binary back:\n{script}"
        );
    }
    let out = common::maestro(dir.path())
        .env("COMPLETE", "tcsh")
        .args(["--", "maestro", ""])
        .output()
        .expect("run maestro");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error: COMPLETE=tcsh: not a shell maestro completes for"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_reader_that_stops_reading_ends_the_output_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [&["man"][..], &["completions", "bash"][..]] {
        // `maestro man | head -1`: the reader is gone before maestro writes.
        let mut child = common::maestro(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run maestro");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out));
    }
}

/// The manual page has every command's own commands and options (`lock acquire -m`, `lock
/// release --force`), the variables maestro reads, and no `help` pseudo-command.
#[test]
fn the_man_page_has_the_lock_commands_and_their_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::maestro(dir.path())
        .arg("man")
        .output()
        .expect("run maestro");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    for part in [
        ".SS \"lock status\"",
        ".SS \"lock acquire\"",
        "\\fB\\-m, \\-\\-message\\fR MESSAGE",
        ".SS \"lock release\"",
        "\\fB\\-\\-force\\fR",
        "\\fBMAESTRO_LOCK_HOLDER\\fR",
        "(start, up, stop, down, kill, restart, rollback, clean, pull)",
    ] {
        assert!(page.contains(part), "{part}\n{page}");
    }
    assert!(!page.contains(".SS \"lock help\""), "{page}");
    assert!(!page.contains(".SS \"help"), "{page}");
}

#[test]
fn docker_habits_ps_and_version_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        common::maestro(dir.path())
            .args(args)
            .output()
            .expect("run maestro")
    };
    // `ps` is `status`, as in docker and docker compose.
    let ps = run(&["ps", "--help"]);
    let status = run(&["status", "--help"]);
    assert_eq!(ps.status.code(), Some(0), "{}", text(&ps));
    assert_eq!(ps.stdout, status.stdout);
    assert!(
        String::from_utf8_lossy(&run(&["--help"]).stdout).contains("status  "),
        "status is listed"
    );
    // `version` says what `--version` says.
    let version = run(&["version"]);
    assert_eq!(version.status.code(), Some(0), "{}", text(&version));
    assert_eq!(version.stdout, run(&["--version"]).stdout);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("maestro "));
}

#[test]
fn validate_json_has_one_shape_on_both_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = |yaml: &str| {
        let file = dir.path().join("env.yaml");
        std::fs::write(&file, yaml).expect("write");
        let out = common::maestro(dir.path())
            .arg("-f")
            .arg(&file)
            .args(["--json", "validate"])
            .output()
            .expect("run maestro");
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code(), doc)
    };
    let (code, good) = json(FILE);
    assert_eq!(code, Some(0));
    let (code, bad) = json("name: x\nships: {}\nservices: {web: {image: x}}\n");
    assert_ne!(code, Some(0));
    for key in ["ok", "valid", "exit_code"] {
        assert!(
            good.get(key).is_some() && bad.get(key).is_some(),
            "{key}: {good} / {bad}"
        );
    }
    assert_eq!((&good["ok"], &good["valid"]), (&true.into(), &true.into()));
    assert_eq!((&bad["ok"], &bad["valid"]), (&false.into(), &false.into()));
}

#[test]
fn help_says_which_commands_look_at_omitted_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |command: &str| {
        let out = common::maestro(dir.path())
            .args([command, "--help"])
            .output()
            .expect("run maestro");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for command in ["status", "history"] {
        assert!(
            help(command).contains("`omit`-ted ones included"),
            "{command}"
        );
    }
    assert!(help("start").contains("every service that is not `omit`-ted"));
}

#[test]
fn output_json_is_json_however_it_is_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("maestro.yaml");
    std::fs::write(&file, FILE).expect("write");
    for args in [
        &["-o", "json", "validate"][..],
        &["validate", "--output", "json"][..],
    ] {
        let out = common::maestro(dir.path())
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("run maestro");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)));
        assert_eq!(doc["valid"], true, "{args:?}");
    }
    // `up --reuse`, as commands.md presents `up`: accepted like start's.
    let help = common::maestro(dir.path())
        .args(["up", "--help"])
        .output()
        .expect("run maestro");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--reuse"));
}

#[test]
fn logs_with_f_at_the_end_is_told_that_f_is_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::maestro(dir.path())
        .args(["logs", "web", "-f"])
        .output()
        .expect("run maestro");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`-f` names the environment file; `logs -F` (or --follow) follows the logs"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_file_with_ships_alone_is_said_to_have_no_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("env.yaml");
    std::fs::write(&file, "name: x\nships:\n  a: {ip: 10.0.0.1}\n").expect("write");
    for command in ["validate", "deptree"] {
        let out = common::maestro(dir.path())
            .arg("-f")
            .arg(&file)
            .arg(command)
            .output()
            .expect("run maestro");
        assert_eq!(out.status.code(), Some(0), "{command}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("has no services"),
            "{command}: {}",
            text(&out)
        );
    }
}

/// Each command's `--help` lists the options it takes: `maestro`'s own (-f, -o, --json, -v)
/// are listed once, by `maestro --help`, and work before or after any command's name; the
/// read-only commands do not list -a, -s or -c, which mean something only to those that change
/// ships.
#[test]
fn each_commands_help_lists_only_its_own_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |args: &[&str]| {
        let out = common::maestro(dir.path())
            .args(args)
            .output()
            .expect("run maestro");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for command in [
        "man",
        "completions",
        "version",
        "status",
        "logs",
        "plan",
        "history",
    ] {
        let page = help(&[command, "--help"]);
        for shared in ["--json", "--plain", "--output", "--verbose", "--file"] {
            assert!(
                !page.contains(shared),
                "{command} --help lists {shared}:\n{page}"
            );
        }
    }
    for command in ["status", "logs", "plan", "history"] {
        let page = help(&[command, "--help"]);
        for meaningless in ["--all", "--expand-services", "--concurrency"] {
            assert!(
                !page.contains(meaningless),
                "{command} --help lists {meaningless}:\n{page}"
            );
        }
    }
    let stop = help(&["stop", "--help"]);
    assert!(
        stop.contains("--all") && stop.contains("--concurrency"),
        "{stop}"
    );
    let top = help(&["--help"]);
    assert!(
        top.contains("--json") && top.contains("typed before or\nafter its name"),
        "{top}"
    );
    // Where people type them: before or after the command's name, the same document.
    std::fs::write(
        dir.path().join("env.yaml"),
        "name: x\nships: {a: {ip: 10.0.0.1}}\n",
    )
    .expect("write");
    let run = |args: &[&str]| {
        let out = common::maestro(dir.path())
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("run maestro");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = run(&["--json", "-f", "env.yaml", "validate"]);
    assert_eq!(run(&["validate", "--json", "-f", "env.yaml"]), before);
    assert_eq!(run(&["validate", "-o", "json", "--file=env.yaml"]), before);
}
