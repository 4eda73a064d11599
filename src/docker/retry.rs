//! Bounded retries of idempotent calls over a link that may drop.

use std::future::Future;
use std::time::Duration;

use super::error::DockerError;

/// How often, and how patiently, an idempotent call is retried after a transient failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included; 1 disables retries.
    pub attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..Default::default()
        }
    }

    /// Delay before try number `attempt` (1-based; the first retry is attempt 2).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(16);
        self.initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Runs `call` until it succeeds, fails with a non-transient error, or tries run out.
    /// Only for calls whose repetition cannot change the outcome (list, inspect, start of an
    /// existing container, stop).
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, DockerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DockerError>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match call().await {
                Err(err) if err.is_transient() && attempt < attempts => {
                    attempt += 1;
                    tokio::time::sleep(self.delay_before(attempt)).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_transient_until_success() {
        let calls = AtomicU32::new(0);
        let result = quick(4)
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(DockerError::new("s", "c", ErrorKind::Transient, "reset"))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_attempts_and_never_retries_other_errors() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = quick(3)
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(DockerError::new("s", "c", ErrorKind::Transient, "reset"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = quick(3)
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(DockerError::new("s", "c", ErrorKind::Conflict, "in use"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay_before(2), Duration::from_millis(200));
        assert_eq!(policy.delay_before(3), Duration::from_millis(400));
        assert_eq!(policy.delay_before(10), Duration::from_secs(2));
    }
}
