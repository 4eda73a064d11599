//! The plan: the per-instance dependency graph, target selection in MaestroNG's terms
//! (names, `-d`, `-i`, `-C`, `-S`, `omit`), the order to act in, and `deptree`'s drawing.
//!
//! The result of [`select`] is a [`Plan`] whose steps are indexed `0..n`, each with the ship it
//! runs on and the steps it must wait for (`deps`, already oriented for the command's
//! direction), so a generic executor can run it with per-ship concurrency.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::Environment;
use crate::config::graph::{Cycle, InstanceEdges, instance_edges, toposort};

/// One instance (container) in the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    pub instance: String,
    pub service: String,
    pub ship: String,
    /// Graph indices that must be up before this one: every instance of the services its
    /// service `requires`, and its `volumes_from` and `links` targets.
    pub deps: Vec<usize>,
    /// Graph indices of the instances of its `wants_info` services: information, no ordering.
    pub info: Vec<usize>,
    /// Graph indices that depend directly on this one (the reverse of `deps`).
    pub dependents: Vec<usize>,
    /// Its service has `omit: true`.
    pub omit: bool,
}

/// Every instance of the environment, in file order, with its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("error: unknown service or container `{name}`{}", .help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnknownName { name: String, help: Option<String> },
    #[error("error: invalid filter pattern `{pattern}`: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("error: dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// Names or filters were given and nothing is left: a typo in a pattern must not pass for
    /// "all is well".
    #[error("error: no instance matches the selection ({asked}); the file's instances: {known}")]
    NothingSelected { asked: String, known: String },
}

impl PlanError {
    /// Bad names and patterns are usage errors, like configuration errors: exit code 2.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

impl Graph {
    pub fn new(env: &Environment) -> Graph {
        let mut nodes: Vec<GraphNode> = env
            .instances()
            .zip(instance_edges(env))
            .map(
                |((service, inst), InstanceEdges { deps, info })| GraphNode {
                    instance: inst.name.clone(),
                    service: service.name.clone(),
                    ship: inst.ship.clone(),
                    deps,
                    info,
                    dependents: Vec::new(),
                    omit: service.omit,
                },
            )
            .collect();
        for i in 0..nodes.len() {
            for d in nodes[i].deps.clone() {
                nodes[d].dependents.push(i);
            }
        }
        Graph { nodes }
    }

    pub fn index_of(&self, instance: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.instance == instance)
    }

    /// Graph indices of the instances that depend directly on `i`.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        self.nodes[i].dependents.clone()
    }

    fn edges(&self, i: usize, direction: Direction) -> &[usize] {
        match direction {
            Direction::Forward => &self.nodes[i].deps,
            Direction::Reverse => &self.nodes[i].dependents,
        }
    }

    /// Every graph index, dependencies first (file order among equals).
    pub fn topological_order(&self) -> Result<Vec<usize>, PlanError> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let deps: Vec<Vec<usize>> = self.nodes.iter().map(|n| n.deps.clone()).collect();
        toposort(&all, &deps).map_err(|Cycle { cycle, .. }| {
            PlanError::Cycle(
                cycle
                    .into_iter()
                    .map(|i| self.nodes[i].instance.clone())
                    .collect(),
            )
        })
    }

    /// The transitive closure of `start` along dependencies (forward) or dependents (reverse).
    fn closure(&self, start: &BTreeSet<usize>, direction: Direction) -> BTreeSet<usize> {
        let mut seen = start.clone();
        let mut todo: Vec<usize> = start.iter().copied().collect();
        while let Some(i) = todo.pop() {
            for &j in self.edges(i, direction) {
                if seen.insert(j) {
                    todo.push(j);
                }
            }
        }
        seen
    }
}

/// Which way a command walks the graph: the one type of the executor and its events too.
/// Which way the dependency edges are followed: by the planner (which way `-d` widens a
/// selection), the executor (which jobs wait for which) and the events (`--json` readers see
/// it in `plan_started`). One type for all three; it lives in the plan, the lowest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Dependencies first: a job begins after everything it requires (start, pull, status,
    /// clean); `-d` adds dependencies.
    #[default]
    Forward,
    /// Dependents first: a job begins after everything that requires it (stop, kill, and
    /// restart's stop half); `-d` adds dependents.
    Reverse,
}

