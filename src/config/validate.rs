//! Checks that need the whole resolved environment: dependency cycles and host port clashes.

use super::model::{Environment, Instance, Port};
use super::reader::Cx;

pub(crate) fn validate(cx: &mut Cx<'_>, env: &Environment) {
    service_cycles(cx, env);
    instance_cycles(cx, env);
    port_conflicts(cx, env);
}

/// Depth-first search for a cycle over `edges`; returns the cycle as names, first = last.
fn find_cycle(n: usize, edges: &dyn Fn(usize) -> Vec<usize>) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS with an explicit path, so deep graphs cannot overflow the stack.
        let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(start, edges(start), 0)];
        mark[start] = Mark::Active;
        while let Some((node, next, i)) = stack.last_mut() {
            if let Some(&child) = next.get(*i) {
                *i += 1;
                match mark[child] {
                    Mark::Active => {
                        let from = stack.iter().position(|(v, _, _)| *v == child).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[from..].iter().map(|(v, _, _)| *v).collect();
                        cycle.push(child);
                        return Some(cycle);
                    }
                    Mark::New => {
                        mark[child] = Mark::Active;
                        let e = edges(child);
                        stack.push((child, e, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[*node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
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
    if let Some(cycle) = find_cycle(env.services.len(), &edges) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| env.services[i].name.as_str())
            .collect();
        let first = names.first().copied().unwrap_or_default();
        let path = format!("services.{first}.requires");
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
    let index = |name: &str| all.iter().position(|i| i.name == name);
    let edges = |i: usize| -> Vec<usize> { instance_deps(env, all[i], &index) };
    if let Some(cycle) = find_cycle(all.len(), &edges) {
        let names: Vec<&str> = cycle.iter().map(|&i| all[i].name.as_str()).collect();
        // A pure service cycle was already reported with service names.
        let services: Vec<&str> = cycle.iter().map(|&i| all[i].service.as_str()).collect();
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
        let _ = services;
        cx.semantic(
            pos,
            &path,
            format!("dependency cycle between instances: {}", names.join(" -> ")),
            None,
        );
    }
}

/// The instances `inst` must wait for: every instance of the services its service requires,
/// and its `volumes_from` and `links` targets.
pub(crate) fn instance_deps(
    env: &Environment,
    inst: &Instance,
    index: &dyn Fn(&str) -> Option<usize>,
) -> Vec<usize> {
    let mut deps = Vec::new();
    if let Some(service) = env.service(&inst.service) {
        for r in &service.requires {
            if *r == service.name {
                continue;
            }
            if let Some(s) = env.service(r) {
                deps.extend(s.instances.iter().filter_map(|i| index(&i.name)));
            }
        }
    }
    for target in inst
        .volumes_from
        .iter()
        .chain(inst.links.iter().map(|l| &l.target))
    {
        if *target != inst.name {
            deps.extend(index(target));
        }
    }
    deps.sort_unstable();
    deps.dedup();
    deps
}

fn publishes_fixed(p: &Port) -> bool {
    // A published range with a single container port lets Docker pick a free one.
    p.external.is_single() || !p.exposed.is_single()
}

fn port_conflicts(cx: &mut Cx<'_>, env: &Environment) {
    let all: Vec<&Instance> = env
        .instances()
        .map(|(_, i)| i)
        .filter(|i| i.net.as_deref() != Some("host"))
        .collect();
    for (a_idx, a) in all.iter().enumerate() {
        for b in all.iter().skip(a_idx + 1) {
            if a.ship != b.ship {
                continue;
            }
            for pa in a.ports.iter().filter(|p| publishes_fixed(p)) {
                for pb in b.ports.iter().filter(|p| publishes_fixed(p)) {
                    let same_ip = match (&pa.bind_ip, &pb.bind_ip) {
                        (Some(x), Some(y)) => x == y || x == "0.0.0.0" || y == "0.0.0.0",
                        _ => true,
                    };
                    if pa.protocol == pb.protocol && same_ip && pa.external.overlaps(&pb.external) {
                        let path = format!(
                            "services.{}.instances.{}.ports.{}",
                            b.service, b.name, pb.name
                        );
                        let mut pos = cx.pos_of(&path);
                        let mut shown = path.clone();
                        if !pos.is_known() {
                            // Inherited from the service: point at the service's port.
                            shown = format!("services.{}.ports.{}", b.service, pb.name);
                            pos = cx.pos_of(&shown);
                        }
                        cx.semantic(
                            pos,
                            &shown,
                            format!(
                                "host port {}/{} on ship `{}` is published by both `{}` (port `{}`) and `{}` (port `{}`)",
                                pb.external, pb.protocol, a.ship, a.name, pa.name, b.name, pb.name
                            ),
                            None,
                        );
                    }
                }
            }
        }
    }
}
