//! `maestro plan`: what `start` would do to each instance (create, re-create and why,
//! field by field, start, nothing, refuse someone else's container), from one listing per
//! ship and one image lookup per (ship, image), all at once, without changing anything. The
//! decision mirrors `start`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use serde::Serialize;

use crate::config::Environment;
use crate::docker::{ContainerSpec, ImageFacts, ManagedContainer, SpecChange};
use crate::orchestrate::engine::fleet::Fleet;
use crate::orchestrate::observe::status::{
    Observation, ShipListing, container_of, gather, short_id,
};
use crate::orchestrate::plan::select::Plan;

/// What `start` would do to one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum PlannedAction {
    /// No container: create (and pull first when the ship lacks the image).
    Create { pull: bool },
    /// The container no longer matches: remove it and create it anew.
    Recreate {
        reasons: Vec<String>,
        /// Field-by-field, when the container recorded the spec it was created from.
        changes: Vec<SpecChange>,
    },
    /// Stopped, same spec and image: start it.
    Start,
    /// Running, same spec and image.
    Nothing,
    /// Its ship could not be asked.
    Unknown { cause: String, message: String },
    /// A container with the instance's name that is not this environment's: `start` would
    /// refuse it (and `start --adopt` would re-create it).
    Refused { reason: String },
}

/// One line of `plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub index: usize,
    pub instance: String,
    pub service: String,
    pub ship: String,
    #[serde(flatten)]
    pub action: PlannedAction,
}

/// The image ids a ship has, by image name as the environment writes it; `None` = the ship
/// does not have the image.
pub type ImageIds = BTreeMap<(String, String), Option<String>>;

/// `plan`'s sequence: what `start` would do to each instance of `plan`, from one listing per
/// ship and one image lookup per (ship, image), all at once; and the lookups that failed, as
/// warnings (a failed lookup leaves the image unknown, which reads as "pull first").
pub async fn what_start_would_do(
    env: &Environment,
    plan: &Plan,
    fleet: &Arc<Fleet>,
) -> (Vec<PlanRow>, Vec<String>) {
    let specs: BTreeMap<String, ContainerSpec> = plan
        .steps
        .iter()
        .filter_map(|step| {
            let (service, instance) = env.instance(&step.instance)?;
            Some((
                step.instance.clone(),
                crate::orchestrate::plan::spec::container_spec(env, service, instance),
            ))
        })
        .collect();
    let observed = gather(env, fleet).await;
    let mut wanted: Vec<(String, String)> = plan
        .steps
        .iter()
        .filter_map(|s| Some((s.ship.clone(), specs.get(&s.instance)?.image.clone())))
        .collect();
    wanted.sort();
    wanted.dedup();
    let lookups = wanted.into_iter().filter_map(|(ship, image)| {
        let docker_ship = observed.ships.get(&ship)?.docker.clone();
        Some(async move {
            let facts = docker_ship.image(&image).await;
            ((ship, image), facts)
        })
    });
    let mut images = ImageIds::new();
    let mut facts = BTreeMap::new();
    let mut lookup_errors = Vec::new();
    for (key, found) in join_all(lookups).await {
        match found {
            Ok(found) => {
                images.insert(key.clone(), found.as_ref().map(|f| f.id.clone()));
                if let Some(found) = found {
                    facts.insert(key, found);
                }
            }
            Err(err) => lookup_errors.push(err.to_string()),
        }
    }
    lookup_errors.extend(compose_habit_hints(env, plan, &facts));
    lookup_errors.extend(links_outside_the_file(env, plan, &observed).await);
    let mut rows = plan_actions(plan, &observed.listings, &specs, &images);
    read_deployed_values(&mut rows, &specs, &observed).await;
    find_foreign_containers(env, &mut rows, &specs, &observed).await;
    for row in &mut rows {
        if let PlannedAction::Recreate { changes, .. } = &mut row.action {
            mask_secret_fields(changes);
        }
    }
    (rows, lookup_errors)
}

