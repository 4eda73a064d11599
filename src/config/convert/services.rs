//! The services: what a service gives its instances (image, env files and env, ports, limits,
//! lifecycle), and the references between services.

use super::*;

/// What a service gives its instances.
pub(super) struct Inherited {
    pub(super) image: Option<String>,
    pub(super) env_files: Vec<(String, Pos, String)>,
    pub(super) env: Vec<(String, Option<String>)>,
    /// `MAESTRO_ENVIRONMENT_NAME` and `SERVICE_NAME`: MaestroNG builds them into the
    /// service's environment, over its envfile and env and under the instance's, so an
    /// instance may set them and a service may not.
    pub(super) generated: Vec<(String, Option<String>)>,
    pub(super) ports: Vec<Port>,
    pub(super) limits: Limits,
    pub(super) lifecycle: Vec<(&'static str, Check, String)>,
}

pub(super) fn services(
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
        let image_source = m.opt(cx, "image_source", image_source)?;
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
            image_source,
            instances,
        });
    }
    Ok(out)
}

pub(super) fn service_refs(
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

pub(super) fn env_files(
    cx: &mut Cx<'_>,
    n: &Node,
    path: &str,
) -> Result<Vec<(String, Pos, String)>> {
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
pub(super) fn env_map(
    cx: &mut Cx<'_>,
    n: &Node,
    path: &str,
) -> Result<Vec<(String, Option<String>)>> {
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
pub(super) fn read_env_file(
    cx: &Cx<'_>,
    file: &str,
    pos: Pos,
    path: &str,
) -> Result<Vec<(String, String)>> {
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

pub(super) fn ports(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Vec<Port>> {
    if let Value::Seq(items) = &n.value {
        return Err(compose_list(cx, n, path, "ports", items));
    }
    let mut pm = MapReader::new(cx, n, path, "`ports`")?;
    let mut out = Vec::new();
    for (name, _, spec) in pm.all() {
        out.push(parse_port(cx, &name, spec, &join(path, &name))?);
    }
    Ok(out)
}

pub(super) fn limits(cx: &mut Cx<'_>, n: &Node, path: &str) -> Result<Limits> {
    let mut l = MapReader::new(cx, n, path, "`limits`")?;
    let memory = l.given(cx, "memory", size)?;
    let swap = l.given(cx, "swap", size)?;
    let cpu = l.given(cx, "cpu", |cx, x, p| unsigned::<u64>(cx, x, p, 262_144))?;
    l.finish(cx, "`limits`")?;
    Ok(Limits { memory, cpu, swap })
}

/// compose's list form of `ports` or `volumes` (`["8080:80"]`, `["./data:/data"]`): refused,
/// with the mapping this file wants written out from the user's own values, each side named.
pub(super) fn compose_list(
    cx: &mut Cx<'_>,
    n: &Node,
    path: &str,
    key: &str,
    items: &[Node],
) -> crate::config::ConfigError {
    let texts: Vec<String> = items.iter().filter_map(Node::scalar_text).collect();
    let mut lines = vec![format!("  {key}:")];
    for text in &texts {
        lines.push(if key == "ports" {
            compose_port_line(text)
        } else {
            compose_volume_line(text, cx.schema)
        });
    }
    let intro = if key == "ports" {
        "here `ports` maps a name to a port, the container's port first (MaestroNG's form, \
         the reverse of compose's and `docker -p`); your list written that way"
    } else if cx.schema >= 2 {
        "here `volumes` maps the ship's path to the container's (schema 2); your list \
         written that way"
    } else {
        "here `volumes` maps the container's path to the ship's (schema 1, the default; \
         `__maestro: {schema: 2}` puts the ship's path first, as compose does); your list \
         written that way"
    };
    cx.invalid_help(
        n.pos,
        path,
        format!("`{key}` must be a mapping, found a list (compose's form)"),
        Some(format!("{intro}:\n{}", lines.join("\n"))),
    )
}

/// One compose port (`[ADDRESS:]SHIP:CONTAINER[/proto]` or `CONTAINER`) as a line of the map.
fn compose_port_line(text: &str) -> String {
    let (spec, proto) = match text.split_once('/') {
        Some((spec, proto)) => (spec, format!("/{proto}")),
        None => (text, String::new()),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let name = |container: &str| format!("port-{}", container.replace('-', "_"));
    match parts.as_slice() {
        [container] => format!("    {}: \"{container}{proto}\"", name(container)),
        [ship, container] => format!(
            "    {}: \"{container}{proto}:{ship}{proto}\"   # container {container}, published \
             on the ship as {ship}",
            name(container)
        ),
        [address, ship, container] => format!(
            "    {}: {{exposed: \"{container}{proto}\", external: [{address}, {ship}]}}   \
             # container {container}, published on {address}:{ship} of the ship",
            name(container)
        ),
        _ => format!("    name: \"{text}\"   # (not a compose port spec)"),
    }
}

/// One compose volume (`SHIP:CONTAINER[:ro|rw]`) as a line of the map in `schema`.
fn compose_volume_line(text: &str, schema: u32) -> String {
    let parts: Vec<&str> = text.split(':').collect();
    let (ship, container, mode) = match parts.as_slice() {
        [ship, container] => (*ship, *container, None),
        [ship, container, mode] => (*ship, *container, Some(*mode)),
        _ => return format!("    # {text}: not a compose volume spec (SHIP_PATH:CONTAINER_PATH)"),
    };
    let relative = !(ship.starts_with('/') || ship.starts_with('~'))
        && (ship.starts_with('.') || ship.contains('/'));
    let note = if relative {
        format!(
            "   # `{ship}` is relative: the ship's side must be an absolute path or a volume name"
        )
    } else {
        String::new()
    };
    let (key, target) = if schema >= 2 {
        (ship, container)
    } else {
        (container, ship)
    };
    match mode {
        Some(mode) => format!("    {key}: {{target: {target}, mode: {mode}}}{note}"),
        None => format!("    {key}: {target}{note}"),
    }
}
