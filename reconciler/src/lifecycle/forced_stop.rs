//! The one forced-stop routine. Every path that has to force an instance
//! down ends here: after a graceful wait that ran out, for a deletion, when
//! cleaning up after a crash, at service shutdown and in orphan recovery.
//!
//! Order (Lima's `StopForcibly`, with the review's fixes): kill the
//! hostagent's and the driver's whole trees, each only after checking the
//! pid is really this instance's (a hostagent this process started is
//! killed with its job object on Windows, which reaches children whose
//! parent already died; a process found instead, as orphan recovery finds
//! them, by a walk of the process table), then every other process still
//! identified as the instance's (after asking the instance's `ssh`
//! ControlMaster to exit, as Lima does); terminate the WSL2 distro; then, only if every
//! kill succeeded, release additional disks and remove the tmp files found
//! by listing the directory. Every failed step is logged with its context.

use crate::lifecycle::identity::{Identity, driver_identity, hostagent_identity};
use crate::lifecycle::instance::Instance;
use crate::lifecycle::leftovers;
use crate::lifecycle::stop_settings::{ForcedStopSettings, Reach};
use crate::lifecycle::wsl::{self, WslOutcome};
use crate::logging::{Shown, ShownPath, enter_instance};
use crate::regression::Regression;
use crate::settings::Settings;
use lima_layout::{TMP_SUFFIXES, VmType, is_tmp_file_name};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long killed processes get to disappear before their files go.
const KILL_SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    KillDriver,
    KillHostagent,
    KillLeftover,
    WslTerminate,
    ReleaseDisk,
    RemoveTmpFile,
}

impl Step {
    /// The `step` field of the log line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Step::KillDriver => "kill driver",
            Step::KillHostagent => "kill hostagent",
            Step::KillLeftover => "kill leftover process",
            Step::WslTerminate => "wsl terminate",
            Step::ReleaseDisk => "release disk",
            Step::RemoveTmpFile => "remove tmp file",
        }
    }
}

/// One step of the forced stop that failed; its `Debug` form names the
/// step and quotes the error (a tool's or the OS's message, as logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub(crate) step: Step,
    pub(crate) error: String,
}

/// A pid that a pid file named but that is not this instance's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedPid {
    pub(crate) pid: u32,
    pub(crate) pid_file: PathBuf,
    pub(crate) description: String,
}

/// What a forced stop did: the pids it killed or refused to kill, the WSL
/// distro's termination, the disks released and files removed, and every
/// step that failed ([`ForcedStopReport::failures`], empty when the stop is
/// complete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForcedStopReport {
    /// Every pid killed, roots and descendants.
    pub(crate) killed: Vec<u32>,
    pub(crate) refused: Vec<RefusedPid>,
    pub(crate) wsl: Option<WslOutcome>,
    pub(crate) released_disks: Vec<String>,
    pub(crate) removed_files: Vec<PathBuf>,
    /// The steps that failed, in the order they ran; a failed kill keeps
    /// the disks and tmp files (see `kept_files`).
    pub failures: Vec<StepFailure>,
    /// Disks and tmp files were left alone because a kill failed.
    pub(crate) kept_files: bool,
}

impl ForcedStopReport {
    pub(crate) fn kill_failed(&self) -> bool {
        self.failures.iter().any(|f| {
            matches!(
                f.step,
                Step::KillDriver | Step::KillHostagent | Step::KillLeftover
            )
        })
    }

    #[cfg(all(test, unix))]
    pub(crate) fn failed(&self, step: Step) -> bool {
        self.failures.iter().any(|f| f.step == step)
    }

    /// One line for a status message.
    pub(crate) fn summary(&self) -> String {
        if self.failures.is_empty() {
            return "forced stop complete".to_owned();
        }
        let failed: Vec<String> = self
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.step.as_str(), f.error))
            .collect();
        format!("forced stop incomplete: {}", failed.join("; "))
    }
}

/// Forces `instance` down (see the module comment) with the tools and
/// regression switches of `settings`; never fails as a whole: each failed
/// step is logged and listed in the report's `failures`. For callers
/// outside the service (Lima's `limactl stop --force` is compared with
/// it); the service's steps call [`force`] with settings built once.
pub fn forced_stop(settings: &Settings, instance: &Instance) -> ForcedStopReport {
    force(&ForcedStopSettings::new(settings), instance)
}

