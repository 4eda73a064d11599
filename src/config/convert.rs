//! From the node tree to the resolved model: types, defaults, inheritance from services and
//! ship defaults, and the references that can be checked while reading.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{closest, did_you_mean};
use super::model::*;
use super::node::{Node, Pos, Value};
use super::ports::parse_port;
use super::reader::*;

const TOP_KEYS: &[&str] = &[
    "__maestro",
    "name",
    "registries",
    "ship_defaults",
    "ship_provider",
    "ships",
    "services",
    "audit",
    "secrets",
];

fn root_has(root: &Node, key: &str) -> bool {
    match &root.value {
        Value::Map(pairs) => pairs
            .iter()
            .any(|(k, _)| k.scalar_text().as_deref() == Some(key)),
        _ => false,
    }
}

pub(crate) const SHIP_KEYS: &[&str] = &[
    "ip",
    "endpoint",
    "docker_port",
    "socket_path",
    "api_version",
    "timeout",
    "ssh_timeout",
    "tls",
    "tls_verify",
    "tls_ca_cert",
    "tls_cert",
    "tls_key",
    "ssh_tunnel",
    "ssh",
    "max_concurrency",
    // MaestroNG's TLS protocol version (a Python `ssl` constant); rustls negotiates TLS 1.2 or
    // 1.3 itself, so it is accepted and not used.
    "ssl_version",
];

const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_files",
    "key",
    "jump",
    "known_hosts",
    "known_hosts_file",
];

const REGISTRY_KEYS: &[&str] = &["registry", "username", "password", "email", "retry"];

const SERVICE_KEYS: &[&str] = &[
    "image",
    "instances",
    "requires",
    "wants_info",
    "env",
    "envfile",
    "omit",
    "lifecycle",
    "limits",
    "ports",
];

pub(crate) const INSTANCE_KEYS: &[&str] = &[
    "ship",
    "image",
    "command",
    "cmd",
    "ports",
    "env",
    "envfile",
    "volumes",
    "container_volumes",
    "volumes_from",
    "links",
    "username",
    "workdir",
    "privileged",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "net",
    "restart",
    "dns",
    "stop_timeout",
    "limits",
    "log_driver",
    "log_opt",
    "security_opt",
    "ulimits",
    "labels",
    "lifecycle",
    "entrypoint",
    "networks",
    "healthcheck",
    "devices",
    "tmpfs",
    "init",
    "stop_signal",
    // Options of Docker's LXC driver, which Docker removed in 1.10; accepted and not sent.
    "lxc_conf",
];

const CHECK_STATES: &[&str] = &["pre-start", "running", "pre-stop", "stopped"];
const CHECK_TYPES: &[&str] = &["tcp", "http", "exec", "rexec", "sleep"];
const AUDITOR_TYPES: &[&str] = &["log", "http", "slack", "hipchat", "exec"];

/// Names known before anything is converted, so references can be checked in one pass.
struct Names {
    ships: Vec<String>,
    services: Vec<String>,
    /// (instance, service, ship as written)
    instances: Vec<(String, String, Option<String>)>,
}

pub(crate) fn convert(cx: &mut Cx<'_>, root: &Node, source: &str) -> Result<Environment> {
    if !matches!(root.value, Value::Map(_)) {
        return Err(cx.invalid(
            root.pos,
            "",
            format!(
                "the environment file must be a mapping with `name`, `ships` and `services`, \
                 found {}",
                root.kind_name()
            ),
        ));
    }
    let mut top = MapReader::new(cx, root, "", "the environment file")?;

    let schema = match top.get("__maestro") {
        Some(meta) => {
            let mut m = MapReader::new(cx, meta, "__maestro", "`__maestro`")?;
            let schema = match m.get("schema") {
                Some(n) => {
                    let v = integer(cx, n, "__maestro.schema", i64::MIN, i64::MAX)?;
                    if v != 1 && v != 2 {
                        return Err(cx.invalid(
                            n.pos,
                            "__maestro.schema",
                            format!("unsupported schema {v} (expected 1 or 2)"),
                        ));
                    }
                    v as u32
                }
                None => 1,
            };
            m.finish(cx, &["schema"], "`__maestro`")?;
            schema
        }
        None => 1,
    };
    cx.schema = schema;

    let name_node = top.require(cx, "name", "the environment file")?;
    let name = non_empty_string(cx, name_node, "name")?;

    let names = collect_names(cx, &mut top)?;

    let registries = match top.get("registries") {
        Some(n) if !matches!(n.value, Value::Null) => registries(cx, n)?,
        _ => Vec::new(),
    };
    let ship_provider = match top.get("ship_provider") {
        Some(n) => {
            let p = string(cx, n, "ship_provider")?;
            if p != "ships" && p != "static" {
                return Err(cx.invalid(
                    n.pos,
                    "ship_provider",
                    format!("unsupported ship provider \"{p}\" (only `ships` is supported)"),
                ));
            }
            Some(p)
        }
        None => None,
    };
    let defaults = top.get("ship_defaults");
    let ships_node = top.require(cx, "ships", "the environment file")?;
    let ships = ships(cx, ships_node, defaults, &names)?;
    let services = match top.get("services") {
        Some(n) if !matches!(n.value, Value::Null) => services(cx, n, &names, &ships, &name)?,
        _ => Vec::new(),
    };
    let audit = match top.get("audit") {
        Some(n) if !matches!(n.value, Value::Null) => audit(cx, n)?,
        _ => Vec::new(),
    };
    let secret_patterns = match top.get("secrets") {
        Some(n) if !matches!(n.value, Value::Null) => secret_patterns(cx, n)?,
        _ => Vec::new(),
    };
    // Other top-level keys are ignored on purpose: people park YAML anchors there (MaestroNG's
    // documentation puts them under `ship:`, beside `ships:`). A key whose closest known key
    // is absent is a typo, though, and would otherwise silently drop a whole section.
    // Keys named the way anchors are parked (`x-...` as in compose, `_...`, `.`) never are.
    for (key, key_node, _) in top.all() {
        let parked = ["x-", "x_", "_", "."].iter().any(|p| key.starts_with(p));
        if TOP_KEYS.contains(&key.as_str()) || parked {
            continue;
        }
        if let Some(meant) = closest(&key, TOP_KEYS.iter().copied())
            && strsim::osa_distance(&key, meant) <= 2
            && !root_has(root, meant)
        {
            return Err(cx.invalid_help(
                key_node.pos,
                &key,
                format!("unknown top-level key `{key}`"),
                Some(format!("did you mean `{meant}`?")),
            ));
        }
    }

    Ok(Environment {
        name,
        schema,
        source: source.to_owned(),
        base_dir: cx.base_dir.clone(),
        registries,
        ship_provider,
        ships,
        services,
        audit,
        secret_patterns,
    })
}

/// `secrets: {patterns: [...]}`: more names of environment variables whose values are masked
/// in output. Each is checked as a glob here, so that a typo is reported at its place.
fn secret_patterns(cx: &mut Cx<'_>, node: &Node) -> Result<Vec<String>> {
    let mut m = MapReader::new(cx, node, "secrets", "`secrets`")?;
    let mut patterns = Vec::new();
    if let Some(list) = m.get("patterns") {
        let items: Vec<&Node> = match &list.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![list],
        };
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("secrets.patterns[{i}]");
            let pattern = non_empty_string(cx, item, &path)?;
            if let Err(err) = globset::Glob::new(&pattern) {
                return Err(cx.invalid(
                    item.pos,
                    &path,
                    format!("invalid secret name pattern `{pattern}`: {}", err.kind()),
                ));
            }
            patterns.push(pattern);
        }
    }
    m.finish(cx, &["patterns"], "`secrets`")?;
    Ok(patterns)
}

fn collect_names(cx: &mut Cx<'_>, top: &mut MapReader<'_>) -> Result<Names> {
    let mut names = Names {
        ships: Vec::new(),
        services: Vec::new(),
        instances: Vec::new(),
    };
    if let Some(Node {
        value: Value::Map(pairs),
        ..
    }) = top.get("ships")
    {
        names.ships = pairs.iter().filter_map(|(k, _)| k.scalar_text()).collect();
    }
    let Some(Node {
        value: Value::Map(services),
        ..
    }) = top.get("services")
    else {
        return Ok(names);
    };
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (sk, sv) in services {
        let Some(service) = sk.scalar_text() else {
            continue;
        };
        names.services.push(service.clone());
        let Value::Map(skeys) = &sv.value else {
            continue;
        };
        for (ik, iv) in skeys {
            if ik.scalar_text().as_deref() != Some("instances") {
                continue;
            }
            let Value::Map(instances) = &iv.value else {
                continue;
            };
            for (nk, nv) in instances {
                let Some(instance) = nk.scalar_text() else {
                    continue;
                };
                let ship = match &nv.value {
                    Value::Map(ikeys) => ikeys
                        .iter()
                        .find(|(k, _)| k.scalar_text().as_deref() == Some("ship"))
                        .and_then(|(_, v)| v.scalar_text()),
                    _ => None,
                };
                if let Some((_, other, _)) = names.instances.iter().find(|(n, _, _)| *n == instance)
                {
                    let msg = format!(
                        "duplicate instance name `{instance}`: it is already an instance of \
                         service `{other}` (container names must be unique)"
                    );
                    let path = format!("services.{service}.instances.{instance}");
                    cx.semantic(nk.pos, &path, msg, None);
                }
                seen.insert(instance.clone(), service.clone());
                names.instances.push((instance, service.clone(), ship));
            }
        }
    }
    Ok(names)
}

