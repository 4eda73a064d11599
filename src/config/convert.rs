//! From the node tree to the resolved model: types, defaults, inheritance from services and
//! ship defaults, and the references that can be checked while reading.
//!
//! Every mapping is read through a [`MapReader`]: the keys a section knows are the keys its
//! reading asks for, so there is no list of known keys to keep in step with the readers. The
//! order of the reads is the order in which problems are reported, and it is kept as it was.
//! An optional key is read with `opt` when an explicit `null` means "not given", and with
//! `given` when `null` is the value's reader's to refuse (see map_reader.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{closest, did_you_mean};
use super::map_reader::{MapReader, join};
use super::model::*;
use super::node::{Node, Pos, Value};
use super::ports::parse_port;
use super::reader::*;

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
    cx.schema = top.given(cx, "__maestro", maestro_schema)?.unwrap_or(1);
    let name_node = top.require(cx, "name", "the environment file")?;
    let name = non_empty_string(cx, name_node, "name")?;
    let names = collect_names(cx, &mut top)?;
    let registries = top.opt(cx, "registries", registries)?.unwrap_or_default();
    let ship_provider = top.given(cx, "ship_provider", ship_provider)?;
    let defaults = top.opt_node("ship_defaults");
    let ships_node = top.require(cx, "ships", "the environment file")?;
    let ships = ships(cx, ships_node, defaults, &names)?;
    let services = top
        .opt(cx, "services", |cx, n, _| {
            services(cx, n, &names, &ships, &name)
        })?
        .unwrap_or_default();
    let audit = top.opt(cx, "audit", audit)?.unwrap_or_default();
    let secret_patterns = top.opt(cx, "secrets", secret_patterns)?.unwrap_or_default();
    top_level_typos(cx, &mut top)?;
    Ok(Environment {
        name,
        schema: cx.schema,
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

/// `__maestro: {schema: 1 | 2}`.
fn maestro_schema(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<u32> {
    let mut m = MapReader::new(cx, node, path, "`__maestro`")?;
    let schema = m.given(cx, "schema", |cx, n, p| {
        let v = integer(cx, n, p, i64::MIN, i64::MAX)?;
        if v != 1 && v != 2 {
            return Err(cx.invalid(
                n.pos,
                p,
                format!("unsupported schema {v} (expected 1 or 2)"),
            ));
        }
        Ok(v as u32)
    })?;
    m.finish(cx, "`__maestro`")?;
    Ok(schema.unwrap_or(1))
}

fn ship_provider(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    let p = string(cx, node, path)?;
    if p != "ships" && p != "static" {
        return Err(cx.invalid(
            node.pos,
            path,
            format!("unsupported ship provider \"{p}\" (only `ships` is supported)"),
        ));
    }
    Ok(p)
}

/// Other top-level keys are ignored on purpose: people park YAML anchors there (MaestroNG's
/// documentation puts them under `ship:`, beside `ships:`). A key whose closest known key is
/// absent is a typo, though, and would otherwise silently drop a whole section. Keys named the
/// way anchors are parked (`x-...` as in compose, `_...`, `.`) never are.
fn top_level_typos(cx: &mut Cx<'_>, top: &mut MapReader<'_>) -> Result<()> {
    let known: Vec<String> = top.known().into_iter().map(str::to_owned).collect();
    for (key, key_node, _) in top.all() {
        let parked = ["x-", "x_", "_", "."].iter().any(|p| key.starts_with(p));
        if known.contains(&key) || parked {
            continue;
        }
        if let Some(meant) = closest(&key, known.iter().map(String::as_str))
            && strsim::osa_distance(&key, meant) <= 2
            && !top.has(meant)
        {
            return Err(cx.invalid_help(
                key_node.pos,
                &key,
                format!("unknown top-level key `{key}`"),
                Some(format!("did you mean `{meant}`?")),
            ));
        }
    }
    Ok(())
}

/// `secrets: {patterns: [...]}`: more names of environment variables whose values are masked
/// in output. Each is checked as a glob here, so that a typo is reported at its place.
fn secret_patterns(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<String>> {
    let mut m = MapReader::new(cx, node, path, "`secrets`")?;
    let patterns = m.given(cx, "patterns", |cx, list, p| {
        let mut patterns = Vec::new();
        for (i, item) in one_or_many(list).into_iter().enumerate() {
            let path = format!("{p}[{i}]");
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
        Ok(patterns)
    })?;
    m.finish(cx, "`secrets`")?;
    Ok(patterns.unwrap_or_default())
}

/// The items of a list, or the one value written in its place.
fn one_or_many(node: &Node) -> Vec<&Node> {
    match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    }
}

/// The path of the `i`th of the values `string_list` read at `path`: a lone value has no
/// index.
fn item_path(node: &Node, path: &str, i: usize) -> String {
    if matches!(node.value, Value::Seq(_)) {
        format!("{path}[{i}]")
    } else {
        path.to_owned()
    }
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

fn registries(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Registry>> {
    let mut map = MapReader::new(cx, node, path, "`registries`")?;
    let mut out = Vec::new();
    for (name, _, value) in map.all() {
        let path = join(path, &name);
        let what = format!("registry `{name}`");
        let mut r = MapReader::new(cx, value, &path, &what)?;
        let url_node = r.require(cx, "registry", &what)?;
        let registry = non_empty_string(cx, url_node, &r.field("registry"))?;
        let username = r.opt(cx, "username", string)?;
        let password = r.opt(cx, "password", string)?.map(Secret::new);
        let email = r.opt(cx, "email", string)?;
        let retry = r.given(cx, "retry", retry_policy)?.unwrap_or_default();
        r.finish(cx, &what)?;
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

fn retry_policy(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<RetryPolicy> {
    let mut rr = MapReader::new(cx, node, path, "`retry`")?;
    let attempts = rr
        .given(cx, "attempts", |cx, n, p| unsigned(cx, n, p, 1000))?
        .unwrap_or(3);
    let when = rr.given(cx, "when", |cx, w, wp| {
        one_or_many(w)
            .into_iter()
            .enumerate()
            .map(|(i, item)| unsigned::<u16>(cx, item, &format!("{wp}[{i}]"), 599))
            .collect::<Result<Vec<_>>>()
    })?;
    rr.finish(cx, "`retry`")?;
    Ok(RetryPolicy {
        attempts,
        when: when.unwrap_or_default(),
    })
}

fn ships(
    cx: &mut Cx<'_>,
    node: &Node,
    defaults: Option<&Node>,
    names: &Names,
) -> Result<Vec<Ship>> {
    let default_entries = match defaults {
        Some(d) => ship_defaults(cx, d, names)?,
        None => Vec::new(),
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
    check_jump_loops(cx, &out);
    Ok(out)
}

/// `ship_defaults`, checked on their own first so that their errors name `ship_defaults`;
/// returns the entries every ship takes when it does not set them.
fn ship_defaults(cx: &mut Cx<'_>, d: &Node, names: &Names) -> Result<Vec<(Node, Node)>> {
    let ship_keys = ship_keys(cx, names);
    let mut m = MapReader::new(cx, d, "ship_defaults", "`ship_defaults`")?;
    for (key, key_node, _) in m.all() {
        if key == "ip" || key == "endpoint" {
            return Err(cx.invalid(
                key_node.pos,
                &join("ship_defaults", &key),
                format!("`{key}` cannot have a default: it is different for every ship"),
            ));
        }
        if !ship_keys.contains(&key) {
            return Err(cx.invalid_help(
                key_node.pos,
                &join("ship_defaults", &key),
                format!("unknown key `{key}` in `ship_defaults`"),
                did_you_mean(&key, ship_keys.iter().map(String::as_str)),
            ));
        }
    }
    let as_ship = Node {
        value: d.value.clone(),
        pos: d.pos,
        raw: None,
    };
    ship(cx, "ship_defaults", &as_ship, names, true)?;
    Ok(match &d.value {
        Value::Map(pairs) => pairs.clone(),
        _ => Vec::new(),
    })
}

/// The keys a ship may have: those that reading a ship with only an `ip` asks for. The read
/// is done aside, so it leaves no positions or problems behind.
fn ship_keys(cx: &Cx<'_>, names: &Names) -> Vec<String> {
    let scalar = |text: &str| Node {
        value: Value::Str(text.to_owned()),
        pos: Pos::default(),
        raw: None,
    };
    let only_ip = Node {
        value: Value::Map(vec![(scalar("ip"), scalar("0.0.0.0"))]),
        pos: Pos::default(),
        raw: None,
    };
    let mut aside = Cx {
        src: cx.src,
        schema: cx.schema,
        base_dir: cx.base_dir.clone(),
        home: cx.home.clone(),
        spans: Default::default(),
        key_spans: Default::default(),
        semantic: Vec::new(),
    };
    let Ok(mut m) = MapReader::new(&mut aside, &only_ip, "", "a ship") else {
        return Vec::new();
    };
    // Whatever the read makes of nothing, the keys it asked for are what is wanted.
    let _ = read_ship(&mut aside, &mut m, "", names, false);
    m.known().into_iter().map(str::to_owned).collect()
}

/// Jump hosts that are ships must not lead back to the ship itself.
fn check_jump_loops(cx: &mut Cx<'_>, ships: &[Ship]) {
    for s in ships {
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
            match ships.iter().find(|o| o.name == *next) {
                Some(o) => current = o,
                None => break,
            }
        }
    }
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
    let ship = read_ship(cx, &mut m, &what, names, is_defaults)?;
    m.finish(cx, &what)?;
    Ok(ship)
}

fn read_ship(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    what: &str,
    names: &Names,
    is_defaults: bool,
) -> Result<Ship> {
    let ip = if is_defaults {
        String::new()
    } else {
        let n = m.require(cx, "ip", what)?;
        host_name(cx, n, &m.field("ip"))?
    };
    // A local daemon's socket (`unix:///...` or a path) never reaches a shell; a host does.
    let endpoint = m
        .opt(cx, "endpoint", |cx, n, p| match string(cx, n, p)? {
            path if path.starts_with("unix://") || path.starts_with('/') => Ok(path),
            _ => host_name(cx, n, p),
        })?
        .unwrap_or_else(|| ip.clone());
    let tls = m.given(cx, "tls", boolean)?.unwrap_or(false);
    let docker_port_given = m.get("docker_port").is_some();
    let docker_port = m
        .given(cx, "docker_port", |cx, n, p| unsigned(cx, n, p, 65535))?
        .unwrap_or(if tls { 2376 } else { 2375 });
    let socket_path = m.opt(cx, "socket_path", string)?;
    let api_version = m.opt(cx, "api_version", string)?;
    let timeout = m
        .given(cx, "timeout", duration)?
        .unwrap_or(Duration::from_secs(5));
    let ssh_timeout = m.given(cx, "ssh_timeout", duration)?;
    let tls_verify = m.given(cx, "tls_verify", boolean)?.unwrap_or(false);
    let mut path_of = |cx: &mut Cx<'_>, key| -> Result<_> {
        let written = m.opt(cx, key, string)?;
        Ok(written.map(|p| cx.resolve_path(&p)))
    };
    let tls_ca_cert = path_of(cx, "tls_ca_cert")?;
    let tls_cert = path_of(cx, "tls_cert")?;
    let tls_key = path_of(cx, "tls_key")?;
    // MaestroNG's TLS protocol version (a Python `ssl` constant); rustls negotiates TLS 1.2 or
    // 1.3 itself, so it is accepted and not used.
    m.accept_ignored(&["ssl_version"]);
    let max_concurrency = m.given(cx, "max_concurrency", |cx, n, p| {
        let v: usize = unsigned(cx, n, p, 1024)?;
        if v == 0 {
            return Err(cx.invalid(n.pos, p, "max_concurrency must be at least 1"));
        }
        Ok(v)
    })?;
    let ssh_tunnel = m.given(cx, "ssh_tunnel", ssh_tunnel)?;
    let ship_path = m.path.clone();
    let ssh = match m.given(cx, "ssh", |cx, n, p| {
        ssh_settings(cx, p, n, names, &ship_path)
    })? {
        Some(ssh) => Some(ssh),
        None => ssh_tunnel.as_ref().map(SshTunnel::as_ssh),
    };
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

fn ssh_tunnel(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<SshTunnel> {
    let mut t = MapReader::new(cx, node, path, "`ssh_tunnel`")?;
    let user_node = t.require(cx, "user", "`ssh_tunnel`")?;
    let user = user_name(cx, user_node, &t.field("user"))?;
    let key_node = t.require(cx, "key", "`ssh_tunnel`")?;
    let key = non_empty_string(cx, key_node, &t.field("key"))?;
    let key = cx.resolve_path(&key);
    let port = t
        .given(cx, "port", |cx, n, p| unsigned(cx, n, p, 65535))?
        .unwrap_or(22);
    t.finish(cx, "`ssh_tunnel`")?;
    Ok(SshTunnel { user, key, port })
}

fn ssh_settings(
    cx: &mut Cx<'_>,
    path: &str,
    node: &Node,
    names: &Names,
    ship_path: &str,
) -> Result<SshSettings> {
    let mut s = MapReader::new(cx, node, path, "`ssh`")?;
    let user = s.opt(cx, "user", user_name)?;
    let port = s
        .given(cx, "port", |cx, n, p| unsigned(cx, n, p, 65535))?
        .unwrap_or(22);
    let mut identity_files = Vec::new();
    for key in ["identity_files", "key"] {
        for f in s.opt(cx, key, string_list)?.unwrap_or_default() {
            identity_files.push(cx.resolve_path(&f));
        }
    }
    let this_ship = ship_path.strip_prefix("ships.").unwrap_or("");
    let jump = s
        .opt(cx, "jump", |cx, n, p| {
            jump_hosts(cx, n, p, names, this_ship)
        })?
        .unwrap_or_default();
    let known_hosts = s
        .given(cx, "known_hosts", known_hosts_policy)?
        .unwrap_or(KnownHostsPolicy::Strict);
    let known_hosts_file = s.opt(cx, "known_hosts_file", string)?;
    let known_hosts_file = known_hosts_file.map(|p| cx.resolve_path(&p));
    s.finish(cx, "`ssh`")?;
    Ok(SshSettings {
        user,
        port,
        identity_files,
        jump,
        known_hosts,
        known_hosts_file,
    })
}

/// `ssh.jump`: ship names, or `[user@]host[:port]`.
fn jump_hosts(
    cx: &mut Cx<'_>,
    n: &Node,
    jp: &str,
    names: &Names,
    this_ship: &str,
) -> Result<Vec<JumpHost>> {
    let mut jump = Vec::new();
    for (i, hop) in string_list(cx, n, jp)?.into_iter().enumerate() {
        let hop_path = item_path(n, jp, i);
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
            Some(j) => {
                if let Some((what, why)) = jump_problem(&j) {
                    let pos = cx.pos_of(&hop_path);
                    return Err(cx.invalid_help(
                        pos,
                        &hop_path,
                        format!("invalid jump host \"{hop}\": its {what} {why}"),
                        Some(
                            "addresses and users reach a shell when a ProxyCommand runs, so \
                             maestro refuses them, as OpenSSH does"
                                .to_string(),
                        ),
                    ));
                }
                jump.push(j)
            }
            None => {
                let pos = cx.pos_of(&hop_path);
                return Err(cx.invalid_help(
                    pos,
                    &hop_path,
                    format!(
                        "invalid jump host \"{hop}\" (expected [user@]host[:port] or a ship name)"
                    ),
                    did_you_mean(&hop, names.ships.iter().map(String::as_str)),
                ));
            }
        }
    }
    Ok(jump)
}

fn known_hosts_policy(cx: &mut Cx<'_>, n: &Node, kp: &str) -> Result<KnownHostsPolicy> {
    match string(cx, n, kp)?.as_str() {
        "strict" => Ok(KnownHostsPolicy::Strict),
        "accept-new" | "accept_new" => Ok(KnownHostsPolicy::AcceptNew),
        other => Err(cx.invalid_help(
            n.pos,
            kp,
            format!("invalid known_hosts policy \"{other}\" (expected strict or accept-new)"),
            did_you_mean(other, ["strict", "accept-new"]),
        )),
    }
}

/// `[user@]host[:port]`.
/// What of a jump host is not a user name or a host name, and why (see `host_problem`).
fn jump_problem(jump: &JumpHost) -> Option<(String, String)> {
    let JumpHost::Address { user, host, .. } = jump else {
        return None;
    };
    user.as_deref()
        .and_then(|u| user_problem(u).map(|why| (format!("user `{u}`"), why)))
        .or_else(|| host_problem(host).map(|why| (format!("host `{host}`"), why)))
}

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
        let mut refs = |cx: &mut Cx<'_>, key: &'static str| -> Result<Vec<String>> {
            let list = m.opt(cx, key, |cx, n, p| {
                service_refs(cx, n, p, key, names, &name)
            })?;
            Ok(list.unwrap_or_default())
        };
        let requires = refs(cx, "requires")?;
        let wants_info = refs(cx, "wants_info")?;
        let omit = m.given(cx, "omit", boolean)?.unwrap_or(false);
        let inherited = Inherited {
            image: Some(image.clone()),
            env_files: m.opt(cx, "envfile", env_files)?.unwrap_or_default(),
            env: m.opt(cx, "env", env_map)?.unwrap_or_default(),
            ports: m.opt(cx, "ports", ports)?.unwrap_or_default(),
            limits: m.given(cx, "limits", limits)?.unwrap_or_default(),
            lifecycle: m.given(cx, "lifecycle", lifecycle)?.unwrap_or_default(),
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
        m.finish(cx, &what)?;
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
    n: &Node,
    path: &str,
    key: &str,
    names: &Names,
    this: &str,
) -> Result<Vec<String>> {
    let list = string_list(cx, n, path)?;
    for (i, r) in list.iter().enumerate() {
        let p = item_path(n, path, i);
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

fn env_files(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<(String, Pos, String)>> {
    let files = string_list(cx, n, path)?;
    let mut out = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let p = item_path(n, path, i);
        out.push((f, cx.pos_of(&p), p));
    }
    Ok(out)
}

/// The `env` of a service or instance; `None` for a name given no value (null), which
/// unsets it.
fn env_map(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<(String, Option<String>)>> {
    let mut e = MapReader::new(cx, n, path, "`env`")?;
    let mut out = Vec::new();
    for (k, _, v) in e.all() {
        let value = match v.value {
            Value::Null => None,
            _ => Some(env_value(cx, v, &join(path, &k))?),
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

fn ports(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<Port>> {
    let mut pm = MapReader::new(cx, n, path, "`ports`")?;
    let mut out = Vec::new();
    for (name, _, spec) in pm.all() {
        out.push(parse_port(cx, &name, spec, &join(path, &name))?);
    }
    Ok(out)
}

fn limits(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Limits> {
    let mut l = MapReader::new(cx, n, path, "`limits`")?;
    let memory = l.given(cx, "memory", size)?;
    let swap = l.given(cx, "swap", size)?;
    let cpu = l.given(cx, "cpu", |cx, x, p| unsigned::<u64>(cx, x, p, 262_144))?;
    l.finish(cx, "`limits`")?;
    Ok(Limits { memory, cpu, swap })
}

fn lifecycle(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<(&'static str, Check, String)>> {
    let mut lm = MapReader::new(cx, n, path, "`lifecycle`")?;
    let mut out = Vec::new();
    for state in CHECK_STATES {
        let Some(list) = lm.opt_node(state) else {
            continue;
        };
        let sp = join(path, state);
        let Value::Seq(items) = &list.value else {
            return Err(cx.invalid(
                list.pos,
                &sp,
                format!(
                    "`{state}` must be a list of checks, found {}",
                    list.kind_name()
                ),
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let cp = format!("{sp}[{i}]");
            out.push((*state, check(cx, item, &cp)?, format!("{cp}.port")));
        }
    }
    lm.finish(cx, "`lifecycle` (states)")?;
    Ok(out)
}

fn check(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Check> {
    let mut c = MapReader::new(cx, node, path, "a lifecycle check")?;
    let type_node = c.require(cx, "type", "a lifecycle check")?;
    let kind = string(cx, type_node, &c.field("type"))?;
    let check = match kind.as_str() {
        "tcp" => Check::Tcp {
            port: check_port(cx, &mut c)?,
            max_wait: max_wait(cx, &mut c, 180)?,
        },
        "http" => http_check(cx, &mut c)?,
        "exec" => Check::Exec {
            command: check_command(cx, &mut c)?,
            attempts: attempts(cx, &mut c)?,
            envfrom: c.given(cx, "envfrom", envfrom)?.unwrap_or(EnvFrom::Env),
        },
        "rexec" => Check::Rexec {
            command: check_command(cx, &mut c)?,
            attempts: attempts(cx, &mut c)?,
        },
        "sleep" => {
            let n = c.require(cx, "wait", "a sleep check")?;
            Check::Sleep {
                wait: number(cx, n, &c.field("wait"))?,
            }
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
    c.finish(cx, &format!("a {kind} check"))?;
    Ok(check)
}

fn max_wait(cx: &mut Cx<'_>, c: &mut MapReader<'_>, default: u32) -> Result<u32> {
    let max_wait = c.given(cx, "max_wait", |cx, n, p| unsigned(cx, n, p, 1_000_000))?;
    Ok(max_wait.unwrap_or(default))
}

fn attempts(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<u32> {
    let attempts = c.given(cx, "attempts", |cx, n, p| unsigned(cx, n, p, 1_000_000))?;
    Ok(attempts.unwrap_or(180))
}

fn check_port(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<String> {
    let n = c.require(cx, "port", "a tcp/http check")?;
    non_empty_string(cx, n, &c.field("port"))
}

fn check_command(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<String> {
    let n = c.require(cx, "command", "an exec/rexec check")?;
    match &n.value {
        Value::Seq(_) => Ok(string_list(cx, n, &c.field("command"))?.join(" ")),
        _ => non_empty_string(cx, n, &c.field("command")),
    }
}

fn envfrom(cx: &mut Cx<'_>, n: &Node, p: &str) -> Result<EnvFrom> {
    match string(cx, n, p)?.as_str() {
        "env" => Ok(EnvFrom::Env),
        "stdin" => Ok(EnvFrom::Stdin),
        other => Err(cx.invalid(
            n.pos,
            p,
            format!("invalid envfrom \"{other}\" (expected env or stdin)"),
        )),
    }
}

fn http_check(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<Check> {
    let port = check_port(cx, c)?;
    let host = c.opt(cx, "host", string)?;
    let path = c.opt(cx, "path", string)?.unwrap_or_else(|| "/".to_owned());
    let scheme = c
        .opt(cx, "scheme", string)?
        .unwrap_or_else(|| "http".to_owned());
    if scheme != "http" && scheme != "https" {
        let p = c.field("scheme");
        return Err(cx.invalid(
            cx.pos_of(&p),
            &p,
            format!("invalid scheme \"{scheme}\" (expected http or https)"),
        ));
    }
    let method = c
        .opt(cx, "method", string)?
        .unwrap_or_else(|| "GET".to_owned())
        .to_ascii_uppercase();
    let match_regex = c.opt(cx, "match_regex", string)?;
    if let Some(re) = &match_regex
        && let Err(e) = regex::Regex::new(re)
    {
        let p = c.field("match_regex");
        return Err(cx.invalid(cx.pos_of(&p), &p, format!("invalid match_regex: {e}")));
    }
    let max_wait = max_wait(cx, c, 300)?;
    let verify = c
        .opt(cx, "requests_options", requests_options)?
        .unwrap_or(TlsVerify::SystemRoots);
    Ok(Check::Http {
        port,
        host,
        path,
        scheme,
        method,
        match_regex,
        max_wait,
        verify,
    })
}

/// MaestroNG passes an http check's `requests_options` to python-requests; of those, we
/// support `verify`: `true` (system roots, the default), `false` (no verification), or the
/// path of a PEM CA bundle, which must be readable and hold a certificate.
fn requests_options(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<TlsVerify> {
    let mut m = MapReader::new(cx, node, path, "`requests_options`")?;
    let verify = m
        .opt(cx, "verify", tls_verify)?
        .unwrap_or(TlsVerify::SystemRoots);
    m.finish(cx, "`requests_options` (maestro supports only `verify`)")?;
    Ok(verify)
}

fn tls_verify(cx: &mut Cx<'_>, n: &Node, vp: &str) -> Result<TlsVerify> {
    Ok(match &n.value {
        Value::Bool(true) => TlsVerify::SystemRoots,
        Value::Bool(false) => TlsVerify::Off,
        Value::Str(s) if s == "true" => TlsVerify::SystemRoots,
        Value::Str(s) if s == "false" => TlsVerify::Off,
        Value::Str(s) if !s.trim().is_empty() => {
            let file = cx.resolve_path(s);
            if let Err(problem) = check_ca_file(&file) {
                return Err(cx.invalid_help(
                    n.pos,
                    vp,
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
                vp,
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
    })
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
    check_container_name(cx, path, name, node)?;
    let what = format!("instance `{name}`");
    let mut m = MapReader::new(cx, node, path, &what)?;
    let ship = instance_ship(cx, &mut m, &what, names)?;
    let image = m.opt(cx, "image", string)?;
    let image = image.unwrap_or_else(|| inherited.image.clone().unwrap_or_default());
    let command = match m.get_any(&["command", "cmd"]) {
        Some((key, n)) => Some(command_spec(cx, n, &m.field(key))?),
        None => None,
    };
    let entrypoint = m.given(cx, "entrypoint", command_spec)?;
    // Inheritance: env/envfile merged, ports/limits key by key, lifecycle added per state.
    let (env, unset_env) = instance_env(cx, &mut m, inherited)?;
    let ports = instance_ports(cx, &mut m, inherited)?;
    let own_limits = m.given(cx, "limits", limits)?.unwrap_or_default();
    let limits = Limits {
        memory: own_limits.memory.or(inherited.limits.memory),
        cpu: own_limits.cpu.or(inherited.limits.cpu),
        swap: own_limits.swap.or(inherited.limits.swap),
    };
    let own_checks = m.given(cx, "lifecycle", lifecycle)?.unwrap_or_default();
    let lifecycle = instance_lifecycle(cx, name, inherited, own_checks, &ports);
    // The rest is read in the order the fields are written: that is the order in which their
    // problems are reported.
    let instance = Instance {
        volumes: m.opt(cx, "volumes", volumes)?.unwrap_or_default(),
        container_volumes: m
            .opt(cx, "container_volumes", container_volumes)?
            .unwrap_or_default(),
        volumes_from: m
            .opt(cx, "volumes_from", |cx, n, p| {
                volumes_from(cx, n, p, names, name, &ship)
            })?
            .unwrap_or_default(),
        links: m
            .opt(cx, "links", |cx, n, p| links(cx, n, p, names, name))?
            .unwrap_or_default(),
        username: m.opt(cx, "username", string)?,
        workdir: m.opt(cx, "workdir", string)?,
        privileged: m.given(cx, "privileged", boolean)?.unwrap_or(false),
        cap_add: m.opt(cx, "cap_add", string_list)?.unwrap_or_default(),
        cap_drop: m.opt(cx, "cap_drop", string_list)?.unwrap_or_default(),
        extra_hosts: m
            .given(cx, "extra_hosts", |cx, n, p| {
                extra_hosts(cx, n, p, ships, names)
            })?
            .unwrap_or_default(),
        net: m.opt(cx, "net", string)?,
        restart: m.given(cx, "restart", restart)?,
        dns: m.opt(cx, "dns", string_list)?.unwrap_or_default(),
        stop_timeout: m
            .given(cx, "stop_timeout", |cx, n, p| unsigned(cx, n, p, 86_400))?
            .unwrap_or(10),
        log_driver: m.opt(cx, "log_driver", string)?,
        log_opt: m
            .given(cx, "log_opt", |cx, n, p| string_map(cx, n, p, "`log_opt`"))?
            .unwrap_or_default(),
        security_opt: m.opt(cx, "security_opt", string_list)?.unwrap_or_default(),
        ulimits: m.given(cx, "ulimits", ulimits)?.unwrap_or_default(),
        labels: m.opt(cx, "labels", labels)?.unwrap_or_default(),
        networks: m.opt(cx, "networks", networks)?.unwrap_or_default(),
        healthcheck: m.given(cx, "healthcheck", healthcheck)?,
        devices: m.opt(cx, "devices", devices)?.unwrap_or_default(),
        tmpfs: m.opt(cx, "tmpfs", tmpfs)?.unwrap_or_default(),
        init: m.given(cx, "init", boolean)?,
        stop_signal: m.opt(cx, "stop_signal", string)?,
        name: name.to_owned(),
        service: service.to_owned(),
        ship,
        image,
        command,
        entrypoint,
        ports,
        env,
        unset_env,
        limits,
        lifecycle,
    };
    // Options of Docker's LXC driver, which Docker removed in 1.10; accepted and not sent.
    m.accept_ignored(&["lxc_conf"]);
    m.finish(cx, &what)?;
    Ok(instance)
}

/// The instance name becomes the container name, so it must be one Docker accepts.
fn check_container_name(cx: &mut Cx<'_>, path: &str, name: &str, node: &Node) -> Result<()> {
    let valid_container_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let pos = cx.key_spans.get(path).copied().unwrap_or(node.pos);
    let reserved = KEPT_SUFFIXES
        .iter()
        .find(|suffix| name.ends_with(*suffix))
        .map(|suffix| format!("ends in `{suffix}`, which maestro gives the containers it keeps for `rollback`"))
        .or_else(|| {
            name.starts_with(LOCK_CONTAINER_PREFIX).then(|| {
                format!("starts with `{LOCK_CONTAINER_PREFIX}`, which names maestro's deploy lock on each ship")
            })
        });
    if let Some(why) = reserved {
        return Err(cx.invalid(
            pos,
            path,
            format!(
                "invalid instance name `{name}`: it {why}, so another instance's deploy could \
                 rename or remove its container\n  = help: rename the instance"
            ),
        ));
    }
    if valid_container_name {
        return Ok(());
    }
    Err(cx.invalid(
        pos,
        path,
        format!(
            "invalid instance name `{name}`: it becomes the container name, which may hold only \
             letters, digits, `_`, `.` and `-`, and must start with a letter or digit"
        ),
    ))
}

/// The instance's `ship`, which must name a ship (reported with the other references).
fn instance_ship(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    what: &str,
    names: &Names,
) -> Result<String> {
    let ship_node = m.require(cx, "ship", what)?;
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
    Ok(ship)
}

/// The environment in MaestroNG's layers: the service's envfiles, its env, the generated
/// names, the instance's envfiles, its env. A null unsets the name whatever came before.
fn instance_env(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    inherited: &Inherited,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>)> {
    let own_files = m.opt(cx, "envfile", env_files)?.unwrap_or_default();
    let own_env = m.opt(cx, "env", env_map)?.unwrap_or_default();
    let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
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
    Ok((env, unset_env))
}

/// The service's ports, each replaced by the instance's port of the same name.
fn instance_ports(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    inherited: &Inherited,
) -> Result<Vec<Port>> {
    let mut port_list = inherited.ports.clone();
    for p in m.opt(cx, "ports", ports)?.unwrap_or_default() {
        match port_list.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p,
            None => port_list.push(p),
        }
    }
    Ok(port_list)
}

/// The service's checks then the instance's, per state; a tcp or http check must name one of
/// the instance's ports (or give a number).
fn instance_lifecycle(
    cx: &mut Cx<'_>,
    name: &str,
    inherited: &Inherited,
    own_checks: Vec<(&'static str, Check, String)>,
    port_list: &[Port],
) -> Lifecycle {
    let mut lc = Lifecycle::default();
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
                format!(
                    "lifecycle check of `{name}` uses port `{port}`, which is not one of its \
                     named ports"
                ),
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
    lc
}

fn container_volumes(cx: &mut Cx<'_>, n: &Node, p: &str) -> Result<Vec<String>> {
    let list = string_list(cx, n, p)?;
    for v in &list {
        if !v.starts_with('/') {
            return Err(cx.invalid(
                n.pos,
                p,
                format!("invalid volume: container path \"{v}\" must be absolute"),
            ));
        }
    }
    Ok(list)
}

/// `volumes_from`: instances on the same ship, other than this one.
fn volumes_from(
    cx: &mut Cx<'_>,
    n: &Node,
    p: &str,
    names: &Names,
    name: &str,
    ship: &str,
) -> Result<Vec<String>> {
    let list = string_list(cx, n, p)?;
    for (i, target) in list.iter().enumerate() {
        let tp = item_path(n, p, i);
        let pos = cx.pos_of(&tp);
        match names.instances.iter().find(|(inst, _, _)| inst == target) {
            None => {
                let help = did_you_mean(target, names.instances.iter().map(|(i, _, _)| i.as_str()));
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
    Ok(list)
}

fn command_spec(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<CommandSpec> {
    match &node.value {
        Value::Seq(_) => Ok(CommandSpec::Exec(string_list(cx, node, path)?)),
        _ => Ok(CommandSpec::Shell(string(cx, node, path)?)),
    }
}

/// A mapping of names to strings (`log_opt`, an http auditor's `headers`).
fn string_map(
    cx: &mut Cx<'_>,
    n: &Node,
    path: &str,
    what: &str,
) -> Result<BTreeMap<String, String>> {
    let mut sm = MapReader::new(cx, n, path, what)?;
    let mut out = BTreeMap::new();
    for (k, _, v) in sm.all() {
        out.insert(k.clone(), string(cx, v, &join(path, &k))?);
    }
    Ok(out)
}

fn volumes(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<VolumeBind>> {
    let mut vm = MapReader::new(cx, n, path, "`volumes`")?;
    let mut out = Vec::new();
    for (key, key_node, value) in vm.all() {
        let vp = join(path, &key);
        let (target, mode) = match &value.value {
            Value::Map(_) => volume_target(cx, value, &vp)?,
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

/// A volume written as `{target, mode}`.
fn volume_target(cx: &mut Cx<'_>, value: &Node, vp: &str) -> Result<(String, VolumeMode)> {
    let mut t = MapReader::new(cx, value, vp, "a volume")?;
    let tn = t.require(cx, "target", "a volume")?;
    let target = non_empty_string(cx, tn, &t.field("target"))?;
    let mode = t.given(cx, "mode", |cx, mn, mp| {
        match string(cx, mn, mp)?.as_str() {
            "ro" => Ok(VolumeMode::ReadOnly),
            "rw" => Ok(VolumeMode::ReadWrite),
            other => Err(cx.invalid(
                mn.pos,
                mp,
                format!("invalid volume mode \"{other}\" (expected ro or rw)"),
            )),
        }
    })?;
    t.finish(cx, "a volume")?;
    Ok((target, mode.unwrap_or(VolumeMode::ReadWrite)))
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
                sm.finish(cx, "an extra host")?;
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
            rm.finish(cx, "`restart`")?;
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
                lm.finish(cx, "a ulimit")?;
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
                        let aliases = am.opt(cx, "aliases", string_list)?;
                        let ip = am.opt(cx, "ipv4_address", string)?;
                        am.finish(cx, "a network")?;
                        let aliases = aliases.unwrap_or_default();
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
    let interval = h.given(cx, "interval", duration)?;
    let timeout = h.given(cx, "timeout", duration)?;
    let start_period = h.given(cx, "start_period", duration)?;
    let retries = h.given(cx, "retries", |cx, n, p| {
        unsigned::<u32>(cx, n, p, 1_000_000)
    })?;
    h.finish(cx, "`healthcheck`")?;
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

fn audit(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Auditor>> {
    let Value::Seq(items) = &node.value else {
        return Err(cx.invalid(
            node.pos,
            path,
            format!(
                "`audit` must be a list of auditors, found {}",
                node.kind_name()
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| auditor(cx, item, &format!("{path}[{i}]")))
        .collect()
}

/// One auditor, with MaestroNG 0.8.3's keys for its type (`level` and `ignore_errors` for
/// all).
fn auditor(cx: &mut Cx<'_>, item: &Node, path: &str) -> Result<Auditor> {
    let mut a = MapReader::new(cx, item, path, "an auditor")?;
    let tn = a.require(cx, "type", "an auditor")?;
    let kind = string(cx, tn, &a.field("type"))?;
    let what = format!("a {kind} auditor");
    let target = match kind.as_str() {
        "log" => AuditTarget::Log {
            file: required(cx, &mut a, "file", &what)?,
        },
        "http" => {
            let endpoint = required(cx, &mut a, "endpoint", &what)?;
            http_auditor(cx, &mut a, endpoint)?
        }
        "slack" => AuditTarget::Slack {
            channel: required(cx, &mut a, "channel", &what)?,
            token: required(cx, &mut a, "token", &what)?,
            name: a.opt(cx, "name", string)?,
            icon: a.opt(cx, "icon", string)?,
        },
        "hipchat" => AuditTarget::HipChat {
            room: required(cx, &mut a, "room", &what)?,
            token: required(cx, &mut a, "token", &what)?,
            name: a.opt(cx, "name", string)?,
        },
        "exec" => AuditTarget::Exec {
            script: required(cx, &mut a, "script", &what)?,
            args: a.opt(cx, "args", string)?.unwrap_or_default(),
        },
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
    let level = match a.opt(cx, "level", string)?.as_deref() {
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
    let ignore_errors = a.given(cx, "ignore_errors", boolean)?.unwrap_or(false);
    a.finish(cx, &what)?;
    Ok(Auditor {
        target,
        level,
        ignore_errors,
    })
}

fn required(cx: &mut Cx<'_>, a: &mut MapReader<'_>, key: &str, what: &str) -> Result<String> {
    let node = a.require(cx, key, what)?;
    non_empty_string(cx, node, &a.field(key))
}

/// The keys of an `http` auditor besides its `endpoint`, with MaestroNG's defaults.
fn http_auditor(cx: &mut Cx<'_>, a: &mut MapReader<'_>, endpoint: String) -> Result<AuditTarget> {
    let payload = a
        .given(cx, "payload", json_value)?
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let headers = a
        .given(cx, "headers", |cx, n, p| string_map(cx, n, p, "`headers`"))?
        .unwrap_or_default();
    let method = a
        .opt(cx, "method", string)?
        .unwrap_or_else(|| "POST".into())
        .to_uppercase();
    if method != "GET" && method != "POST" {
        return Err(cx.invalid(
            cx.pos_of(&a.field("method")),
            &a.field("method"),
            format!("invalid HTTP method `{method}` (expected GET or POST)"),
        ));
    }
    let timeout = a
        .given(cx, "timeout", duration)?
        .unwrap_or(Duration::from_secs(3));
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

    fn load_err(text: &str) -> String {
        let vars = std::collections::BTreeMap::new();
        match crate::config::load_str_with_vars(text, "t.yaml", std::path::Path::new("/cfg"), &vars)
        {
            Ok(env) => panic!("expected an error, got {env:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The keys a section knows are the keys its reading asks for, present or not; the
    /// compatibility keys are known and ignored, also as ship defaults.
    #[test]
    fn known_keys_come_from_the_readers() {
        let web = |extra: &str| {
            format!(
                "name: t\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  web:\n    image: a\n    \
                 instances:\n      web-1: {{ship: s1, {extra}}}\n"
            )
        };
        let msg = load_err(&web("stop_signl: 15"));
        assert!(msg.contains("did you mean `stop_signal`?"), "{msg}");
        let msg = load_err(&web("limits: {memroy: 1g}"));
        assert!(msg.contains("did you mean `memory`?"), "{msg}");
        let msg = load_err(&web("limits: {nothing_like_it: 1}"));
        assert!(msg.contains("known keys here: memory, swap, cpu"), "{msg}");
        let msg = load_err(
            "name: t\nship_defaults: {ssl_version: 5, max_concurency: 2}\nships: {s1: {ip: x}}\n",
        );
        assert!(
            msg.contains("unknown key `max_concurency` in `ship_defaults`")
                && msg.contains("did you mean `max_concurrency`?"),
            "{msg}"
        );
        load("name: t\nships: {s1: {ip: x, ssl_version: 5}}\nship_defaults: {ssl_version: 5}\n");
        load(&web("lxc_conf: {lxc.utsname: x}"));
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
