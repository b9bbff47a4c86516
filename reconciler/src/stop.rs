//! The one stop routine, used by every path that stops a running VM:
//! spec.running=false, a restart, the service's own shutdown, orphan
//! recovery (and the cleanup of a start that failed half way).
//!
//! Interrupt the hostagent's own group; wait up to the graceful timeout;
//! if it did not exit, or the interrupt could not be delivered, read the
//! instance again and go through the forced-stop routine; reap the child.

use crate::forced_stop::{ForcedStopReport, forced_stop};
use crate::instance::{Instance, inspect};
use crate::logging::Shown;
use crate::regression::Regression;
use crate::settings::{Settings, format_duration};
use lima_layout::VmType;
use std::process::Child;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(10);
/// How long a force-killed hostagent gets to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which path asked for the stop (some regressions act on one path only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPath {
    RunningFalse,
    Restart,
    ServiceShutdown,
    OrphanRecovery,
    StartFailed,
    ResourceRemoved,
}

impl StopPath {
    pub fn as_str(self) -> &'static str {
        match self {
            StopPath::RunningFalse => "spec.running=false",
            StopPath::Restart => "restart",
            StopPath::ServiceShutdown => "service shutdown",
            StopPath::OrphanRecovery => "orphan recovery",
            StopPath::StartFailed => "failed start",
            StopPath::ResourceRemoved => "resource removed",
        }
    }
}

/// The hostagent to stop: a child of this service, or an orphan found by
/// its pid file (its group id is its pid).
pub enum Target<'a> {
    Child(&'a mut Child),
    Orphan(u32),
}

impl Target<'_> {
    fn pid(&self) -> u32 {
        match self {
            Target::Child(child) => child.id(),
            Target::Orphan(pid) => *pid,
        }
    }

    fn has_exited(&mut self) -> bool {
        match self {
            Target::Child(child) => !matches!(child.try_wait(), Ok(None)),
            Target::Orphan(pid) => !proctree::is_alive(*pid),
        }
    }

    /// Polls for the exit until `deadline` (`None`: for ever).
    fn wait_for_exit(&mut self, deadline: Option<Instant>) -> bool {
        loop {
            if self.has_exited() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopOutcome {
    /// It exited within the graceful wait.
    pub graceful: bool,
    pub forced: Option<ForcedStopReport>,
    /// The hostagent is gone at the end.
    pub exited: bool,
}

impl StopOutcome {
    pub fn summary(&self) -> String {
        match (&self.forced, self.graceful) {
            (_, true) => "stopped gracefully".to_owned(),
            (Some(report), false) => report.summary(),
            (None, false) if self.exited => "stopped".to_owned(),
            (None, false) => "the hostagent is still running".to_owned(),
        }
    }
}

/// Stops the instance `name` whose hostagent is `target`.
pub fn stop_instance(
    settings: &Settings,
    name: &str,
    assumed_vm_type: VmType,
    mut target: Target<'_>,
    path: StopPath,
) -> StopOutcome {
    let pid = target.pid();
    let read_before_wait = inspect(&settings.lima_home, name, assumed_vm_type);
    tracing::info!(
        instance = %Shown(name),
        pid,
        path = path.as_str(),
        "stopping the hostagent gracefully"
    );
    let delivered = interrupt(settings, name, pid);
    let deadline = Instant::now() + settings.graceful_timeout;
    if delivered && target.wait_for_exit(Some(deadline)) {
        tracing::info!(instance = %Shown(name), pid, "the hostagent stopped gracefully");
        return StopOutcome {
            graceful: true,
            forced: None,
            exited: true,
        };
    }
    if settings.is_on(Regression::IgnoredSignalFallback) {
        // No fallback: this worker waits as long as the hostagent lives.
        target.wait_for_exit(None);
        return StopOutcome {
            graceful: false,
            forced: None,
            exited: true,
        };
    }
    if delivered {
        tracing::warn!(
            instance = %Shown(name),
            pid,
            graceful_timeout = %format_duration(settings.graceful_timeout),
            "the hostagent did not stop within the graceful timeout; forcing it"
        );
    }
    if path == StopPath::ServiceShutdown && settings.is_on(Regression::ShutdownFallbackSkipsCleanup)
    {
        if let Target::Child(child) = &mut target {
            let _ = child.kill();
        }
        let exited = target.wait_for_exit(Some(Instant::now() + REAP_TIMEOUT));
        return StopOutcome {
            graceful: false,
            forced: None,
            exited,
        };
    }
    let instance = if path == StopPath::RunningFalse
        && settings.is_on(Regression::DivergentShutdownPaths)
    {
        read_before_wait
    } else {
        inspect(&settings.lima_home, name, assumed_vm_type)
    };
    let report = forced_stop(settings, &with_hostagent(instance, &target));
    let exited = target.wait_for_exit(Some(Instant::now() + REAP_TIMEOUT));
    if !exited {
        tracing::error!(
            instance = %Shown(name),
            pid,
            "the hostagent is still alive after the forced stop"
        );
    }
    StopOutcome {
        graceful: false,
        forced: Some(report),
        exited,
    }
}

/// Sends the graceful interrupt; `false` when it could not be delivered.
fn interrupt(settings: &Settings, name: &str, pid: u32) -> bool {
    let result = if settings.is_on(Regression::ConsoleGroupSignal) {
        proctree::interrupt_own_group()
    } else {
        proctree::interrupt_group(pid)
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                instance = %Shown(name),
                pid,
                error = e.to_string().as_str(),
                "could not deliver the graceful interrupt; forcing the stop"
            );
            false
        }
    }
}

/// The forced stop must reach a child of ours even when `ha.pid` is gone
/// or names something else: the child is known to be the hostagent.
fn with_hostagent(mut instance: Instance, target: &Target<'_>) -> Instance {
    if let Target::Child(child) = target {
        instance.hostagent_pid = Some(child.id());
    }
    instance
}
