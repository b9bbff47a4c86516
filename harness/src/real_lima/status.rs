//! An instance's status as Lima derives it (`lifecycle.md`): hostagent
//! pid alive and answering `/v1/info`, driver pid alive.

use lima_layout::info::query_info;
use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, VmType};
use std::time::Duration;

const INFO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimaStatus {
    Running {
        hostagent: u32,
        driver: u32,
        ssh_port: u16,
    },
    Stopped,
    /// Half up or half down: what Lima would call `Broken`, and why.
    Broken(String),
}

impl LimaStatus {
    pub fn is_running(&self) -> bool {
        matches!(self, LimaStatus::Running { .. })
    }
}

fn live_pid(path: &std::path::Path) -> Option<u32> {
    read_pid_file(path).filter(|pid| proctree::is_alive(*pid))
}

/// Not for WSL2, whose driver has no pid file.
pub fn lima_status(instance: &InstancePaths, vm_type: VmType) -> LimaStatus {
    let hostagent = live_pid(&instance.ha_pid());
    let driver = live_pid(&instance.driver_pid(vm_type));
    match (hostagent, driver) {
        (None, None) => LimaStatus::Stopped,
        (Some(hostagent), Some(driver)) => match query_info(&instance.ha_sock(), INFO_TIMEOUT) {
            Ok(info) => LimaStatus::Running {
                hostagent,
                driver,
                ssh_port: info.ssh_local_port,
            },
            Err(e) => LimaStatus::Broken(format!("hostagent {hostagent} does not answer: {e}")),
        },
        (Some(hostagent), None) => LimaStatus::Broken(format!("hostagent {hostagent}, no driver")),
        (None, Some(driver)) => LimaStatus::Broken(format!("driver {driver}, no hostagent")),
    }
}
