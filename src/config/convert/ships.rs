//! The ships: `ships`, `ship_defaults` merged into each, how each is reached (SSH and its
//! jump hosts, MaestroNG's `ssh_tunnel`, TCP and TLS), and the jump loops between them.

use super::*;

pub(super) fn ships(
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
                        .iter_mut()
                        .find(|(pk, _)| pk.scalar_text() == k.scalar_text());
                    match present {
                        None => pairs.push((k.clone(), v.clone())),
                        // `ssh` is maestro's own key: a ship's block is merged key by key
                        // with the defaults' (a ship that adds `jump` keeps the default
                        // `user`). MaestroNG's keys keep its meaning: the ship's value wins.
                        Some((_, mine)) if k.scalar_text().as_deref() == Some("ssh") => {
                            merge_missing_keys(mine, v);
                        }
                        Some(_) => {}
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

/// Adds to the mapping `mine` the entries of the mapping `defaults` it does not have.
fn merge_missing_keys(mine: &mut Node, defaults: &Node) {
    let (Value::Map(own), Value::Map(more)) = (&mut mine.value, &defaults.value) else {
        return;
    };
    for (k, v) in more {
        if !own
            .iter()
            .any(|(ok, _)| ok.scalar_text() == k.scalar_text())
        {
            own.push((k.clone(), v.clone()));
        }
    }
}

/// `ship_defaults`, checked on their own first so that their errors name `ship_defaults`;
/// returns the entries every ship takes when it does not set them.
pub(super) fn ship_defaults(cx: &mut Cx<'_>, d: &Node, names: &Names) -> Result<Vec<(Node, Node)>> {
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
pub(super) fn ship_keys(cx: &Cx<'_>, names: &Names) -> Vec<String> {
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
        warnings: Vec::new(),
    };
    let Ok(mut m) = MapReader::new(&mut aside, &only_ip, "", "a ship") else {
        return Vec::new();
    };
    // Whatever the read makes of nothing, the keys it asked for are what is wanted.
    let _ = read_ship(&mut aside, &mut m, "", names, false);
    m.known().into_iter().map(str::to_owned).collect()
}

/// Jump hosts that are ships must not lead back to the ship itself.
pub(super) fn check_jump_loops(cx: &mut Cx<'_>, ships: &[Ship]) {
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

pub(super) fn ship(
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

pub(super) fn read_ship(
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
        ship_address(cx, n, &m.field("ip"))?
    };
    // A local daemon's socket (`unix:///...` or a path) never reaches a shell; a host does.
    let endpoint = m
        .opt(cx, "endpoint", |cx, n, p| match string(cx, n, p)? {
            path if path.starts_with("unix://") || path.starts_with('/') => Ok(path),
            _ => ship_address(cx, n, p),
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
    let image_source = m.opt(cx, "image_source", image_source)?;
    let ship_path = m.path.clone();
    let ssh = match m.given(cx, "ssh", |cx, n, p| {
        ssh_settings(cx, p, n, names, &ship_path)
    })? {
        Some(ssh) => Some(ssh),
        None => ssh_tunnel.as_ref().map(SshTunnel::as_ssh),
    };
    let direct_tcp = ssh.is_none()
        && socket_path.is_none()
        && !endpoint.starts_with("unix://")
        && !endpoint.starts_with('/');
    if tls && direct_tcp {
        check_tls(cx, m, tls_verify, [&tls_ca_cert, &tls_cert, &tls_key])?;
    }
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
        image_source,
    })
}

/// `tls: true` on a ship reached on its TCP port: what the connector would refuse, refused at
/// load with the fix, so that `validate` never passes a file `start` cannot run. `files`: the
/// CA, certificate and key, resolved.
fn check_tls(
    cx: &mut Cx<'_>,
    m: &mut MapReader<'_>,
    tls_verify: bool,
    files: [&Option<std::path::PathBuf>; 3],
) -> Result<()> {
    let tls_node = m.get("tls");
    let verify_node = m.get("tls_verify");
    let at = verify_node.or(tls_node).map_or(m.pos, |n| n.pos);
    if !tls_verify {
        return Err(cx.invalid_help(
            at,
            &m.field(if verify_node.is_some() {
                "tls_verify"
            } else {
                "tls"
            }),
            "TLS without verification (`tls_verify: false`, the default) is not supported: \
             maestro always checks the Docker daemon's certificate",
            Some(
                "set `tls_verify: true` with `tls_ca_cert` (the CA that signed the daemon's \
                 certificate), `tls_cert` and `tls_key` (this machine's client certificate), \
                 or reach the ship over SSH (`ssh: {user: ...}`) and drop `tls`"
                    .to_owned(),
            ),
        ));
    }
    for (key, file) in ["tls_ca_cert", "tls_cert", "tls_key"]
        .into_iter()
        .zip(files)
    {
        let Some(file) = file else {
            return Err(cx.invalid_help(
                at,
                &m.field(key),
                format!("TLS with verification needs `{key}`"),
                Some(
                    "give tls_ca_cert (the daemon's CA), tls_cert and tls_key (this \
                     machine's client certificate and key), as PEM files"
                        .to_owned(),
                ),
            ));
        };
        let node_pos = m.get(key).map_or(at, |n| n.pos);
        let problem = if key == "tls_ca_cert" {
            super::checks::check_ca_file(file).err()
        } else {
            std::fs::metadata(file)
                .err()
                .map(|e| format!("cannot read {}: {e}", file.display()))
        };
        if let Some(problem) = problem {
            return Err(cx.invalid_help(
                node_pos,
                &m.field(key),
                format!("invalid {key}: {problem}"),
                Some(
                    "a path relative to this file's directory, or absolute, of a PEM file"
                        .to_owned(),
                ),
            ));
        }
    }
    Ok(())
}

/// `image_source: registry | local | {archive: PATH}` (a path relative to the file).
pub(super) fn image_source(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<ImageSource> {
    const HOW: &str = "expected `registry`, `local` (the Docker daemon of the machine running \
                       maestro) or `{archive: FILE}` (a `docker save` archive)";
    if let Value::Map(_) = node.value {
        let mut m = MapReader::new(cx, node, path, "`image_source`")?;
        // A misspelt key is told as such before the missing one.
        let given = m.get("archive");
        m.finish(cx, "`image_source`")?;
        let file_node = given.ok_or_else(|| {
            cx.invalid(
                node.pos,
                path,
                format!("`image_source` as a mapping needs `archive`: {HOW}"),
            )
        })?;
        let file = non_empty_string(cx, file_node, &join(path, "archive"))?;
        return Ok(ImageSource::Archive(cx.resolve_path(&file)));
    }
    match string(cx, node, path)?.as_str() {
        "registry" => Ok(ImageSource::Registry),
        "local" => Ok(ImageSource::Local),
        other => Err(cx.invalid_help(
            node.pos,
            path,
            format!("unknown image_source `{other}`: {HOW}"),
            did_you_mean(other, ["registry", "local"]),
        )),
    }
}

pub(super) fn ssh_tunnel(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<SshTunnel> {
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

pub(super) fn ssh_settings(
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
    let persist = s.given(cx, "persist", duration)?;
    s.finish(cx, "`ssh`")?;
    Ok(SshSettings {
        user,
        port,
        identity_files,
        jump,
        known_hosts,
        known_hosts_file,
        persist,
    })
}

/// `ssh.jump`: ship names, or `[user@]host[:port]`.
pub(super) fn jump_hosts(
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
            return Err(cx.invalid_help(
                pos,
                &hop_path,
                format!("ship `{hop}` cannot be its own jump host"),
                Some(format!(
                    "give `{hop}` `ssh: {{jump: []}}`: a ship's `ssh` block is merged key by \
                     key with `ship_defaults`' one, so `{hop}` takes its jump hosts unless it \
                     says it is reached directly"
                )),
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

pub(super) fn known_hosts_policy(cx: &mut Cx<'_>, n: &Node, kp: &str) -> Result<KnownHostsPolicy> {
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
pub(super) fn jump_problem(jump: &JumpHost) -> Option<(String, String)> {
    let JumpHost::Address { user, host, .. } = jump else {
        return None;
    };
    user.as_deref()
        .and_then(|u| user_problem(u).map(|why| (format!("user `{u}`"), why)))
        .or_else(|| host_problem(host).map(|why| (format!("host `{host}`"), why)))
}

pub(crate) fn parse_jump(text: &str) -> Option<JumpHost> {
    // OpenSSH's ProxyJump also takes the URI form, `ssh://[user@]host[:port]`.
    let text = match text.strip_prefix("ssh://") {
        Some(uri) => uri.strip_suffix('/').unwrap_or(uri),
        None => text,
    };
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

/// A ship's `ip` or `endpoint`: a host name or address alone. The habits of other tools (a
/// `user@` in front, a `:port` behind, as ssh and docker -H take them) are answered with
/// where each part goes, before the host name check would call them shell syntax.
pub(super) fn ship_address(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    let text = non_empty_string(cx, node, path)?;
    if let Some((user, host)) = text.split_once('@') {
        return Err(cx.invalid_help(
            node.pos,
            path,
            format!("`{text}` puts a user in the address"),
            Some(format!(
                "the address goes alone here (`{host}`), and the user in the ship's ssh \
                 block: `ssh: {{user: {user}}}` (or in `ship_defaults`)"
            )),
        ));
    }
    // One colon and digits after it: a port (an IPv6 address has several colons).
    if let Some((host, port)) = text.split_once(':')
        && !host.contains(':')
        && !port.contains(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
    {
        return Err(cx.invalid_help(
            node.pos,
            path,
            format!("`{text}` has a port in the address"),
            Some(format!(
                "the address goes alone here (`{host}`); an SSH port is `ssh: {{port: {port}}}`, \
                 the Docker daemon's TCP port `docker_port: {port}`"
            )),
        ));
    }
    host_name(cx, node, path)
}
