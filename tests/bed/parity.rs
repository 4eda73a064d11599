//! MaestroNG 0.8.3 is the oracle: every file of the corpus (tests/fixtures/parity/*.yaml) is
//! loaded by MaestroNG's own loader and model, in a virtualenv (tests/parity/venv.sh), and by
//! maestro, offline; what each would send to Docker to create each container must agree.
//!
//! MaestroNG's side is tests/parity/maestrong_view.py: the create body docker-py builds from
//! the arguments MaestroNG's start task passes. Ours is `maestro dump --containers`. Both are
//! Docker API bodies, so one normalizer reads both: it keeps what changes the container
//! (image, command, env with every generated variable, ports, volumes, links, restart,
//! limits, labels, ...), forgets what is only spelling (the order of `Env`, `HostIp: ""` vs
//! `"0.0.0.0"`, `Memory` at the top or in `HostConfig`), and refuses any field it does not
//! know, so that nothing is compared by accident of omission.
//!
//! Where maestro differs on purpose, the difference is one entry of [`DIFFERENCES`], applied
//! to the two views before they are compared. The list is docs/configuration.md's list (a
//! test checks the names), and every entry must change at least one container of the corpus,
//! so that a stale entry shows.
//!
//! The model behind them is compared too, from `maestro dump --json`: each ship's address,
//! and each service's `omit`, `wants_info` and what it requires.
//!
//! The start order is compared as a relation: maestro's order must start every container
//! after the containers of every service MaestroNG says it requires. Ties are broken
//! differently (MaestroNG by name, maestro by file order), which changes nothing.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const CORPUS: &str = "tests/fixtures/parity";
const DOC: &str = "docs/configuration.md";
const DOC_SECTION: &str = "## Deliberate differences from MaestroNG";

/// A container's create request, normalized: field name -> value; absent means Docker's
/// default.
type View = BTreeMap<&'static str, Value>;

/// One deliberate difference: its name in docs/configuration.md, and what it does to
/// MaestroNG's view and ours (of one container). It says whether it changed anything.
struct Difference {
    name: &'static str,
    apply: fn(theirs: &mut View, ours: &mut View, oracle: &Value) -> bool,
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        name: "ownership-labels",
        apply: ownership_labels,
    },
    Difference {
        name: "stop-timeout-in-container",
        apply: stop_timeout_in_container,
    },
    Difference {
        name: "hostname-with-net",
        apply: hostname_with_net,
    },
    Difference {
        name: "label-values-are-strings",
        apply: label_values_are_strings,
    },
    Difference {
        name: "label-lists-split",
        apply: label_lists_split,
    },
    Difference {
        name: "envfile-quotes-and-export",
        apply: envfile_quotes_and_export,
    },
    Difference {
        name: "lxc-conf-not-sent",
        apply: lxc_conf_not_sent,
    },
    Difference {
        name: "ulimit-unlimited",
        apply: ulimit_unlimited,
    },
];

/// Files maestro refuses on purpose where MaestroNG loads them: the name, and words of
/// maestro's error that identify the refusal.
const REFUSALS: &[(&str, &str)] = &[
    ("host-port-clash-refused", "is published by both"),
    (
        "restart-retries-only-on-failure",
        "retries are only allowed with on-failure",
    ),
];

/// maestro labels its containers (`io.maestro.*`: environment, service, instance, spec hash)
/// to recognise its own.
fn ownership_labels(_theirs: &mut View, ours: &mut View, _oracle: &Value) -> bool {
    let Some(Value::Object(labels)) = ours.get_mut("labels") else {
        return false;
    };
    let before = labels.len();
    labels.retain(|key, _| !key.starts_with("io.maestro."));
    let changed = labels.len() != before;
    if labels.is_empty() {
        ours.remove("labels");
    }
    changed
}

/// maestro writes `stop_timeout` into the container, where a `docker stop` by hand finds it
/// too; MaestroNG passes it with each stop. The value must be the same.
fn stop_timeout_in_container(theirs: &mut View, ours: &mut View, oracle: &Value) -> bool {
    match ours.remove("stop_timeout") {
        Some(value) => {
            theirs.insert("stop_timeout", oracle["stop_timeout"].clone());
            ours.insert("stop_timeout", value);
            true
        }
        None => false,
    }
}

