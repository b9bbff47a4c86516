//! Waiting for a condition with a deadline, never for a fixed time.

use std::time::{Duration, Instant};

/// How often a condition is checked: often enough that waits end promptly,
/// rarely enough that probes (process-table scans) stay cheap.
const POLL: Duration = Duration::from_millis(10);

/// A wait of [`eventually`] that ran out: what it waited for, how long, and the
/// probe's last answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; last seen: {last_seen}")]
pub struct WaitError {
    /// What was waited for (`the reconciler service to be ready`).
    pub what: String,
    /// How long it waited (at least the timeout).
    pub waited: Duration,
    /// The probe's last `Err`: what it saw instead.
    pub last_seen: String,
}

/// Calls `probe` until it returns `Ok` or `timeout` has passed. `probe`
/// returns `Err(description of what it saw)`, which ends up in the error.
pub fn eventually<T>(
    timeout: Duration,
    what: &str,
    probe: impl FnMut() -> Result<T, String>,
) -> Result<T, WaitError> {
    eventually_every(POLL, timeout, what, probe)
}

/// `eventually`, checking every `poll` (benchmarks poll tighter, so that
/// the poll interval does not become what they measure).
pub fn eventually_every<T>(
    poll: Duration,
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, WaitError> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(last_seen) if start.elapsed() >= timeout => {
                return Err(WaitError {
                    what: what.to_owned(),
                    waited: start.elapsed(),
                    last_seen,
                });
            }
            Err(_) => std::thread::sleep(poll),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = eventually(Duration::from_secs(5), "three calls", || {
            calls += 1;
            if calls == 3 {
                Ok(calls)
            } else {
                Err(format!("{calls} calls"))
            }
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn the_error_says_what_was_last_seen() {
        let err = eventually(Duration::from_millis(30), "the moon", || {
            Err::<(), _>("still the sun".to_owned())
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("the moon") && text.contains("still the sun"),
            "{text}"
        );
    }
}
