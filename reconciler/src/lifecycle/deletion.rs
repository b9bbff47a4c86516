//! Deleting an instance for a resource that is being deleted: force it
//! down, unregister the WSL2 distro, remove the directory. A failure keeps
//! the finalizer and is retried with exponential backoff.

use crate::lifecycle::forced_stop::ForcedStopReport;
use crate::lifecycle::instance::Instance;
use crate::lifecycle::wsl::{self, WslOutcome};
use crate::settings::Settings;
use lima_layout::VmType;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a delete attempt failed, and what it left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeleteFailure {
    pub(crate) error: String,
    /// Human-readable leftovers, e.g. "WSL2 distro lima-vm1 still registered".
    pub(crate) left_behind: Vec<String>,
}

/// The wait before retry `attempt` (1-based): `base * 2^(attempt-1)`,
/// capped at `max`.
pub(crate) fn backoff_delay(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    base.saturating_mul(2u32.saturating_pow(exponent)).min(max)
}

/// True when `attempts` failures spend the budget (0: unlimited).
pub(crate) fn budget_spent(budget: u32, attempts: u32) -> bool {
    budget > 0 && attempts >= budget
}

/// What is left when a kill failed and nothing was deleted: the processes
/// still alive, the directory and, for WSL2, the registered distro.
fn left_after_failed_kill(instance: &Instance) -> Vec<String> {
    let mut left_behind: Vec<String> = [instance.driver_pid, instance.hostagent_pid]
        .into_iter()
        .flatten()
        .filter(|pid| proctree::is_alive(*pid))
        .map(|pid| format!("process {pid} still running"))
        .collect();
    left_behind.push(format!(
        "instance directory {} still present",
        instance.paths.dir.display()
    ));
    if instance.vm_type == VmType::Wsl2 {
        left_behind.push(format!(
            "WSL2 distro {} still registered",
            instance.wsl_distro()
        ));
    }
    left_behind
}

/// Unregisters the instance's WSL2 distro. A failed unregister is a
/// failure only when the distro is (or may be) still registered: WSL may
/// finish an unregister after its client failed or was killed, so only
/// what is really left is named.
fn unregister_distro(settings: &Settings, instance: &Instance) -> Result<(), DeleteFailure> {
    let distro = instance.wsl_distro();
    let timeout = settings.wsl_bound(settings.delete_timeout);
    let error = match wsl::unregister(&settings.tools.wsl, &distro, timeout) {
        Ok(WslOutcome::Done) | Ok(WslOutcome::NotFound) => return Ok(()),
        Err(e) => e,
    };
    let registered = wsl::is_registered(
        &settings.tools.wsl,
        &distro,
        settings.wsl_bound(settings.wsl_timeout),
    );
    let distro_left = match registered {
        Ok(false) => return Ok(()),
        Ok(true) => format!("WSL2 distro {distro} still registered"),
        Err(list_error) => format!(
            "WSL2 distro {distro} possibly still registered (cannot list distros: {list_error})"
        ),
    };
    Err(DeleteFailure {
        error: contract::error_chain::chain(&error),
        left_behind: vec![
            distro_left,
            format!(
                "instance directory {} still present",
                instance.paths.dir.display()
            ),
        ],
    })
}

/// Deletes the instance after the forced stop that `stopped` reports.
pub(crate) fn delete_instance(
    settings: &Settings,
    instance: &Instance,
    stopped: &ForcedStopReport,
) -> Result<(), DeleteFailure> {
    if stopped.kill_failed() {
        return Err(DeleteFailure {
            error: stopped.summary(),
            left_behind: left_after_failed_kill(instance),
        });
    }
    if instance.vm_type == VmType::Wsl2 {
        unregister_distro(settings, instance)?;
    }
    if settings.is_on(crate::regression::Regression::DeleteBlockerUnnamed) {
        return remove_naming_only_the_directory(&instance.paths.dir);
    }
    match remove_tree(&instance.paths.dir) {
        Ok(()) => Ok(()),
        Err((entry, e)) => Err(DeleteFailure {
            error: format!(
                "cannot remove {}: {e} (deleting instance directory {})",
                entry.display(),
                instance.paths.dir.display()
            ),
            left_behind: vec![format!(
                "{} and its instance directory {} still present",
                entry.display(),
                instance.paths.dir.display()
            )],
        }),
    }
}

/// The delete-blocker-unnamed regression: a failed removal names the
/// instance directory, not the entry that blocks it.
fn remove_naming_only_the_directory(dir: &Path) -> Result<(), DeleteFailure> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DeleteFailure {
            error: format!("cannot remove instance directory {}: {e}", dir.display()),
            left_behind: vec![format!(
                "instance directory {} still present",
                dir.display()
            )],
        }),
        _ => Ok(()),
    }
}