/// With `net` set to a mode that allows one (`bridge`, `none`, a user network), maestro still
/// names the container's host after the instance; MaestroNG leaves it to Docker (the short id)
/// whenever `net` is set. Docker refuses a hostname only with `host` and `container:` modes,
/// where maestro sets none either.
fn hostname_with_net(theirs: &mut View, ours: &mut View, _oracle: &Value) -> bool {
    let mode = ours
        .get("network_mode")
        .and_then(Value::as_str)
        .unwrap_or("");
    let shares = mode == "host" || mode.starts_with("container:");
    if mode.is_empty() || shares || theirs.contains_key("hostname") {
        return false;
    }
    ours.remove("hostname").is_some()
}

/// A label value written as a number or a boolean is sent by MaestroNG as a JSON number or
/// boolean, which Docker refuses (labels are strings), so the container is never created.
/// maestro sends it as Python prints it (`True`, `8`, `1.1`), as it does for env values.
fn label_values_are_strings(theirs: &mut View, _ours: &mut View, _oracle: &Value) -> bool {
    let Some(Value::Object(labels)) = theirs.get_mut("labels") else {
        return false;
    };
    let mut changed = false;
    for value in labels.values_mut() {
        let text = match value {
            Value::Bool(true) => "True".to_owned(),
            Value::Bool(false) => "False".to_owned(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        *value = Value::from(text);
        changed = true;
    }
    changed
}

/// A label list item `key=value` is read by maestro as `docker run --label key=value` reads
/// it; MaestroNG's docker-py makes a label named `key=value` with an empty value.
fn label_lists_split(theirs: &mut View, _ours: &mut View, _oracle: &Value) -> bool {
    let Some(Value::Object(labels)) = theirs.get_mut("labels") else {
        return false;
    };
    let split: Vec<(String, String, String)> = labels
        .iter()
        .filter(|(_, v)| v.as_str() == Some(""))
        .filter_map(|(k, _)| {
            k.split_once('=')
                .map(|(name, value)| (k.clone(), name.to_owned(), value.to_owned()))
        })
        .collect();
    for (whole, name, value) in &split {
        labels.remove(whole);
        labels.insert(name.clone(), Value::from(value.as_str()));
    }
    !split.is_empty()
}

/// maestro reads an envfile as shells and compose do: `export ` before a name, spaces around
/// `=` and quotes around a value are not part of them. MaestroNG (docker-py's reader of
/// Docker's env-file format) keeps them, so it makes variables named `export K` or `K ` (which
/// `docker run --env-file` refuses) and values with their quote characters.
fn envfile_quotes_and_export(theirs: &mut View, _ours: &mut View, _oracle: &Value) -> bool {
    let Some(Value::Object(env)) = theirs.get_mut("env") else {
        return false;
    };
    let read: serde_json::Map<String, Value> = env
        .iter()
        .map(|(name, value)| {
            let clean = name
                .strip_prefix("export ")
                .unwrap_or(name)
                .trim()
                .to_owned();
            // Spaces around `=` belong to neither side; a value's own spaces elsewhere stay.
            let spaced = clean.len() != name.len();
            let value = match value.as_str() {
                Some(text) => {
                    let text = if spaced { text.trim() } else { text };
                    let unquoted = ['"', '\'']
                        .iter()
                        .find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q)))
                        .unwrap_or(text);
                    Value::from(unquoted)
                }
                None => value.clone(),
            };
            (clean, value)
        })
        .collect();
    let changed = read != *env;
    *env = read;
    changed
}

/// MaestroNG sends `lxc_conf` as `LxcConf`, options of Docker's LXC driver, which Docker
/// removed in 1.10 and ignores; maestro accepts the key and sends nothing.
fn lxc_conf_not_sent(theirs: &mut View, _ours: &mut View, _oracle: &Value) -> bool {
    theirs.remove("lxc_conf").is_some()
}

