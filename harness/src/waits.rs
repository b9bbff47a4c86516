//! Where a scenario's time goes. Each bounded wait of a scenario whose
//! length a configured time decides is wrapped in [`timed`] with its floor:
//! the part of it the reconciler must sit out (a timeout or backoff it has
//! to honour, or a delay the fault plan gives a tool). [`measure`] adds the
//! waits of one run up into a [`WaitSplit`]:
//!
//! - timeouts: the time waited up to each wait's floor (what the run
//!   cannot go below, however fast the harness and the reconciler are);
//! - margins: the time a wait spent beyond its floor when it ran to its
//!   bound: a margin waited out to call a symptom ("did not complete
//!   within"), or to show that something does not happen (floor zero);
//! - other: everything else (sandbox, service and VM start-up, reaction
//!   times, polling), the run's total less the two above.
//!
//! The accounts are per thread: a run's scenario and its waits run on one
//! thread (the caller of [`measure`]); a wait on another thread, or
//! outside [`measure`], is not counted.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// A run's time, split by what it waited on. The three parts add up to
/// the run's total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitSplit {
    /// Waiting up to the floors: configured timeouts, backoffs and delays.
    pub timeouts: Duration,
    /// Waiting out margins beyond the floors, to the waits' bounds.
    pub margins: Duration,
    /// Everything else.
    pub other: Duration,
}

impl WaitSplit {
    /// The sum of the three parts.
    pub fn total(&self) -> Duration {
        self.timeouts + self.margins + self.other
    }
}

/// The waits counted so far on this thread, while [`measure`] runs.
#[derive(Debug, Default)]
struct Ledger {
    timeouts: Duration,
    margins: Duration,
    /// True while a [`timed`] wait runs: one inside it is not counted again.
    inside: bool,
}

thread_local! {
    static LEDGER: RefCell<Option<Ledger>> = const { RefCell::new(None) };
}

/// Runs `run` (a scenario) and returns its result with the split of its
/// time. Restores the accounts of an enclosing `measure` afterwards, also
/// when `run` panics.
pub fn measure<T>(run: impl FnOnce() -> T) -> (T, WaitSplit) {
    struct Restore(Option<Ledger>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            LEDGER.with(|l| *l.borrow_mut() = outer);
        }
    }
    let outer = LEDGER.with(|l| l.borrow_mut().replace(Ledger::default()));
    let restore = Restore(outer);
    let started = Instant::now();
    let value = run();
    let total = started.elapsed();
    let ledger = LEDGER.with(|l| l.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    let timeouts = ledger.timeouts.min(total);
    let margins = ledger.margins.min(total - timeouts);
    let split = WaitSplit {
        timeouts,
        margins,
        other: total - timeouts - margins,
    };
    (value, split)
}

/// Runs `wait`, a bounded wait whose first `floor` is a configured time the
/// reconciler must sit out, and counts it: up to `floor` as timeouts; the
/// rest as margins when `wait` returned `Err` (it ran to its bound), as
/// other when it returned `Ok` (the reconciler's reaction time). A wait
/// that shows something does not happen has a floor of zero and passes by
/// running to its bound: all of it is margin.
pub fn timed<T, E>(floor: Duration, wait: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let counted = LEDGER.with(|l| match l.borrow_mut().as_mut() {
        Some(ledger) if !ledger.inside => {
            ledger.inside = true;
            true
        }
        _ => false,
    });
    if !counted {
        return wait();
    }
    let started = Instant::now();
    struct Leave(Instant, Duration, bool);
    impl Drop for Leave {
        // Counted on the way out, also when the wait panics (as a margin:
        // it did not end by its condition).
        fn drop(&mut self) {
            let Leave(started, floor, succeeded) = *self;
            let waited = started.elapsed();
            LEDGER.with(|l| {
                if let Some(ledger) = l.borrow_mut().as_mut() {
                    ledger.inside = false;
                    ledger.timeouts += waited.min(floor);
                    if !succeeded {
                        ledger.margins += waited.saturating_sub(floor);
                    }
                }
            });
        }
    }
    let mut leave = Leave(started, floor, false);
    let result = wait();
    leave.2 = result.is_ok();
    drop(leave);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(40);

    fn pause(d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            std::thread::sleep(until - Instant::now());
        }
    }

    #[test]
    fn a_wait_that_ends_by_its_condition_counts_its_floor_and_no_margin() {
        let ((), split) = measure(|| {
            timed(STEP, || {
                pause(STEP * 2);
                Ok::<_, ()>(())
            })
            .unwrap();
        });
        assert_eq!(split.timeouts, STEP);
        assert_eq!(split.margins, Duration::ZERO);
        assert!(split.other >= STEP, "{split:?}");
        assert_eq!(split.total(), split.timeouts + split.margins + split.other);
    }

    #[test]
    fn a_wait_that_runs_to_its_bound_counts_the_rest_as_margin() {
        let ((), split) = measure(|| {
            let _ = timed(STEP, || {
                pause(STEP * 3);
                Err::<(), _>("bound")
            });
            // Nested: counted once, by the outer wait.
            let _ = timed(Duration::ZERO, || {
                timed(STEP, || {
                    pause(STEP);
                    Err::<(), _>(())
                })
            });
        });
        assert_eq!(split.timeouts, STEP);
        assert!(split.margins >= STEP * 3, "{split:?}");
        assert!(split.margins < STEP * 6, "{split:?}");
    }

    #[test]
    fn waits_outside_a_measure_are_not_counted_and_measures_nest() {
        assert_eq!(timed(STEP, || Ok::<_, ()>(1)), Ok(1));
        let ((), outer) = measure(|| {
            let ((), inner) = measure(|| {
                let _ = timed(Duration::ZERO, || {
                    pause(STEP);
                    Err::<(), _>(())
                });
            });
            assert!(inner.margins >= STEP, "{inner:?}");
            let _ = timed(STEP, || {
                pause(STEP);
                Ok::<_, ()>(())
            });
        });
        assert!(outer.timeouts >= STEP, "{outer:?}");
        assert_eq!(outer.margins, Duration::ZERO, "{outer:?}");
    }
}