fn registries(cx: &mut Cx<'_>, node: &Node) -> Result<Vec<Registry>> {
    let mut map = MapReader::new(cx, node, "registries", "`registries`")?;
    let mut out = Vec::new();
    for (name, _, value) in map.all() {
        let path = join("registries", &name);
        let what = format!("registry `{name}`");
        let mut r = MapReader::new(cx, value, &path, &what)?;
        let url_node = r.require(cx, "registry", &what)?;
        let registry = non_empty_string(cx, url_node, &r.field("registry"))?;
        let username = opt_string(cx, &mut r, "username")?;
        let password = opt_string(cx, &mut r, "password")?.map(Secret::new);
        let email = opt_string(cx, &mut r, "email")?;
        let retry = match r.get("retry") {
            Some(n) => {
                let rp = r.field("retry");
                let mut rr = MapReader::new(cx, n, &rp, "`retry`")?;
                let attempts = match rr.get("attempts") {
                    Some(a) => unsigned(cx, a, &rr.field("attempts"), 1000)?,
                    None => 3,
                };
                let mut when = Vec::new();
                if let Some(w) = rr.get("when") {
                    let wp = rr.field("when");
                    let items: Vec<&Node> = match &w.value {
                        Value::Seq(items) => items.iter().collect(),
                        _ => vec![w],
                    };
                    for (i, item) in items.into_iter().enumerate() {
                        when.push(unsigned::<u16>(cx, item, &format!("{wp}[{i}]"), 599)?);
                    }
                }
                rr.finish(cx, &["attempts", "when"], "`retry`")?;
                RetryPolicy { attempts, when }
            }
            None => RetryPolicy::default(),
        };
        r.finish(cx, REGISTRY_KEYS, &what)?;
        out.push(Registry {
            name,
            registry,
            username,
            password,
            email,
            retry,
        });
    }
    Ok(out)
}

fn opt_string(cx: &mut Cx<'_>, map: &mut MapReader<'_>, key: &str) -> Result<Option<String>> {
    match map.get(key) {
        None => Ok(None),
        Some(Node {
            value: Value::Null, ..
        }) => Ok(None),
        Some(n) => Ok(Some(string(cx, n, &map.field(key))?)),
    }
}

fn opt_bool(cx: &mut Cx<'_>, map: &mut MapReader<'_>, key: &str) -> Result<Option<bool>> {
    map.get(key)
        .map(|n| boolean(cx, n, &map.field(key)))
        .transpose()
}

fn ships(
    cx: &mut Cx<'_>,
    node: &Node,
    defaults: Option<&Node>,
    names: &Names,
) -> Result<Vec<Ship>> {
    // Defaults are checked on their own first, so that their errors name `ship_defaults`.
    let default_entries: Vec<(Node, Node)> = match defaults {
        None => Vec::new(),
        Some(Node {
            value: Value::Null, ..
        }) => Vec::new(),
        Some(d) => {
            let mut m = MapReader::new(cx, d, "ship_defaults", "`ship_defaults`")?;
            for (key, key_node, _) in m.all() {
                if key == "ip" || key == "endpoint" {
                    return Err(cx.invalid(
                        key_node.pos,
                        &join("ship_defaults", &key),
                        format!("`{key}` cannot have a default: it is different for every ship"),
                    ));
                }
                if !SHIP_KEYS.contains(&key.as_str()) {
                    return Err(cx.invalid_help(
                        key_node.pos,
                        &join("ship_defaults", &key),
                        format!("unknown key `{key}` in `ship_defaults`"),
                        did_you_mean(&key, SHIP_KEYS.iter().copied()),
                    ));
                }
            }
            let as_ship = Node {
                value: d.value.clone(),
                pos: d.pos,
                raw: None,
            };
            ship(cx, "ship_defaults", &as_ship, names, true)?;
            match &d.value {
                Value::Map(pairs) => pairs.clone(),
                _ => Vec::new(),
            }
        }
    };
    let mut map = MapReader::new(cx, node, "ships", "`ships`")?;
    let mut out = Vec::new();
    for (name, _, value) in map.all() {
        let path = join("ships", &name);
        let merged = match &value.value {
            Value::Map(pairs) => {
                let mut pairs = pairs.clone();
                for (k, v) in &default_entries {
                    let present = pairs
                        .iter()
                        .any(|(pk, _)| pk.scalar_text() == k.scalar_text());
                    if !present {
                        pairs.push((k.clone(), v.clone()));
                    }
                }
                Node {
                    value: Value::Map(pairs),
                    pos: value.pos,
                    raw: None,
                }
            }
            _ => value.clone(),
        };
        out.push(ship(cx, &path, &merged, names, false)?);
        if let Some(s) = out.last_mut() {
            s.name = name;
        }
    }
    // Jump hosts that are ships must not lead back to the ship itself.
    for s in &out {
        let mut seen = vec![s.name.clone()];
        let mut current = s;
        while let Some(JumpHost::Ship(next)) = current.ssh.as_ref().and_then(|x| x.jump.first()) {
            if seen.contains(next) {
                seen.push(next.clone());
                let path = format!("ships.{}.ssh.jump", s.name);
                let pos = cx.pos_of(&path);
                cx.semantic(
                    pos,
                    &path,
                    format!("jump hosts form a loop: {}", seen.join(" -> ")),
                    None,
                );
                break;
            }
            seen.push(next.clone());
            match out.iter().find(|o| o.name == *next) {
                Some(o) => current = o,
                None => break,
            }
        }
    }
    Ok(out)
}

fn ship(
    cx: &mut Cx<'_>,
    path: &str,
    node: &Node,
    names: &Names,
    is_defaults: bool,
) -> Result<Ship> {
    let what = if is_defaults {
        "`ship_defaults`".to_owned()
    } else {
        format!("ship `{}`", path.trim_start_matches("ships."))
    };
    let mut m = MapReader::new(cx, node, path, &what)?;
    let ip = if is_defaults {
        String::new()
    } else {
        let n = m.require(cx, "ip", &what)?;
        non_empty_string(cx, n, &m.field("ip"))?
    };
    let endpoint = opt_string(cx, &mut m, "endpoint")?.unwrap_or_else(|| ip.clone());
    let tls = opt_bool(cx, &mut m, "tls")?.unwrap_or(false);
    let docker_port_given = m.get("docker_port").is_some();
    let docker_port = match m.get("docker_port") {
        Some(n) => unsigned(cx, n, &m.field("docker_port"), 65535)?,
        None if tls => 2376,
        None => 2375,
    };
    let socket_path = opt_string(cx, &mut m, "socket_path")?;
    let api_version = opt_string(cx, &mut m, "api_version")?;
    let timeout = match m.get("timeout") {
        Some(n) => duration(cx, n, &m.field("timeout"))?,
        None => std::time::Duration::from_secs(5),
    };
    let ssh_timeout = m
        .get("ssh_timeout")
        .map(|n| duration(cx, n, &format!("{path}.ssh_timeout")))
        .transpose()?;
    let tls_verify = opt_bool(cx, &mut m, "tls_verify")?.unwrap_or(false);
    let tls_ca_cert = opt_string(cx, &mut m, "tls_ca_cert")?.map(|p| cx.resolve_path(&p));
    let tls_cert = opt_string(cx, &mut m, "tls_cert")?.map(|p| cx.resolve_path(&p));
    let tls_key = opt_string(cx, &mut m, "tls_key")?.map(|p| cx.resolve_path(&p));
    // Accepted for MaestroNG's files and not used: rustls negotiates the TLS version.
    let _ = m.get("ssl_version");
    let max_concurrency = match m.get("max_concurrency") {
        Some(n) => {
            let v: usize = unsigned(cx, n, &m.field("max_concurrency"), 1024)?;
            if v == 0 {
                return Err(cx.invalid(
                    n.pos,
                    &m.field("max_concurrency"),
                    "max_concurrency must be at least 1",
                ));
            }
            Some(v)
        }
        None => None,
    };
    let ssh_tunnel = match m.get("ssh_tunnel") {
        Some(n) => {
            let tp = m.field("ssh_tunnel");
            let mut t = MapReader::new(cx, n, &tp, "`ssh_tunnel`")?;
            let user_node = t.require(cx, "user", "`ssh_tunnel`")?;
            let user = non_empty_string(cx, user_node, &t.field("user"))?;
            let key_node = t.require(cx, "key", "`ssh_tunnel`")?;
            let key = cx.resolve_path(&non_empty_string(cx, key_node, &t.field("key"))?);
            let port = match t.get("port") {
                Some(p) => unsigned(cx, p, &t.field("port"), 65535)?,
                None => 22,
            };
            t.finish(cx, &["user", "key", "port"], "`ssh_tunnel`")?;
            Some(SshTunnel { user, key, port })
        }
        None => None,
    };
    let ssh = match m.get("ssh") {
        Some(n) => Some(ssh_settings(cx, &m.field("ssh"), n, names, path)?),
        None => ssh_tunnel.as_ref().map(SshTunnel::as_ssh),
    };
    m.finish(cx, SHIP_KEYS, &what)?;
    Ok(Ship {
        name: String::new(),
        ip,
        endpoint,
        docker_port,
        docker_port_given,
        socket_path,
        api_version,
        timeout,
        ssh_timeout,
        tls,
        tls_verify,
        tls_ca_cert,
        tls_cert,
        tls_key,
        ssh_tunnel,
        ssh,
        max_concurrency,
    })
}

