//! The one stop routine, used by every path that stops a running VM:
//! spec.running=false, a restart, the service's own shutdown, orphan
//! recovery (and the cleanup of a start that failed half way).
//!
//! Interrupt the hostagent's own group; wait up to the graceful timeout;
//! if it did not exit, or the interrupt could not be delivered, read the
//! instance again and go through the forced-stop routine; reap the child.

use crate::lifecycle::forced_stop::{ForcedStopReport, force, force_with};
use crate::lifecycle::instance::{Instance, inspect};
use crate::lifecycle::stop_settings::Reach;
use crate::lifecycle::stop_settings::StopSettings;
use crate::logging::enter_instance;
use crate::regression::Regression;
use crate::settings::format_duration;
use lima_layout::VmType;
use std::process::Child;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(10);
/// How long a force-killed hostagent gets to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Until when a stopped hostagent is waited for to be reaped.
fn reap_deadline() -> Instant {
    Instant::now() + REAP_TIMEOUT
}

/// Which path asked for the stop (some regressions act on one path only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopPath {
    RunningFalse,
    Restart,
    ServiceShutdown,
    OrphanRecovery,
    StartFailed,
    ResourceRemoved,
}

impl StopPath {
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) enum Target<'a> {
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
pub(crate) struct StopOutcome {
    /// It exited within the graceful wait.
    pub(crate) graceful: bool,
    pub(crate) forced: Option<ForcedStopReport>,
    /// The hostagent is gone at the end.
    pub(crate) exited: bool,
}

impl StopOutcome {
    #[cfg(all(test, unix))]
    pub(crate) fn summary(&self) -> String {
        match (&self.forced, self.graceful) {
            (_, true) => "stopped gracefully".to_owned(),
            (Some(report), false) => report.summary(),
            (None, false) if self.exited => "stopped".to_owned(),
            (None, false) => "the hostagent is still running".to_owned(),
        }
    }
}

/// Waits up to the graceful timeout for the hostagent that `delivered`
/// says was interrupted, and cleans up after it if it exits; `None` when
/// the stop must go on to the forced stop.
fn wait_gracefully(
    settings: &StopSettings,
    name: &str,
    assumed_vm_type: VmType,
    target: &mut Target<'_>,
    delivered: bool,
) -> Option<StopOutcome> {
    let deadline = Instant::now() + settings.graceful_timeout;
    if delivered && target.wait_for_exit(Some(deadline)) {
        tracing::info!(pid = target.pid(), "the hostagent stopped gracefully");
        let forced = if settings.is_on(Regression::GracefulExitLeftovers) {
            None
        } else {
            clean_up_after_exit(settings, name, assumed_vm_type)
        };
        return Some(StopOutcome {
            graceful: true,
            forced,
            exited: true,
        });
    }
    if settings.is_on(Regression::IgnoredSignalFallback) {
        // No fallback: this worker waits as long as the hostagent lives.
        target.wait_for_exit(None);
        return Some(StopOutcome {
            graceful: false,
            forced: None,
            exited: true,
        });
    }
    None
}

/// The service-shutdown regression's fallback: kill the child alone and
/// leave its processes and files as they are.
fn kill_without_cleanup(target: &mut Target<'_>) -> StopOutcome {
    if let Target::Child(child) = target {
        let _ = child.kill();
    }
    let exited = target.wait_for_exit(Some(reap_deadline()));
    StopOutcome {
        graceful: false,
        forced: None,
        exited,
    }
}

/// Stops the instance `name` whose hostagent is `target`.
pub(crate) fn stop_instance(
    settings: &StopSettings,
    name: &str,
    assumed_vm_type: VmType,
    mut target: Target<'_>,
    path: StopPath,
) -> StopOutcome {
    let _vm = enter_instance(name);
    let pid = target.pid();
    let read_before_wait = inspect(settings.lima_home(), name, assumed_vm_type);
    tracing::info!(
        pid,
        path = path.as_str(),
        "stopping the hostagent gracefully"
    );
    let delivered = interrupt(settings, pid);
    if let Some(outcome) = wait_gracefully(settings, name, assumed_vm_type, &mut target, delivered)
    {
        return outcome;
    }
    if delivered {
        tracing::warn!(
            pid,
            graceful_timeout = %format_duration(settings.graceful_timeout),
            "the hostagent did not stop within the graceful timeout; forcing it"
        );
    }
    if path == StopPath::ServiceShutdown && settings.is_on(Regression::ShutdownFallbackSkipsCleanup)
    {
        return kill_without_cleanup(&mut target);
    }
    let report =
        if path == StopPath::RunningFalse && settings.is_on(Regression::DivergentShutdownPaths) {
            // The stale data is all this path looks at.
            let instance = with_hostagent(read_before_wait, &target);
            force_with(&settings.forced, &instance, Reach::PidFiles)
        } else {
            let instance = inspect(settings.lima_home(), name, assumed_vm_type);
            force(&settings.forced, &with_hostagent(instance, &target))
        };
    let exited = target.wait_for_exit(Some(reap_deadline()));
    if !exited {
        tracing::error!(pid, "the hostagent is still alive after the forced stop");
    }
    StopOutcome {
        graceful: false,
        forced: Some(report),
        exited,
    }
}

