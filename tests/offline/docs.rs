//! The documentation agrees with the program: every option the command line has is in
//! docs/commands.md and in the manual page; every option docs/commands.md and the README name
//! exists; every key the configuration reference's tables name is read by the loader.
//!
//! Offline: the options come from the parser itself (clap's description of it), the keys are
//! tried on the loader, one file per key.

use crate::common;

use std::collections::BTreeSet;

use clap::CommandFactory;
use maestro::cli::Cli;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every visible option of every command, as (command path, long, short).
fn options() -> Vec<(String, Option<String>, Option<char>)> {
    fn walk(
        cmd: &clap::Command,
        path: &str,
        out: &mut Vec<(String, Option<String>, Option<char>)>,
    ) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional() || arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            out.push((
                path.to_owned(),
                arg.get_long().map(str::to_owned),
                arg.get_short(),
            ));
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, format!("{path} {}", sub.get_name()).trim(), out);
        }
    }
    let mut out = Vec::new();
    let mut cli = Cli::command();
    cli.build();
    walk(&cli, "", &mut out);
    out
}

fn man_page() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::maestro(dir.path())
        .arg("man")
        .output()
        .expect("run maestro");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `text` names `token` as an option: not inside a longer option name.
fn names(text: &str, token: &str) -> bool {
    text.match_indices(token).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + token.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_option_is_in_the_commands_doc_and_the_man_page() {
    let doc = read("docs/commands.md");
    let man = man_page();
    let mut missing = Vec::new();
    let options = options();
    assert!(options.len() > 60, "only {} options found", options.len());
    for (command, long, short) in options {
        let long_text = long.as_ref().map(|l| format!("--{l}"));
        let short_text = short.map(|s| format!("-{s}"));
        let in_doc = long_text.iter().chain(&short_text).any(|t| names(&doc, t));
        let in_man = long_text
            .iter()
            .chain(&short_text)
            .any(|t| man.contains(&t.replace('-', "\\-")));
        let shown = long_text.or(short_text).unwrap_or_default();
        if !in_doc {
            missing.push(format!(
                "`maestro {command} {shown}` is not in docs/commands.md"
            ));
        }
        if !in_man {
            missing.push(format!(
                "`maestro {command} {shown}` is not in the manual page"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Options of other programs the documents show (cargo's, the benchmark's, the test bed's).
const OTHER_PROGRAMS: &[&str] = &["--locked", "--path", "--release", "--scale", "--name"];

#[test]
fn every_option_the_docs_name_exists() {
    let mut all = BTreeSet::new();
    let mut cli = Cli::command();
    cli.build();
    fn walk(cmd: &clap::Command, all: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                all.insert(format!("--{long}"));
            }
            for alias in arg.get_all_aliases().unwrap_or_default() {
                all.insert(format!("--{alias}"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, all);
        }
    }
    walk(&cli, &mut all);
    assert!(all.len() > 30, "only {} options found", all.len());
    let option = regex::Regex::new(r"(?:^|[\s`(\[])(--[a-z][a-z0-9-]*)").expect("regex");
    let mut unknown = Vec::new();
    for doc in ["docs/commands.md", "README.md"] {
        let text = read(doc);
        for caps in option.captures_iter(&text) {
            let name = &caps[1];
            if !all.contains(name) && !OTHER_PROGRAMS.contains(&name) {
                unknown.push(format!("{doc} names {name}, which no command has"));
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

/// The keys in the first column of the tables under `heading` in docs/configuration.md.
fn table_keys(doc: &str, heading: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        if line.starts_with('#') {
            inside = line.trim_start_matches('#').trim() == heading;
            continue;
        }
        if !inside || !line.starts_with("| `") {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or("");
        for part in first.split(',') {
            let key = part.trim().trim_matches('`');
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
                keys.push(key.to_owned());
            }
        }
    }
    keys
}

#[test]
fn every_key_the_configuration_doc_names_is_read() {
    let doc = read("docs/configuration.md");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.yaml");
    let mut unknown = Vec::new();
    let mut check = |section: &str, key: &str, text: String| {
        std::fs::write(&path, &text).expect("write");
        if let Err(err) = maestro::config::load(&path) {
            let message = err.to_string();
            if message.contains(&format!("unknown key `{key}`")) {
                unknown.push(format!(
                    "{section}: `{key}` is documented but not read:\n{message}"
                ));
            }
        }
    };
    let sections = [
        ("Top level", "{key}: null\nname: x\nships: {}\n"),
        (
            "Ships",
            "name: x\nships:\n  a: {ip: 10.0.0.1, {key}: null}\n",
        ),
        (
            "`ssh`",
            "name: x\nships:\n  a: {ip: 10.0.0.1, ssh: {{key}: null}}\n",
        ),
        (
            "Services",
            "name: x\nships: {a: {ip: 10.0.0.1}}\nservices:\n  s: {image: i, {key}: null}\n",
        ),
        (
            "Instances",
            "name: x\nships: {a: {ip: 10.0.0.1}}\nservices:\n  s:\n    image: i\n    instances:\n      s-1: {ship: a, {key}: null}\n",
        ),
        (
            "Registries",
            "name: x\nregistries:\n  r: {registry: r.example, {key}: null}\nships: {}\n",
        ),
    ];
    let mut counted = 0;
    for (section, template) in sections {
        let keys = table_keys(&doc, section);
        assert!(!keys.is_empty(), "no table of keys under `{section}`");
        for key in keys {
            counted += 1;
            check(section, &key, template.replace("{key}", &key));
        }
    }
    assert!(counted > 60, "only {counted} keys found in the tables");
    assert!(unknown.is_empty(), "{}", unknown.join("\n\n"));
}