fn ssh_settings(
    cx: &mut Cx<'_>,
    path: &str,
    node: &Node,
    names: &Names,
    ship_path: &str,
) -> Result<SshSettings> {
    let mut s = MapReader::new(cx, node, path, "`ssh`")?;
    let user = opt_string(cx, &mut s, "user")?;
    let port = match s.get("port") {
        Some(p) => unsigned(cx, p, &s.field("port"), 65535)?,
        None => 22,
    };
    let mut identity_files = Vec::new();
    for key in ["identity_files", "key"] {
        if let Some(n) = s.get(key) {
            for f in string_list(cx, n, &s.field(key))? {
                identity_files.push(cx.resolve_path(&f));
            }
        }
    }
    let mut jump = Vec::new();
    if let Some(n) = s.get("jump") {
        let jp = s.field("jump");
        let hops = string_list(cx, n, &jp)?;
        let this_ship = ship_path.strip_prefix("ships.").unwrap_or("");
        for (i, hop) in hops.into_iter().enumerate() {
            let hop_path = if matches!(n.value, Value::Seq(_)) {
                format!("{jp}[{i}]")
            } else {
                jp.clone()
            };
            if hop == this_ship {
                let pos = cx.pos_of(&hop_path);
                return Err(cx.invalid(
                    pos,
                    &hop_path,
                    format!("ship `{hop}` cannot be its own jump host"),
                ));
            }
            if names.ships.contains(&hop) {
                jump.push(JumpHost::Ship(hop));
                continue;
            }
            match parse_jump(&hop) {
                Some(j) => jump.push(j),
                None => {
                    let pos = cx.pos_of(&hop_path);
                    return Err(cx.invalid_help(
                        pos,
                        &hop_path,
                        format!("invalid jump host \"{hop}\" (expected [user@]host[:port] or a ship name)"),
                        did_you_mean(&hop, names.ships.iter().map(String::as_str)),
                    ));
                }
            }
        }
    }
    let known_hosts = match s.get("known_hosts") {
        Some(n) => {
            let kp = s.field("known_hosts");
            match string(cx, n, &kp)?.as_str() {
                "strict" => KnownHostsPolicy::Strict,
                "accept-new" | "accept_new" => KnownHostsPolicy::AcceptNew,
                other => {
                    return Err(cx.invalid_help(
                        n.pos,
                        &kp,
                        format!(
                            "invalid known_hosts policy \"{other}\" (expected strict or accept-new)"
                        ),
                        did_you_mean(other, ["strict", "accept-new"]),
                    ));
                }
            }
        }
        None => KnownHostsPolicy::Strict,
    };
    let known_hosts_file = opt_string(cx, &mut s, "known_hosts_file")?.map(|p| cx.resolve_path(&p));
    s.finish(cx, SSH_KEYS, "`ssh`")?;
    Ok(SshSettings {
        user,
        port,
        identity_files,
        jump,
        known_hosts,
        known_hosts_file,
    })
}

/// `[user@]host[:port]`.
pub(crate) fn parse_jump(text: &str) -> Option<JumpHost> {
    let (user, rest) = match text.split_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_owned()), r),
        Some(_) => return None,
        None => (None, text),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?)),
        _ => (rest, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return None;
    }
    Some(JumpHost::Address {
        user,
        host: host.to_owned(),
        port,
    })
}

/// What a service gives its instances.
struct Inherited {
    image: Option<String>,
    env_files: Vec<(String, Pos, String)>,
    env: Vec<(String, Option<String>)>,
    /// `MAESTRO_ENVIRONMENT_NAME` and `SERVICE_NAME`: MaestroNG builds them into the
    /// service's environment, over its envfile and env and under the instance's, so an
    /// instance may set them and a service may not.
    generated: Vec<(String, Option<String>)>,
    ports: Vec<Port>,
    limits: Limits,
    lifecycle: Vec<(&'static str, Check, String)>,
}

fn services(
    cx: &mut Cx<'_>,
    node: &Node,
    names: &Names,
    ships: &[Ship],
    env_name: &str,
) -> Result<Vec<Service>> {
    let mut map = MapReader::new(cx, node, "services", "`services`")?;
    let mut out = Vec::new();
    for (name, _, value) in map.all() {
        let path = join("services", &name);
        let what = format!("service `{name}`");
        let mut m = MapReader::new(cx, value, &path, &what)?;
        let image_node = m.require(cx, "image", &what)?;
        let image = non_empty_string(cx, image_node, &m.field("image"))?;
        let requires = service_refs(cx, &mut m, "requires", names, &name)?;
        let wants_info = service_refs(cx, &mut m, "wants_info", names, &name)?;
        let omit = opt_bool(cx, &mut m, "omit")?.unwrap_or(false);
        let inherited = Inherited {
            image: Some(image.clone()),
            env_files: env_files(cx, &mut m)?,
            env: env_map(cx, &mut m)?,
            ports: ports(cx, &mut m)?,
            limits: limits(cx, &mut m)?,
            lifecycle: lifecycle(cx, &mut m)?,
            generated: vec![
                (
                    "MAESTRO_ENVIRONMENT_NAME".to_owned(),
                    Some(env_name.to_owned()),
                ),
                ("SERVICE_NAME".to_owned(), Some(name.clone())),
            ],
        };
        let instances_node = m.require(cx, "instances", &what)?;
        let ip = m.field("instances");
        m.finish(cx, SERVICE_KEYS, &what)?;
        let mut im = MapReader::new(cx, instances_node, &ip, "`instances`")?;
        let mut instances = Vec::new();
        for (iname, _, ivalue) in im.all() {
            let ipath = join(&ip, &iname);
            instances.push(instance(
                cx, &ipath, &iname, &name, ivalue, &inherited, names, ships,
            )?);
        }
        out.push(Service {
            name,
            image,
            requires,
            wants_info,
            omit,
            instances,
        });
    }
    Ok(out)
}

fn service_refs(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    key: &str,
    names: &Names,
    this: &str,
) -> Result<Vec<String>> {
    let Some(n) = m.get(key) else {
        return Ok(Vec::new());
    };
    let path = m.field(key);
    let list = string_list(cx, n, &path)?;
    for (i, r) in list.iter().enumerate() {
        let p = if matches!(n.value, Value::Seq(_)) {
            format!("{path}[{i}]")
        } else {
            path.clone()
        };
        if r == this && key == "requires" {
            let pos = cx.pos_of(&p);
            cx.semantic(pos, &p, format!("dependency cycle: {this} -> {this}"), None);
        } else if !names.services.contains(r) {
            let pos = cx.pos_of(&p);
            let help = did_you_mean(r, names.services.iter().map(String::as_str));
            cx.semantic(pos, &p, format!("unknown service `{r}` in `{key}`"), help);
        }
    }
    Ok(list)
}

fn env_files(cx: &mut Cx<'_>, m: &mut MapReader<'_>) -> Result<Vec<(String, Pos, String)>> {
    let Some(n) = m.get("envfile") else {
        return Ok(Vec::new());
    };
    let path = m.field("envfile");
    let files = string_list(cx, n, &path)?;
    let mut out = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let p = if matches!(n.value, Value::Seq(_)) {
            format!("{path}[{i}]")
        } else {
            path.clone()
        };
        out.push((f, cx.pos_of(&p), p));
    }
    Ok(out)
}

