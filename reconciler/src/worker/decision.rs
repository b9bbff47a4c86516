//! The per-VM worker's decisions, apart from their effects: the phase the
//! worker is in, what it remembers and what it observed of its resource go
//! in, the one action to take comes out. Nothing here touches a process, a
//! file or the clock (the caller passes `now`), so every rule is tested
//! without starting anything.

use std::time::Instant;

/// Where the worker stands with its instance between two passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No hostagent of ours runs, and none is held back.
    Down,
    /// No hostagent of ours runs; after a crash or a failed start the next
    /// start waits until `until` (unless the spec changes meanwhile).
    BackingOff { until: Instant },
    /// A hostagent of ours runs (booting until it reports the VM running).
    Up,
}

/// What the worker keeps across passes, besides the hostagent itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// The `metadata.generation` whose spec the worker has acted on.
    pub(crate) acted_generation: Option<u64>,
    /// Starts that failed in a row (reset once the VM runs, or when it is
    /// to stay stopped).
    pub(crate) start_failures: u32,
    /// No start before this instant (after a crash or a failed start).
    pub(crate) start_not_before: Option<Instant>,
    /// No delete attempt before this instant (after a failed one).
    pub(crate) delete_not_before: Option<Instant>,
}

impl Progress {
    /// The phase, given whether a hostagent of ours is held.
    pub(crate) fn phase(&self, hostagent_up: bool) -> Phase {
        match (hostagent_up, self.start_not_before) {
            (true, _) => Phase::Up,
            (false, Some(until)) => Phase::BackingOff { until },
            (false, None) => Phase::Down,
        }
    }

    /// True when `generation` was acted on already.
    pub(crate) fn acted_on(&self, generation: u64) -> bool {
        self.acted_generation == Some(generation)
    }

    /// True when a start of `generation` repeats one that failed (its
    /// status then keeps the failure until the VM runs).
    pub(crate) fn is_retry(&self, generation: u64) -> bool {
        self.start_failures > 0 && self.acted_on(generation)
    }
}

/// The `lima.yaml` the resource's spec renders to, as far as a decision
/// needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Template {
    /// The spec's template cannot be rendered.
    Invalid,
    /// It renders; `as_running` when it is what the running hostagent was
    /// started with, under the same restart request.
    Valid { as_running: bool },
}

/// What the worker read of its resource in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Observation {
    pub(crate) now: Instant,
    /// `metadata.generation`.
    pub(crate) generation: u64,
    /// `metadata.deletionTimestamp` is set.
    pub(crate) being_deleted: bool,
    /// `metadata.finalizers` holds `limavm.dev/cleanup`.
    pub(crate) has_cleanup_finalizer: bool,
    /// `metadata.name` is a valid Lima instance name.
    pub(crate) name_valid: bool,
    /// `metadata.name` makes a path inside LIMA_HOME: enough to clean up
    /// an instance that a less strict version left under a name Lima
    /// refuses.
    pub(crate) path_in_home: bool,
    /// `spec.running`.
    pub(crate) wants_running: bool,
    /// `None` when the spec asks for no running VM (nothing is rendered).
    pub(crate) template: Option<Template>,
}

/// The one thing the worker does in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Nothing: the state already matches, or a backoff is not over.
    Wait,
    /// Deletion: the last attempt failed and its backoff is not over.
    AwaitDeleteRetry,
    /// Deletion with nothing of ours to clean (no cleanup finalizer, or a
    /// name that never got an instance): drop the finalizer, after forcing
    /// a hostagent of ours down when `force_down`.
    ReleaseFinalizer { force_down: bool },
    /// Deletion: force the instance down, delete it, then drop the
    /// finalizer (or record the failure and back off).
    Delete,
    /// Report the invalid name on the Running condition.
    ReportInvalidName,
    /// Report the template that cannot be rendered as a failed start.
    ReportInvalidTemplate,
    /// Start a hostagent; `retrying` after failed starts of this generation.
    Start { retrying: bool },
    /// The template changed under a running hostagent, or a restart was
    /// requested: stop it, then start one with the `lima.yaml` wanted now.
    Restart,
    /// The running hostagent matches a new generation: record it observed.
    RecordGeneration,
    /// The spec asks for no running VM while our hostagent runs: stop it.
    Stop,
    /// The spec asks for no running VM and none runs: report it once per
    /// generation.
    ReportStopped,
}