/// A hostagent that exited on the interrupt may still have left processes
/// of the instance running (children it did not stop, a daemonized `ssh`
/// master): when any is found, the forced stop takes them and whatever
/// they hold. `None` when nothing was left.
pub(crate) fn clean_up_after_exit(
    settings: &StopSettings,
    name: &str,
    assumed_vm_type: VmType,
) -> Option<ForcedStopReport> {
    let instance = inspect(settings.lima_home(), name, assumed_vm_type);
    let left = crate::lifecycle::leftovers::find(
        settings.lima_home(),
        &instance.paths,
        settings.forced.masters,
    );
    if left.is_empty() {
        return None;
    }
    let listed: Vec<String> = left.iter().map(ToString::to_string).collect();
    tracing::warn!(
        leftovers = listed.join("; ").as_str(),
        "the hostagent exited but left processes of the instance running; forcing them down"
    );
    Some(force(&settings.forced, &instance))
}

/// Sends the graceful interrupt; `false` when it could not be delivered.
fn interrupt(settings: &StopSettings, pid: u32) -> bool {
    let result = if settings.is_on(Regression::ConsoleGroupSignal) {
        proctree::interrupt_own_group()
    } else {
        proctree::interrupt_group(pid)
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                pid,
                error = contract::error_chain::chain(&e).as_str(),
                "could not deliver the graceful interrupt; forcing the stop"
            );
            false
        }
    }
}