/// Hints for a file that looks written with compose's meaning in mind where MaestroNG's
/// meaning stays, judged against what the image declares, so that a correct MaestroNG file is
/// never warned about on its text alone:
/// - a port `8080:80` is CONTAINER:HOST in MaestroNG's format (compose reads HOST:CONTAINER):
///   when the image exposes the host side and not the container side, it was probably meant
///   the other way round;
/// - a schema 1 volume `{/a: /b}` mounts the ship's /b at /a (container first; compose and
///   schema 2 read host first): when the image declares /b as a volume and not /a, likewise.
pub fn compose_habit_hints(
    env: &Environment,
    plan: &Plan,
    images: &BTreeMap<(String, String), ImageFacts>,
) -> Vec<String> {
    let mut hints = Vec::new();
    for step in &plan.steps {
        let Some((_, instance)) = env.instance(&step.instance) else {
            continue;
        };
        let Some(image) = images.get(&(step.ship.clone(), instance.image.clone())) else {
            continue;
        };
        for port in &instance.ports {
            if !port.exposed.is_single() || !port.external.is_single() {
                continue;
            }
            let (inside, outside) = (port.exposed.start, port.external.start);
            let proto = port.protocol.as_str();
            let exposes = |p: u16| {
                image
                    .exposed_ports
                    .iter()
                    .any(|e| *e == format!("{p}/{proto}"))
            };
            if inside != outside && exposes(outside) && !exposes(inside) {
                hints.push(format!(
                    "instance {}: port `{}` publishes container port {inside} as the ship's port \
                     {outside}, but the image {} exposes {outside}/{proto}, not {inside}/{proto}. \
                     In maestro's (MaestroNG's) format `{inside}:{outside}` is CONTAINER:HOST, \
                     the reverse of compose's; if the container listens on {outside}, write \
                     `{outside}:{inside}`, or `{{exposed: {outside}, external: {inside}}}`",
                    instance.name, port.name, instance.image
                ));
            }
        }
        if env.schema != 1 {
            continue;
        }
        for bind in &instance.volumes {
            let declares = |path: &str| image.volumes.iter().any(|v| v == path);
            if bind.host.starts_with('/') && declares(&bind.host) && !declares(&bind.container) {
                hints.push(format!(
                    "instance {}: the volume `{}: {}` mounts the ship's {} at {} in the \
                     container (schema 1 reads volumes container-first), but the image {} \
                     declares the volume {}. If you meant the ship's {} at {}, write `{}: {}`, \
                     or use schema 2 (`__maestro: {{schema: 2}}`), whose volumes read host-first \
                     as compose's do",
                    instance.name,
                    bind.container,
                    bind.host,
                    bind.host,
                    bind.container,
                    instance.image,
                    bind.host,
                    bind.container,
                    bind.host,
                    bind.host,
                    bind.container
                ));
            }
        }
    }
    hints
}

/// The old values of the fields the spec label records only as fingerprints (environment,
/// command, ...), read from each re-created container's own config: one inspect per such
/// container, all at once.
async fn read_deployed_values(
    rows: &mut [PlanRow],
    specs: &BTreeMap<String, ContainerSpec>,
    observed: &Observation,
) {
    let fingerprinted =
        |changes: &[crate::docker::SpecChange]| changes.iter().any(|c| c.old_is_fingerprint());
    let inspections = rows.iter().enumerate().filter_map(|(k, row)| {
        let PlannedAction::Recreate { changes, .. } = &row.action else {
            return None;
        };
        if !fingerprinted(changes) {
            return None;
        }
        let spec = specs.get(&row.instance)?;
        let ship = observed.ships.get(&row.ship)?.docker.clone();
        Some(async move { (k, ship.inspect(&spec.name).await) })
    });
    for (k, inspected) in join_all(inspections).await {
        let (Some(row), Ok(Some(details))) = (rows.get_mut(k), inspected) else {
            continue;
        };
        let (Some(spec), Some(recorded)) = (specs.get(&row.instance), details.recorded_spec())
        else {
            continue;
        };
        if let PlannedAction::Recreate { changes, .. } = &mut row.action {
            *changes = spec.changes_since(&recorded, Some(&details));
        }
    }
}

