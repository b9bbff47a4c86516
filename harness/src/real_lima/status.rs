//! An instance's status as Lima derives it (`lifecycle.md`): hostagent
//! pid alive and answering `/v1/info`, driver pid alive.

use lima_layout::info::query_info;
use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, VmType};
use std::time::Duration;

const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// An instance's status as Lima itself judges it from the instance directory
/// (Lima's pkg/store/instance.go: `ha.pid`, the driver's pid file, the SSH
/// port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimaStatus {
    /// The hostagent and its driver are alive.
    Running {
        /// The hostagent's pid (`ha.pid`).
        hostagent: u32,
        /// The driver's pid (`qemu.pid`).
        driver: u32,
        /// The forwarded SSH port on the host.
        ssh_port: u16,
    },
    /// No hostagent and no driver: stopped.
    Stopped,
    /// Half up or half down: what Lima would call `Broken`, and why.
    Broken(String),
}

impl LimaStatus {
    /// True for [`LimaStatus::Running`].
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
            Err(e) => LimaStatus::Broken(format!(
                "hostagent {hostagent} does not answer: {}",
                contract::error_chain::chain(&e)
            )),
        },
        (Some(hostagent), None) => LimaStatus::Broken(format!("hostagent {hostagent}, no driver")),
        (None, Some(driver)) => LimaStatus::Broken(format!("driver {driver}, no hostagent")),
    }
}

/// How long a QMP probe waits for QEMU's greeting.
#[cfg(unix)]
const QMP_GREETING_TIMEOUT: Duration = Duration::from_millis(500);

/// True when QEMU accepts a client on the instance's QMP socket and greets
/// it (`{"QMP": ...}`): real Lima presses the power button through that
/// socket, and a stop asked for before it answers makes Lima kill QEMU
/// instead (its QEMU driver: "failed to open the QMP socket, forcibly
/// killing QEMU"). The socket file alone is not enough: it exists a moment
/// before QEMU accepts on it. The probe reads the greeting and hangs up, so
/// that QEMU's one QMP client slot is free again for the hostagent.
#[cfg(unix)]
pub fn qmp_answers(instance: &InstancePaths) -> bool {
    use std::io::Read;
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(instance.qmp_sock()) else {
        return false;
    };
    if stream.set_read_timeout(Some(QMP_GREETING_TIMEOUT)).is_err() {
        return false;
    }
    let mut greeting = [0u8; 16];
    let mut read = 0;
    while read < greeting.len() {
        match stream.read(&mut greeting[read..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => read += n,
        }
    }
    greeting.starts_with(b"{\"QMP\"") || greeting.starts_with(b"{ \"QMP\"")
}

/// Real Lima runs QEMU behind a Unix socket only where it runs: not on
/// Windows, where no real-Lima scenario starts QEMU.
#[cfg(not(unix))]
pub fn qmp_answers(_instance: &InstancePaths) -> bool {
    false
}
