//! What `limactl hostagent`, `limactl start` and the embedded hostagent
//! check and read of an instance before anything else: its name and its
//! `lima.yaml`.

use crate::error::FakeError;
use contract::error_chain::chain;
use lima_layout::checks::{self, Drivers, Stage};
use lima_layout::{InstancePaths, LimaConfig};

/// Lima refuses a name that is not an identifier before it touches
/// anything of the instance (`hostagent`: "instance name `N` is not a valid
/// identifier: ...", exit 1; `start` then reads the name as a template
/// locator, which fails too). The fake says the former for both.
pub(crate) fn check_instance_name(name: &str) -> Result<(), FakeError> {
    use lima_layout::identifiers::{InvalidIdentifier, validate_instance_name};
    validate_instance_name(name).map_err(|e| {
        FakeError::failed(match e {
            InvalidIdentifier::YamlSuffix(_) => e.to_string(),
            other => format!("instance name {name:?} is not a valid identifier: {other}"),
        })
    })
}

/// The instance's `lima.yaml`, judged by Lima's checks
/// ([`lima_layout::checks`]) before it is read: as `limactl start NAME`
/// does (`store.Inspect` re-runs Lima's `Validate`), a file Lima refuses
/// fails with exit 1 and "instance N has configuration errors: <the
/// check>", before anything is written. (Real `limactl hostagent` on such
/// a file crashes with exit 2 instead; the fake says why and exits 1.)
pub(crate) fn load_config(instance: &InstancePaths) -> Result<LimaConfig, FakeError> {
    let path = instance.lima_yaml();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    checks::check_lima_yaml(&text, Drivers::of_this_host_with_faked_wsl2()).map_err(|e| {
        FakeError::failed(format!(
            "instance {:?} has configuration errors: {e}",
            instance.name
        ))
    })?;
    LimaConfig::load(&path)
        .map_err(|e| FakeError::failed(format!("instance {:?}: {}", instance.name, chain(&e))))
}

/// Lima's hostagent refuses an instance directory that leaves no room for
/// its `ssh.sock` (rule `socket-path-start`), exit 1, before it starts
/// anything.
pub(crate) fn check_socket_room(instance: &InstancePaths) -> Result<(), FakeError> {
    checks::check_instance_dir(&instance.dir, Stage::Start)
        .map_err(|e| FakeError::failed(format!("instance {:?}: {e}", instance.name)))
}
