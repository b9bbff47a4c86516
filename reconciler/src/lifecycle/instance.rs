//! What an instance directory says right now: its VM type, the pids its pid
//! files name and its additional disks. Read afresh whenever a decision
//! depends on it, because the hostagent rewrites these files as it runs.

use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, LimaConfig, LimaHome, VmType};

/// One instance directory as read by [`inspect`]: its paths, VM type, the
/// pids its pid files name and its additional disks (Lima's layout,
/// `pkg/store/instance.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub(crate) paths: InstancePaths,
    pub(crate) vm_type: VmType,
    /// What `ha.pid` names (it may be stale: check identity before use).
    pub(crate) hostagent_pid: Option<u32>,
    /// What `<vmType>.pid` names (likewise).
    pub(crate) driver_pid: Option<u32>,
    pub(crate) disks: Vec<String>,
    /// Why `lima.yaml` could not be read, when it could not.
    pub(crate) config_problem: Option<String>,
}

impl Instance {
    pub(crate) fn name(&self) -> &str {
        &self.paths.name
    }

    pub(crate) fn exists(&self) -> bool {
        self.paths.dir.is_dir()
    }

    pub(crate) fn wsl_distro(&self) -> String {
        self.paths.wsl_distro()
    }
}

/// Reads the instance `name` under `lima_home` (missing files read as
/// absent: this never fails). `assumed_vm_type` stands in when `lima.yaml`
/// is missing or unreadable (the resource's spec knows it too).
pub fn inspect(lima_home: &LimaHome, name: &str, assumed_vm_type: VmType) -> Instance {
    let paths = lima_home.instance(name);
    let (vm_type, disks, config_problem) = match LimaConfig::load(&paths.lima_yaml()) {
        Ok(config) => (
            config.vm_type,
            config.disk_names().map(str::to_owned).collect(),
            None,
        ),
        Err(e) => (assumed_vm_type, Vec::new(), Some(e.to_string())),
    };
    Instance {
        hostagent_pid: read_pid_file(&paths.ha_pid()),
        driver_pid: read_pid_file(&paths.driver_pid(vm_type)),
        vm_type,
        disks,
        config_problem,
        paths,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pid_files_type_and_disks() {
        let home = tempfile::tempdir().unwrap();
        let lima_home = LimaHome::new(home.path());
        let paths = lima_home.instance("vm1");
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.lima_yaml(), "vmType: qemu\nadditionalDisks: [data]\n").unwrap();
        std::fs::write(paths.ha_pid(), "41\n").unwrap();
        std::fs::write(paths.dir.join("qemu.pid"), "42").unwrap();
        let instance = inspect(&lima_home, "vm1", VmType::Wsl2);
        assert_eq!(instance.vm_type, VmType::Qemu);
        assert_eq!(instance.hostagent_pid, Some(41));
        assert_eq!(instance.driver_pid, Some(42));
        assert_eq!(instance.disks, ["data"]);
        assert!(instance.config_problem.is_none());
    }

    #[test]
    fn a_missing_instance_uses_the_assumed_type() {
        let home = tempfile::tempdir().unwrap();
        let instance = inspect(&LimaHome::new(home.path()), "none", VmType::Wsl2);
        assert_eq!(instance.vm_type, VmType::Wsl2);
        assert_eq!(instance.hostagent_pid, None);
        assert!(!instance.exists());
        assert!(instance.config_problem.unwrap().contains("lima.yaml"));
    }
}