/// Decides the pass. Deletion comes first, then the name, then
/// `spec.running` against the phase.
pub(super) fn decide(phase: Phase, progress: &Progress, seen: &Observation) -> Action {
    if seen.being_deleted {
        if progress
            .delete_not_before
            .is_some_and(|not_before| seen.now < not_before)
        {
            return Action::AwaitDeleteRetry;
        }
        if !seen.has_cleanup_finalizer || !seen.path_in_home {
            return Action::ReleaseFinalizer {
                force_down: phase == Phase::Up,
            };
        }
        return Action::Delete;
    }
    let acted = progress.acted_on(seen.generation);
    if !seen.name_valid {
        return if acted {
            Action::Wait
        } else {
            Action::ReportInvalidName
        };
    }
    if !seen.wants_running {
        return match phase {
            Phase::Up => Action::Stop,
            _ if acted => Action::Wait,
            _ => Action::ReportStopped,
        };
    }
    match (seen.template, phase) {
        (Some(Template::Invalid) | None, _) if acted => Action::Wait,
        (Some(Template::Invalid) | None, _) => Action::ReportInvalidTemplate,
        (Some(Template::Valid { as_running: false }), Phase::Up) => Action::Restart,
        (Some(Template::Valid { as_running: true }), Phase::Up) if acted => Action::Wait,
        (Some(Template::Valid { as_running: true }), Phase::Up) => Action::RecordGeneration,
        (_, Phase::BackingOff { until }) if acted && seen.now < until => Action::Wait,
        _ => Action::Start {
            retrying: progress.is_retry(seen.generation),
        },
    }
}

/// What a hostagent said of the VM in one status event, or what the
/// worker last reported of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported {
    pub(crate) running: bool,
    /// Running, but with errors (counted only when they are reported).
    pub(crate) degraded: bool,
}

/// Whether a status event is news for the Running condition: `None` when
/// it is not (the VM does not run yet, or runs as reported already);
/// `Some(first)` when it is, `first` when the VM had not been reported
/// running before (which ends a run of failed starts).
pub(super) fn running_news(before: Reported, seen: Reported) -> Option<bool> {
    let news = seen.running && (!before.running || before.degraded != seen.degraded);
    news.then_some(!before.running)
}

/// What follows a hostagent exit nobody asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterExit {
    /// The spec no longer asks for a running VM: report it stopped.
    ReportStopped,
    /// It died before the VM ever ran: a failed start (with its backoff).
    StartFailed,
    /// It ran: restart after the fixed restart backoff; `with_last_line`
    /// when the message quotes its last stderr line.
    Restart { with_last_line: bool },
}

