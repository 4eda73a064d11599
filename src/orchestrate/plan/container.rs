//! What a container found on a ship is to an instance of the file, decided from its name
//! and labels alone: one kept for a rollback ([`Kept`]), someone else's ([`foreign`]), one
//! that no longer matches the file ([`reason_to_recreate`]), and where its named ports are
//! published ([`published_ports`]). Shared by the commands that change ships, those that
//! only look, and `exec`/`forward`, which is why it is here and not in any of them.

use std::collections::BTreeMap;

use crate::config::{Instance, KEPT_SUFFIXES};
use crate::docker::{self, ContainerDetails};

/// A container kept for a rollback, by the name it has on the ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The container a deployment that has not succeeded yet replaced.
    Replaced,
    /// The deployment before the current one.
    Previous,
}

impl Kept {
    fn suffix(self) -> &'static str {
        // The file may not name an instance so (config::KEPT_SUFFIXES).
        let [replaced, previous] = KEPT_SUFFIXES;
        match self {
            Kept::Replaced => replaced,
            Kept::Previous => previous,
        }
    }

    /// The name of `instance`'s container kept this way.
    pub fn name(self, instance: &str) -> String {
        format!("{instance}{}", self.suffix())
    }

    /// Whether `container` is one of `instance`'s kept containers.
    pub fn is_kept(container: &str, instance: &str) -> bool {
        [Kept::Replaced, Kept::Previous]
            .iter()
            .any(|kept| container.strip_prefix(instance) == Some(kept.suffix()))
    }
}

/// What a run says of a container it will not touch (see `Unit::inspect`); `plan` says the same.
pub fn refusal(container: &str, ship: &str, why: &str) -> String {
    format!(
        "container {container} on {ship} is not this environment's: {why}. maestro left it as \
         it is; if it is this instance (deployed by MaestroNG, or by hand), run with --adopt to \
         take it over"
    )
}

/// Why a container named after an instance is not that instance of `environment`, in words
/// that show its labels; None when it is.
pub fn foreign(container: &ContainerDetails, environment: &str, instance: &str) -> Option<String> {
    let label = |key: &str| container.labels.get(key).map(String::as_str);
    let (env_label, instance_label) = (
        label(docker::ENVIRONMENT_LABEL),
        label(docker::INSTANCE_LABEL),
    );
    if env_label == Some(environment) && instance_label == Some(instance) {
        return None;
    }
    let shown: Vec<String> = container
        .labels
        .iter()
        .filter(|(key, _)| *key != docker::SPEC_LABEL)
        .take(8)
        .map(|(key, value)| crate::printable::printable(&format!("{key}={value}")))
        .collect();
    let labels = if shown.is_empty() {
        "it has no labels".to_string()
    } else {
        format!("its labels are {}", shown.join(", "))
    };
    Some(match env_label {
        Some(other) if other != environment => {
            let other = crate::printable::printable(other);
            format!("it belongs to the environment `{other}` ({labels})")
        }
        _ => format!("it has none of maestro's labels for this instance ({labels})"),
    })
}

/// Why `existing` no longer matches: its spec hash differs from `hash`, or its image is not
/// the ship's current `image_id` for the image (when the ship has the image).
pub fn reason_to_recreate(
    existing: &ContainerDetails,
    hash: &str,
    image_id: Option<&str>,
) -> Option<String> {
    match existing.spec_hash.as_deref() {
        None => return Some("the container has no spec hash (not created by maestro)".into()),
        Some(h) if h != hash => return Some("the container spec changed".into()),
        _ => {}
    }
    match image_id {
        Some(id) if id != existing.image_id => Some("the image changed".into()),
        _ => None,
    }
}

/// Named port -> port published on the ship: the one configured, or for a range the one
/// Docker picked (from the container's details, when there is a container). The lifecycle
/// checks and `forward` reach an instance's named ports through this one map.
pub fn published_ports(
    instance: &Instance,
    details: Option<&ContainerDetails>,
) -> BTreeMap<String, u16> {
    let mut out = BTreeMap::new();
    for port in &instance.ports {
        let picked = details.and_then(|d| {
            let key = format!("{}/{}", port.exposed.start, port.protocol.as_str());
            d.published_ports.get(&key).and_then(|p| p.first().copied())
        });
        let configured = port.external.is_single().then_some(port.external.start);
        if let Some(p) = picked.or(configured) {
            out.insert(port.name.clone(), p);
        }
    }
    out
}