/// [`forced_stop`] with the forced stop's own settings, at their reach.
pub(crate) fn force(settings: &ForcedStopSettings, instance: &Instance) -> ForcedStopReport {
    force_with(settings, instance, settings.reach)
}

/// [`force`] with an explicit reach.
pub(crate) fn force_with(
    settings: &ForcedStopSettings,
    instance: &Instance,
    reach: Reach,
) -> ForcedStopReport {
    let _vm = enter_instance(instance.name());
    let mut run = Run {
        settings,
        instance,
        report: ForcedStopReport::default(),
    };
    let mut roots = Vec::new();
    // The hostagent goes first: Lima's exits when its driver ends, cleaning
    // up half way, and must not get the chance to react.
    if let Some(pid) = instance.hostagent_pid {
        roots.extend(run.kill(Step::KillHostagent, pid, &instance.paths.ha_pid()));
    }
    if let Some(pid) = instance.driver_pid {
        let pid_file = instance.paths.driver_pid(instance.vm_type);
        roots.extend(run.kill(Step::KillDriver, pid, &pid_file));
    }
    if reach == Reach::Instance {
        if !settings.is_on(Regression::ControlMasterLeftover) {
            run.exit_control_master();
        }
        // What no pid file names and no live hostagent leads to: forwarders
        // and drivers a dead hostagent left, daemonized ssh masters.
        roots.extend(run.kill_leftovers());
    }
    wait_for_exit(&roots);
    if instance.vm_type == VmType::Wsl2 {
        run.terminate_distro();
    }
    if run.report.kill_failed() {
        // Removing the pid files would make a live process look stopped.
        run.report.kept_files = true;
        tracing::warn!("a kill failed: keeping the pid files, disk locks and sockets");
    } else {
        if !settings.is_on(Regression::DiskLockLeak) {
            run.release_disks();
        }
        run.remove_tmp_files();
    }
    let report = run.report;
    tracing::info!(
        killed = ?report.killed,
        removed_files = report.removed_files.len(),
        failed_steps = report.failures.len(),
        "forced stop done"
    );
    report
}

struct Run<'a> {
    settings: &'a ForcedStopSettings,
    instance: &'a Instance,
    report: ForcedStopReport,
}