/// The rows `plan_actions` would create, checked for a container of the same name that the
/// listing (by this environment's labels) could not see: `start` would refuse it. One inspect
/// per such row, all at once.
/// Links to containers that are not instances of the file (MaestroNG passes them to Docker,
/// which links the container of that name on the ship): whether each ship has it, one
/// inspection per link, all at once. Docker refuses to create a container whose link it
/// cannot find, so a missing one is said before `start` fails on it.
async fn links_outside_the_file(
    env: &Environment,
    plan: &Plan,
    observed: &Observation,
) -> Vec<String> {
    let checks = plan.steps.iter().flat_map(|step| {
        let links = env
            .instance(&step.instance)
            .map(|(_, instance)| instance.links.clone())
            .unwrap_or_default();
        links
            .into_iter()
            .filter(|link| env.instance(&link.target).is_none())
            .filter_map(|link| {
                let docker = observed.ships.get(&step.ship)?.docker.clone();
                let (instance, ship) = (step.instance.clone(), step.ship.clone());
                Some(async move {
                    let found = docker.inspect(&link.target).await;
                    (instance, ship, link.target, found)
                })
            })
            .collect::<Vec<_>>()
    });
    let mut out = Vec::new();
    for (instance, ship, target, found) in join_all(checks).await {
        match found {
            Ok(Some(_)) => out.push(format!(
                "{instance} links `{target}`, not an instance of this file: ship {ship} has a \
                 container of that name, which Docker will link"
            )),
            Ok(None) => out.push(format!(
                "{instance} links `{target}`, not an instance of this file, and ship {ship} has \
                 no container of that name: Docker will refuse to create {instance}"
            )),
            Err(err) => out.push(format!(
                "{instance} links `{target}`: cannot tell whether ship {ship} has it: {err}"
            )),
        }
    }
    out
}

async fn find_foreign_containers(
    env: &Environment,
    rows: &mut [PlanRow],
    specs: &BTreeMap<String, ContainerSpec>,
    observed: &Observation,
) {
    let inspections = rows.iter().enumerate().filter_map(|(k, row)| {
        if !matches!(row.action, PlannedAction::Create { .. }) {
            return None;
        }
        let spec = specs.get(&row.instance)?;
        let ship = observed.ships.get(&row.ship)?.docker.clone();
        Some(async move { (k, ship.inspect(&spec.name).await) })
    });
    for (k, inspected) in join_all(inspections).await {
        let (Some(row), Ok(Some(found))) = (rows.get_mut(k), inspected) else {
            continue;
        };
        if let Some(why) =
            crate::orchestrate::plan::container::foreign(&found, &env.name, &row.instance)
        {
            row.action = PlannedAction::Refused {
                reason: crate::orchestrate::plan::container::refusal(
                    found.name.trim_start_matches('/'),
                    &row.ship,
                    &why,
                ),
            };
        }
    }
}

/// Values of secret-named environment variables shown as `***`, old and new: an old value is
/// no longer in the file, so the output's masking does not know it.
fn mask_secret_fields(changes: &mut [crate::docker::SpecChange]) {
    let masker = crate::secrets::global();
    for change in changes {
        let secret = change
            .field
            .strip_prefix("env.")
            .is_some_and(|name| masker.is_secret_name(name));
        if secret {
            for value in [&mut change.old, &mut change.new].into_iter().flatten() {
                *value = crate::secrets::MASK.to_string();
            }
        }
    }
}

