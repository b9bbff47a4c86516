//! Orphan recovery: when the service first sees a resource, an instance
//! whose hostagent still runs has no watcher (the previous service died).
//! It cannot be adopted: it is interrupted, given the graceful wait, forced
//! if needed, and the worker then starts afresh if the spec says so.

use crate::lifecycle::forced_stop::{ForcedStopReport, force, list_tmp_files};
use crate::lifecycle::identity::{Identity, hostagent_identity};
use crate::lifecycle::instance::inspect;
use crate::lifecycle::stop::{StopOutcome, StopPath, Target, stop_instance};
use crate::lifecycle::stop_settings::StopSettings;
use crate::logging::enter_instance;
use crate::regression::Regression;
use lima_layout::VmType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Nothing was running and nothing was left behind.
    Clean,
    /// A live hostagent was stopped.
    OrphanStopped { pid: u32, outcome: StopOutcome },
    /// No hostagent ran, but pid files or sockets were left: cleaned.
    LeftoversCleaned(ForcedStopReport),
}

pub(crate) fn recover(settings: &StopSettings, name: &str, assumed_vm_type: VmType) -> Recovery {
    let _vm = enter_instance(name);
    let instance = inspect(settings.lima_home(), name, assumed_vm_type);
    if !instance.exists() {
        return Recovery::Clean;
    }
    if let Some(pid) = instance.hostagent_pid
        && hostagent_identity(pid, name) == Identity::Ours
    {
        tracing::warn!(
            pid,
            "found an orphaned hostagent this service did not start; stopping it"
        );
        let outcome = if settings.is_on(Regression::OrphanRecoverySkipsGraceful) {
            let report = force(&settings.forced, &instance);
            StopOutcome {
                graceful: false,
                exited: !proctree::is_alive(pid),
                forced: Some(report),
            }
        } else {
            stop_instance(
                settings,
                name,
                assumed_vm_type,
                Target::Orphan(pid),
                StopPath::OrphanRecovery,
            )
        };
        return Recovery::OrphanStopped { pid, outcome };
    }
    let leftovers = list_tmp_files(&instance.paths.dir).unwrap_or_default();
    let processes = if settings.is_on(Regression::HostagentDeathLeftovers) {
        Vec::new()
    } else {
        crate::lifecycle::leftovers::find(
            settings.lima_home(),
            &instance.paths,
            settings.forced.masters,
        )
    };
    if leftovers.is_empty() && processes.is_empty() {
        return Recovery::Clean;
    }
    tracing::info!(
        files = leftovers.len(),
        processes = processes.len(),
        "no hostagent runs, but files or processes of a previous run are left; cleaning up"
    );
    Recovery::LeftoversCleaned(force(&settings.forced, &instance))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn tmp_files_left_without_any_process_are_cleaned_up() {
        let root = tempfile::tempdir().unwrap();
        let settings =
            crate::settings::Settings::new(root.path().join(".lima"), root.path().join("state"));
        let paths = settings.lima_home.instance("vm1");
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.lima_yaml(), "vmType: qemu\n").unwrap();
        std::fs::write(paths.ha_sock(), "").unwrap();
        let recovery = recover(&StopSettings::new(&settings), "vm1", VmType::Qemu);
        assert!(
            matches!(recovery, Recovery::LeftoversCleaned(_)),
            "{recovery:?}"
        );
        assert!(!paths.ha_sock().exists());
        assert!(paths.lima_yaml().exists());
    }
}
