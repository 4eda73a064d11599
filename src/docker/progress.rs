//! One percentage for a pull, summed from the daemon's per-layer progress messages.

use std::collections::BTreeMap;

use bollard::models::CreateImageInfo;

/// Where a pull stands, for a single progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// 0 to 100; never goes backwards during one pull.
    pub percent: u8,
    pub layers_done: usize,
    pub layers_total: usize,
    /// The daemon's last status text (`Downloading`, `Status: Downloaded newer image ...`).
    pub status: String,
}

/// Share of a layer's progress given to the download; extraction gets the rest.
const DOWNLOAD_SHARE: f64 = 0.8;

/// Folds the daemon's pull messages into a [`PullProgress`]. Each layer counts equally, so
/// the percentage does not jump back when a large layer's size becomes known.
#[derive(Debug, Default)]
pub struct PullTracker {
    layers: BTreeMap<String, f64>,
    finished: bool,
    last_percent: u8,
}

impl PullTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one message and returns the progress after it.
    pub fn update(&mut self, info: &CreateImageInfo) -> PullProgress {
        let status = info.status.clone().unwrap_or_default();
        let ratio = info
            .progress_detail
            .as_ref()
            .and_then(|d| match (d.current, d.total) {
                (Some(current), Some(total)) if total > 0 => {
                    Some((current as f64 / total as f64).clamp(0.0, 1.0))
                }
                _ => None,
            });
        let fraction = match status.as_str() {
            "Pulling fs layer" | "Waiting" => Some(0.0),
            "Downloading" => Some(DOWNLOAD_SHARE * ratio.unwrap_or(0.0)),
            "Verifying Checksum" | "Download complete" => Some(DOWNLOAD_SHARE),
            "Extracting" => Some(DOWNLOAD_SHARE + (1.0 - DOWNLOAD_SHARE) * ratio.unwrap_or(0.0)),
            "Pull complete" | "Already exists" => Some(1.0),
            _ => None,
        };
        if let (Some(fraction), Some(id)) = (fraction, info.id.as_ref()) {
            let entry = self.layers.entry(id.clone()).or_insert(0.0);
            *entry = entry.max(fraction);
        }
        if status.starts_with("Status:") || status.starts_with("Digest:") {
            self.finished = true;
        }
        self.progress(status)
    }

    fn progress(&mut self, status: String) -> PullProgress {
        let layers_total = self.layers.len();
        let layers_done = self.layers.values().filter(|f| **f >= 1.0).count();
        let percent = if self.finished {
            100
        } else if layers_total == 0 {
            0
        } else {
            let sum: f64 = self.layers.values().sum();
            // Below 100 until the daemon says the image is complete.
            ((sum / layers_total as f64) * 100.0).floor().min(99.0) as u8
        };
        self.last_percent = self.last_percent.max(percent);
        PullProgress {
            percent: self.last_percent,
            layers_done,
            layers_total,
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ProgressDetail;

    fn message(id: &str, status: &str, progress: Option<(i64, i64)>) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(id.into()),
            status: Some(status.into()),
            progress_detail: progress.map(|(current, total)| ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sums_layers_into_one_percentage() {
        let mut tracker = PullTracker::new();
        tracker.update(&message("1.0", "Pulling from app", None));
        tracker.update(&message("a", "Pulling fs layer", None));
        let p = tracker.update(&message("b", "Pulling fs layer", None));
        assert_eq!((p.percent, p.layers_total), (0, 2));
        let p = tracker.update(&message("a", "Downloading", Some((50, 100))));
        assert_eq!(p.percent, 20);
        let p = tracker.update(&message("a", "Pull complete", None));
        assert_eq!((p.percent, p.layers_done), (50, 1));
        let p = tracker.update(&message("b", "Extracting", Some((1, 2))));
        assert_eq!(p.percent, 95);
        let p = tracker.update(&message("b", "Pull complete", None));
        assert_eq!(p.percent, 99);
        let p = tracker.update(&CreateImageInfo {
            status: Some("Status: Downloaded newer image for app:1.0".into()),
            ..Default::default()
        });
        assert_eq!((p.percent, p.layers_done), (100, 2));
    }

    #[test]
    fn never_goes_backwards() {
        let mut tracker = PullTracker::new();
        tracker.update(&message("a", "Pulling fs layer", None));
        let p = tracker.update(&message("a", "Pull complete", None));
        assert_eq!(p.percent, 99);
        let p = tracker.update(&message("b", "Pulling fs layer", None));
        assert_eq!(p.percent, 99);
    }
}