/// Decides what follows an unexpected hostagent exit: `ran` when it had
/// reported the VM running; `fixed_backoff` under the
/// `crash-loop-fixed-backoff` regression (every exit restarts after the
/// same delay, and says nothing of why).
pub(super) fn after_exit(wants_running: bool, ran: bool, fixed_backoff: bool) -> AfterExit {
    if !wants_running {
        AfterExit::ReportStopped
    } else if !ran && !fixed_backoff {
        AfterExit::StartFailed
    } else {
        AfterExit::Restart {
            with_last_line: !fixed_backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seen(now: Instant) -> Observation {
        Observation {
            now,
            generation: 1,
            being_deleted: false,
            has_cleanup_finalizer: true,
            name_valid: true,
            path_in_home: true,
            wants_running: true,
            template: Some(Template::Valid { as_running: false }),
        }
    }

    fn acted(generation: u64) -> Progress {
        Progress {
            acted_generation: Some(generation),
            ..Progress::default()
        }
    }

    #[test]
    fn the_phase_follows_the_hostagent_then_the_backoff() {
        let until = Instant::now();
        let backing_off = Progress {
            start_not_before: Some(until),
            ..Progress::default()
        };
        assert_eq!(Progress::default().phase(false), Phase::Down);
        assert_eq!(backing_off.phase(false), Phase::BackingOff { until });
        assert_eq!(backing_off.phase(true), Phase::Up);
    }

    /// Asserts each case: in `phase` with `progress`, seeing `seen`, the
    /// worker decides `expected`.
    fn check(cases: &[(Phase, Progress, Observation, Action)]) {
        for (phase, progress, seen, expected) in cases {
            let action = decide(*phase, progress, seen);
            assert_eq!(action, *expected, "{phase:?}, {progress:?}, {seen:?}");
        }
    }

    #[test]
    fn a_new_resource_is_started_and_a_failed_start_is_a_retry() {
        let now = Instant::now();
        let failed = Progress {
            start_failures: 2,
            ..acted(1)
        };
        check(&[
            (
                Phase::Down,
                Progress::default(),
                seen(now),
                Action::Start { retrying: false },
            ),
            (
                Phase::Down,
                failed,
                seen(now),
                Action::Start { retrying: true },
            ),
        ]);
    }

    #[test]
    fn a_backoff_holds_the_start_of_the_same_generation_only() {
        let now = Instant::now();
        let waiting = Phase::BackingOff {
            until: now + Duration::from_secs(1),
        };
        let over = Phase::BackingOff { until: now };
        let new_generation = Observation {
            generation: 2,
            ..seen(now)
        };
        let start = Action::Start { retrying: false };
        check(&[
            (waiting, acted(1), seen(now), Action::Wait),
            (waiting, acted(1), new_generation, start),
            (over, acted(1), seen(now), start),
        ]);
    }

    #[test]
    fn a_running_hostagent_is_restarted_for_a_new_template_and_kept_otherwise() {
        let now = Instant::now();
        let same = Observation {
            generation: 2,
            template: Some(Template::Valid { as_running: true }),
            ..seen(now)
        };
        check(&[
            (Phase::Up, acted(1), seen(now), Action::Restart),
            (Phase::Up, acted(1), same, Action::RecordGeneration),
            (Phase::Up, acted(2), same, Action::Wait),
        ]);
    }

    #[test]
    fn an_invalid_template_is_reported_once_per_generation_and_starts_nothing() {
        let invalid = Observation {
            template: Some(Template::Invalid),
            ..seen(Instant::now())
        };
        let report = Action::ReportInvalidTemplate;
        check(&[
            (Phase::Down, Progress::default(), invalid, report),
            (Phase::Up, Progress::default(), invalid, report),
            (Phase::Down, acted(1), invalid, Action::Wait),
            (Phase::Up, acted(1), invalid, Action::Wait),
        ]);
    }

    #[test]
    fn running_false_stops_our_hostagent_and_reports_once_otherwise() {
        let stopped = Observation {
            wants_running: false,
            template: None,
            ..seen(Instant::now())
        };
        check(&[
            (Phase::Up, acted(1), stopped, Action::Stop),
            (
                Phase::Down,
                Progress::default(),
                stopped,
                Action::ReportStopped,
            ),
            (Phase::Down, acted(1), stopped, Action::Wait),
        ]);
    }

    #[test]
    fn an_invalid_name_is_reported_once_and_nothing_is_started() {
        let invalid = Observation {
            name_valid: false,
            ..seen(Instant::now())
        };
        check(&[
            (
                Phase::Down,
                Progress::default(),
                invalid,
                Action::ReportInvalidName,
            ),
            (Phase::Down, acted(1), invalid, Action::Wait),
        ]);
    }

    #[test]
    fn deletion_waits_for_its_backoff_then_deletes_or_only_releases() {
        let now = Instant::now();
        let deleting = Observation {
            being_deleted: true,
            ..seen(now)
        };
        let backing_off = Progress {
            delete_not_before: Some(now + Duration::from_secs(1)),
            ..Progress::default()
        };
        let bad_name = Observation {
            name_valid: false,
            path_in_home: false,
            ..deleting
        };
        let refused_name_in_home = Observation {
            name_valid: false,
            ..deleting
        };
        let no_finalizer = Observation {
            has_cleanup_finalizer: false,
            ..deleting
        };
        check(&[
            (Phase::Up, backing_off, deleting, Action::AwaitDeleteRetry),
            (Phase::Up, Progress::default(), deleting, Action::Delete),
            (
                Phase::Down,
                Progress::default(),
                refused_name_in_home,
                Action::Delete,
            ),
            (
                Phase::Up,
                Progress::default(),
                bad_name,
                Action::ReleaseFinalizer { force_down: true },
            ),
            (
                Phase::Down,
                Progress::default(),
                no_finalizer,
                Action::ReleaseFinalizer { force_down: false },
            ),
        ]);
    }

    #[test]
    fn running_is_news_once_and_again_when_degraded_changes() {
        let state = |running, degraded| Reported { running, degraded };
        assert_eq!(running_news(state(false, false), state(false, true)), None);
        assert_eq!(
            running_news(state(false, false), state(true, false)),
            Some(true)
        );
        assert_eq!(running_news(state(true, false), state(true, false)), None);
        assert_eq!(
            running_news(state(true, false), state(true, true)),
            Some(false)
        );
        assert_eq!(
            running_news(state(true, true), state(true, false)),
            Some(false)
        );
    }

    #[test]
    fn an_exit_before_running_is_a_failed_start_unless_regressed() {
        assert_eq!(after_exit(false, true, false), AfterExit::ReportStopped);
        assert_eq!(after_exit(true, false, false), AfterExit::StartFailed);
        assert_eq!(
            after_exit(true, true, false),
            AfterExit::Restart {
                with_last_line: true
            }
        );
        assert_eq!(
            after_exit(true, false, true),
            AfterExit::Restart {
                with_last_line: false
            }
        );
    }
}