/// What the user asked to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Service or container names; empty = every service not marked `omit`.
    pub names: Vec<String>,
    /// `-C`: glob patterns on container names (any may match).
    pub container_filter: Vec<String>,
    /// `-S`: glob patterns on ship names (any may match).
    pub ship_filter: Vec<String>,
    /// `-d`: add transitive dependencies (forward) or dependents (reverse).
    pub with_dependencies: bool,
    /// `-i`: act without ordering between the targets.
    pub ignore_dependencies: bool,
    pub direction: Direction,
    /// `status` shows `omit: true` services even when no names are given.
    pub include_omitted: bool,
}

/// One container to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    /// Index into [`Graph::nodes`].
    pub node: usize,
    pub instance: String,
    pub service: String,
    pub ship: String,
    /// Indices into [`Plan::steps`] that must finish first (empty with `-i`).
    pub deps: Vec<usize>,
}

/// The containers to act on, in an order that respects `deps` (every dep comes earlier).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
    pub direction: Direction,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn instances(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.instance.as_str())
    }
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, PlanError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| PlanError::BadPattern {
            pattern: p.clone(),
            reason: e.kind().to_string(),
        })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| PlanError::BadPattern {
        pattern: patterns.join(", "),
        reason: e.to_string(),
    })
}

/// Graph indices named by `names` (service or container names), or every non-omitted one.
fn resolve_names(
    env: &Environment,
    graph: &Graph,
    names: &[String],
    include_omitted: bool,
) -> Result<BTreeSet<usize>, PlanError> {
    if names.is_empty() {
        return Ok(graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| include_omitted || !n.omit)
            .map(|(i, _)| i)
            .collect());
    }
    let mut out = BTreeSet::new();
    for name in names {
        if env.service(name).is_some() {
            out.extend(
                graph
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.service == *name)
                    .map(|(i, _)| i),
            );
        } else if let Some(i) = graph.index_of(name) {
            out.insert(i);
        } else {
            let candidates = env
                .services
                .iter()
                .map(|s| s.name.as_str())
                .chain(graph.nodes.iter().map(|n| n.instance.as_str()));
            return Err(PlanError::UnknownName {
                name: name.clone(),
                help: crate::config::did_you_mean(name, candidates),
            });
        }
    }
    Ok(out)
}

/// What was asked for, as the command line wrote it.
fn describe_selection(sel: &Selection) -> String {
    let mut parts = Vec::new();
    if !sel.names.is_empty() {
        parts.push(sel.names.join(" "));
    }
    parts.extend(sel.container_filter.iter().map(|p| format!("-C '{p}'")));
    parts.extend(sel.ship_filter.iter().map(|p| format!("-S '{p}'")));
    if parts.is_empty() {
        parts.push("every service not marked omit".to_owned());
    }
    parts.join(", ")
}

