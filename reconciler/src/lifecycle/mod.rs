//! What the service does to one Lima instance, step by step: start its
//! hostagent, stop it gracefully or by force, recover an orphan, delete it,
//! and what those steps need (the instance's files read afresh, process
//! identity, disk locks, SSH keys, leftovers, the WSL distro).
//!
//! Each step takes the settings it needs and runs external tools through
//! [`crate::command`]; none of them knows about the worker that calls it.

pub(crate) mod deletion;
pub(crate) mod disk_locks;
pub mod forced_stop;
pub(crate) mod hostagent;
pub(crate) mod identity;
pub mod instance;
pub(crate) mod keys;
pub(crate) mod leftovers;
pub(crate) mod orphan;
pub(crate) mod stop;
pub(crate) mod stop_settings;
pub(crate) mod wsl;