/// What `start` would do for each instance of `plan`: `specs` are the wanted container specs
/// by instance, `images` the ship's current id of each (ship, image).
///
/// The decision mirrors `start`: a running container whose spec hash and image id match is
/// left alone; a container without our spec hash, or with another one, or whose image is no
/// longer the one the ship has under that name, is re-created.
pub fn plan_actions(
    plan: &Plan,
    listings: &BTreeMap<String, ShipListing>,
    specs: &BTreeMap<String, ContainerSpec>,
    images: &ImageIds,
) -> Vec<PlanRow> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(k, step)| {
            let action = match (listings.get(&step.ship), specs.get(&step.instance)) {
                (Some(ShipListing::Down { cause, message }), _) => PlannedAction::Unknown {
                    cause: cause.clone(),
                    message: message.clone(),
                },
                (None, _) => PlannedAction::Unknown {
                    cause: "not-asked".into(),
                    message: format!("ship {} was not asked", step.ship),
                },
                (_, None) => PlannedAction::Unknown {
                    cause: "no-spec".into(),
                    message: format!("no container spec for {}", step.instance),
                },
                (Some(ShipListing::Listed(containers)), Some(spec)) => {
                    let image_id = images
                        .get(&(step.ship.clone(), spec.image.clone()))
                        .cloned()
                        .flatten();
                    action_for(container_of(containers, &step.instance), spec, image_id)
                }
            };
            PlanRow {
                index: k + 1,
                instance: step.instance.clone(),
                service: step.service.clone(),
                ship: step.ship.clone(),
                action,
            }
        })
        .collect()
}