/// A ulimit written `unlimited` is sent by maestro as Docker's -1; MaestroNG drops it.
fn ulimit_unlimited(theirs: &mut View, ours: &mut View, _oracle: &Value) -> bool {
    let Some(Value::Array(limits)) = ours.get_mut("ulimits") else {
        return false;
    };
    let before = limits.len();
    let theirs_has = |name: &Value| {
        theirs
            .get("ulimits")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|u| u["Name"] == *name))
    };
    limits.retain(|u| !(u["Soft"] == -1 && u["Hard"] == -1 && !theirs_has(&u["Name"])));
    let changed = limits.len() != before;
    if limits.is_empty() {
        ours.remove("ulimits");
    }
    changed
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The corpus files, relative to the repository, sorted.
fn corpus() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join(CORPUS))
        .expect("read the corpus directory")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("{CORPUS}/{name}"))
        .collect();
    files.sort();
    files
}

/// The python of the virtualenv that holds MaestroNG, made on first use.
fn oracle_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("maestrong-venv");
    let out = Command::new(repo().join("tests/parity/venv.sh"))
        .env("MAESTRO_MAESTRONG_VENV", &venv)
        .output()
        .expect("run tests/parity/venv.sh");
    assert!(
        out.status.success(),
        "cannot install MaestroNG 0.8.3 (the parity test's oracle) into {}:\n{}",
        venv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The same variables for both tools: the corpus's templates read only these.
fn isolated(cmd: &mut Command, home: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("MAESTRO_PARITY_SET", "from-the-environment")
        .current_dir(repo());
}

/// MaestroNG's view of every file, by file.
fn oracle(files: &[String], home: &Path) -> BTreeMap<String, Value> {
    let mut cmd = Command::new(oracle_python());
    cmd.arg(repo().join("tests/parity/maestrong_view.py"))
        .args(files);
    isolated(&mut cmd, home);
    let out = cmd.output().expect("run the oracle");
    assert!(
        out.status.success(),
        "the oracle failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the oracle prints JSON")
}

/// `maestro -f FILE ARGS --show-secrets` (a dump) as JSON, or its error.
fn dump(file: &str, home: &Path, args: &[&str]) -> Result<Value, String> {
    let out = common::maestro(home)
        .args(["-f", file])
        .args(args)
        .arg("--show-secrets")
        .env("MAESTRO_PARITY_SET", "from-the-environment")
        .current_dir(repo())
        .output()
        .expect("run maestro");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|err| format!("not JSON: {err}"))
}

/// `dump --containers`: what maestro would send to Docker, container by container.
fn ours(file: &str, home: &Path) -> Result<Vec<Value>, String> {
    dump(file, home, &["dump", "--containers"]).and_then(|v| {
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("not a list: {v}"))
    })
}

/// `dump --json`: the resolved environment as a schema 2 document.
fn our_document(file: &str, home: &Path) -> Result<Value, String> {
    dump(file, home, &["--json", "dump"])
}

