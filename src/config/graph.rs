//! The one dependency-graph walk: a topological order, or the cycle that prevents one.
//!
//! The validator (service and instance cycles), the planner (start order) and the executor
//! (jobs that could never be released) all ask this module, so that a cycle is found, and
//! named, one way. It lives in `config`, beside every layer, because the validator is its
//! first user and `orchestrate` already reads `config`.
//!
//! The instance graph's edges are built here too, once ([`instance_edges`]): the validator's
//! instance cycle check and the planner's graph used to build them each their own way, and a
//! cycle the one saw the other must see.

use std::collections::{BTreeSet, HashMap};

use super::model::Environment;

/// One instance's edges, by index in `env.instances()` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceEdges {
    /// What must be up first: every instance of the services its service `requires`, and its
    /// `volumes_from` and `links` targets; never itself nor its own service. Sorted.
    pub deps: Vec<usize>,
    /// The instances of its `wants_info` services that are not already in `deps`:
    /// information, no ordering. Sorted.
    pub info: Vec<usize>,
}

/// Every instance's edges, in `env.instances()` order. A name that matches no instance
/// gives no edge (the reader reports unknown names).
pub fn instance_edges(env: &Environment) -> Vec<InstanceEdges> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut by_service: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, (s, i)) in env.instances().enumerate() {
        by_name.insert(i.name.as_str(), k);
        by_service.entry(s.name.as_str()).or_default().push(k);
    }
    let of_services = |services: &[String], own: &str| -> Vec<usize> {
        let mut v: Vec<usize> = services
            .iter()
            .filter(|s| s.as_str() != own)
            .flat_map(|s| by_service.get(s.as_str()).into_iter().flatten().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    env.instances()
        .map(|(service, inst)| {
            let mut deps = of_services(&service.requires, &service.name);
            for target in inst
                .volumes_from
                .iter()
                .chain(inst.links.iter().map(|l| &l.target))
            {
                if *target != inst.name {
                    deps.extend(by_name.get(target.as_str()).copied());
                }
            }
            deps.sort_unstable();
            deps.dedup();
            let info = of_services(&service.wants_info, &service.name)
                .into_iter()
                .filter(|i| !deps.contains(i))
                .collect();
            InstanceEdges { deps, info }
        })
        .collect()
}

/// What each instance waits for (the `deps` of [`instance_edges`]).
pub fn instance_deps(env: &Environment) -> Vec<Vec<usize>> {
    instance_edges(env).into_iter().map(|e| e.deps).collect()
}

/// No order exists: `cycle` is one cycle (first = last), and `stuck` every node on a cycle or
/// waiting behind one, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub cycle: Vec<usize>,
    pub stuck: Vec<usize>,
}

