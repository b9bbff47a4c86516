//! What `limactl hostagent`, `limactl start` and the embedded hostagent
//! check and read of an instance before anything else: its name and its
//! `lima.yaml`.

use crate::error::FakeError;
use contract::error_chain::chain;
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

/// The instance's `lima.yaml`; a failure (exit 1) names the instance and
/// the cause.
pub(crate) fn load_config(instance: &InstancePaths) -> Result<LimaConfig, FakeError> {
    LimaConfig::load(&instance.lima_yaml())
        .map_err(|e| FakeError::failed(format!("instance {:?}: {}", instance.name, chain(&e))))
}