/// Ships' addresses, and each service's `omit`, `wants_info` and what it requires
/// transitively (`requires`, plus the services whose instances its instances take
/// `volumes_from`, as MaestroNG adds them): MaestroNG's view against our dump.
fn model_problems(theirs: &Value, document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (ship, ip) in theirs["ships"].as_object().into_iter().flatten() {
        let ours = &document["ships"][ship]["ip"];
        if ours != ip {
            problems.push(format!("ship {ship}: ip: MaestroNG {ip} / maestro {ours}"));
        }
    }
    let services = document["services"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let service_of = |instance: &str| {
        services
            .iter()
            .find(|(_, s)| s["instances"].get(instance).is_some())
            .map(|(name, _)| name.clone())
    };
    let direct = |name: &str| -> BTreeSet<String> {
        let service = &services[name];
        let mut deps: BTreeSet<String> = strings(&service["requires"]).into_iter().collect();
        for instance in service["instances"].as_object().into_iter().flatten() {
            for source in strings(&instance.1["volumes_from"]) {
                deps.extend(service_of(&source));
            }
        }
        deps.remove(name);
        deps
    };
    for (name, their) in theirs["services"].as_object().into_iter().flatten() {
        let Some(ours) = services.get(name) else {
            problems.push(format!("service {name}: missing from maestro's dump"));
            continue;
        };
        let mut closure = BTreeSet::new();
        let mut todo: Vec<String> = direct(name).into_iter().collect();
        while let Some(next) = todo.pop() {
            if closure.insert(next.clone()) && services.contains_key(&next) {
                todo.extend(direct(&next));
            }
        }
        closure.remove(name);
        let their_requires: BTreeSet<String> = strings(&their["requires"]).into_iter().collect();
        if closure != their_requires {
            problems.push(format!(
                "service {name}: requires (transitively): MaestroNG {their_requires:?} / maestro {closure:?}"
            ));
        }
        let wants: BTreeSet<String> = strings(&ours["wants_info"]).into_iter().collect();
        let their_wants: BTreeSet<String> = strings(&their["wants_info"]).into_iter().collect();
        if wants != their_wants {
            problems.push(format!(
                "service {name}: wants_info: MaestroNG {their_wants:?} / maestro {wants:?}"
            ));
        }
        if ours["omit"] != their["omit"] {
            problems.push(format!(
                "service {name}: omit: MaestroNG {} / maestro {}",
                their["omit"], ours["omit"]
            ));
        }
    }
    problems
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn sorted(mut items: Vec<Value>) -> Value {
    items.sort_by_key(|v| v.to_string());
    Value::Array(items)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `host:container[:mode]`, with the mode Docker assumes written out.
fn bind(text: &str) -> String {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [host, container] => format!("{host}:{container}:rw"),
        _ => text.to_owned(),
    }
}

/// The fields of a create body that define a container, normalized; an unknown field that is
/// not empty is an error.
fn view(body: &Value) -> Result<View, String> {
    const TOP: &[&str] = &[
        "Image",
        "Cmd",
        "Entrypoint",
        "Hostname",
        "User",
        "WorkingDir",
        "Env",
        "ExposedPorts",
        "Volumes",
        "Labels",
        "StopTimeout",
        "StopSignal",
        "CpuShares",
        "Memory",
        "MemorySwap",
        "HostConfig",
    ];
    const HOST: &[&str] = &[
        "Binds",
        "PortBindings",
        "Links",
        "RestartPolicy",
        "Memory",
        "MemorySwap",
        "CpuShares",
        "ExtraHosts",
        "NetworkMode",
        "Privileged",
        "CapAdd",
        "CapDrop",
        "VolumesFrom",
        "Dns",
        "LogConfig",
        "SecurityOpt",
        "Ulimits",
        "LxcConf",
    ];
    let host = body.get("HostConfig").cloned().unwrap_or(json!({}));
    for (fields, known, prefix) in [(body, TOP, ""), (&host, HOST, "HostConfig.")] {
        for (key, value) in fields.as_object().into_iter().flatten() {
            if !known.contains(&key.as_str()) && !is_empty(value) {
                return Err(format!("field {prefix}{key} = {value} is not compared"));
            }
        }
    }
    let mut v = View::new();
    let mut put = |name: &'static str, value: Value| {
        if !is_empty(&value) {
            v.insert(name, value);
        }
    };
    for (name, key) in [
        ("image", "Image"),
        ("cmd", "Cmd"),
        ("entrypoint", "Entrypoint"),
        ("hostname", "Hostname"),
        ("user", "User"),
        ("workdir", "WorkingDir"),
        ("stop_timeout", "StopTimeout"),
        ("stop_signal", "StopSignal"),
    ] {
        put(name, body[key].clone());
    }
    let env: serde_json::Map<String, Value> = strings(&body["Env"])
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, val)) => (k.to_owned(), Value::from(val)),
            None => (pair, Value::Null),
        })
        .collect();
    put("env", Value::Object(env));
    let binds: Vec<String> = strings(&host["Binds"]).iter().map(|b| bind(b)).collect();
    // docker-py also lists bind targets under `Volumes`; Docker needs them only in `Binds`.
    let mut volumes: BTreeSet<String> = body["Volumes"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    volumes.extend(
        binds
            .iter()
            .filter_map(|b| b.split(':').nth(1).map(str::to_owned)),
    );
    put("volumes", json!(volumes));
    put(
        "binds",
        sorted(binds.into_iter().map(Value::from).collect()),
    );
    let exposed: BTreeSet<String> = body["ExposedPorts"]
        .as_object()
        .map(|o| o.keys().flat_map(|k| range_of(k)).map(|(p, _)| p).collect())
        .unwrap_or_default();
    put("exposed", json!(exposed));
    put("port_bindings", port_bindings(&host["PortBindings"]));
    put(
        "links",
        sorted(host["Links"].as_array().cloned().unwrap_or_default()),
    );
    put("restart", restart(&host["RestartPolicy"]));
    for (name, key) in [
        ("memory", "Memory"),
        ("memory_swap", "MemorySwap"),
        ("cpu_shares", "CpuShares"),
    ] {
        // Old API versions take limits at the top, newer ones in HostConfig.
        let value = if is_empty(&host[key]) {
            body[key].clone()
        } else {
            host[key].clone()
        };
        put(name, value);
    }
    put(
        "extra_hosts",
        sorted(host["ExtraHosts"].as_array().cloned().unwrap_or_default()),
    );
    let mode = host["NetworkMode"].clone();
    put(
        "network_mode",
        if mode == "default" { Value::Null } else { mode },
    );
    put("privileged", host["Privileged"].clone());
    put(
        "cap_add",
        sorted(host["CapAdd"].as_array().cloned().unwrap_or_default()),
    );
    put(
        "cap_drop",
        sorted(host["CapDrop"].as_array().cloned().unwrap_or_default()),
    );
    put(
        "volumes_from",
        sorted(host["VolumesFrom"].as_array().cloned().unwrap_or_default()),
    );
    put("dns", host["Dns"].clone());
    let log = &host["LogConfig"];
    put("log_driver", log["Type"].clone());
    put("log_opt", log["Config"].clone());
    put("security_opt", host["SecurityOpt"].clone());
    put(
        "ulimits",
        sorted(host["Ulimits"].as_array().cloned().unwrap_or_default()),
    );
    put("labels", labels(&body["Labels"]));
    put("lxc_conf", host["LxcConf"].clone());
    Ok(v)
}

/// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}` as `{"80/tcp": ["8080"]}`, with the
/// address kept only when one is bound (`0.0.0.0` and empty both mean every address).
/// A range key (`5000-5010/tcp`) is what the Docker CLI expands into one key a port: the
/// same ports. MaestroNG sends the range, maestro the expansion.
fn port_bindings(value: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (key, bindings) in value.as_object().into_iter().flatten() {
        let ports = range_of(key);
        for (offset, (port, _)) in ports.iter().enumerate() {
            let mut each: Vec<String> = bindings
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    let ip = b["HostIp"].as_str().unwrap_or("");
                    let mut host_port = b["HostPort"].as_str().unwrap_or("").to_owned();
                    // A host range as long as the container range pairs port by port.
                    if let Some((low, high)) = host_port.split_once('-')
                        && let (Ok(low), Ok(high)) = (low.parse::<usize>(), high.parse::<usize>())
                        && ports.len() > 1
                        && high - low + 1 == ports.len()
                    {
                        host_port = (low + offset).to_string();
                    }
                    match ip {
                        "" | "0.0.0.0" => host_port,
                        ip => format!("{ip}:{host_port}"),
                    }
                })
                .collect();
            each.sort();
            out.insert(port.clone(), json!(each));
        }
    }
    Value::Object(out)
}

