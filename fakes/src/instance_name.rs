//! The instance-name check `limactl` makes before anything else, shared by
//! `limactl hostagent`, `limactl start` and the embedded hostagent.

use crate::error::FakeError;

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