/// Turns what the user asked for into an ordered plan.
///
/// Differences from MaestroNG, on purpose: `-C`/`-S` still apply with `-i` (MaestroNG silently
/// ignored them), and ordering between two selected containers is kept even when the
/// container linking them is not selected.
pub fn select(env: &Environment, graph: &Graph, sel: &Selection) -> Result<Plan, PlanError> {
    let mut chosen = resolve_names(env, graph, &sel.names, sel.include_omitted)?;
    // MaestroNG widens a run with no names to the dependencies (dependents, in reverse) of
    // what it selects unless told to ignore them: an `omit` service that a selected one
    // requires is started with it.
    let everything = sel.names.is_empty() && !sel.include_omitted && !sel.ignore_dependencies;
    if sel.with_dependencies || everything {
        chosen = graph.closure(&chosen, sel.direction);
    }
    let containers = globset(&sel.container_filter)?;
    let ships = globset(&sel.ship_filter)?;
    chosen.retain(|&i| {
        let n = &graph.nodes[i];
        containers.as_ref().is_none_or(|g| g.is_match(&n.instance))
            && ships.as_ref().is_none_or(|g| g.is_match(&n.ship))
    });
    if chosen.is_empty() && !graph.nodes.is_empty() {
        const SHOWN: usize = 12;
        let mut known: Vec<&str> = graph
            .nodes
            .iter()
            .take(SHOWN)
            .map(|n| n.instance.as_str())
            .collect();
        let more = format!("and {} more", graph.nodes.len().saturating_sub(SHOWN));
        if graph.nodes.len() > SHOWN {
            known.push(&more);
        }
        return Err(PlanError::NothingSelected {
            asked: describe_selection(sel),
            known: known.join(", "),
        });
    }

    // Edges between chosen nodes, through unchosen ones, in the command's direction.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); graph.nodes.len()];
    if !sel.ignore_dependencies {
        for &i in &chosen {
            let mut found = BTreeSet::new();
            let mut seen = BTreeSet::from([i]);
            let mut todo = graph.edges(i, sel.direction).to_vec();
            while let Some(j) = todo.pop() {
                if !seen.insert(j) {
                    continue;
                }
                if chosen.contains(&j) {
                    found.insert(j);
                } else {
                    todo.extend(graph.edges(j, sel.direction));
                }
            }
            edges[i] = found.into_iter().collect();
        }
    }
    let nodes: Vec<usize> = chosen.iter().copied().collect();
    let order = toposort(&nodes, &edges).map_err(|Cycle { cycle, .. }| {
        PlanError::Cycle(
            cycle
                .into_iter()
                .map(|i| graph.nodes[i].instance.clone())
                .collect(),
        )
    })?;
    let mut step_index = vec![usize::MAX; graph.nodes.len()];
    for (k, &g) in order.iter().enumerate() {
        step_index[g] = k;
    }
    let step_of = |g: usize| Some(step_index[g]).filter(|k| *k != usize::MAX);
    let steps = order
        .iter()
        .map(|&g| {
            let n = &graph.nodes[g];
            let mut deps: Vec<usize> = edges[g].iter().filter_map(|d| step_of(*d)).collect();
            deps.sort_unstable();
            PlanStep {
                node: g,
                instance: n.instance.clone(),
                service: n.service.clone(),
                ship: n.ship.clone(),
                deps,
            }
        })
        .collect();
    Ok(Plan {
        steps,
        direction: sel.direction,
    })
}

/// `restart`: the containers chosen as for a stop-like command (`-d` adds dependents), stopped
/// dependents first, then started again dependencies first. MaestroNG restarted each container
/// as a unit, so a dependency came back after its dependents (its issue 186).
pub fn select_restart(
    env: &Environment,
    graph: &Graph,
    sel: &Selection,
) -> Result<(Plan, Plan), PlanError> {
    let stop = select(
        env,
        graph,
        &Selection {
            direction: Direction::Reverse,
            ..sel.clone()
        },
    )?;
    let start = select(
        env,
        graph,
        &Selection {
            names: stop.instances().map(str::to_owned).collect(),
            container_filter: Vec::new(),
            ship_filter: Vec::new(),
            with_dependencies: false,
            ignore_dependencies: sel.ignore_dependencies,
            direction: Direction::Forward,
            include_omitted: true,
        },
    )?;
    Ok((stop, start))
}

/// One service of `deptree`: where its instances run, and what it depends on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DepNode {
    pub service: String,
    /// `(instance, ship)`; only on the top-level services.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Placed>,
    /// The service is only `wants_info` of its parent: information, no ordering.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wants_info: bool,
    /// The service is already on the path from the top: a cycle, not drawn further.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cycle: bool,
    pub requires: Vec<DepNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placed {
    pub instance: String,
    pub ship: String,
}