/// Kahn's algorithm over `nodes` (indices into `deps`; `deps[n]` are what `n` waits for), the
/// lowest index first among the ready ones. Dependencies outside `nodes` and on oneself are
/// ignored. On a cycle, walks unfinished dependencies from the lowest unfinished node until
/// one repeats.
pub fn toposort(nodes: &[usize], deps: &[Vec<usize>]) -> Result<Vec<usize>, Cycle> {
    let size = deps.len();
    let mut member = vec![false; size];
    for &n in nodes {
        member[n] = true;
    }
    let mut waiting = vec![0usize; size];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); size];
    for &n in nodes {
        for &d in &deps[n] {
            if member[d] && d != n {
                waiting[n] += 1;
                dependents[d].push(n);
            }
        }
    }
    let mut ready: BTreeSet<usize> = nodes.iter().copied().filter(|n| waiting[*n] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for &m in &dependents[n] {
            waiting[m] -= 1;
            if waiting[m] == 0 {
                ready.insert(m);
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    let mut stuck: Vec<usize> = nodes.iter().copied().filter(|n| waiting[*n] > 0).collect();
    stuck.sort_unstable();
    let mut path: Vec<usize> = Vec::new();
    // Where each node sits on the path, so that the walk stays linear on a long cycle.
    let mut at: Vec<Option<usize>> = vec![None; size];
    let mut current = stuck.first().copied();
    while let Some(c) = current {
        if let Some(pos) = at[c] {
            let mut cycle = path[pos..].to_vec();
            cycle.push(c);
            return Err(Cycle { cycle, stuck });
        }
        at[c] = Some(path.len());
        path.push(c);
        current = deps[c]
            .iter()
            .copied()
            .find(|d| member[*d] && *d != c && waiting[*d] > 0);
    }
    Err(Cycle { cycle: path, stuck })
}

/// [`toposort`] over every node.
pub fn toposort_all(deps: &[Vec<usize>]) -> Result<Vec<usize>, Cycle> {
    let nodes: Vec<usize> = (0..deps.len()).collect();
    toposort(&nodes, deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_edges_follow_requires_volumes_from_and_links() {
        let text = r#"
name: t
ships: {a: {ip: 10.0.0.1}}
services:
  db: {image: db, instances: {db-1: {ship: a}, db-2: {ship: a, volumes_from: [db-1]}}}
  web:
    image: web
    requires: [db]
    wants_info: [db, cache]
    instances: {web-1: {ship: a, links: {db-2: d}}}
  front: {image: front, instances: {front-1: {ship: a, links: {web-1: w}}}}
  cache: {image: cache, instances: {cache-1: {ship: a}}}
"#;
        let env = match crate::config::load_str(text, "t.yaml", std::path::Path::new(".")) {
            Ok(env) => env,
            Err(err) => panic!("{err}"),
        };
        let edges = instance_edges(&env);
        assert_eq!(edges[0], InstanceEdges::default());
        assert_eq!(edges[1].deps, vec![0], "volumes_from");
        assert_eq!(
            edges[2].deps,
            vec![0, 1],
            "requires, and a link already among them"
        );
        assert_eq!(edges[2].info, vec![4], "wants_info, minus what it requires");
        assert_eq!(edges[3].deps, vec![2], "a link");
        assert_eq!(instance_deps(&env)[2], vec![0, 1]);
    }

    #[test]
    fn orders_dependencies_first_lowest_index_first() {
        // 0 <- 2, 1 <- 2: 2 waits for 0 and 1.
        let deps = vec![vec![], vec![], vec![0, 1]];
        assert_eq!(toposort_all(&deps), Ok(vec![0, 1, 2]));
        let deps = vec![vec![1], vec![], vec![]];
        assert_eq!(toposort_all(&deps), Ok(vec![1, 0, 2]));
    }

    #[test]
    fn a_self_dependency_and_one_outside_the_nodes_are_ignored() {
        let deps = vec![vec![0], vec![0, 2], vec![]];
        assert_eq!(toposort(&[0, 1], &deps), Ok(vec![0, 1]));
    }

    #[test]
    fn a_cycle_is_named_from_its_lowest_node() {
        let deps = vec![vec![1], vec![2], vec![0]];
        assert_eq!(
            toposort_all(&deps).map_err(|c| c.cycle),
            Err(vec![0, 1, 2, 0])
        );
    }

    #[test]
    fn names_the_cycle_and_everything_stuck_behind_it() {
        // 0 -> 1 -> 2 -> 1 (a cycle of 1 and 2), 3 waits for 0, 4 free.
        let deps = vec![vec![1], vec![2], vec![1], vec![0], vec![]];
        let err = toposort_all(&deps).expect_err("a cycle");
        assert_eq!(err.cycle, vec![1, 2, 1]);
        assert_eq!(err.stuck, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert_eq!(toposort_all(&deps).map(|o| o.len()), Ok(n));
        let mut cyclic = deps;
        cyclic[0] = vec![n - 1];
        assert_eq!(toposort_all(&cyclic).map_err(|c| c.cycle.len()), Err(n + 1));
    }
}