/// Removes `dir` and everything below it (links removed, not followed).
/// On failure, names the entry that could not be removed: the one an
/// operator has to deal with, rather than the directory that held it.
fn remove_tree(dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err((dir.to_owned(), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_owned(), e))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let result = if is_dir {
            remove_tree(&path)
        } else {
            match std::fs::remove_file(&path) {
                // A directory link on Windows goes with remove_dir.
                Err(e) if !gone(&e) => std::fs::remove_dir(&path).map_err(|_| (path.clone(), e)),
                _ => Ok(()),
            }
        };
        result?;
    }
    match std::fs::remove_dir(dir) {
        Err(e) if !gone(&e) => Err((dir.to_owned(), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::instance::inspect;

    #[test]
    fn a_tree_that_cannot_be_listed_is_reported_not_taken_for_gone() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-directory");
        std::fs::write(&file, "").unwrap();
        let (entry, _) = remove_tree(&file).unwrap_err();
        assert_eq!(entry, file);
        assert!(remove_tree(&root.path().join("missing")).is_ok());
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let s = Duration::from_secs;
        let delays: Vec<Duration> = (1..=8).map(|n| backoff_delay(s(1), s(60), n)).collect();
        assert_eq!(delays, [s(1), s(2), s(4), s(8), s(16), s(32), s(60), s(60)]);
        assert_eq!(backoff_delay(s(1), s(60), 0), s(1));
        assert_eq!(backoff_delay(s(1), s(60), u32::MAX), s(60));
        let ms = Duration::from_millis;
        assert_eq!(backoff_delay(ms(100), ms(250), 2), ms(200));
        assert_eq!(backoff_delay(ms(100), ms(250), 3), ms(250));
    }

    #[test]
    fn the_budget_counts_failed_attempts() {
        assert!(!budget_spent(3, 2));
        assert!(budget_spent(3, 3));
        assert!(!budget_spent(0, 1000), "0 retries for ever");
    }

    #[test]
    fn a_qemu_instance_is_deleted_with_its_directory() {
        let home = tempfile::tempdir().unwrap();
        let settings = Settings::new(home.path(), home.path().join("state"));
        let paths = settings.lima_home.instance("vm1");
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.lima_yaml(), "vmType: qemu\n").unwrap();
        let instance = inspect(&settings.lima_home, "vm1", VmType::Qemu);
        delete_instance(&settings, &instance, &ForcedStopReport::default()).unwrap();
        assert!(!paths.dir.exists());
        // Deleting what is already gone succeeds.
        delete_instance(&settings, &instance, &ForcedStopReport::default()).unwrap();
    }

    #[test]
    fn after_a_failed_kill_nothing_is_deleted_and_only_a_wsl2_instance_names_its_distro() {
        use crate::lifecycle::forced_stop::{Step, StepFailure};
        let home = tempfile::tempdir().unwrap();
        let settings = Settings::new(home.path(), home.path().join("state"));
        let killed_not = ForcedStopReport {
            failures: vec![StepFailure {
                step: Step::KillHostagent,
                error: "EPERM".to_owned(),
            }],
            ..ForcedStopReport::default()
        };
        for (vm_type, name) in [(VmType::Qemu, "vm1"), (VmType::Wsl2, "vm2")] {
            let paths = settings.lima_home.instance(name);
            std::fs::create_dir_all(&paths.dir).unwrap();
            std::fs::write(paths.lima_yaml(), format!("vmType: {vm_type}\n")).unwrap();
            let instance = inspect(&settings.lima_home, name, vm_type);
            let failure = delete_instance(&settings, &instance, &killed_not).unwrap_err();
            assert!(
                paths.dir.exists(),
                "{name}: deleted despite the failed kill"
            );
            let names_distro = failure
                .left_behind
                .iter()
                .any(|l| l.contains("WSL2 distro"));
            assert_eq!(
                names_distro,
                vm_type == VmType::Wsl2,
                "{name}: {:?}",
                failure.left_behind
            );
        }
    }

    #[test]
    fn a_failed_unregister_names_the_distro_that_may_be_left_behind() {
        let home = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(home.path(), home.path().join("state"));
        settings.tools.wsl = "limavm-no-such-wsl".into();
        let paths = settings.lima_home.instance("vm1");
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.lima_yaml(), "vmType: wsl2\n").unwrap();
        let instance = inspect(&settings.lima_home, "vm1", VmType::Wsl2);
        let failure =
            delete_instance(&settings, &instance, &ForcedStopReport::default()).unwrap_err();
        assert_eq!(failure.error, "wsl.exe not found on PATH");
        // wsl.exe cannot list the distros either, so nothing is certain.
        assert!(
            failure
                .left_behind
                .iter()
                .any(|l| l.starts_with("WSL2 distro lima-vm1 possibly still registered")),
            "{:?}",
            failure.left_behind
        );
        assert!(paths.dir.exists(), "the directory stays for the retry");
    }
}

#[cfg(all(test, unix))]
mod remove_tree_tests {
    use super::remove_tree;
    use std::path::Path;

    #[test]
    fn removes_nested_entries_and_links_without_following_them() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "").unwrap();
        let dir = root.path().join("vm[1]");
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("sub/deeper/f"), "").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
        assert!(outside.join("keep").exists());
        remove_tree(&dir).unwrap();
    }

    /// Blocks `path` (harness::unremovable), runs `remove_tree(dir)` and
    /// lets it go again; `None` where this platform and user cannot block.
    fn remove_tree_while_blocked(
        dir: &Path,
        path: &Path,
    ) -> Option<Result<(), (std::path::PathBuf, std::io::Error)>> {
        if let Err(e) = harness::unremovable::block(path) {
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            eprintln!("skipped: {e}");
            return None;
        }
        let result = remove_tree(dir);
        harness::unremovable::undo(path).unwrap();
        Some(result)
    }

    #[test]
    fn names_the_entry_that_blocked() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("vm");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let entry = dir.join("sub/entry");
        std::fs::write(&entry, "").unwrap();
        let Some(result) = remove_tree_while_blocked(&dir, &entry) else {
            return;
        };
        let (blocked, _) = result.unwrap_err();
        assert_eq!(blocked, entry);
    }

    #[test]
    fn a_directory_that_cannot_be_removed_is_reported_not_taken_for_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("vm");
        let sub = dir.join("empty");
        std::fs::create_dir_all(&sub).unwrap();
        let Some(result) = remove_tree_while_blocked(&dir, &sub) else {
            return;
        };
        let (blocked, _) = result.unwrap_err();
        assert_eq!(blocked, sub);
    }
}
