//! What a container records of its deployment, in two labels written when it is created: who
//! deployed it and when, with which image and spec ([`DEPLOYMENT_LABEL`]), and the records
//! of the deployments before it on that instance ([`HISTORY_LABEL`]), newest first.
//!
//! Labels, because they are what the ship already keeps with the container: the history
//! needs no file on the laptop (another operator sees it) and no agent on the ship. Labels
//! cannot change after a container is created, so a record says how the container came to
//! be, never what happened to it later (a rollback restores a container with its own,
//! older, record; the audit log tells who rolled back).
//!
//! Neither label is part of the spec or its hash: a record changes with every deployment,
//! and a re-created container must not look "changed" because of it. Neither holds a value
//! that can be a secret (the spec is named by its hash).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label with the container's own [`Deployment`] record, as JSON.
pub const DEPLOYMENT_LABEL: &str = "io.maestro.deployment";
/// Label with the records of the deployments before this container's, newest first, as a
/// JSON list, packed (see [`super::packed`]: it is in every container list).
pub const HISTORY_LABEL: &str = "io.maestro.history";
/// How many earlier deployments a container carries: labels are small by convention, and the
/// audit log is the place for a long past.
pub const HISTORY_LENGTH: usize = 10;

/// One deployment of an instance: the creation of one of its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Seconds since 1970-01-01 UTC.
    pub at: u64,
    /// The operator, `user@host`.
    pub by: String,
    /// The image as the file names it.
    pub image: String,
    /// The id of that image on the ship when the container was created.
    pub image_id: String,
    /// The hash of the container's spec (as in `io.maestro.spec-hash`).
    pub spec_hash: String,
    /// False when the deployment was replaced before it had succeeded (its start or checks
    /// failed, or it was interrupted); recorded by the deployment that replaced it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub succeeded: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl Deployment {
    /// The two labels of a container created by `self`, after `earlier` (newest first; cut to
    /// [`HISTORY_LENGTH`]).
    pub fn labels(&self, earlier: &[Deployment]) -> Vec<(String, String)> {
        let earlier = &earlier[..earlier.len().min(HISTORY_LENGTH)];
        // Plain structs of strings and integers always serialize.
        vec![
            (
                DEPLOYMENT_LABEL.to_string(),
                serde_json::to_string(self).unwrap_or_default(),
            ),
            (
                HISTORY_LABEL.to_string(),
                super::packed::pack(&serde_json::to_string(earlier).unwrap_or_default()),
            ),
        ]
    }

    /// The record of a container, from its labels; `None` for a container created before
    /// maestro recorded deployments, or by something else. Its texts are made printable:
    /// anyone who can use the daemon can write labels.
    pub fn of(labels: &BTreeMap<String, String>) -> Option<Deployment> {
        serde_json::from_str(labels.get(DEPLOYMENT_LABEL)?)
            .ok()
            .map(Deployment::printable)
    }

    /// The records of the deployments before a container's, newest first; none when its label
    /// is missing or unreadable. Their texts are made printable, as [`Deployment::of`]'s.
    pub fn history_of(labels: &BTreeMap<String, String>) -> Vec<Deployment> {
        labels
            .get(HISTORY_LABEL)
            .and_then(|label| super::packed::unpack(label))
            .and_then(|json| serde_json::from_str::<Vec<Deployment>>(&json).ok())
            .unwrap_or_default()
            .into_iter()
            .map(Deployment::printable)
            .collect()
    }

    fn printable(self) -> Deployment {
        Deployment {
            by: crate::printable::printable(&self.by),
            image: crate::printable::printable(&self.image),
            image_id: crate::printable::printable(&self.image_id),
            spec_hash: crate::printable::printable(&self.spec_hash),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_written_by_anyone_with_the_daemon_is_read_without_control_characters() {
        let forged = serde_json::json!({
            "at": 1, "by": "eve\u{1b}[2J@x", "image": "web\nv1", "image_id": "i", "spec_hash": "h",
        })
        .to_string();
        let labels = BTreeMap::from([
            (DEPLOYMENT_LABEL.to_string(), forged.to_string()),
            (HISTORY_LABEL.to_string(), format!("[{forged}]")),
        ]);
        let record = Deployment::of(&labels).expect("record");
        assert_eq!(record.by, "eve?[2J@x");
        assert_eq!(record.image, "web?v1");
        assert_eq!(Deployment::history_of(&labels)[0].by, "eve?[2J@x");
    }

    fn record(at: u64) -> Deployment {
        Deployment {
            at,
            by: "alice@laptop".into(),
            image: "web:v1".into(),
            image_id: format!("sha256:{at}"),
            spec_hash: "abc".into(),
            succeeded: true,
        }
    }

    #[test]
    fn labels_round_trip_and_cut_the_history() {
        let earlier: Vec<Deployment> = (0..15).rev().map(record).collect();
        let labels: BTreeMap<String, String> = record(100).labels(&earlier).into_iter().collect();
        assert_eq!(Deployment::of(&labels), Some(record(100)));
        let history = Deployment::history_of(&labels);
        assert_eq!(history.len(), HISTORY_LENGTH);
        assert_eq!(history[0], record(14));
        // Packed, as it is in every list; a history written in clear (before the packing)
        // still reads.
        let clear = serde_json::to_string(&history).expect("json");
        assert!(labels[HISTORY_LABEL].len() < clear.len() / 2, "{labels:?}");
        let old = BTreeMap::from([(HISTORY_LABEL.to_string(), clear)]);
        assert_eq!(Deployment::history_of(&old), history);
    }

    #[test]
    fn a_failed_deployment_says_so_and_old_records_read_as_succeeded() {
        let mut failed = record(5);
        failed.succeeded = false;
        let labels: BTreeMap<String, String> = record(9).labels(&[failed]).into_iter().collect();
        assert!(!Deployment::history_of(&labels)[0].succeeded);
        assert!(!labels[DEPLOYMENT_LABEL].contains("succeeded"));
        assert!(Deployment::of(&BTreeMap::new()).is_none());
        let junk = BTreeMap::from([(HISTORY_LABEL.to_string(), "[oops".to_string())]);
        assert!(Deployment::history_of(&junk).is_empty());
    }
}