impl Run<'_> {
    fn fail(&mut self, step: Step, error: String) {
        if !self.settings.is_on(Regression::SilentCleanupErrors) {
            tracing::warn!(
                step = step.as_str(),
                error = error.as_str(),
                "forced stop step failed"
            );
        }
        self.report.failures.push(StepFailure { step, error });
    }

    /// Kills the tree of `pid` when it is this instance's; returns the pid
    /// when it was killed.
    fn kill(&mut self, step: Step, pid: u32, pid_file: &Path) -> Option<u32> {
        let identity = if self.settings.is_on(Regression::RecycledPidKill) {
            Identity::Ours
        } else {
            match step {
                Step::KillDriver => driver_identity(
                    pid,
                    &self.instance.paths.dir,
                    self.settings.is_on(Regression::PathPrefixIdentity),
                ),
                _ => hostagent_identity(pid, self.instance.name()),
            }
        };
        match identity {
            Identity::Gone => None,
            Identity::Foreign { description } => {
                tracing::warn!(
                    pid,
                    pid_file = %ShownPath(pid_file),
                    process = description.as_str(),
                    "the pid file names a process that is not this instance's; not signalling it, treating the pid file as stale"
                );
                self.report.refused.push(RefusedPid {
                    pid,
                    pid_file: pid_file.to_owned(),
                    description,
                });
                None
            }
            Identity::Ours => {
                let tree = !self.settings.is_on(Regression::OrphanedPortHolders);
                match kill_unless_gone(pid, tree) {
                    Ok(Some(killed)) => {
                        self.report.killed.extend(killed);
                        Some(pid)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        self.fail(step, contract::error_chain::chain(&e));
                        None
                    }
                }
            }
        }
    }

    /// `ssh -O exit -S INSTANCE_DIR/ssh.sock`, bounded by the graceful
    /// timeout: how Lima ends the ControlMaster that holds its forwards
    /// (a detached daemon, in no tree of ours). When no master answers
    /// (a stale socket, or none at all), the leftover sweep still finds a
    /// live one by its title, so this is no failed step.
    fn exit_control_master(&mut self) {
        let socket = self.instance.paths.dir.join("ssh.sock");
        if socket.symlink_metadata().is_err() {
            return;
        }
        // ssh expands `%` tokens in a control path.
        let escaped = socket.to_string_lossy().replace('%', "%%");
        let result = crate::command::ExternalCommand::new("ssh", &self.settings.ssh)
            .arg("-O")
            .arg("exit")
            .arg("-S")
            .arg(escaped)
            .arg("lima@127.0.0.1")
            .timeout(Some(self.settings.control_master_timeout))
            .run();
        match result {
            Ok(output) if output.status.success() => {
                tracing::info!("asked the ssh ControlMaster to exit");
            }
            Ok(output) => tracing::debug!(
                stderr = crate::command::decode_output(&output.stderr).trim(),
                "no ssh ControlMaster answered on the instance's control socket"
            ),
            Err(e) => tracing::debug!(
                error = contract::error_chain::chain(&e).as_str(),
                "could not ask the ssh ControlMaster to exit"
            ),
        }
    }

    /// Kills the tree of every process still identified as the
    /// instance's (see [`leftovers`]); returns the roots killed.
    fn kill_leftovers(&mut self) -> Vec<u32> {
        let mut roots = Vec::new();
        for leftover in leftovers::find(
            &self.settings.lima_home,
            &self.instance.paths,
            self.settings.masters,
        ) {
            if self.report.killed.contains(&leftover.pid) {
                continue;
            }
            tracing::warn!(
                pid = leftover.pid,
                process = leftover.command.as_str(),
                "a process of the instance outlived its hostagent; killing it"
            );
            match kill_unless_gone(leftover.pid, true) {
                Ok(Some(killed)) => {
                    self.report.killed.extend(killed);
                    roots.push(leftover.pid);
                }
                Ok(None) => {}
                Err(e) => self.fail(Step::KillLeftover, format!("{leftover}: {e}")),
            }
        }
        roots
    }

    fn terminate_distro(&mut self) {
        let distro = self.instance.wsl_distro();
        match wsl::terminate(&self.settings.wsl, &distro, self.settings.wsl_timeout) {
            Ok(outcome) => self.report.wsl = Some(outcome),
            Err(e) => self.fail(Step::WslTerminate, contract::error_chain::chain(&e)),
        }
    }

    fn release_disks(&mut self) {
        for disk in &self.instance.disks {
            let lock = self.settings.lima_home.disk_in_use_by(disk);
            if std::fs::symlink_metadata(&lock).is_err() {
                continue; // not locked
            }
            if let Some(holder) = other_holder(&lock, &self.instance.paths.dir) {
                tracing::warn!(
                    disk = %Shown(disk),
                    holder = %ShownPath(&holder),
                    "the disk is locked by another instance; leaving its lock"
                );
                continue;
            }
            match remove_link(&lock) {
                Ok(()) => self.report.released_disks.push(disk.clone()),
                Err(e) => self.fail(
                    Step::ReleaseDisk,
                    format!("disk {disk}: {}: {e}", lock.display()),
                ),
            }
        }
    }

    fn remove_tmp_files(&mut self) {
        let candidates = if self.settings.is_on(Regression::BracketedHomePath) {
            glob_tmp_files(&self.instance.paths.dir)
        } else {
            match list_tmp_files(&self.instance.paths.dir) {
                Ok(found) => found,
                Err(e) => {
                    let dir = self.instance.paths.dir.display().to_string();
                    self.fail(Step::RemoveTmpFile, format!("cannot list {dir}: {e}"));
                    return;
                }
            }
        };
        for path in candidates {
            match std::fs::remove_file(&path) {
                Ok(()) => self.report.removed_files.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.fail(Step::RemoveTmpFile, format!("{}: {e}", path.display())),
            }
        }
    }
}

