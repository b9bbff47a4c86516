//! Timings around the reconciler's timeouts, as fault-plan rules for the
//! fakes: how long the hostagent takes to exit after the interrupt, how
//! long `wsl.exe` calls take (or whether they return at all), in which
//! order `wsl.exe --unregister` fails and succeeds, how slow `ssh-keygen`
//! is, and how many services race for one key pair.

use contract::plan::{Fault, Tool};
use harness::FaultPlanBuilder;
use proptest::prelude::*;
use std::time::Duration;

/// Delays from zero to `max_tenths` tenths of `timeout`, in tenths: few
/// enough values that shrinking one takes a handful of steps (each step
/// is a whole scenario), fine enough to land on both sides of `timeout`.
fn tenths_of(timeout: Duration, max_tenths: u32) -> impl Strategy<Value = u64> + Clone {
    let tenth = u64::try_from(timeout.as_millis() / 10).unwrap_or(u64::MAX);
    (0..=max_tenths).prop_map(move |tenths| u64::from(tenths) * tenth)
}

/// What `wsl.exe` prints when the WSL service is degraded; anything but
/// its "not found" message (which counts as done).
pub const WSL_DEGRADED: &str = "The operation timed out because a response was not received from the virtual machine or container.";

/// How the hostagent answers the graceful interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostagentExit {
    /// It shuts down at once.
    Prompt,
    /// It shuts down `ms` milliseconds after the interrupt.
    Slow {
        /// Milliseconds from the interrupt to the exit.
        ms: u64,
    },
    /// It takes no notice: only the forced stop ends it.
    IgnoresInterrupt,
}

impl HostagentExit {
    /// The fake hostagent's fault that makes it exit so (`None`: none).
    pub fn fault(self) -> Option<Fault> {
        match self {
            HostagentExit::Prompt => None,
            HostagentExit::Slow { ms } => Some(Fault::SlowExit { ms }),
            HostagentExit::IgnoresInterrupt => Some(Fault::IgnoreInterrupt),
        }
    }
}

/// Exits from prompt to four graceful timeouts late, or never.
pub fn hostagent_exit(graceful_timeout: Duration) -> impl Strategy<Value = HostagentExit> {
    prop_oneof![
        Just(HostagentExit::Prompt),
        tenths_of(graceful_timeout, 40).prop_map(|ms| HostagentExit::Slow { ms }),
        Just(HostagentExit::IgnoresInterrupt),
    ]
}

/// How long one kind of `wsl.exe` call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WslCall {
    /// It works at once.
    Prompt,
    /// It works, after `ms` milliseconds (if it is let live that long).
    Slow {
        /// Milliseconds the call takes.
        ms: u64,
    },
    /// It never returns (a degraded WSL service).
    Hangs,
}

impl WslCall {
    /// True when the call runs past `timeout`: only then does its bound
    /// matter.
    pub fn outlasts(self, timeout: Duration) -> bool {
        match self {
            WslCall::Prompt => false,
            WslCall::Slow { ms } => Duration::from_millis(ms) > timeout,
            WslCall::Hangs => true,
        }
    }

    /// The fake `wsl.exe`'s fault that makes the call so (`None`: none).
    pub fn fault(self) -> Option<Fault> {
        match self {
            WslCall::Prompt => None,
            WslCall::Slow { ms } => Some(Fault::Delay { ms }),
            WslCall::Hangs => Some(Fault::Hang),
        }
    }
}

/// Calls from prompt to four timeouts long, or hung for good.
pub fn wsl_call(timeout: Duration) -> impl Strategy<Value = WslCall> {
    prop_oneof![
        Just(WslCall::Prompt),
        tenths_of(timeout, 40).prop_map(|ms| WslCall::Slow { ms }),
        Just(WslCall::Hangs),
    ]
}

/// One `wsl.exe --unregister` attempt that does not unregister.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedUnregister {
    /// Exits 1 at once, saying the service is degraded.
    Fails,
    /// Never returns; the delete timeout ends it.
    Hangs,
}

impl FailedUnregister {
    fn fault(self) -> Fault {
        match self {
            FailedUnregister::Fails => Fault::Fail {
                code: 1,
                stderr: WSL_DEGRADED.to_owned(),
            },
            FailedUnregister::Hangs => Fault::Hang,
        }
    }
}

/// What the attempts after the scripted failures do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThenUnregister {
    /// The next attempt works after `ms` (a failure if that is past the
    /// delete timeout); any later one works at once.
    Succeeds {
        /// Milliseconds the next attempt takes.
        ms: u64,
    },
    /// Every later attempt fails the same way.
    KeepsFailing(FailedUnregister),
}

/// The outcomes of successive `wsl.exe --unregister` attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnregisterScript {
    /// The first attempts, in order.
    pub failures: Vec<FailedUnregister>,
    /// What every attempt after them does.
    pub then: ThenUnregister,
}

/// How a deletion must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionEnd {
    /// The distro is unregistered, then the finalizer removed.
    Unregistered,
    /// The retry budget is spent: the finalizer goes, and that is recorded.
    GaveUp,
}