/// The dependency tree of the named services (or instances' services), every non-omitted
/// one when none is named; `recursive` follows dependencies of dependencies.
pub fn deptree(
    env: &Environment,
    names: &[String],
    recursive: bool,
) -> Result<Vec<DepNode>, PlanError> {
    let mut roots: Vec<&str> = Vec::new();
    if names.is_empty() {
        roots.extend(
            env.services
                .iter()
                .filter(|s| !s.omit)
                .map(|s| s.name.as_str()),
        );
    } else {
        for name in names {
            let service = match env.service(name) {
                Some(s) => s.name.as_str(),
                None => match env.instance(name) {
                    Some((s, _)) => s.name.as_str(),
                    None => {
                        let candidates = env
                            .services
                            .iter()
                            .map(|s| s.name.as_str())
                            .chain(env.instances().map(|(_, i)| i.name.as_str()));
                        return Err(PlanError::UnknownName {
                            name: name.clone(),
                            help: crate::config::did_you_mean(name, candidates),
                        });
                    }
                },
            };
            if !roots.contains(&service) {
                roots.push(service);
            }
        }
    }
    Ok(roots
        .into_iter()
        .filter_map(|root| env.service(root))
        .map(|service| DepNode {
            service: service.name.clone(),
            instances: service
                .instances
                .iter()
                .map(|i| Placed {
                    instance: i.name.clone(),
                    ship: i.ship.clone(),
                })
                .collect(),
            wants_info: false,
            cycle: false,
            requires: children(
                env,
                &service.name,
                recursive,
                &mut vec![service.name.clone()],
            ),
        })
        .collect())
}

fn children(
    env: &Environment,
    service: &str,
    recursive: bool,
    path: &mut Vec<String>,
) -> Vec<DepNode> {
    let Some(s) = env.service(service) else {
        return Vec::new();
    };
    // A service whose instances take `volumes_from` another service's instances depends on
    // that service, as MaestroNG's deptree shows.
    let mut requires: Vec<&String> = s.requires.iter().filter(|r| **r != s.name).collect();
    for target in s.instances.iter().flat_map(|i| &i.volumes_from) {
        if let Some((other, _)) = env.instance(target)
            && other.name != s.name
            && !requires.contains(&&other.name)
        {
            requires.push(&other.name);
        }
    }
    let wanted = s
        .wants_info
        .iter()
        .filter(|w| !requires.contains(w) && **w != s.name);
    let edges: Vec<(String, bool)> = requires
        .iter()
        .map(|r| ((*r).clone(), false))
        .chain(wanted.map(|w| (w.clone(), true)))
        .collect();
    edges
        .into_iter()
        .map(|(child, wants_info)| {
            let cycle = path.contains(&child);
            let requires = if recursive && !cycle && !wants_info {
                path.push(child.clone());
                let below = children(env, &child, recursive, path);
                path.pop();
                below
            } else {
                Vec::new()
            };
            DepNode {
                service: child,
                instances: Vec::new(),
                wants_info,
                cycle,
                requires,
            }
        })
        .collect()
}

/// `deptree` as text: each service with its instances, and its dependencies as a tree.
pub fn render_deptree(
    env: &Environment,
    names: &[String],
    recursive: bool,
) -> Result<String, PlanError> {
    let mut out = String::new();
    for root in deptree(env, names, recursive)? {
        let placed: Vec<String> = root
            .instances
            .iter()
            .map(|p| format!("{} on {}", p.instance, p.ship))
            .collect();
        out.push_str(&format!("{} ({})\n", root.service, placed.join(", ")));
        draw(&root.requires, "", &mut out);
    }
    Ok(out)
}