/// The forced stop must reach the hostagent even when `ha.pid` is gone or
/// names something else by now: the target is known to be it (and the
/// forced stop checks its identity again before signalling).
fn with_hostagent(mut instance: Instance, target: &Target<'_>) -> Instance {
    instance.hostagent_pid = Some(target.pid());
    instance
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::regression::Regressions;
    use crate::test_support::{Spawned, wait_until};
    use lima_layout::paths::read_pid_file;

    #[test]
    fn a_stop_that_left_the_hostagent_running_says_so() {
        let outcome = |exited| StopOutcome {
            graceful: false,
            forced: None,
            exited,
        };
        assert_eq!(outcome(false).summary(), "the hostagent is still running");
        assert_eq!(outcome(true).summary(), "stopped");
    }
    use crate::settings::Settings;
    use std::path::{Path, PathBuf};

    struct Fixture {
        _root: tempfile::TempDir,
        settings: Settings,
        dir: PathBuf,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(root.path().join("li[1]ma"), root.path().join("state"));
        settings.graceful_timeout = Duration::from_millis(300);
        let dir = settings.lima_home.instance("vm1").dir;
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lima.yaml"), "vmType: qemu\n").unwrap();
        Fixture {
            _root: root,
            settings,
            dir,
        }
    }

    impl Fixture {
        /// A stand-in hostagent: `script` runs as `sh -c` with `$0` =
        /// hostagent, `$1` = vm1, `$2` = the instance directory.
        fn hostagent(&self, script: &str) -> Spawned {
            let agent = Spawned::sh(script, &["hostagent", "vm1", self.dir.to_str().unwrap()]);
            std::fs::write(self.dir.join("ha.pid"), agent.pid().to_string()).unwrap();
            agent
        }

        fn stop(&self, agent: &mut Spawned, path: StopPath) -> StopOutcome {
            stop_instance(
                &StopSettings::new(&self.settings),
                "vm1",
                VmType::Qemu,
                Target::Child(agent.child_mut()),
                path,
            )
        }
    }

    /// Kills, when dropped, the replacement driver a test hostagent started
    /// (it runs in a session of its own, out of every tree).
    struct DriverGuard(PathBuf);

    impl Drop for DriverGuard {
        fn drop(&mut self) {
            if let Some(pid) = read_pid_file(&self.0.join("replacement.txt"))
                && crate::lifecycle::identity::driver_identity(pid, &self.0, false)
                    == crate::lifecycle::identity::Identity::Ours
            {
                let _ = proctree::kill_tree(pid);
            }
        }
    }

    /// The script's child exists only once the line setting its trap ran.
    fn wait_for_child_of(agent: &Spawned) {
        wait_until("the script's child", Duration::from_secs(10), || {
            !proctree::ProcessTable::snapshot()
                .descendants(agent.pid())
                .is_empty()
        });
    }

    fn driver_pid(dir: &Path) -> Option<u32> {
        read_pid_file(&dir.join("qemu.pid")).filter(|pid| {
            crate::lifecycle::identity::driver_identity(*pid, dir, false)
                == crate::lifecycle::identity::Identity::Ours
        })
    }

    #[test]
    fn an_interrupted_hostagent_stops_gracefully_with_nothing_forced() {
        let fx = fixture();
        let mut agent = fx.hostagent("trap 'kill $!; exit 0' INT; sleep 600 & wait");
        let outcome = fx.stop(&mut agent, StopPath::RunningFalse);
        assert!(outcome.graceful && outcome.exited, "{outcome:?}");
        assert!(outcome.forced.is_none());
    }

    #[test]
    fn an_ignored_interrupt_falls_back_to_the_forced_stop() {
        let fx = fixture();
        let mut agent = fx.hostagent("trap '' INT; sleep 600 & wait");
        wait_for_child_of(&agent);
        let started = Instant::now();
        let outcome = fx.stop(&mut agent, StopPath::Restart);
        assert!(!outcome.graceful && outcome.exited, "{outcome:?}");
        let report = outcome.forced.unwrap();
        assert!(report.killed.contains(&agent.pid()), "{report:?}");
        assert!(report.failures.is_empty(), "{report:?}");
        assert!(!fx.dir.join("ha.pid").exists());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn shutdown_fallback_regression_only_kills_the_hostagent() {
        let mut fx = fixture();
        fx.settings.regressions = Regressions::of([Regression::ShutdownFallbackSkipsCleanup]);
        let mut agent = fx.hostagent("trap '' INT; sleep 600 & wait");
        wait_for_child_of(&agent);
        let outcome = fx.stop(&mut agent, StopPath::ServiceShutdown);
        assert!(outcome.exited && outcome.forced.is_none(), "{outcome:?}");
        assert!(fx.dir.join("ha.pid").exists(), "no cleanup happened");
    }

    #[test]
    fn ignored_signal_regression_waits_for_the_hostagent_itself() {
        let mut fx = fixture();
        fx.settings.regressions = Regressions::of([Regression::IgnoredSignalFallback]);
        // It ignores the interrupt and leaves by itself a little later.
        let mut agent = fx.hostagent("trap '' INT; sleep 1; exit 0");
        wait_for_child_of(&agent);
        let outcome = fx.stop(&mut agent, StopPath::RunningFalse);
        assert!(
            outcome.exited && !outcome.graceful && outcome.forced.is_none(),
            "{outcome:?}"
        );
        assert!(fx.dir.join("ha.pid").exists(), "no forced stop ran");
    }

    /// The hostagent replaces its driver when interrupted and then ignores
    /// the interrupt: only a re-read of `qemu.pid` finds the new driver.
    const REPLACES_DRIVER: &str = r#"
        trap 'kill $(cat "$2/qemu.pid"); (setsid sh -c "sleep 600 & wait" qemu "$2" & echo $! > "$2/replacement.txt"; cp "$2/replacement.txt" "$2/qemu.pid.new"; mv "$2/qemu.pid.new" "$2/qemu.pid")' INT
        sh -c 'sleep 600 & wait' qemu "$2" & echo $! > "$2/qemu.pid.new"; mv "$2/qemu.pid.new" "$2/qemu.pid"
        while :; do sleep 1 & wait; done
    "#;

    struct ReplacedDriverRun {
        first: u32,
        /// The driver started during the wait.
        replacement: u32,
        /// `qemu.pid` is still there at the end.
        pid_file_left: bool,
        outcome: StopOutcome,
        _guard: DriverGuard,
        _fixture: Fixture,
    }

    fn replaced_driver_run(regressions: Regressions) -> ReplacedDriverRun {
        let mut fx = fixture();
        fx.settings.regressions = regressions;
        let guard = DriverGuard(fx.dir.clone());
        let mut agent = fx.hostagent(REPLACES_DRIVER);
        wait_until("the first driver", Duration::from_secs(10), || {
            driver_pid(&fx.dir).is_some()
        });
        let first = driver_pid(&fx.dir).unwrap();
        let outcome = fx.stop(&mut agent, StopPath::RunningFalse);
        ReplacedDriverRun {
            first,
            replacement: read_pid_file(&fx.dir.join("replacement.txt"))
                .expect("the hostagent replaced its driver"),
            pid_file_left: fx.dir.join("qemu.pid").exists(),
            outcome,
            _guard: guard,
            _fixture: fx,
        }
    }

    #[test]
    fn the_forced_stop_reads_the_instance_again_after_the_wait() {
        let run = replaced_driver_run(Regressions::none());
        assert_ne!(run.replacement, run.first);
        let report = run.outcome.forced.as_ref().unwrap();
        assert!(report.killed.contains(&run.replacement), "{report:?}");
        assert!(!run.pid_file_left);
        wait_until(
            "the replacement driver to die",
            Duration::from_secs(10),
            || !proctree::is_alive(run.replacement),
        );
    }

    #[test]
    fn divergent_paths_regression_force_stops_with_the_stale_driver_pid() {
        let run = replaced_driver_run(Regressions::of([Regression::DivergentShutdownPaths]));
        assert_ne!(run.first, run.replacement, "the driver was replaced");
        assert!(
            proctree::is_alive(run.replacement),
            "the replacement survived"
        );
        assert!(
            !run.outcome
                .forced
                .unwrap()
                .killed
                .contains(&run.replacement)
        );
    }
}
