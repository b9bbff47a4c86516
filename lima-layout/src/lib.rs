//! What Lima puts on disk and says on its sockets, as far as a reconciler and
//! the fakes that stand in for Lima need to agree on it.

pub mod checks;
pub mod config;
pub mod events;
pub mod identifiers;
pub mod info;
pub mod paths;
mod socket;

pub use config::{LimaConfig, PortForward, VmType};
pub use events::{HostagentEvent, HostagentStatus};
pub use paths::{InstancePaths, LimaHome, TMP_SUFFIXES, is_tmp_file_name};