/// Kills `pid`, with its whole tree when `tree`: `Some` of the pids
/// killed, `None` when the kill failed because `pid` had ended on its own
/// (between its identification and the kill: nothing is left to stop), or
/// the kill's error while it still runs.
fn kill_unless_gone(pid: u32, tree: bool) -> Result<Option<Vec<u32>>, proctree::SignalError> {
    let result = if tree {
        proctree::kill_tree(pid)
    } else {
        proctree::kill(pid).map(|()| vec![pid])
    };
    match result {
        Ok(killed) => Ok(Some(killed)),
        Err(_) if !proctree::is_alive(pid) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The tmp files of `dir`, found by listing it and matching name suffixes:
/// the path is never read as a pattern.
pub(crate) fn list_tmp_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir && is_tmp_file_name(&entry.file_name().to_string_lossy()) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The regressed lookup: `<dir>/*<suffix>` as glob patterns, pattern
/// errors discarded, as Go's `filepath.Glob` callers did.
fn glob_tmp_files(dir: &Path) -> Vec<PathBuf> {
    TMP_SUFFIXES
        .iter()
        .filter_map(|suffix| {
            let pattern = dir.join(format!("*{suffix}"));
            glob::glob(&pattern.to_string_lossy()).ok()
        })
        .flat_map(|paths| paths.filter_map(Result::ok))
        .collect()
}

/// The instance directory an `in_use_by` link points at, when that is an
/// existing directory other than `instance_dir`.
fn other_holder(lock: &Path, instance_dir: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(lock).ok()?;
    let target = lock.parent()?.join(target);
    let holder = target.canonicalize().ok()?;
    let ours = instance_dir.canonicalize().ok()?;
    (holder != ours).then_some(holder)
}

/// Removes a link whether it is a file link or, on Windows, a directory
/// link or junction (which only `remove_dir` removes).
pub(crate) fn remove_link(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() || meta.file_type().is_symlink() => std::fs::remove_dir(path),
            _ => Err(e),
        },
    }
}

