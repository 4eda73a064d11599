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

mod audit;
mod checks;
mod instance;
mod services;
mod ships;

use audit::*;
use checks::*;
use instance::*;
use services::*;
use ships::*;

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
        warnings: Warnings({
            let mut warnings = std::mem::take(&mut cx.warnings);
            warnings.sort_by_key(|d| (d.line, d.column));
            warnings.dedup();
            warnings
        }),
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
    // MaestroNG's loader writes the file's directory there itself (over whatever was
    // written), so a configuration dumped from MaestroNG carries it: read, not used.
    m.accept_ignored(&["base_dir"]);
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
        // OpenSSH's ProxyJump URI form.
        assert_eq!(
            parse_jump("ssh://ops@bastion:2222"),
            parse_jump("ops@bastion:2222")
        );
        assert_eq!(parse_jump("ssh://bastion/"), parse_jump("bastion"));
        assert_eq!(parse_jump("ssh://a/b"), None);
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
    fn image_source_is_read_per_service_ship_and_ship_defaults() {
        let env = load(
            "name: t\nship_defaults: {image_source: local}\nships:\n  s1: {ip: 10.0.0.1}\n  \
             s2: {ip: 10.0.0.2, image_source: registry}\nservices:\n  web:\n    image: a\n    \
             instances: {w1: {ship: s1}, w2: {ship: s2}}\n  db:\n    image: b\n    \
             image_source: {archive: imgs/db.tar}\n    instances: {d1: {ship: s2}}\n",
        );
        let source = |name: &str| {
            let (_, instance) = env.instance(name).expect("instance");
            env.image_source(instance)
        };
        assert_eq!(source("w1"), ImageSource::Local);
        assert_eq!(source("w2"), ImageSource::Registry);
        match source("d1") {
            ImageSource::Archive(path) => assert!(path.ends_with("imgs/db.tar"), "{path:?}"),
            other => panic!("{other:?}"),
        }
        // A MaestroNG file never says it: a registry.
        let plain = load(
            "name: t\nships: {s1: {ip: x}}\nservices: {web: {image: a, instances: {w: {ship: s1}}}}\n",
        );
        let (_, w) = plain.instance("w").expect("instance");
        assert_eq!(plain.image_source(w), ImageSource::Registry);
    }

    #[test]
    fn a_bad_image_source_says_what_is_expected() {
        let web = |source: &str| {
            format!(
                "name: t\nships: {{s1: {{ip: 10.0.0.1}}}}\nservices:\n  web:\n    image: a\n    \
                 image_source: {source}\n    instances: {{w: {{ship: s1}}}}\n"
            )
        };
        let msg = load_err(&web("lcoal"));
        assert!(
            msg.contains("unknown image_source `lcoal`")
                && msg.contains("`{archive: FILE}`")
                && msg.contains("did you mean `local`?"),
            "{msg}"
        );
        let msg = load_err(&web("{archiv: a.tar}"));
        assert!(msg.contains("did you mean `archive`?"), "{msg}");
        let msg = load_err(&web("{archive: ''}"));
        assert!(msg.contains("services.web.image_source.archive"), "{msg}");
        let msg =
            load_err("name: t\nship_defaults: {image_source: docker}\nships: {s1: {ip: x}}\n");
        assert!(
            msg.contains("unknown image_source `docker`") && msg.contains("ship_defaults"),
            "{msg}"
        );
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