/// The `env` of a service or instance; `None` for a name given no value (null), which
/// unsets it.
fn env_map(cx: &mut Cx<'_>, m: &mut MapReader<'_>) -> Result<Vec<(String, Option<String>)>> {
    let Some(n) = m.get("env") else {
        return Ok(Vec::new());
    };
    if matches!(n.value, Value::Null) {
        return Ok(Vec::new());
    }
    let path = m.field("env");
    let mut e = MapReader::new(cx, n, &path, "`env`")?;
    let mut out = Vec::new();
    for (k, _, v) in e.all() {
        let value = match v.value {
            Value::Null => None,
            _ => Some(env_value(cx, v, &join(&path, &k))?),
        };
        out.push((k.clone(), value));
    }
    Ok(out)
}

/// Reads `KEY=VALUE` lines (blank lines and `#` comments skipped, `export ` and quotes removed).
fn read_env_file(cx: &Cx<'_>, file: &str, pos: Pos, path: &str) -> Result<Vec<(String, String)>> {
    let full = cx.resolve_path(file);
    let text = std::fs::read_to_string(&full).map_err(|e| {
        cx.invalid(
            pos,
            path,
            format!("cannot read envfile {}: {e}", full.display()),
        )
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(cx.invalid(
                pos,
                path,
                format!(
                    "{}:{}: expected KEY=VALUE, found \"{line}\"",
                    full.display(),
                    n + 1
                ),
            ));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        out.push((k.trim().to_owned(), v.to_owned()));
    }
    Ok(out)
}

fn ports(cx: &mut Cx<'_>, m: &mut MapReader<'_>) -> Result<Vec<Port>> {
    let Some(n) = m.get("ports") else {
        return Ok(Vec::new());
    };
    if matches!(n.value, Value::Null) {
        return Ok(Vec::new());
    }
    let path = m.field("ports");
    let mut pm = MapReader::new(cx, n, &path, "`ports`")?;
    let mut out = Vec::new();
    for (name, _, spec) in pm.all() {
        out.push(parse_port(cx, &name, spec, &join(&path, &name))?);
    }
    Ok(out)
}

fn limits(cx: &mut Cx<'_>, m: &mut MapReader<'_>) -> Result<Limits> {
    let Some(n) = m.get("limits") else {
        return Ok(Limits::default());
    };
    let path = m.field("limits");
    let mut l = MapReader::new(cx, n, &path, "`limits`")?;
    let memory = l
        .get("memory")
        .map(|x| size(cx, x, &join(&path, "memory")))
        .transpose()?;
    let swap = l
        .get("swap")
        .map(|x| size(cx, x, &join(&path, "swap")))
        .transpose()?;
    let cpu = l
        .get("cpu")
        .map(|x| unsigned::<u64>(cx, x, &join(&path, "cpu"), 262_144))
        .transpose()?;
    l.finish(cx, &["memory", "cpu", "swap"], "`limits`")?;
    Ok(Limits { memory, cpu, swap })
}

fn lifecycle(cx: &mut Cx<'_>, m: &mut MapReader<'_>) -> Result<Vec<(&'static str, Check, String)>> {
    let Some(n) = m.get("lifecycle") else {
        return Ok(Vec::new());
    };
    let path = m.field("lifecycle");
    let mut lm = MapReader::new(cx, n, &path, "`lifecycle`")?;
    let mut out = Vec::new();
    for state in CHECK_STATES {
        let Some(list) = lm.get(state) else { continue };
        let sp = join(&path, state);
        let items = match &list.value {
            Value::Seq(items) => items,
            Value::Null => continue,
            _ => {
                return Err(cx.invalid(
                    list.pos,
                    &sp,
                    format!(
                        "`{state}` must be a list of checks, found {}",
                        list.kind_name()
                    ),
                ));
            }
        };
        for (i, item) in items.iter().enumerate() {
            let cp = format!("{sp}[{i}]");
            out.push((*state, check(cx, item, &cp)?, format!("{cp}.port")));
        }
    }
    lm.finish(cx, CHECK_STATES, "`lifecycle` (states)")?;
    Ok(out)
}

fn check(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Check> {
    let mut c = MapReader::new(cx, node, path, "a lifecycle check")?;
    let type_node = c.require(cx, "type", "a lifecycle check")?;
    let kind = string(cx, type_node, &c.field("type"))?;
    let max_wait = |cx: &mut Cx<'_>, c: &mut MapReader<'_>, default: u32| -> Result<u32> {
        match c.get("max_wait") {
            Some(n) => unsigned(cx, n, &c.field("max_wait"), 1_000_000),
            None => Ok(default),
        }
    };
    let attempts = |cx: &mut Cx<'_>, c: &mut MapReader<'_>| -> Result<u32> {
        match c.get("attempts") {
            Some(n) => unsigned(cx, n, &c.field("attempts"), 1_000_000),
            None => Ok(180),
        }
    };
    let port = |cx: &mut Cx<'_>, c: &mut MapReader<'_>| -> Result<String> {
        let n = c.require(cx, "port", "a tcp/http check")?;
        non_empty_string(cx, n, &c.field("port"))
    };
    let command = |cx: &mut Cx<'_>, c: &mut MapReader<'_>| -> Result<String> {
        let n = c.require(cx, "command", "an exec/rexec check")?;
        match &n.value {
            Value::Seq(_) => Ok(string_list(cx, n, &c.field("command"))?.join(" ")),
            _ => non_empty_string(cx, n, &c.field("command")),
        }
    };
    let (check, known): (Check, &[&str]) = match kind.as_str() {
        "tcp" => (
            Check::Tcp {
                port: port(cx, &mut c)?,
                max_wait: max_wait(cx, &mut c, 180)?,
            },
            &["type", "port", "max_wait"],
        ),
        "http" => {
            let port = port(cx, &mut c)?;
            let host = opt_string(cx, &mut c, "host")?;
            let path_ = opt_string(cx, &mut c, "path")?.unwrap_or_else(|| "/".to_owned());
            let scheme = opt_string(cx, &mut c, "scheme")?.unwrap_or_else(|| "http".to_owned());
            if scheme != "http" && scheme != "https" {
                let p = c.field("scheme");
                return Err(cx.invalid(
                    cx.pos_of(&p),
                    &p,
                    format!("invalid scheme \"{scheme}\" (expected http or https)"),
                ));
            }
            let method = opt_string(cx, &mut c, "method")?
                .unwrap_or_else(|| "GET".to_owned())
                .to_ascii_uppercase();
            let match_regex = opt_string(cx, &mut c, "match_regex")?;
            if let Some(re) = &match_regex
                && let Err(e) = regex::Regex::new(re)
            {
                let p = c.field("match_regex");
                return Err(cx.invalid(cx.pos_of(&p), &p, format!("invalid match_regex: {e}")));
            }
            let max_wait = max_wait(cx, &mut c, 300)?;
            let verify = match c.get("requests_options") {
                Some(n) => requests_options(cx, n, &c.field("requests_options"))?,
                None => TlsVerify::SystemRoots,
            };
            (
                Check::Http {
                    port,
                    host,
                    path: path_,
                    scheme,
                    method,
                    match_regex,
                    max_wait,
                    verify,
                },
                &[
                    "type",
                    "port",
                    "host",
                    "path",
                    "scheme",
                    "method",
                    "match_regex",
                    "max_wait",
                    "requests_options",
                ],
            )
        }
        "exec" => {
            let command = command(cx, &mut c)?;
            let attempts = attempts(cx, &mut c)?;
            let envfrom = match c.get("envfrom") {
                Some(n) => {
                    let p = c.field("envfrom");
                    match string(cx, n, &p)?.as_str() {
                        "env" => EnvFrom::Env,
                        "stdin" => EnvFrom::Stdin,
                        other => {
                            return Err(cx.invalid(
                                n.pos,
                                &p,
                                format!("invalid envfrom \"{other}\" (expected env or stdin)"),
                            ));
                        }
                    }
                }
                None => EnvFrom::Env,
            };
            (
                Check::Exec {
                    command,
                    attempts,
                    envfrom,
                },
                &["type", "command", "attempts", "envfrom"],
            )
        }
        "rexec" => (
            Check::Rexec {
                command: command(cx, &mut c)?,
                attempts: attempts(cx, &mut c)?,
            },
            &["type", "command", "attempts"],
        ),
        "sleep" => {
            let n = c.require(cx, "wait", "a sleep check")?;
            (
                Check::Sleep {
                    wait: number(cx, n, &c.field("wait"))?,
                },
                &["type", "wait"],
            )
        }
        other => {
            return Err(cx.invalid_help(
                type_node.pos,
                &c.field("type"),
                format!("unknown lifecycle check type \"{other}\" (expected tcp, http, exec, rexec or sleep)"),
                did_you_mean(other, CHECK_TYPES.iter().copied()),
            ));
        }
    };
    c.finish(cx, known, &format!("a {kind} check"))?;
    Ok(check)
}

/// MaestroNG passes an http check's `requests_options` to python-requests; of those, we
/// support `verify`: `true` (system roots, the default), `false` (no verification), or the
/// path of a PEM CA bundle, which must be readable and hold a certificate.
fn requests_options(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<TlsVerify> {
    if matches!(node.value, Value::Null) {
        return Ok(TlsVerify::SystemRoots);
    }
    let mut m = MapReader::new(cx, node, path, "`requests_options`")?;
    let verify = match m.get("verify") {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => TlsVerify::SystemRoots,
        Some(n) => {
            let vp = join(path, "verify");
            match &n.value {
                Value::Bool(true) => TlsVerify::SystemRoots,
                Value::Bool(false) => TlsVerify::Off,
                Value::Str(s) if s == "true" => TlsVerify::SystemRoots,
                Value::Str(s) if s == "false" => TlsVerify::Off,
                Value::Str(s) if !s.trim().is_empty() => {
                    let file = cx.resolve_path(s);
                    if let Err(problem) = check_ca_file(&file) {
                        return Err(cx.invalid_help(
                            n.pos,
                            &vp,
                            format!("invalid verify: {problem}"),
                            Some(
                                "verify is true (system roots), false (no verification) or \
                                 the path of a PEM file of CA certificates"
                                    .to_owned(),
                            ),
                        ));
                    }
                    TlsVerify::CaFile(file)
                }
                _ => {
                    return Err(cx.invalid(
                        n.pos,
                        &vp,
                        format!(
                            "invalid verify: expected true, false or the path of a PEM file of \
                             CA certificates, found {}",
                            if matches!(n.value, Value::Str(_)) {
                                "an empty string"
                            } else {
                                n.kind_name()
                            }
                        ),
                    ));
                }
            }
        }
    };
    m.finish(
        cx,
        &["verify"],
        "`requests_options` (maestro supports only `verify`)",
    )?;
    Ok(verify)
}

/// A CA bundle is usable when it can be read and holds at least one PEM certificate; the
/// certificates themselves are parsed when the check runs.
fn check_ca_file(file: &std::path::Path) -> std::result::Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let marker = b"-----BEGIN CERTIFICATE-----";
    if text.windows(marker.len()).any(|w| w == marker) {
        Ok(())
    } else {
        Err(format!(
            "{} holds no PEM certificate (no `-----BEGIN CERTIFICATE-----` line)",
            file.display()
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn instance(
    cx: &mut Cx<'_>,
    path: &str,
    name: &str,
    service: &str,
    node: &Node,
    inherited: &Inherited,
    names: &Names,
    ships: &[Ship],
) -> Result<Instance> {
    let what = format!("instance `{name}`");
    let valid_container_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid_container_name {
        let pos = cx.key_spans.get(path).copied().unwrap_or(node.pos);
        return Err(cx.invalid(
            pos,
            path,
            format!(
                "invalid instance name `{name}`: it becomes the container name, which may hold only \
                 letters, digits, `_`, `.` and `-`, and must start with a letter or digit"
            ),
        ));
    }
    let mut m = MapReader::new(cx, node, path, &what)?;
    let ship_node = m.require(cx, "ship", &what)?;
    let ship = non_empty_string(cx, ship_node, &m.field("ship"))?;
    if !names.ships.contains(&ship) {
        let help = did_you_mean(&ship, names.ships.iter().map(String::as_str));
        cx.semantic(
            ship_node.pos,
            &m.field("ship"),
            format!("unknown ship `{ship}`"),
            help,
        );
    }
    let image = match opt_string(cx, &mut m, "image")? {
        Some(i) => i,
        None => inherited.image.clone().unwrap_or_default(),
    };
    let command = match m.get_any(&["command", "cmd"]) {
        Some((key, n)) => Some(command_spec(cx, n, &m.field(key))?),
        None => None,
    };
    let entrypoint = match m.get("entrypoint") {
        Some(n) => Some(command_spec(cx, n, &m.field("entrypoint"))?),
        None => None,
    };

    // Inheritance: env/envfile merged, ports/limits key by key, lifecycle added per state.
    let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
    let own_files = env_files(cx, &mut m)?;
    let own_env = env_map(cx, &mut m)?;
    let set = |pairs: Vec<(String, String)>| pairs.into_iter().map(|(k, v)| (k, Some(v)));
    for (f, pos, p) in &inherited.env_files {
        merged.extend(set(read_env_file(cx, f, *pos, p)?));
    }
    merged.extend(inherited.env.iter().cloned());
    merged.extend(inherited.generated.iter().cloned());
    for (f, pos, p) in &own_files {
        merged.extend(set(read_env_file(cx, f, *pos, p)?));
    }
    merged.extend(own_env);
    let mut env = BTreeMap::new();
    let mut unset_env = BTreeSet::new();
    for (k, v) in merged {
        match v {
            Some(v) => {
                env.insert(k, v);
            }
            None => {
                unset_env.insert(k);
            }
        }
    }

    let mut port_list = inherited.ports.clone();
    for p in ports(cx, &mut m)? {
        match port_list.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p,
            None => port_list.push(p),
        }
    }
    let own_limits = limits(cx, &mut m)?;
    let limits = Limits {
        memory: own_limits.memory.or(inherited.limits.memory),
        cpu: own_limits.cpu.or(inherited.limits.cpu),
        swap: own_limits.swap.or(inherited.limits.swap),
    };
    let mut lc = Lifecycle::default();
    let own_checks = lifecycle(cx, &mut m)?;
    for (state, check, port_path) in inherited.lifecycle.iter().cloned().chain(own_checks) {
        if let Check::Tcp { port, .. } | Check::Http { port, .. } = &check
            && !port_list.iter().any(|p| &p.name == port)
            && port.parse::<u16>().is_err()
        {
            let pos = cx.pos_of(&port_path);
            let help = did_you_mean(port, port_list.iter().map(|p| p.name.as_str()));
            cx.semantic(
                    pos,
                    &port_path,
                    format!("lifecycle check of `{name}` uses port `{port}`, which is not one of its named ports"),
                    help,
                );
        }
        match state {
            "pre-start" => lc.pre_start.push(check),
            "running" => lc.running.push(check),
            "pre-stop" => lc.pre_stop.push(check),
            _ => lc.stopped.push(check),
        }
    }

    let volumes = volumes(cx, &mut m)?;
    let container_volumes = match m.get("container_volumes") {
        Some(n) => {
            let p = m.field("container_volumes");
            let list = string_list(cx, n, &p)?;
            for v in &list {
                if !v.starts_with('/') {
                    return Err(cx.invalid(
                        n.pos,
                        &p,
                        format!("invalid volume: container path \"{v}\" must be absolute"),
                    ));
                }
            }
            list
        }
        None => Vec::new(),
    };
    let volumes_from = match m.get("volumes_from") {
        Some(n) => {
            let p = m.field("volumes_from");
            let list = string_list(cx, n, &p)?;
            for (i, target) in list.iter().enumerate() {
                let tp = if matches!(n.value, Value::Seq(_)) {
                    format!("{p}[{i}]")
                } else {
                    p.clone()
                };
                let pos = cx.pos_of(&tp);
                match names.instances.iter().find(|(inst, _, _)| inst == target) {
                    None => {
                        let help = did_you_mean(
                            target,
                            names.instances.iter().map(|(i, _, _)| i.as_str()),
                        );
                        cx.semantic(
                            pos,
                            &tp,
                            format!("volumes_from: unknown instance `{target}`"),
                            help,
                        );
                    }
                    Some((_, _, Some(other_ship))) if *other_ship != ship => {
                        cx.semantic(
                            pos,
                            &tp,
                            format!(
                                "volumes_from: instance `{target}` runs on ship `{other_ship}`, \
                                 but `{name}` runs on `{ship}` (volumes can only come from the same ship)"
                            ),
                            None,
                        );
                    }
                    _ if target == name => {
                        cx.semantic(
                            pos,
                            &tp,
                            format!("volumes_from: `{name}` cannot take volumes from itself"),
                            None,
                        );
                    }
                    _ => {}
                }
            }
            list
        }
        None => Vec::new(),
    };
    let links = match m.get("links") {
        Some(n) => links(cx, n, &m.field("links"), names, name)?,
        None => Vec::new(),
    };
    let username = opt_string(cx, &mut m, "username")?;
    let workdir = opt_string(cx, &mut m, "workdir")?;
    let privileged = opt_bool(cx, &mut m, "privileged")?.unwrap_or(false);
    let cap_add = m
        .get("cap_add")
        .map(|n| string_list(cx, n, &format!("{path}.cap_add")))
        .transpose()?
        .unwrap_or_default();
    let cap_drop = m
        .get("cap_drop")
        .map(|n| string_list(cx, n, &format!("{path}.cap_drop")))
        .transpose()?
        .unwrap_or_default();
    let extra_hosts = match m.get("extra_hosts") {
        Some(n) => extra_hosts(cx, n, &m.field("extra_hosts"), ships, names)?,
        None => Vec::new(),
    };
    let net = opt_string(cx, &mut m, "net")?;
    let restart = match m.get("restart") {
        Some(n) => Some(restart(cx, n, &m.field("restart"))?),
        None => None,
    };
    let dns = m
        .get("dns")
        .map(|n| string_list(cx, n, &format!("{path}.dns")))
        .transpose()?
        .unwrap_or_default();
    let stop_timeout = match m.get("stop_timeout") {
        Some(n) => unsigned(cx, n, &m.field("stop_timeout"), 86_400)?,
        None => 10,
    };
    let log_driver = opt_string(cx, &mut m, "log_driver")?;
    let log_opt = string_map(cx, &mut m, "log_opt")?;
    let security_opt = m
        .get("security_opt")
        .map(|n| string_list(cx, n, &format!("{path}.security_opt")))
        .transpose()?
        .unwrap_or_default();
    let ulimits = match m.get("ulimits") {
        Some(n) => ulimits(cx, n, &m.field("ulimits"))?,
        None => Vec::new(),
    };
    let labels = match m.get("labels") {
        Some(n) => labels(cx, n, &m.field("labels"))?,
        None => BTreeMap::new(),
    };
    let networks = match m.get("networks") {
        Some(n) => networks(cx, n, &m.field("networks"))?,
        None => Vec::new(),
    };
    let healthcheck = match m.get("healthcheck") {
        Some(n) => Some(healthcheck(cx, n, &m.field("healthcheck"))?),
        None => None,
    };
    let devices = match m.get("devices") {
        Some(n) => devices(cx, n, &m.field("devices"))?,
        None => Vec::new(),
    };
    let tmpfs = match m.get("tmpfs") {
        Some(n) => tmpfs(cx, n, &m.field("tmpfs"))?,
        None => BTreeMap::new(),
    };
    let init = opt_bool(cx, &mut m, "init")?;
    let stop_signal = opt_string(cx, &mut m, "stop_signal")?;
    // The LXC driver's options: Docker removed the driver in 1.10; accepted, not sent.
    let _ = m.get("lxc_conf");
    m.finish(cx, INSTANCE_KEYS, &what)?;

    Ok(Instance {
        name: name.to_owned(),
        service: service.to_owned(),
        ship,
        image,
        command,
        entrypoint,
        ports: port_list,
        env,
        unset_env,
        volumes,
        container_volumes,
        volumes_from,
        links,
        username,
        workdir,
        privileged,
        cap_add,
        cap_drop,
        extra_hosts,
        net,
        restart,
        dns,
        stop_timeout,
        limits,
        log_driver,
        log_opt,
        security_opt,
        ulimits,
        labels,
        lifecycle: lc,
        networks,
        healthcheck,
        devices,
        tmpfs,
        init,
        stop_signal,
    })
}

fn command_spec(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<CommandSpec> {
    match &node.value {
        Value::Seq(_) => Ok(CommandSpec::Exec(string_list(cx, node, path)?)),
        _ => Ok(CommandSpec::Shell(string(cx, node, path)?)),
    }
}

fn string_map(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    key: &str,
) -> Result<BTreeMap<String, String>> {
    let Some(n) = m.get(key) else {
        return Ok(BTreeMap::new());
    };
    let path = m.field(key);
    let mut sm = MapReader::new(cx, n, &path, &format!("`{key}`"))?;
    let mut out = BTreeMap::new();
    for (k, _, v) in sm.all() {
        out.insert(k.clone(), string(cx, v, &join(&path, &k))?);
    }
    Ok(out)
}

fn volumes(cx: &mut Cx<'_>, m: &mut MapReader<'_>) -> Result<Vec<VolumeBind>> {
    let Some(n) = m.get("volumes") else {
        return Ok(Vec::new());
    };
    if matches!(n.value, Value::Null) {
        return Ok(Vec::new());
    }
    let path = m.field("volumes");
    let mut vm = MapReader::new(cx, n, &path, "`volumes`")?;
    let mut out = Vec::new();
    for (key, key_node, value) in vm.all() {
        let vp = join(&path, &key);
        let (target, mode) = match &value.value {
            Value::Map(_) => {
                let mut t = MapReader::new(cx, value, &vp, "a volume")?;
                let tn = t.require(cx, "target", "a volume")?;
                let target = non_empty_string(cx, tn, &t.field("target"))?;
                let mode = match t.get("mode") {
                    Some(mn) => {
                        let mp = t.field("mode");
                        match string(cx, mn, &mp)?.as_str() {
                            "ro" => VolumeMode::ReadOnly,
                            "rw" => VolumeMode::ReadWrite,
                            other => {
                                return Err(cx.invalid(
                                    mn.pos,
                                    &mp,
                                    format!("invalid volume mode \"{other}\" (expected ro or rw)"),
                                ));
                            }
                        }
                    }
                    None => VolumeMode::ReadWrite,
                };
                t.finish(cx, &["target", "mode"], "a volume")?;
                (target, mode)
            }
            _ => (non_empty_string(cx, value, &vp)?, VolumeMode::ReadWrite),
        };
        // Schema 1 (the original README): `/container: /host`; schema 2: `/host: /container`.
        let (host, container, host_pos, container_pos) = if cx.schema >= 2 {
            (key, target, key_node.pos, value.pos)
        } else {
            (target, key, value.pos, key_node.pos)
        };
        if !container.starts_with('/') {
            let side = if cx.schema >= 2 { "value" } else { "key" };
            // Written host first, as compose writes it, in a file that is schema 1 by default.
            let help = (cx.schema < 2).then(|| {
                "schema 1 (the default) writes `/container: /host`; to write the host path \
                 first, as compose does, put `__maestro: {schema: 2}` at the top of the file"
                    .to_owned()
            });
            return Err(cx.invalid_help(
                container_pos,
                &vp,
                format!(
                    "invalid volume: container path \"{container}\" must be absolute (schema {}: the {side} is the container path)",
                    cx.schema
                ),
                help,
            ));
        }
        let named_volume = host
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !host.starts_with('/') && !named_volume {
            return Err(cx.invalid(
                host_pos,
                &vp,
                format!("invalid volume: host path \"{host}\" must be absolute or a volume name"),
            ));
        }
        out.push(VolumeBind {
            host,
            container,
            mode,
        });
    }
    Ok(out)
}

fn links(cx: &mut Cx<'_>, node: &Node, path: &str, names: &Names, this: &str) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    match &node.value {
        Value::Map(_) => {
            let mut lm = MapReader::new(cx, node, path, "`links`")?;
            for (target, _, alias) in lm.all() {
                let alias = string(cx, alias, &join(path, &target))?;
                out.push((Link { target, alias }, join(path, "")));
            }
        }
        _ => {
            for (i, item) in string_list(cx, node, path)?.into_iter().enumerate() {
                let (target, alias) = match item.split_once(':') {
                    Some((t, a)) => (t.to_owned(), a.to_owned()),
                    None => (item.clone(), item),
                };
                out.push((Link { target, alias }, format!("{path}[{i}]")));
            }
        }
    }
    for (link, p) in &out {
        let p = if p.ends_with('.') {
            join(path, &link.target)
        } else {
            p.clone()
        };
        if !names.instances.iter().any(|(i, _, _)| *i == link.target) || link.target == this {
            let pos = cx.pos_of(&p);
            let help = did_you_mean(
                &link.target,
                names.instances.iter().map(|(i, _, _)| i.as_str()),
            );
            cx.semantic(
                pos,
                &p,
                format!("links: unknown instance `{}`", link.target),
                help,
            );
        }
    }
    Ok(out.into_iter().map(|(l, _)| l).collect())
}

fn extra_hosts(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    ships: &[Ship],
    names: &Names,
) -> Result<Vec<ExtraHost>> {
    let mut em = MapReader::new(cx, node, path, "`extra_hosts`")?;
    let mut out = Vec::new();
    for (host, _, value) in em.all() {
        let hp = join(path, &host);
        match &value.value {
            Value::Map(_) => {
                let mut sm = MapReader::new(cx, value, &hp, "an extra host")?;
                let sn = sm.require(cx, "ship", "an extra host")?;
                let ship_path = sm.field("ship");
                let ship = string(cx, sn, &ship_path)?;
                sm.finish(cx, &["ship"], "an extra host")?;
                let address = match ships.iter().find(|s| s.name == ship) {
                    Some(s) => s.ip.clone(),
                    None => {
                        let help = did_you_mean(&ship, names.ships.iter().map(String::as_str));
                        cx.semantic(sn.pos, &ship_path, format!("unknown ship `{ship}`"), help);
                        String::new()
                    }
                };
                out.push(ExtraHost {
                    host,
                    address,
                    from_ship: Some(ship),
                });
            }
            _ => {
                let address = non_empty_string(cx, value, &hp)?;
                out.push(ExtraHost {
                    host,
                    address,
                    from_ship: None,
                });
            }
        }
    }
    Ok(out)
}

fn restart(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<RestartPolicy> {
    let (name_text, retries, name_pos) = match &node.value {
        Value::Map(_) => {
            let mut rm = MapReader::new(cx, node, path, "`restart`")?;
            let nn = rm.require(cx, "name", "`restart`")?;
            let name = string(cx, nn, &rm.field("name"))?;
            let retries = match rm.get_any(&["retries", "maximum_retry_count"]) {
                Some((k, n)) => Some(unsigned::<u32>(cx, n, &rm.field(k), 1_000_000)?),
                None => None,
            };
            rm.finish(cx, &["name", "retries", "maximum_retry_count"], "`restart`")?;
            (name, retries, nn.pos)
        }
        _ => {
            let text = string(cx, node, path)?;
            match text.split_once(':') {
                Some((n, r)) => match r.trim().parse::<u32>() {
                    Ok(r) => (n.to_owned(), Some(r), node.pos),
                    Err(_) => {
                        return Err(cx.invalid(
                            node.pos,
                            path,
                            format!("invalid restart policy \"{text}\": retries must be a whole number (name[:retries])"),
                        ));
                    }
                },
                None => (text, None, node.pos),
            }
        }
    };
    let name = match name_text.as_str() {
        "no" | "false" => RestartName::No,
        "always" => RestartName::Always,
        "on-failure" => RestartName::OnFailure,
        "unless-stopped" => RestartName::UnlessStopped,
        other => {
            return Err(cx.invalid_help(
                name_pos,
                path,
                format!("invalid restart policy \"{other}\" (expected no, always, on-failure or unless-stopped)"),
                did_you_mean(other, ["no", "always", "on-failure", "unless-stopped"]),
            ));
        }
    };
    if retries.is_some() && name != RestartName::OnFailure {
        return Err(cx.invalid(
            name_pos,
            path,
            format!(
                "invalid restart policy: retries are only allowed with on-failure (Docker \
                 refuses a retry count with `{}`; MaestroNG passed it on and the container was \
                 never created)",
                name.as_str()
            ),
        ));
    }
    Ok(RestartPolicy { name, retries })
}

fn ulimits(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Ulimit>> {
    let mut um = MapReader::new(cx, node, path, "`ulimits`")?;
    let mut out = Vec::new();
    for (name, _, value) in um.all() {
        let up = join(path, &name);
        let (soft, hard) = match &value.value {
            Value::Map(_) => {
                let mut lm = MapReader::new(cx, value, &up, "a ulimit")?;
                let s = lm.require(cx, "soft", "a ulimit")?;
                let soft = ulimit_value(cx, s, &lm.field("soft"))?;
                let h = lm.require(cx, "hard", "a ulimit")?;
                let hard = ulimit_value(cx, h, &lm.field("hard"))?;
                lm.finish(cx, &["soft", "hard"], "a ulimit")?;
                (soft, hard)
            }
            _ => {
                let v = ulimit_value(cx, value, &up)?;
                (v, v)
            }
        };
        out.push(Ulimit { name, soft, hard });
    }
    Ok(out)
}

/// A ulimit: a number, or `unlimited` as `ulimit` and limits.conf write it (Docker's -1).
/// MaestroNG drops an `unlimited` ulimit without a word.
fn ulimit_value(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<i64> {
    match &node.value {
        Value::Str(text) if text.eq_ignore_ascii_case("unlimited") => Ok(-1),
        _ => integer(cx, node, path, -1, i64::MAX),
    }
}

fn labels(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Map(_) => {
            let mut lm = MapReader::new(cx, node, path, "`labels`")?;
            for (k, _, v) in lm.all() {
                out.insert(k.clone(), env_value(cx, v, &join(path, &k))?);
            }
        }
        _ => {
            for item in string_list(cx, node, path)? {
                let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    Ok(out)
}

fn networks(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<NetworkAttachment>> {
    let mut out = Vec::new();
    match &node.value {
        Value::Map(_) => {
            let mut nm = MapReader::new(cx, node, path, "`networks`")?;
            for (name, _, value) in nm.all() {
                let np = join(path, &name);
                let (aliases, ipv4_address) = match &value.value {
                    Value::Null => (Vec::new(), None),
                    _ => {
                        let mut am = MapReader::new(cx, value, &np, "a network")?;
                        let aliases = am
                            .get("aliases")
                            .map(|n| string_list(cx, n, &join(&np, "aliases")))
                            .transpose()?
                            .unwrap_or_default();
                        let ip = opt_string(cx, &mut am, "ipv4_address")?;
                        am.finish(cx, &["aliases", "ipv4_address"], "a network")?;
                        (aliases, ip)
                    }
                };
                out.push(NetworkAttachment {
                    name,
                    aliases,
                    ipv4_address,
                });
            }
        }
        _ => {
            for name in string_list(cx, node, path)? {
                out.push(NetworkAttachment {
                    name,
                    aliases: Vec::new(),
                    ipv4_address: None,
                });
            }
        }
    }
    Ok(out)
}

fn healthcheck(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Healthcheck> {
    let mut h = MapReader::new(cx, node, path, "`healthcheck`")?;
    let tn = h.require(cx, "test", "`healthcheck`")?;
    let test = match &tn.value {
        Value::Seq(_) => {
            let list = string_list(cx, tn, &h.field("test"))?;
            match list.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") | Some("NONE") => list,
                _ => std::iter::once("CMD".to_owned()).chain(list).collect(),
            }
        }
        _ => vec![
            "CMD-SHELL".to_owned(),
            non_empty_string(cx, tn, &h.field("test"))?,
        ],
    };
    let mut dur = |key: &str| -> Result<Option<std::time::Duration>> {
        h.get(key)
            .map(|n| duration(cx, n, &join(path, key)))
            .transpose()
    };
    let interval = dur("interval")?;
    let timeout = dur("timeout")?;
    let start_period = dur("start_period")?;
    let retries = h
        .get("retries")
        .map(|n| unsigned::<u32>(cx, n, &join(path, "retries"), 1_000_000))
        .transpose()?;
    h.finish(
        cx,
        &["test", "interval", "timeout", "retries", "start_period"],
        "`healthcheck`",
    )?;
    Ok(Healthcheck {
        test,
        interval,
        timeout,
        retries,
        start_period,
    })
}

fn devices(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Device>> {
    let mut out = Vec::new();
    for item in string_list(cx, node, path)? {
        let mut parts = item.split(':');
        let host = parts.next().unwrap_or_default().to_owned();
        let container = parts
            .next()
            .map(str::to_owned)
            .unwrap_or_else(|| host.clone());
        let permissions = parts
            .next()
            .map(str::to_owned)
            .unwrap_or_else(|| "rwm".to_owned());
        if !host.starts_with('/')
            || !container.starts_with('/')
            || parts.next().is_some()
            || permissions.is_empty()
            || !permissions.chars().all(|c| "rwm".contains(c))
        {
            return Err(cx.invalid(
                cx.pos_of(path),
                path,
                format!("invalid device \"{item}\" (expected /host/path[:/container/path[:rwm]])"),
            ));
        }
        out.push(Device {
            host,
            container,
            permissions,
        });
    }
    Ok(out)
}

fn tmpfs(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Map(_) => {
            let mut tm = MapReader::new(cx, node, path, "`tmpfs`")?;
            for (k, _, v) in tm.all() {
                let opts = match &v.value {
                    Value::Null => String::new(),
                    _ => string(cx, v, &join(path, &k))?,
                };
                out.insert(k, opts);
            }
        }
        _ => {
            for item in string_list(cx, node, path)? {
                let (p, o) = item.split_once(':').unwrap_or((item.as_str(), ""));
                out.insert(p.to_owned(), o.to_owned());
            }
        }
    }
    for p in out.keys() {
        if !p.starts_with('/') {
            return Err(cx.invalid(
                cx.pos_of(path),
                path,
                format!("invalid tmpfs mount \"{p}\": the path must be absolute"),
            ));
        }
    }
    Ok(out)
}

fn audit(cx: &mut Cx<'_>, node: &Node) -> Result<Vec<Auditor>> {
    let Value::Seq(items) = &node.value else {
        return Err(cx.invalid(
            node.pos,
            "audit",
            format!(
                "`audit` must be a list of auditors, found {}",
                node.kind_name()
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| auditor(cx, item, &format!("audit[{i}]")))
        .collect()
}

/// One auditor, with MaestroNG 0.8.3's keys for its type (`level` and `ignore_errors` for
/// all).
fn auditor(cx: &mut Cx<'_>, item: &Node, path: &str) -> Result<Auditor> {
    let mut a = MapReader::new(cx, item, path, "an auditor")?;
    let tn = a.require(cx, "type", "an auditor")?;
    let kind = string(cx, tn, &a.field("type"))?;
    let what = format!("a {kind} auditor");
    let required = |cx: &mut Cx<'_>, a: &mut MapReader<'_>, key: &str| -> Result<String> {
        let node = a.require(cx, key, &what)?;
        non_empty_string(cx, node, &a.field(key))
    };
    let (target, known): (AuditTarget, &[&str]) = match kind.as_str() {
        "log" => (
            AuditTarget::Log {
                file: required(cx, &mut a, "file")?,
            },
            &["file"],
        ),
        "http" => {
            let endpoint = required(cx, &mut a, "endpoint")?;
            (
                http_auditor(cx, &mut a, endpoint)?,
                &["endpoint", "payload", "headers", "method", "timeout"],
            )
        }
        "slack" => (
            AuditTarget::Slack {
                channel: required(cx, &mut a, "channel")?,
                token: required(cx, &mut a, "token")?,
                name: opt_string(cx, &mut a, "name")?,
                icon: opt_string(cx, &mut a, "icon")?,
            },
            &["channel", "token", "name", "icon"],
        ),
        "hipchat" => (
            AuditTarget::HipChat {
                room: required(cx, &mut a, "room")?,
                token: required(cx, &mut a, "token")?,
                name: opt_string(cx, &mut a, "name")?,
            },
            &["room", "token", "name"],
        ),
        "exec" => (
            AuditTarget::Exec {
                script: required(cx, &mut a, "script")?,
                args: opt_string(cx, &mut a, "args")?.unwrap_or_default(),
            },
            &["script", "args"],
        ),
        _ => {
            let help = if kind == "webhook" {
                Some("MaestroNG's webhook auditor is `type: http`, with `endpoint`".into())
            } else {
                did_you_mean(&kind, AUDITOR_TYPES.iter().copied())
            };
            return Err(cx.invalid_help(
                tn.pos,
                &a.field("type"),
                format!(
                    "unknown auditor type \"{kind}\" (expected {})",
                    AUDITOR_TYPES.join(", ")
                ),
                help,
            ));
        }
    };
    let level = match opt_string(cx, &mut a, "level")?.as_deref() {
        None | Some("info") => AuditLevel::Info,
        Some("debug") => AuditLevel::Debug,
        Some(other) => {
            return Err(cx.invalid(
                cx.pos_of(&a.field("level")),
                &a.field("level"),
                format!("unknown audit level `{other}` (expected info or debug)"),
            ));
        }
    };
    let ignore_errors = opt_bool(cx, &mut a, "ignore_errors")?.unwrap_or(false);
    let mut keys = vec!["type", "level", "ignore_errors"];
    keys.extend_from_slice(known);
    a.finish(cx, &keys, &format!("a {kind} auditor"))?;
    Ok(Auditor {
        target,
        level,
        ignore_errors,
    })
}

/// The keys of an `http` auditor besides its `endpoint`, with MaestroNG's defaults.
fn http_auditor(cx: &mut Cx<'_>, a: &mut MapReader<'_>, endpoint: String) -> Result<AuditTarget> {
    let payload = match a.get("payload") {
        Some(n) => json_value(cx, n, &a.field("payload"))?,
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    let headers = string_map(cx, a, "headers")?;
    let method = opt_string(cx, a, "method")?
        .unwrap_or_else(|| "POST".into())
        .to_uppercase();
    if method != "GET" && method != "POST" {
        return Err(cx.invalid(
            cx.pos_of(&a.field("method")),
            &a.field("method"),
            format!("invalid HTTP method `{method}` (expected GET or POST)"),
        ));
    }
    let timeout = match a.get("timeout") {
        Some(n) => duration(cx, n, &a.field("timeout"))?,
        None => Duration::from_secs(3),
    };
    Ok(AuditTarget::Http {
        endpoint,
        payload,
        headers,
        method,
        timeout,
    })
}

/// A YAML value as JSON (an http auditor's `payload`, sent as written).
fn json_value(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| json_value(cx, n, &format!("{path}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Value::Map(_) => {
            let mut m = MapReader::new(cx, node, path, "a mapping")?;
            let mut out = serde_json::Map::new();
            for (k, _, v) in m.all() {
                out.insert(k.clone(), json_value(cx, v, &join(path, &k))?);
            }
            Json::Object(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_specs() {
        assert_eq!(
            parse_jump("ops@bastion:2222"),
            Some(JumpHost::Address {
                user: Some("ops".into()),
                host: "bastion".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            parse_jump("10.0.0.1"),
            Some(JumpHost::Address {
                user: None,
                host: "10.0.0.1".into(),
                port: None
            })
        );
        assert_eq!(parse_jump("@x"), None);
        assert_eq!(parse_jump("a b"), None);
        assert_eq!(parse_jump("h:0"), None);
    }

    fn load(text: &str) -> Environment {
        let vars = std::collections::BTreeMap::from([("HOME".to_owned(), "/home/op".to_owned())]);
        match crate::config::load_str_with_vars(text, "t.yaml", std::path::Path::new("/cfg"), &vars)
        {
            Ok(env) => env,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn instance_forms() {
        let env = load(
            r#"
name: t
ships:
  s1: {ip: 10.0.0.1, tls: true, timeout: 1500ms, ssh: {key: id, jump: "ops@gw:2200"}}
  s2: {ip: 10.0.0.2, endpoint: s2.example.com, docker_port: 4243}
services:
  a:
    image: a
    instances:
      a1:
        ship: s1
        ports: {web: 80:8080, dns: 53/udp}
        restart: no
        links: [b1, "b1:alias"]
        networks: [front, back]
        healthcheck: {test: [curl, -f, localhost], timeout: 2s}
        extra_hosts: {other: {ship: s2}}
        devices: [/dev/fuse]
        tmpfs: {/run: "size=64m"}
        cap_drop: ALL
        container_volumes: /cache
        stop_signal: 15
  b:
    image: b
    instances:
      b1: {ship: s1, volumes: {/data: named-volume}, restart: {name: on-failure, retries: 2}}
"#,
        );
        let s1 = env.ship("s1").cloned().unwrap_or_else(|| panic!("s1"));
        assert_eq!(s1.docker_port, 2376);
        assert_eq!(s1.timeout.as_millis(), 1500);
        let ssh = s1.ssh.unwrap_or_else(|| panic!("ssh"));
        assert_eq!(
            ssh.identity_files,
            vec![std::path::PathBuf::from("/cfg/id")]
        );
        assert_eq!(
            ssh.jump,
            vec![JumpHost::Address {
                user: Some("ops".into()),
                host: "gw".into(),
                port: Some(2200)
            }]
        );
        let s2 = env.ship("s2").cloned().unwrap_or_else(|| panic!("s2"));
        assert_eq!(
            (s2.endpoint.as_str(), s2.docker_port),
            ("s2.example.com", 4243)
        );

        let (_, a1) = env.instance("a1").unwrap_or_else(|| panic!("a1"));
        let web = a1.port("web").unwrap_or_else(|| panic!("web"));
        assert_eq!((web.exposed.start, web.external.start), (80, 8080));
        assert_eq!(a1.port("dns").map(|p| p.protocol), Some(Protocol::Udp));
        assert_eq!(a1.restart.map(|r| r.name), Some(RestartName::No));
        assert_eq!(
            a1.links[1],
            Link {
                target: "b1".into(),
                alias: "alias".into()
            }
        );
        assert_eq!(a1.networks.len(), 2);
        let hc = a1
            .healthcheck
            .clone()
            .unwrap_or_else(|| panic!("healthcheck"));
        assert_eq!(hc.test, vec!["CMD", "curl", "-f", "localhost"]);
        assert_eq!(hc.timeout.map(|d| d.as_secs()), Some(2));
        assert_eq!(a1.extra_hosts[0].address, "10.0.0.2");
        assert_eq!(a1.devices[0].container, "/dev/fuse");
        assert_eq!(a1.tmpfs.get("/run").map(String::as_str), Some("size=64m"));
        assert_eq!(a1.cap_drop, vec!["ALL"]);
        assert_eq!(a1.container_volumes, vec!["/cache"]);
        assert_eq!(a1.stop_signal.as_deref(), Some("15"));

        let (_, b1) = env.instance("b1").unwrap_or_else(|| panic!("b1"));
        assert_eq!(b1.volumes[0].host, "named-volume");
        assert_eq!(b1.volumes[0].container, "/data");
        assert_eq!(b1.restart.and_then(|r| r.retries), Some(2));
    }
}
