//! Deployments of an instance, and what a rollback returns to.
//!
//! Every container `start` creates records its deployment and the ones before it in labels
//! (see [`Deployment`]). When `start` replaces an instance's container, it does not destroy
//! the old one: it stops it and keeps it, renamed, on the ship, so that a rollback can bring
//! back exactly what ran (its image id, its config with the values of the time, secrets
//! included, which no label holds) without anything stored on the laptop. Two names:
//!
//! - `NAME.replaced`: the container a deployment in progress replaced. It stays under this
//!   name until the new container has started and passed its checks; while it is there, the
//!   current container is a deployment that has not succeeded (yet), and a rollback returns
//!   to it.
//! - `NAME.previous`: once the new container has succeeded, the replaced one takes this name
//!   (the older `.previous` goes): the deployment before the current one.
//!
//! So what a rollback needs is kept until the next deployment succeeds: a deployment that
//! fails is itself replaced (and removed) by the next `start`, while the last good one stays
//! `.replaced`. `clean` removes a `.previous` that a `.replaced` has made older than the
//! rollback point. A container maestro did not create (adopted with `--adopt`) is not kept:
//! it has no record to return to.
//!
//! Kept containers carry the instance's labels (they are the environment's, and ownership
//! holds for them as for the current one), so everything that lists an environment's
//! containers tells them from the current one by name.

use std::sync::Arc;

use serde::Serialize;

use crate::config::Environment;
use crate::docker::{ContainerStatus, Deployment, ManagedContainer, SPEC_HASH_LABEL};
use crate::orchestrate::engine::fleet::Fleet;
use crate::orchestrate::observe::status::{self, ShipListing};
use crate::orchestrate::plan::container::Kept;
use crate::orchestrate::plan::select::Plan;

/// What a container of an instance is to its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The instance's container.
    Current,
    /// Kept: what `rollback` returns to.
    RollbackTarget,
    /// Kept, older than the rollback target (`clean` removes it).
    Older,
    /// Only its record is left, in a newer container's labels.
    Removed,
}

/// One deployment of an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentRow {
    pub role: Role,
    /// The container on the ship, when it is still there.
    pub container: Option<String>,
    /// Its state, when it is still there.
    pub state: Option<ContainerStatus>,
    /// The record; `None` for a container created before maestro recorded deployments.
    pub record: Option<Deployment>,
    /// When the record is missing: the container's creation time, image and spec hash.
    pub created: Option<u64>,
    pub image: String,
    pub image_id: String,
    pub spec_hash: Option<String>,
}

impl DeploymentRow {
    /// Seconds since the epoch of the deployment (the container's creation without a record).
    pub fn at(&self) -> u64 {
        self.record
            .as_ref()
            .map_or(self.created.unwrap_or_default(), |r| r.at)
    }
}

/// The deployments of one instance, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceHistory {
    pub instance: String,
    pub service: String,
    pub ship: String,
    /// Why the ship could not be asked; the deployments are then unknown.
    pub unreachable: Option<String>,
    pub deployments: Vec<DeploymentRow>,
}

/// `history`'s sequence: one listing of each ship of `plan`, all at once, read into each
/// instance's deployments.
pub async fn deployments(
    env: &Environment,
    plan: &Plan,
    fleet: &Arc<Fleet>,
) -> Vec<InstanceHistory> {
    let observed = status::gather(env, fleet).await;
    plan.steps
        .iter()
        .map(|step| {
            let mut history = InstanceHistory {
                instance: step.instance.clone(),
                service: step.service.clone(),
                ship: step.ship.clone(),
                unreachable: None,
                deployments: Vec::new(),
            };
            match observed.listings.get(&step.ship) {
                Some(ShipListing::Listed(containers)) => {
                    history.deployments = of_instance(containers, &step.instance);
                }
                Some(ShipListing::Down { message, .. }) => {
                    history.unreachable = Some(message.clone());
                }
                None => history.unreachable = Some("not asked".into()),
            }
            history
        })
        .collect()
}