/// `5000-5002/tcp` as `[5000/tcp, 5001/tcp, 5002/tcp]` (with their offsets); any other key
/// as itself.
fn range_of(key: &str) -> Vec<(String, usize)> {
    let (ports, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
    if let Some((low, high)) = ports.split_once('-')
        && let (Ok(low), Ok(high)) = (low.parse::<u32>(), high.parse::<u32>())
        && low <= high
    {
        return (low..=high)
            .enumerate()
            .map(|(i, p)| (format!("{p}/{protocol}"), i))
            .collect();
    }
    vec![(key.to_owned(), 0)]
}

/// No policy and `{"Name": "no"}` are the same; `MaximumRetryCount` matters only when set.
fn restart(value: &Value) -> Value {
    let name = value["Name"].as_str().unwrap_or("");
    let retries = value["MaximumRetryCount"].as_u64().unwrap_or(0);
    match (name, retries) {
        ("" | "no", 0) => Value::Null,
        (name, 0) => json!(name),
        (name, n) => json!(format!("{name}:{n}")),
    }
}

/// Labels as a map; docker-py turns a list of names into names with empty values.
fn labels(value: &Value) -> Value {
    match value {
        Value::Array(names) => Value::Object(
            strings(&Value::Array(names.clone()))
                .into_iter()
                .map(|name| (name, Value::from("")))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What differs between two views, field by field (env variable by variable).
fn field_differences(theirs: &View, ours: &View) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<&str> = theirs.keys().chain(ours.keys()).copied().collect();
    for key in keys {
        let (t, o) = (theirs.get(key), ours.get(key));
        if t == o {
            continue;
        }
        if let (Some(Value::Object(t)), Some(Value::Object(o))) = (t, o) {
            let names: BTreeSet<&String> = t.keys().chain(o.keys()).collect();
            for name in names {
                if t.get(name) != o.get(name) {
                    out.push(format!(
                        "{key}.{name}: MaestroNG {} / maestro {}",
                        show(t.get(name)),
                        show(o.get(name))
                    ));
                }
            }
        } else {
            out.push(format!(
                "{key}: MaestroNG {} / maestro {}",
                show(t),
                show(o)
            ));
        }
    }
    out
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

/// Compares one file; returns what differs, and records which differences were applied.
fn compare(
    theirs: &Value,
    ours: Result<Vec<Value>, String>,
    used: &mut BTreeSet<&str>,
) -> Vec<String> {
    let refused_by_them = theirs.get("error").and_then(Value::as_str);
    let ours = match (refused_by_them, ours) {
        (Some(_), Err(_)) => return Vec::new(),
        (Some(why), Ok(_)) => {
            return vec![format!("MaestroNG refuses it ({why}), maestro loads it")];
        }
        (None, Err(why)) => {
            if let Some((name, _)) = REFUSALS.iter().find(|(_, words)| why.contains(words)) {
                used.insert(name);
                return Vec::new();
            }
            return vec![format!("maestro refuses it, MaestroNG loads it: {why}")];
        }
        (None, Ok(ours)) => ours,
    };
    let mut problems = Vec::new();
    let their_containers: Vec<&Value> = theirs["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let names = |list: &mut dyn Iterator<Item = &Value>| -> BTreeSet<String> {
        list.filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (their_names, our_names) = (
        names(&mut their_containers.iter().copied()),
        names(&mut ours.iter()),
    );
    if their_names != our_names {
        problems.push(format!(
            "containers: MaestroNG {their_names:?} / maestro {our_names:?}"
        ));
        return problems;
    }
    problems.extend(order_problems(theirs, &ours));
    for mine in &ours {
        let name = mine["name"].as_str().unwrap_or_default();
        let Some(their) = their_containers.iter().find(|c| c["name"] == name) else {
            continue;
        };
        for key in ["service", "ship"] {
            if their[key] != mine[key] {
                problems.push(format!(
                    "{name}: {key}: MaestroNG {} / maestro {}",
                    their[key], mine[key]
                ));
            }
        }
        let (mut t, mut o) = match (view(&their["create"]), view(&mine["create"])) {
            (Ok(t), Ok(o)) => (t, o),
            (Err(why), _) => {
                problems.push(format!("{name}: MaestroNG's body: {why}"));
                continue;
            }
            (_, Err(why)) => {
                problems.push(format!("{name}: maestro's body: {why}"));
                continue;
            }
        };
        for difference in DIFFERENCES {
            if (difference.apply)(&mut t, &mut o, their) {
                used.insert(difference.name);
            }
        }
        problems.extend(
            field_differences(&t, &o)
                .into_iter()
                .map(|d| format!("{name}: {d}")),
        );
    }
    problems
}

/// maestro's start order must start each container after every container of the services
/// MaestroNG says its service requires (transitively).
fn order_problems(theirs: &Value, ours: &[Value]) -> Vec<String> {
    let position: BTreeMap<&str, usize> = ours
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c["name"].as_str().map(|n| (n, i)))
        .collect();
    let mut problems = Vec::new();
    for (i, container) in ours.iter().enumerate() {
        let service = container["service"].as_str().unwrap_or_default();
        for required in strings(&theirs["services"][service]["requires"]) {
            for other in ours.iter().filter(|c| c["service"] == required.as_str()) {
                let other_name = other["name"].as_str().unwrap_or_default();
                if position.get(other_name).is_some_and(|&j| j > i) {
                    problems.push(format!(
                        "start order: {} (of {service}) starts before {other_name} (of {required}, which {service} requires)",
                        container["name"]
                    ));
                }
            }
        }
    }
    problems
}

/// The names of the deliberate differences listed in docs/configuration.md: the bold first
/// words of the bullets of its section.
fn documented_differences() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo().join(DOC)).expect("read docs/configuration.md");
    let section = doc
        .split_once(DOC_SECTION)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{DOC} has no section `{DOC_SECTION}`"));
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("- **"))
        .filter_map(|rest| rest.split_once("**").map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn maestro_reads_every_corpus_file_as_maestrong_does() {
    let files = corpus();
    assert!(
        files.len() >= 40,
        "the corpus has only {} files",
        files.len()
    );
    let home = tempfile::tempdir().expect("temp home");
    let views = oracle(&files, home.path());
    let mut used = BTreeSet::new();
    let mut report = Vec::new();
    let (mut containers, mut refused) = (0, 0);
    for file in &files {
        let theirs = views
            .get(file)
            .unwrap_or_else(|| panic!("no view of {file}"));
        match theirs["containers"].as_array() {
            Some(list) => containers += list.len(),
            None => refused += 1,
        }
        let containers_of_ours = ours(file, home.path());
        let both_load = theirs.get("error").is_none() && containers_of_ours.is_ok();
        let mut problems = compare(theirs, containers_of_ours, &mut used);
        if both_load {
            match our_document(file, home.path()) {
                Ok(document) => problems.extend(model_problems(theirs, &document)),
                Err(why) => problems.push(format!("maestro dump: {why}")),
            }
        }
        if !problems.is_empty() {
            report.push(format!("{file}:\n  {}", problems.join("\n  ")));
        }
    }
    eprintln!(
        "compared {containers} containers of {} files; {refused} files refused by MaestroNG",
        files.len()
    );
    // Refusals prove little about what is deployed: most of the corpus must deploy.
    assert!(
        refused * 4 < files.len() && containers >= 2 * files.len(),
        "too few containers compared ({containers}) or files deployed"
    );
    assert!(
        report.is_empty(),
        "maestro and MaestroNG 0.8.3 differ:\n{}",
        report.join("\n")
    );
    let unused: Vec<&str> = DIFFERENCES
        .iter()
        .map(|d| d.name)
        .chain(REFUSALS.iter().map(|(name, _)| *name))
        .filter(|name| !used.contains(name))
        .collect();
    assert!(
        unused.is_empty(),
        "deliberate differences that no corpus file shows (remove them, or add a file): {unused:?}"
    );
}

#[test]
fn the_documented_differences_are_the_tests_differences() {
    let ours: BTreeSet<String> = DIFFERENCES
        .iter()
        .map(|d| d.name)
        .chain(REFUSALS.iter().map(|(name, _)| *name))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented_differences(),
        ours,
        "{DOC}'s `{DOC_SECTION}` must list exactly the differences of tests/bed/parity.rs"
    );
}