fn action_for(
    container: Option<&ManagedContainer>,
    spec: &ContainerSpec,
    image_id: Option<String>,
) -> PlannedAction {
    let Some(container) = container else {
        return PlannedAction::Create {
            pull: image_id.is_none(),
        };
    };
    let mut reasons = Vec::new();
    let mut changes = Vec::new();
    match container.spec_hash.as_deref() {
        None => reasons.push("the container has no spec hash (not created by maestro)".into()),
        Some(hash) if hash != spec.hash() => match container.recorded_spec() {
            Some(recorded) => {
                changes = spec.changes_since(&recorded, None);
                reasons.push(format!(
                    "the container spec changed ({} field{})",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" }
                ));
            }
            None => reasons.push("the container spec changed".into()),
        },
        Some(_) => {}
    }
    if let Some(id) = image_id
        && id != container.image_id
    {
        reasons.push(format!(
            "the image changed: {} -> {}",
            short_id(&container.image_id),
            short_id(&id)
        ));
    }
    if !reasons.is_empty() {
        PlannedAction::Recreate { reasons, changes }
    } else if container.state.is_up() {
        PlannedAction::Nothing
    } else {
        PlannedAction::Start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker;
    use crate::docker::ContainerStatus;
    use crate::orchestrate::observe::status::tests::{container, env, plan};
    use std::path::Path;

    #[test]
    fn compose_habits_are_hinted_only_when_the_image_disagrees() {
        let text = "name: t\nships:\n  a: {ip: 10.0.0.1}\nservices:\n  web:\n    image: nginx\n    \
                    instances:\n      web-1:\n        ship: a\n        ports: {http: \"8080:80\", \
                    api: \"9000:9000\", admin: \"8443:443\"}\n        volumes: {/data: \
                    /var/lib/mysql, /conf: /srv/conf}\n";
        let env = crate::config::load_str(text, "t.yaml", Path::new(".")).expect("valid");
        let plan = plan(&env, false);
        let images = BTreeMap::from([(
            ("a".to_string(), "nginx".to_string()),
            ImageFacts {
                id: "sha256:1".into(),
                exposed_ports: vec!["80/tcp".into(), "8443/tcp".into(), "443/tcp".into()],
                volumes: vec!["/var/lib/mysql".into()],
            },
        )]);
        let hints = compose_habit_hints(&env, &plan, &images);
        assert_eq!(hints.len(), 2, "{hints:#?}");
        // 8080:80 with an image exposing 80 only: compose's reading, most likely.
        assert!(
            hints[0].contains("port `http` publishes container port 8080 as the ship's port 80")
                && hints[0].contains("write `80:8080`"),
            "{}",
            hints[0]
        );
        // Schema 1: /data: /var/lib/mysql mounts the ship's /var/lib/mysql at /data.
        assert!(
            hints[1].contains("the image nginx declares the volume /var/lib/mysql")
                && hints[1].contains("write `/var/lib/mysql: /data`"),
            "{}",
            hints[1]
        );
        // A file that agrees with its image (or an image that says nothing) gets no hint.
        let silent = BTreeMap::from([(
            ("a".to_string(), "nginx".to_string()),
            ImageFacts {
                id: "sha256:1".into(),
                ..ImageFacts::default()
            },
        )]);
        assert!(compose_habit_hints(&env, &plan, &silent).is_empty());
    }

    #[test]
    fn plan_decides_create_recreate_start_nothing() {
        let env = env();
        let plan = plan(&env, false);
        let spec_of = |name: &str| {
            let (service, instance) = env.instance(name).expect("instance");
            crate::orchestrate::plan::spec::container_spec(&env, service, instance)
        };
        let specs: BTreeMap<String, ContainerSpec> = ["db-1", "web-1", "web-2"]
            .iter()
            .map(|n| (n.to_string(), spec_of(n)))
            .collect();
        let created_from = |spec: &ContainerSpec, state, status: &str| {
            let mut c = container(&spec.name, state, status);
            c.spec_hash = Some(spec.hash());
            c.labels
                .insert(docker::SPEC_LABEL.to_string(), spec.canonical_json());
            c
        };
        // db-1 runs as specified; web-1 stopped as specified; web-2 ran an older spec.
        let db = created_from(&specs["db-1"], ContainerStatus::Running, "Up 1 second");
        let web1 = created_from(
            &specs["web-1"],
            ContainerStatus::Exited,
            "Exited (0) 1 second ago",
        );
        let mut older = specs["web-2"].clone();
        older.env.retain(|(k, _)| k != "DOCKER_TAG");
        older.env.push(("EXTRA".into(), "1".into()));
        let web2 = created_from(&older, ContainerStatus::Running, "Up 1 second");
        let listings = BTreeMap::from([
            ("a".to_string(), ShipListing::Listed(vec![db, web1])),
            ("b".to_string(), ShipListing::Listed(vec![web2])),
        ]);
        let images = ImageIds::from([
            (
                ("a".into(), "db:9".into()),
                Some("sha256:aaaaaaaaaaaa".into()),
            ),
            (
                ("a".into(), "web".into()),
                Some("sha256:aaaaaaaaaaaa".into()),
            ),
            (
                ("b".into(), "web".into()),
                Some("sha256:aaaaaaaaaaaa".into()),
            ),
        ]);
        let rows = plan_actions(&plan, &listings, &specs, &images);
        assert_eq!(rows[0].action, PlannedAction::Nothing);
        assert_eq!(rows[1].action, PlannedAction::Start);
        match &rows[2].action {
            PlannedAction::Recreate { reasons, changes } => {
                assert!(reasons[0].contains("spec changed"), "{reasons:?}");
                let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                assert_eq!(fields, ["env.DOCKER_TAG", "env.EXTRA"]);
                assert_eq!(changes[1].old.as_deref(), Some("1"));
                assert_eq!(changes[1].new, None);
            }
            other => panic!("{other:?}"),
        }

        // A newer image under the same name re-creates; a missing container is created.
        let images = ImageIds::from([
            (
                ("a".into(), "db:9".into()),
                Some("sha256:bbbbbbbbbbbb".into()),
            ),
            (("a".into(), "web".into()), None),
        ]);
        let listings = BTreeMap::from([
            (
                "a".to_string(),
                ShipListing::Listed(vec![created_from(
                    &specs["db-1"],
                    ContainerStatus::Running,
                    "Up 1 second",
                )]),
            ),
            (
                "b".to_string(),
                ShipListing::Down {
                    cause: "timeout".into(),
                    message: "late".into(),
                },
            ),
        ]);
        let rows = plan_actions(&plan, &listings, &specs, &images);
        assert!(
            matches!(&rows[0].action, PlannedAction::Recreate { reasons, .. } if reasons[0].contains("aaaaaaa -> bbbbbbb"))
        );
        assert_eq!(rows[1].action, PlannedAction::Create { pull: true });
        assert!(matches!(rows[2].action, PlannedAction::Unknown { .. }));
    }
}