/// An instance's deployments among a ship's containers of the environment: its container,
/// the kept ones, and the records of removed ones that the containers carry, newest first.
pub fn of_instance(containers: &[ManagedContainer], instance: &str) -> Vec<DeploymentRow> {
    let named = |name: &str| containers.iter().find(|c| c.name == name);
    let replaced = named(&Kept::Replaced.name(instance));
    let previous = named(&Kept::Previous.name(instance));
    let mut rows: Vec<DeploymentRow> = Vec::new();
    let mut add = |container: &ManagedContainer, role: Role| {
        rows.push(DeploymentRow {
            role,
            container: Some(container.name.clone()),
            state: Some(container.state),
            record: Deployment::of(&container.labels),
            created: u64::try_from(container.created).ok(),
            image: container.image.clone(),
            image_id: container.image_id.clone(),
            spec_hash: container.labels.get(SPEC_HASH_LABEL).cloned(),
        });
    };
    let current = named(instance);
    if let Some(c) = current {
        add(c, Role::Current);
    }
    match (replaced, previous) {
        (Some(r), Some(p)) => {
            add(r, Role::RollbackTarget);
            add(p, Role::Older);
        }
        (Some(kept), None) | (None, Some(kept)) => add(kept, Role::RollbackTarget),
        (None, None) => {}
    }
    // Each container carries the records before it; together they go furthest back (a
    // restored container's own are older than those of the one it was rolled back from).
    let mut shown: Vec<Deployment> = rows.iter().filter_map(|r| r.record.clone()).collect();
    for container in [current, replaced, previous].into_iter().flatten() {
        for record in Deployment::history_of(&container.labels) {
            let same = |r: &Deployment| r.at == record.at && r.spec_hash == record.spec_hash;
            if shown.iter().any(same) {
                continue;
            }
            shown.push(record.clone());
            rows.push(DeploymentRow {
                role: Role::Removed,
                container: None,
                state: None,
                image: record.image.clone(),
                image_id: record.image_id.clone(),
                spec_hash: Some(record.spec_hash.clone()),
                created: None,
                record: Some(record),
            });
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.at()));
    rows
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn container(
        name: &str,
        created: i64,
        record: Option<Deployment>,
        earlier: &[Deployment],
    ) -> ManagedContainer {
        let mut labels = BTreeMap::new();
        if let Some(record) = &record {
            labels.extend(record.labels(earlier));
        }
        ManagedContainer {
            name: name.into(),
            id: format!("id-{name}"),
            environment: "env".into(),
            service: "web".into(),
            instance: "web-1".into(),
            state: ContainerStatus::Exited,
            status: String::new(),
            age: None,
            exit_code: None,
            created,
            image: "web".into(),
            image_id: "sha256:x".into(),
            spec_hash: None,
            health: None,
            ports: Vec::new(),
            labels,
        }
    }

    fn record(at: u64, succeeded: bool) -> Deployment {
        Deployment {
            at,
            by: "alice@laptop".into(),
            image: format!("web:v{at}"),
            image_id: format!("sha256:{at}"),
            spec_hash: format!("h{at}"),
            succeeded,
        }
    }

    #[test]
    fn kept_names_belong_to_their_instance_only() {
        assert!(Kept::is_kept("web-1.previous", "web-1"));
        assert!(Kept::is_kept("web-1.replaced", "web-1"));
        assert!(!Kept::is_kept("web-1", "web-1"));
        assert!(!Kept::is_kept("web-10.previous", "web-1"));
        assert!(!Kept::is_kept("web-1.previous", "web-10"));
    }

    #[test]
    fn a_failed_deployment_points_the_rollback_at_the_replaced_container() {
        let containers = vec![
            container(
                "web-1",
                30,
                Some(record(30, true)),
                &[record(20, true), record(10, true)],
            ),
            container(
                "web-1.replaced",
                20,
                Some(record(20, true)),
                &[record(10, true)],
            ),
            container(
                "web-1.previous",
                10,
                Some(record(10, true)),
                &[record(5, true)],
            ),
        ];
        let rows = of_instance(&containers, "web-1");
        let roles: Vec<(u64, Role)> = rows.iter().map(|r| (r.at(), r.role)).collect();
        assert_eq!(
            roles,
            vec![
                (30, Role::Current),
                (20, Role::RollbackTarget),
                (10, Role::Older),
                (5, Role::Removed)
            ]
        );
    }

    #[test]
    fn records_without_a_container_are_shown_once_and_containers_without_a_record_still_show() {
        let containers = vec![
            container("web-1", 30, Some(record(30, true)), &[record(20, false)]),
            container("web-1.previous", 10, None, &[]),
        ];
        let rows = of_instance(&containers, "web-1");
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[1].role, Role::Removed);
        assert!(!rows[1].record.as_ref().is_some_and(|r| r.succeeded));
        // The record-less kept container is shown by its creation time, beside its record.
        assert!(
            rows.iter()
                .any(|r| r.role == Role::RollbackTarget && r.record.is_none())
        );
    }
}
