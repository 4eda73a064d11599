//! Checks that need the whole resolved environment: dependency cycles and host port clashes.

use std::collections::HashMap;

use super::model::{Environment, Instance, Port, Protocol};
use super::reader::Cx;

pub(crate) fn validate(cx: &mut Cx<'_>, env: &Environment) {
    service_cycles(cx, env);
    instance_cycles(cx, env);
    port_conflicts(cx, env);
    volume_conflicts(cx, env);
}

fn service_cycles(cx: &mut Cx<'_>, env: &Environment) {
    let index = |name: &str| env.services.iter().position(|s| s.name == name);
    let edges = |i: usize| -> Vec<usize> {
        env.services[i]
            .requires
            .iter()
            .filter(|r| **r != env.services[i].name)
            .filter_map(|r| index(r))
            .collect()
    };
    let deps: Vec<Vec<usize>> = (0..env.services.len()).map(edges).collect();
    if let Err(super::graph::Cycle { cycle, .. }) = super::graph::toposort_all(&deps) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| env.services[i].name.as_str())
            .collect();
        let first = names.first().copied().unwrap_or_default();
        let next = names.get(1).copied().unwrap_or_default();
        // Point at the `requires` entry that closes the loop, not the whole list.
        let entry = env
            .service(first)
            .and_then(|s| s.requires.iter().position(|r| r == next))
            .map(|i| format!("services.{first}.requires[{i}]"));
        let path = match entry {
            Some(p) if cx.pos_of(&p).is_known() => p,
            _ => format!("services.{first}.requires"),
        };
        let pos = cx.pos_of(&path);
        cx.semantic(
            pos,
            &path,
            format!("dependency cycle: {}", names.join(" -> ")),
            None,
        );
    }
}

/// Instance-level ordering adds `volumes_from` and `links`, which can close a cycle that the
/// service graph does not show.
fn instance_cycles(cx: &mut Cx<'_>, env: &Environment) {
    let all: Vec<&Instance> = env.instances().map(|(_, i)| i).collect();
    let deps = super::graph::instance_deps(env);
    if let Err(super::graph::Cycle { cycle, .. }) = super::graph::toposort_all(&deps) {
        let names: Vec<&str> = cycle.iter().map(|&i| all[i].name.as_str()).collect();
        // A pure service cycle was already reported with service names.
        let via_service_only = cycle.windows(2).all(|w| {
            let a = all[w[0]];
            let b = all[w[1]];
            env.service(&a.service)
                .is_some_and(|s| s.requires.contains(&b.service))
        });
        if via_service_only
            && cx
                .semantic
                .iter()
                .any(|d| d.message.starts_with("dependency cycle"))
        {
            return;
        }
        let first = all[cycle[0]];
        let path = format!("services.{}.instances.{}", first.service, first.name);
        let pos = cx.pos_of(&path);
        cx.semantic(
            pos,
            &path,
            format!("dependency cycle between instances: {}", names.join(" -> ")),
            None,
        );
    }
}

fn publishes_fixed(p: &Port) -> bool {
    // A published range with a single container port lets Docker pick a free one.
    p.external.is_single() || !p.exposed.is_single()
}

fn port_conflicts(cx: &mut Cx<'_>, env: &Environment) {
    // Per ship and protocol, sorted by first port, so only neighbours that overlap are compared.
    let mut published: HashMap<(&str, Protocol), Vec<(&Instance, &Port)>> = HashMap::new();
    for (_, inst) in env.instances() {
        if inst.net.as_deref() == Some("host") {
            continue;
        }
        for port in inst.ports.iter().filter(|p| publishes_fixed(p)) {
            published
                .entry((inst.ship.as_str(), port.protocol))
                .or_default()
                .push((inst, port));
        }
    }
    let mut groups: Vec<_> = published.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for ((ship, _), mut entries) in groups {
        entries.sort_by_key(|(_, p)| (p.external.start, p.external.end));
        for (k, (a, pa)) in entries.iter().enumerate() {
            for (b, pb) in entries.iter().skip(k + 1) {
                if pb.external.start > pa.external.end {
                    break;
                }
                let same_ip = match (&pa.bind_ip, &pb.bind_ip) {
                    (Some(x), Some(y)) => x == y || x == "0.0.0.0" || y == "0.0.0.0",
                    _ => true,
                };
                if same_ip {
                    report_port_clash(cx, ship, a, pa, b, pb);
                }
            }
        }
    }
}