fn wait_for_exit(pids: &[u32]) {
    let deadline = Instant::now() + KILL_SETTLE_TIMEOUT;
    while pids.iter().any(|pid| proctree::is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::lifecycle::instance::inspect;
    use crate::regression::Regressions;
    use crate::test_support::{Spawned, wait_until, with_captured_log};
    use lima_layout::InstancePaths;
    use std::os::unix::fs::PermissionsExt;

    const LIFETIME: &str = "sleep 600 & wait";

    struct Fixture {
        _root: tempfile::TempDir,
        settings: Settings,
        paths: InstancePaths,
    }

    /// An instance directory under a LIMA_HOME whose path has `[1]` in it.
    fn fixture(vm_type: &str) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let lima_home = root.path().join("home[1] x").join(".lima");
        let mut settings = Settings::new(&lima_home, root.path().join("state"));
        settings.tools.wsl = "limavm-no-such-wsl".into();
        let paths = settings.lima_home.instance("vm1");
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(
            paths.lima_yaml(),
            format!("vmType: {vm_type}\nadditionalDisks: [data]\n"),
        )
        .unwrap();
        Fixture {
            _root: root,
            settings,
            paths,
        }
    }

    impl Fixture {
        fn hostagent(&self) -> Spawned {
            let pid_file = self.paths.ha_pid();
            let spawned = Spawned::sh(
                LIFETIME,
                &["hostagent", "--pidfile", pid_file.to_str().unwrap(), "vm1"],
            );
            std::fs::write(pid_file, spawned.pid().to_string()).unwrap();
            spawned
        }

        fn driver(&self) -> Spawned {
            let pid_file = self.paths.dir.join("qemu.pid");
            let spawned = Spawned::sh(LIFETIME, &["qemu", "-pidfile", pid_file.to_str().unwrap()]);
            std::fs::write(pid_file, spawned.pid().to_string()).unwrap();
            spawned
        }

        fn lock_disk(&self) -> PathBuf {
            let lock = self.settings.lima_home.disk_in_use_by("data");
            std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&self.paths.dir, &lock).unwrap();
            lock
        }

        fn tmp_files(&self) -> Vec<String> {
            let mut names: Vec<String> = list_tmp_files(&self.paths.dir)
                .unwrap()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }

        fn stop(&self) -> ForcedStopReport {
            forced_stop(
                &self.settings,
                &inspect(&self.settings.lima_home, "vm1", VmType::Qemu),
            )
        }
    }

    /// An `ssh` that writes its arguments, one a line, to the returned file.
    fn recording_ssh(fx: &mut Fixture) -> PathBuf {
        let script = fx._root.path().join("ssh");
        std::fs::write(&script, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$0.args\"\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        fx.settings.tools.ssh = script.clone().into();
        std::fs::write(fx.paths.dir.join("ssh.sock"), "").unwrap();
        script.with_extension("args")
    }

    #[test]
    fn the_control_master_is_asked_to_exit_unless_the_regression_is_on() {
        let mut fx = fixture("qemu");
        let args = recording_ssh(&mut fx);
        fx.stop();
        let socket = fx.paths.dir.join("ssh.sock").to_string_lossy().into_owned();
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            format!("-O\nexit\n-S\n{socket}\nlima@127.0.0.1\n")
        );
        let mut fx = fixture("qemu");
        fx.settings.regressions = Regressions::of([Regression::ControlMasterLeftover]);
        let args = recording_ssh(&mut fx);
        fx.stop();
        assert!(!args.exists(), "ssh -O exit ran despite the regression");
    }

    #[test]
    fn only_an_ssh_that_succeeded_is_logged_as_having_asked_the_master_to_exit() {
        let asked = "asked the ssh ControlMaster to exit";
        let mut fx = fixture("qemu");
        recording_ssh(&mut fx);
        let (_, log) = with_captured_log(|| fx.stop());
        assert!(log.contains(asked), "{log}");
        // No master answers on the socket: ssh exits 255.
        let mut fx = fixture("qemu");
        recording_ssh(&mut fx);
        let script = fx._root.path().join("ssh");
        std::fs::write(&script, "#!/bin/sh\nexit 255\n").unwrap();
        let (_, log) = with_captured_log(|| fx.stop());
        assert!(!log.contains(asked), "{log}");
    }

    fn descendants(pid: u32) -> Vec<u32> {
        proctree::ProcessTable::snapshot().descendants(pid)
    }

    #[test]
    fn kills_both_trees_releases_disks_and_removes_tmp_files_by_listing() {
        let fx = fixture("qemu");
        let mut hostagent = fx.hostagent();
        let mut driver = fx.driver();
        wait_until("the sleeping children", Duration::from_secs(10), || {
            !descendants(hostagent.pid()).is_empty() && !descendants(driver.pid()).is_empty()
        });
        let grandchildren: Vec<u32> = [hostagent.pid(), driver.pid()]
            .iter()
            .flat_map(|p| descendants(*p))
            .collect();
        for name in ["ha.sock", "serial[1].sock", "x.tmp"] {
            std::fs::write(fx.paths.dir.join(name), "").unwrap();
        }
        let lock = fx.lock_disk();

        let report = fx.stop();

        assert!(report.failures.is_empty(), "{report:?}");
        for pid in [hostagent.pid(), driver.pid()].iter().chain(&grandchildren) {
            assert!(
                report.killed.contains(pid),
                "{pid} not in {:?}",
                report.killed
            );
        }
        hostagent.wait();
        driver.wait();
        wait_until("the grandchildren to die", Duration::from_secs(10), || {
            grandchildren.iter().all(|p| !proctree::is_alive(*p))
        });
        assert_eq!(fx.tmp_files(), Vec::<String>::new());
        assert!(fx.paths.lima_yaml().exists(), "lima.yaml is not a tmp file");
        assert_eq!(report.released_disks, ["data"]);
        assert!(std::fs::symlink_metadata(&lock).is_err());
    }

    #[test]
    fn a_bystander_named_by_a_stale_pid_file_survives() {
        let fx = fixture("qemu");
        let bystander = Spawned::sh(LIFETIME, &["bystander"]);
        std::fs::write(fx.paths.ha_pid(), bystander.pid().to_string()).unwrap();
        std::fs::write(fx.paths.dir.join("qemu.pid"), bystander.pid().to_string()).unwrap();

        let report = fx.stop();

        assert!(report.killed.is_empty(), "{report:?}");
        assert_eq!(report.refused.len(), 2, "{report:?}");
        assert!(report.refused[0].description.contains("bystander"));
        assert!(proctree::is_alive(bystander.pid()));
        assert_eq!(fx.tmp_files(), Vec::<String>::new(), "stale pid files go");
    }

    #[test]
    fn recycled_pid_kill_regression_kills_the_bystander() {
        let mut fx = fixture("qemu");
        fx.settings.regressions = Regressions::of([Regression::RecycledPidKill]);
        let mut bystander = Spawned::sh(LIFETIME, &["bystander"]);
        std::fs::write(fx.paths.ha_pid(), bystander.pid().to_string()).unwrap();
        let report = fx.stop();
        assert!(report.killed.contains(&bystander.pid()), "{report:?}");
        bystander.wait();
    }

    #[test]
    fn orphaned_port_holders_regression_leaves_the_children() {
        let mut fx = fixture("qemu");
        fx.settings.regressions = Regressions::of([Regression::OrphanedPortHolders]);
        let mut hostagent = fx.hostagent();
        wait_until("the sleeping child", Duration::from_secs(10), || {
            !descendants(hostagent.pid()).is_empty()
        });
        let children = descendants(hostagent.pid());
        let report = fx.stop();
        assert_eq!(report.killed, [hostagent.pid()]);
        hostagent.wait();
        for child in &children {
            assert!(proctree::is_alive(*child), "{child} was killed");
            proctree::kill(*child).unwrap();
        }
    }

    #[test]
    fn bracketed_home_path_regression_misses_the_tmp_files() {
        let mut fx = fixture("qemu");
        fx.settings.regressions = Regressions::of([Regression::BracketedHomePath]);
        std::fs::write(fx.paths.ha_pid(), "999999999").unwrap();
        std::fs::write(fx.paths.ha_sock(), "").unwrap();
        let report = fx.stop();
        assert!(report.removed_files.is_empty(), "{report:?}");
        assert_eq!(fx.tmp_files(), ["ha.pid", "ha.sock"]);
    }

    #[test]
    fn disk_lock_leak_regression_keeps_the_lock() {
        let mut fx = fixture("qemu");
        fx.settings.regressions = Regressions::of([Regression::DiskLockLeak]);
        let lock = fx.lock_disk();
        let report = fx.stop();
        assert!(report.released_disks.is_empty());
        assert!(std::fs::symlink_metadata(&lock).is_ok());
    }

    #[test]
    fn a_lock_held_by_another_instance_is_left_alone() {
        let fx = fixture("qemu");
        let other = fx.settings.lima_home.instance("vm2").dir;
        std::fs::create_dir_all(&other).unwrap();
        let lock = fx.settings.lima_home.disk_in_use_by("data");
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&other, &lock).unwrap();
        let report = fx.stop();
        assert!(report.released_disks.is_empty());
        assert!(report.failures.is_empty());
        assert!(std::fs::symlink_metadata(&lock).is_ok());
    }

    #[test]
    fn wsl2_terminate_failure_is_a_logged_step_failure() {
        let fx = fixture("wsl2");
        let (report, log) = with_captured_log(|| fx.stop());
        assert_eq!(report.failures.len(), 1, "{report:?}");
        assert_eq!(report.failures[0].step, Step::WslTerminate);
        assert!(
            report.failures[0]
                .error
                .contains("wsl.exe not found on PATH")
        );
        let line = log
            .lines()
            .find(|l| l.contains("step=\"wsl terminate\""))
            .unwrap_or_else(|| panic!("no wsl terminate line in {log}"));
        assert!(line.contains("instance=vm1"), "{line}");
        assert!(
            line.contains("error=\"wsl.exe not found on PATH\""),
            "{line}"
        );
    }

    #[test]
    fn an_unremovable_tmp_file_is_logged_and_silenced_by_the_regression() {
        let mut fx = fixture("qemu");
        let sock = fx.paths.ha_sock();
        std::fs::write(&sock, "").unwrap();
        if let Err(e) = harness::unremovable::block(&sock) {
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            eprintln!("skipped: {e}");
            return;
        }
        let fixed = with_captured_log(|| fx.stop());
        fx.settings.regressions = Regressions::of([Regression::SilentCleanupErrors]);
        let regressed = with_captured_log(|| fx.stop());
        harness::unremovable::undo(&sock).unwrap();
        let (report, log) = fixed;
        assert!(report.failed(Step::RemoveTmpFile), "{report:?}");
        assert!(log.contains("step=\"remove tmp file\""), "{log}");
        let (report, log) = regressed;
        assert!(report.failed(Step::RemoveTmpFile));
        assert!(!log.contains("step="), "{log}");
    }

    #[test]
    fn silent_cleanup_errors_regression_drops_the_log_line() {
        let mut fx = fixture("wsl2");
        fx.settings.regressions = Regressions::of([Regression::SilentCleanupErrors]);
        let (report, log) = with_captured_log(|| fx.stop());
        assert!(report.failed(Step::WslTerminate));
        assert!(!log.contains("wsl terminate"), "{log}");
        // Silent in the log, not in the status.
        let summary = report.summary();
        assert!(
            summary.starts_with("forced stop incomplete: wsl terminate: "),
            "{summary}"
        );
    }

    #[test]
    fn the_wait_for_killed_processes_sees_them_die_and_ends_at_its_bound() {
        let short = Spawned::sh("sleep 0.3", &["ends-on-its-own"]);
        let started = Instant::now();
        wait_for_exit(&[short.pid()]);
        let waited = started.elapsed();
        assert!(
            !proctree::is_alive(short.pid()),
            "the wait returned after {waited:?} while pid {} still ran",
            short.pid()
        );
        assert!(
            waited < KILL_SETTLE_TIMEOUT,
            "waited {waited:?}, the whole bound, for a process that ended after 300 ms"
        );
        let long = Spawned::sh("sleep 30", &["outlives-the-bound"]);
        let started = Instant::now();
        wait_for_exit(&[long.pid()]);
        let waited = started.elapsed();
        assert!(
            waited >= KILL_SETTLE_TIMEOUT && waited < KILL_SETTLE_TIMEOUT * 5,
            "waited {waited:?} for a process that outlives the bound of {KILL_SETTLE_TIMEOUT:?}"
        );
    }

    #[test]
    fn only_a_failed_kill_counts_as_one() {
        let failed = |step| ForcedStopReport {
            failures: vec![StepFailure {
                step,
                error: "x".to_owned(),
            }],
            ..ForcedStopReport::default()
        };
        for step in [Step::KillHostagent, Step::KillDriver, Step::KillLeftover] {
            assert!(failed(step).kill_failed(), "{}", step.as_str());
        }
        for step in [Step::WslTerminate, Step::ReleaseDisk, Step::RemoveTmpFile] {
            assert!(!failed(step).kill_failed(), "{}", step.as_str());
        }
        assert!(!ForcedStopReport::default().kill_failed());
    }

    #[test]
    fn a_process_that_died_before_its_kill_is_no_failed_step() {
        // The identity check passed, then the process ended on its own: the
        // kill fails, but nothing is left running, so the pid files go. The
        // recycled-pid-kill regression skips the check, which is how this
        // test reaches the kill with a dead pid.
        let mut fx = fixture("qemu");
        fx.settings.regressions = Regressions::of([Regression::RecycledPidKill]);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(fx.paths.ha_pid(), dead.to_string()).unwrap();
        let report = fx.stop();
        assert!(report.failures.is_empty(), "{report:?}");
        assert!(!report.kept_files, "{report:?}");
        assert_eq!(fx.tmp_files(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_directory_has_no_tmp_files_and_a_file_is_no_directory() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("gone");
        assert_eq!(list_tmp_files(&missing).unwrap(), Vec::<PathBuf>::new());
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            list_tmp_files(&file).is_err(),
            "a file listed as a directory"
        );
    }

    #[test]
    fn a_link_is_removed_once_and_a_directory_link_by_remove_dir() {
        let root = tempfile::tempdir().unwrap();
        let link = root.path().join("in_use_by");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        remove_link(&link).unwrap();
        assert!(link.symlink_metadata().is_err(), "the link is still there");
        // Already gone: nothing to do, no error.
        remove_link(&link).unwrap();
        // What `remove_file` refuses (a directory, as a junction is on
        // Windows) goes by `remove_dir`.
        let dir = root.path().join("junction");
        std::fs::create_dir(&dir).unwrap();
        remove_link(&dir).unwrap();
        assert!(
            dir.symlink_metadata().is_err(),
            "the directory is still there"
        );
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            remove_link(&file.join("x")).is_err(),
            "a path through a file"
        );
    }
}
