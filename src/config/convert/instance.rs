//! One instance: its name (a container name, none of maestro's own), ship, environment, ports,
//! volumes, links, restart policy and every other container setting, over what its service
//! gave it.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn instance(
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
pub(super) fn check_container_name(
    cx: &mut Cx<'_>,
    path: &str,
    name: &str,
    node: &Node,
) -> Result<()> {
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
pub(super) fn instance_ship(
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
pub(super) fn instance_env(
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
pub(super) fn instance_ports(
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
pub(super) fn instance_lifecycle(
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

pub(super) fn container_volumes(cx: &mut Cx<'_>, n: &Node, p: &str) -> Result<Vec<String>> {
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
pub(super) fn volumes_from(
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

pub(super) fn command_spec(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<CommandSpec> {
    match &node.value {
        Value::Seq(_) => Ok(CommandSpec::Exec(string_list(cx, node, path)?)),
        _ => Ok(CommandSpec::Shell(string(cx, node, path)?)),
    }
}

/// A mapping of names to strings (`log_opt`, an http auditor's `headers`).
pub(super) fn string_map(
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

pub(super) fn volumes(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<VolumeBind>> {
    if let Value::Seq(items) = &n.value {
        return Err(compose_list(cx, n, path, "volumes", items));
    }
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
pub(super) fn volume_target(
    cx: &mut Cx<'_>,
    value: &Node,
    vp: &str,
) -> Result<(String, VolumeMode)> {
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

pub(super) fn links(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    names: &Names,
    this: &str,
) -> Result<Vec<Link>> {
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
        let pos = cx.pos_of(&p);
        if link.target == this {
            cx.semantic(
                pos,
                &p,
                format!("links: `{}` cannot link to itself", link.target),
                None,
            );
        } else if !names.instances.iter().any(|(i, _, _)| *i == link.target) {
            // As in MaestroNG: a container that is not an instance of the file (one started
            // by hand, another tool's) is linked by name if the ship has it; `plan` says
            // whether it does. A near-miss of an instance is likelier a typo: said too.
            let close = did_you_mean(
                &link.target,
                names.instances.iter().map(|(i, _, _)| i.as_str()),
            );
            let help = match close {
                Some(close) => format!("{close} (an instance of this file)"),
                None => "nothing to do if that container exists on the ship; `maestro plan` \
                         says whether it does"
                    .to_owned(),
            };
            let d = cx.src.diagnostic(
                pos,
                Some(&p),
                format!(
                    "links: `{}` is not an instance of this file: it is passed to Docker as \
                     it is, which links the container of that name on the ship, if there is one",
                    link.target
                ),
                Some(help),
            );
            cx.warnings.push(d);
        }
    }
    Ok(out.into_iter().map(|(l, _)| l).collect())
}

pub(super) fn extra_hosts(
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

pub(super) fn restart(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<RestartPolicy> {
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

pub(super) fn ulimits(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Ulimit>> {
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
pub(super) fn ulimit_value(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<i64> {
    match &node.value {
        Value::Str(text) if text.eq_ignore_ascii_case("unlimited") => Ok(-1),
        _ => integer(cx, node, path, -1, i64::MAX),
    }
}

pub(super) fn labels(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<BTreeMap<String, String>> {
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

pub(super) fn networks(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<NetworkAttachment>> {
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

pub(super) fn healthcheck(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Healthcheck> {
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

pub(super) fn devices(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Device>> {
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

pub(super) fn tmpfs(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<BTreeMap<String, String>> {
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