/// MaestroNG refuses an instance that mounts, itself, a container path that an instance it
/// takes `volumes_from` also mounts: Docker would have to pick one of the two.
/// A problem of `inst`, at its key `key`.
fn report_at(cx: &mut Cx<'_>, inst: &Instance, key: &str, message: String) {
    let path = format!("services.{}.instances.{}.{key}", inst.service, inst.name);
    let pos = cx.pos_of(&path);
    cx.semantic(pos, &path, message, None);
}

fn volume_conflicts(cx: &mut Cx<'_>, env: &Environment) {
    let targets = |i: &Instance| -> std::collections::BTreeSet<String> {
        i.container_volumes
            .iter()
            .cloned()
            .chain(i.volumes.iter().map(|v| v.container.clone()))
            .collect()
    };
    for (_, inst) in env.instances() {
        let own = targets(inst);
        for bound in &inst.volumes {
            if !inst.container_volumes.contains(&bound.container) {
                continue;
            }
            let message = format!(
                "`{}` is both bind-mounted (volumes) and a container-only volume \
                 (container_volumes) of `{}`: keep one of the two",
                bound.container, inst.name
            );
            report_at(cx, inst, "container_volumes", message);
        }
        for source in &inst.volumes_from {
            let Some((_, other)) = env.instance(source) else {
                continue;
            };
            let clash: Vec<String> = own.intersection(&targets(other)).cloned().collect();
            if clash.is_empty() {
                continue;
            }
            let message = format!(
                "volume conflicts between `{}` and `{source}`: both mount {} (take the \
                 volume from `{source}` only, or mount it at another path)",
                inst.name,
                clash.join(", ")
            );
            report_at(cx, inst, "volumes_from", message);
        }
    }
}

fn report_port_clash(
    cx: &mut Cx<'_>,
    ship: &str,
    a: &Instance,
    pa: &Port,
    b: &Instance,
    pb: &Port,
) {
    // Point at whichever of the two comes later in the file.
    let path_of = |i: &Instance, p: &Port| {
        format!(
            "services.{}.instances.{}.ports.{}",
            i.service, i.name, p.name
        )
    };
    let locate = |cx: &Cx<'_>, i: &Instance, p: &Port| {
        let own = path_of(i, p);
        let pos = cx.pos_of(&own);
        if pos.is_known() {
            (own, pos)
        } else {
            // Inherited from the service: point at the service's port.
            let inherited = format!("services.{}.ports.{}", i.service, p.name);
            let pos = cx.pos_of(&inherited);
            (inherited, pos)
        }
    };
    let (first, second) = {
        let la = locate(cx, a, pa);
        let lb = locate(cx, b, pb);
        if (la.1.line, la.1.column) <= (lb.1.line, lb.1.column) {
            ((a, pa), lb)
        } else {
            ((b, pb), la)
        }
    };
    let (later_inst, later_port) = if std::ptr::eq(first.0, a) && std::ptr::eq(first.1, pa) {
        (b, pb)
    } else {
        (a, pa)
    };
    let (shown, pos) = second;
    cx.semantic(
        pos,
        &shown,
        format!(
            "host port {}/{} on ship `{}` is published by both `{}` (port `{}`) and `{}` (port `{}`)",
            later_port.external, later_port.protocol, ship, first.0.name, first.1.name, later_inst.name, later_port.name
        ),
        None,
    );
}
