//! Container states and the daemon's time and duration texts.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bollard::models::ContainerInspectResponse;

/// A container's details from one inspect call.
#[derive(Debug, Clone)]
pub struct ContainerDetails {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: ContainerStatus,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub health: Option<HealthState>,
    pub labels: BTreeMap<String, String>,
    /// The container's environment, as `NAME=value` split at the first `=`.
    pub env: Vec<(String, String)>,
    /// Container port key (`80/tcp`) to the host ports it is published on.
    pub published_ports: BTreeMap<String, Vec<u16>>,
    pub spec_hash: Option<String>,
    /// The full answer, for whatever the fields above do not cover.
    pub raw: ContainerInspectResponse,
}

/// A container's state as the daemon reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Removing,
    Dead,
    Unknown,
}

impl ContainerStatus {
    pub fn from_docker(state: &str) -> Self {
        [
            ContainerStatus::Created,
            ContainerStatus::Running,
            ContainerStatus::Paused,
            ContainerStatus::Restarting,
            ContainerStatus::Exited,
            ContainerStatus::Removing,
            ContainerStatus::Dead,
        ]
        .into_iter()
        .find(|known| known.as_str() == state)
        .unwrap_or(ContainerStatus::Unknown)
    }

    /// The daemon's word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Dead => "dead",
            ContainerStatus::Unknown => "unknown",
        }
    }

    /// Running in MaestroNG's sense (paused counts as up, like the daemon's `Running` flag).
    pub fn is_up(self) -> bool {
        matches!(self, ContainerStatus::Running | ContainerStatus::Paused)
    }
}

/// The container's own HEALTHCHECK verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthState {
    /// `None` for containers without a health check (`none` or empty).
    pub fn from_docker(status: &str) -> Option<Self> {
        match status {
            "starting" => Some(HealthState::Starting),
            "healthy" => Some(HealthState::Healthy),
            "unhealthy" => Some(HealthState::Unhealthy),
            _ => None,
        }
    }
}

/// The approximate age in the list call's `Status` text: how long a container has been up
/// (`Up 3 minutes`) or down (`Exited (0) 2 hours ago`). Docker rounds these (see its
/// `HumanDuration`); `None` when the text carries no age (`Created`, `Dead`).
pub fn parse_status_age(status: &str) -> Option<Duration> {
    let text = if let Some(rest) = status.strip_prefix("Up ") {
        rest
    } else if let Some(rest) = status
        .strip_prefix("Exited ")
        .or_else(|| status.strip_prefix("Restarting "))
    {
        // Skip the "(code) " part.
        let after = rest
            .split_once(") ")
            .map(|(_, after)| after)
            .unwrap_or(rest);
        after.strip_suffix(" ago").unwrap_or(after)
    } else {
        return None;
    };
    // Drop annotations like "(healthy)" or "(Paused)".
    let text = text.split(" (").next().unwrap_or(text).trim();
    human_duration(text)
}

fn human_duration(text: &str) -> Option<Duration> {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    match text {
        "Less than a second" => return Some(Duration::ZERO),
        "About a minute" => return Some(Duration::from_secs(MINUTE)),
        "About an hour" => return Some(Duration::from_secs(HOUR)),
        _ => {}
    }
    let (count, unit) = text.split_once(' ')?;
    let count: u64 = count.parse().ok()?;
    let unit_seconds = match unit.trim_end_matches('s') {
        "second" => 1,
        "minute" => MINUTE,
        "hour" => HOUR,
        "day" => DAY,
        "week" => 7 * DAY,
        "month" => 30 * DAY,
        "year" => 365 * DAY,
        _ => return None,
    };
    Some(Duration::from_secs(count.saturating_mul(unit_seconds)))
}

/// The exit code in `Exited (137) 5 seconds ago`.
pub(crate) fn parse_status_exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_ages() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(parse_status_age("Up 3 minutes"), secs(180));
        assert_eq!(parse_status_age("Up 3 minutes (healthy)"), secs(180));
        assert_eq!(parse_status_age("Up About an hour"), secs(3600));
        assert_eq!(parse_status_age("Up Less than a second"), secs(0));
        assert_eq!(parse_status_age("Up 1 second"), secs(1));
        assert_eq!(parse_status_age("Exited (0) 2 hours ago"), secs(7200));
        assert_eq!(
            parse_status_age("Exited (137) 5 days ago"),
            secs(5 * 86_400)
        );
        assert_eq!(parse_status_age("Created"), None);
        assert_eq!(parse_status_exit_code("Exited (137) 5 days ago"), Some(137));
        assert_eq!(parse_status_exit_code("Up 2 hours"), None);
    }
}