fn draw(nodes: &[DepNode], prefix: &str, out: &mut String) {
    for (k, node) in nodes.iter().enumerate() {
        let last = k + 1 == nodes.len();
        let branch = if last { "└── " } else { "├── " };
        let mut label = node.service.clone();
        if node.wants_info {
            label.push_str(" (wants info)");
        }
        if node.cycle {
            label.push_str(" (cycle)");
        }
        out.push_str(&format!("{prefix}{branch}{label}\n"));
        let next_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
        draw(&node.requires, &next_prefix, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ENV: &str = r#"
name: t
ships:
  s1: {ip: 10.0.0.1}
  s2: {ip: 10.0.0.2}
services:
  zk:
    image: zk
    instances:
      zk-1: {ship: s1}
      zk-2: {ship: s2}
  kafka:
    image: kafka
    requires: [zk]
    instances:
      kafka-1: {ship: s1}
  web:
    image: web
    requires: [kafka]
    wants_info: [metrics]
    instances:
      web-1: {ship: s2, links: {data-1: data}}
  data:
    image: data
    instances:
      data-1: {ship: s2}
  metrics:
    image: m
    omit: true
    instances:
      metrics-1: {ship: s1}
"#;

    fn env() -> Environment {
        match crate::config::load_str(ENV, "t.yaml", Path::new(".")) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.instances().collect()
    }

    fn sel(names: &[&str]) -> Selection {
        Selection {
            names: names.iter().map(|s| s.to_string()).collect(),
            ..Selection::default()
        }
    }

    #[test]
    fn graph_edges() {
        let env = env();
        let g = Graph::new(&env);
        let web = g.index_of("web-1").unwrap_or(usize::MAX);
        let kafka = g.index_of("kafka-1").unwrap_or(usize::MAX);
        let data = g.index_of("data-1").unwrap_or(usize::MAX);
        let metrics = g.index_of("metrics-1").unwrap_or(usize::MAX);
        assert_eq!(g.nodes[web].deps, vec![kafka, data]);
        assert_eq!(g.nodes[web].info, vec![metrics]);
        assert_eq!(g.nodes[kafka].deps.len(), 2);
    }

    #[test]
    fn no_names_means_everything_but_omitted_in_dependency_order() {
        let env = env();
        let g = Graph::new(&env);
        let plan = select(&env, &g, &Selection::default()).unwrap_or_default();
        let order = names(&plan);
        assert!(!order.contains(&"metrics-1"));
        let pos = |n: &str| order.iter().position(|x| *x == n).unwrap_or(usize::MAX);
        assert!(pos("zk-1") < pos("kafka-1") && pos("zk-2") < pos("kafka-1"));
        assert!(pos("kafka-1") < pos("web-1") && pos("data-1") < pos("web-1"));
        for (i, step) in plan.steps.iter().enumerate() {
            assert!(step.deps.iter().all(|d| *d < i));
        }
    }

    #[test]
    fn deptree_shows_the_service_that_volumes_from_depends_on() {
        let env = crate::config::load_str(
            "name: t\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  data: {image: d, instances: {data-1: {ship: s1}}}\n  app: {image: a, instances: {app-1: {ship: s1, volumes_from: [data-1]}}}\n",
            "t.yaml",
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let tree = render_deptree(&env, &["app".into()], true).unwrap_or_default();
        assert_eq!(tree, "app (app-1 on s1)\n└── data\n");
    }

    #[test]
    fn an_omitted_service_that_a_selected_one_requires_comes_along_with_no_names() {
        let env = crate::config::load_str(
            "name: t\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  db: {image: d, omit: true, instances: {db-1: {ship: s1}}}\n  app: {image: a, requires: [db], instances: {app-1: {ship: s1}}}\n  tool: {image: t, omit: true, instances: {tool-1: {ship: s1}}}\n",
            "t.yaml",
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let g = Graph::new(&env);
        let plan = select(&env, &g, &Selection::default()).unwrap_or_default();
        assert_eq!(names(&plan), vec!["db-1", "app-1"]);
        // -i: exactly what is selected, as in MaestroNG.
        let ignoring = Selection {
            ignore_dependencies: true,
            ..Selection::default()
        };
        let plan = select(&env, &g, &ignoring).unwrap_or_default();
        assert_eq!(names(&plan), vec!["app-1"]);
    }

    #[test]
    fn omitted_service_is_selected_when_named_or_for_status() {
        let env = env();
        let g = Graph::new(&env);
        let plan = select(&env, &g, &sel(&["metrics"])).unwrap_or_default();
        assert_eq!(names(&plan), vec!["metrics-1"]);
        let status = Selection {
            include_omitted: true,
            ..Selection::default()
        };
        let plan = select(&env, &g, &status).unwrap_or_default();
        assert!(names(&plan).contains(&"metrics-1"));
    }

    #[test]
    fn with_dependencies_forward_and_reverse() {
        let env = env();
        let g = Graph::new(&env);
        let only = select(&env, &g, &sel(&["kafka"])).unwrap_or_default();
        assert_eq!(names(&only), vec!["kafka-1"]);
        let start = Selection {
            with_dependencies: true,
            ..sel(&["kafka"])
        };
        let plan = select(&env, &g, &start).unwrap_or_default();
        assert_eq!(names(&plan), vec!["zk-1", "zk-2", "kafka-1"]);
        assert_eq!(plan.steps[2].deps, vec![0, 1]);
        let stop = Selection {
            with_dependencies: true,
            direction: Direction::Reverse,
            ..sel(&["zk-1"])
        };
        let plan = select(&env, &g, &stop).unwrap_or_default();
        assert_eq!(names(&plan), vec!["web-1", "kafka-1", "zk-1"]);
    }

    #[test]
    fn ordering_survives_unselected_middle_and_ignore_drops_it() {
        let env = env();
        let g = Graph::new(&env);
        let plan = select(&env, &g, &sel(&["web-1", "zk-1"])).unwrap_or_default();
        assert_eq!(names(&plan), vec!["zk-1", "web-1"]);
        assert_eq!(plan.steps[1].deps, vec![0]);
        let ignore = Selection {
            ignore_dependencies: true,
            ..sel(&["web-1", "zk-1"])
        };
        let plan = select(&env, &g, &ignore).unwrap_or_default();
        assert!(plan.steps.iter().all(|s| s.deps.is_empty()));
    }

    #[test]
    fn filters_are_globs() {
        let env = env();
        let g = Graph::new(&env);
        let s = Selection {
            container_filter: vec!["zk-*".into()],
            ship_filter: vec!["s2".into()],
            ..Selection::default()
        };
        let plan = select(&env, &g, &s).unwrap_or_default();
        assert_eq!(names(&plan), vec!["zk-2"]);
        let bad = Selection {
            container_filter: vec!["[".into()],
            ..Selection::default()
        };
        assert!(matches!(
            select(&env, &g, &bad),
            Err(PlanError::BadPattern { .. })
        ));
    }

    #[test]
    fn unknown_name_suggests() {
        let env = env();
        let g = Graph::new(&env);
        let err = select(&env, &g, &sel(&["kafak"])).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("did you mean `kafka`?"), "{msg}");
    }

    #[test]
    fn deptree_drawing() {
        let env = env();
        let flat = render_deptree(&env, &["web".into()], false).unwrap_or_default();
        assert_eq!(
            flat,
            "web (web-1 on s2)\n├── kafka\n└── metrics (wants info)\n"
        );
        let deep = render_deptree(&env, &["web".into()], true).unwrap_or_default();
        assert_eq!(
            deep,
            "web (web-1 on s2)\n├── kafka\n│   └── zk\n└── metrics (wants info)\n"
        );
        let all = render_deptree(&env, &[], false).unwrap_or_default();
        assert!(all.starts_with("zk (zk-1 on s1, zk-2 on s2)\n"), "{all}");
        assert!(!all.contains("metrics (metrics-1"));
    }

    #[test]
    fn restart_stops_dependents_first_then_starts_dependencies_first() {
        let env = env();
        let g = Graph::new(&env);
        let sel = Selection {
            with_dependencies: true,
            ..sel(&["zk-1"])
        };
        let (stop, start) = select_restart(&env, &g, &sel).unwrap_or_default();
        assert_eq!(names(&stop), vec!["web-1", "kafka-1", "zk-1"]);
        assert_eq!(names(&start), vec!["zk-1", "kafka-1", "web-1"]);
        assert_eq!(start.direction, Direction::Forward);
    }
}