impl UnregisterScript {
    /// The script as counted rules on `wsl.exe --unregister <distro>`.
    /// Every invocation claims each rule it matches that has uses left, and
    /// the first fault in plan order decides it; so the rule for attempt
    /// `k` applies `k` times, and rules stand in attempt order: attempt `k`
    /// meets rule `k` first.
    pub fn plan(&self, plan: FaultPlanBuilder, distro: &str) -> FaultPlanBuilder {
        let args = ["--unregister", distro];
        let mut plan = self
            .failures
            .iter()
            .zip(1u32..)
            .fold(plan, |plan, (failure, attempt)| {
                plan.times(Tool::Wsl, &args, attempt, failure.fault())
            });
        let next = u32::try_from(self.failures.len()).unwrap_or(u32::MAX) + 1;
        match self.then {
            ThenUnregister::Succeeds { ms: 0 } => {}
            ThenUnregister::Succeeds { ms } => {
                plan = plan.times(Tool::Wsl, &args, next, Fault::Delay { ms });
            }
            ThenUnregister::KeepsFailing(failure) => {
                plan = plan.always(Tool::Wsl, &args, failure.fault());
            }
        }
        plan
    }

    /// How the deletion must end with a retry budget of `budget` failed
    /// attempts; `None` when the slow attempt is too close to the timeout
    /// (within `noise`) to tell whether it fails, and that decides it.
    pub fn expected_end(
        &self,
        delete_timeout: Duration,
        budget: usize,
        noise: Duration,
    ) -> Option<DeletionEnd> {
        let scripted = self.failures.len();
        let gave_up_after = |failures: usize| {
            if failures >= budget {
                DeletionEnd::GaveUp
            } else {
                DeletionEnd::Unregistered
            }
        };
        if scripted >= budget {
            return Some(DeletionEnd::GaveUp);
        }
        match self.then {
            ThenUnregister::KeepsFailing(_) => Some(DeletionEnd::GaveUp),
            ThenUnregister::Succeeds { ms } => {
                let slow = Duration::from_millis(ms);
                if slow + noise < delete_timeout {
                    Some(gave_up_after(scripted))
                } else if slow > delete_timeout + noise {
                    Some(gave_up_after(scripted + 1))
                } else {
                    None
                }
            }
        }
    }
}

/// Up to `max_failures` scripted failures, then a success (fast, or slow
/// around the delete timeout) or failures for good.
pub fn unregister_script(
    delete_timeout: Duration,
    max_failures: usize,
) -> impl Strategy<Value = UnregisterScript> {
    let failure = prop_oneof![Just(FailedUnregister::Fails), Just(FailedUnregister::Hangs)];
    let then = prop_oneof![
        3 => tenths_of(delete_timeout, 20).prop_map(|ms| ThenUnregister::Succeeds { ms }),
        1 => failure.clone().prop_map(ThenUnregister::KeepsFailing),
    ];
    (prop::collection::vec(failure, 0..=max_failures), then)
        .prop_map(|(failures, then)| UnregisterScript { failures, then })
}

/// `ssh-keygen` delays, up to 400 ms: long enough to overlap every start.
pub fn keygen_delay_ms() -> impl Strategy<Value = u64> {
    0..=400u64
}

/// Services starting at once on one config directory.
pub fn racing_services() -> impl Strategy<Value = usize> {
    1..=8usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(failures: &[FailedUnregister], then: ThenUnregister) -> UnregisterScript {
        UnregisterScript {
            failures: failures.to_vec(),
            then,
        }
    }

    #[test]
    fn the_expected_end_follows_the_budget() {
        let t = Duration::from_millis(300);
        let noise = Duration::from_millis(100);
        use FailedUnregister::*;
        let fast = ThenUnregister::Succeeds { ms: 0 };
        assert_eq!(
            script(&[], fast).expected_end(t, 3, noise),
            Some(DeletionEnd::Unregistered)
        );
        assert_eq!(
            script(&[Fails, Hangs], fast).expected_end(t, 3, noise),
            Some(DeletionEnd::Unregistered)
        );
        assert_eq!(
            script(&[Fails, Hangs, Fails], fast).expected_end(t, 3, noise),
            Some(DeletionEnd::GaveUp)
        );
        let slow = ThenUnregister::Succeeds { ms: 500 };
        assert_eq!(
            script(&[Fails, Fails], slow).expected_end(t, 3, noise),
            Some(DeletionEnd::GaveUp)
        );
        let borderline = ThenUnregister::Succeeds { ms: 310 };
        assert_eq!(script(&[Fails], borderline).expected_end(t, 3, noise), None);
        assert_eq!(
            script(&[], ThenUnregister::KeepsFailing(Hangs)).expected_end(t, 3, noise),
            Some(DeletionEnd::GaveUp)
        );
    }

    #[test]
    fn attempt_k_meets_rule_k_first() {
        let plan = script(
            &[FailedUnregister::Hangs, FailedUnregister::Fails],
            ThenUnregister::Succeeds { ms: 40 },
        )
        .plan(FaultPlanBuilder::new(), "lima-vm")
        .build();
        let times: Vec<Option<u32>> = plan.rules.iter().map(|r| r.times).collect();
        assert_eq!(times, [Some(1), Some(2), Some(3)]);
        assert_eq!(plan.rules[0].fault, Fault::Hang);
        assert_eq!(plan.rules[2].fault, Fault::Delay { ms: 40 });
    }
}
