//! The environment variables that carry facts from one process of this
//! project to another. Each value is the variable's name.

/// Comma-separated finding IDs whose regression switches the reference
/// reconciler turns on, in addition to `--regress`.
pub const REGRESS: &str = "LIMAVM_REGRESS";
/// The reference reconciler's state directory for `ctl` (`--state`).
pub const STATE: &str = "LIMAVM_STATE";
/// How the reference reconciler launches a hostagent (`--hostagent-entry`).
pub const HOSTAGENT_ENTRY: &str = "LIMAVM_HOSTAGENT_ENTRY";
/// The reference reconciler's log filter (`tracing` env-filter syntax).
pub const LOG: &str = "LIMAVM_LOG";
/// The fault plan file every fake reads at every invocation.
pub const FAULT_PLAN: &str = "LIMAVM_FAULT_PLAN";
/// The journal file every fake appends its events to.
pub const JOURNAL: &str = "LIMAVM_JOURNAL";
/// The fake `wsl.exe`'s state file (its distros and their states).
pub const FAKE_WSL_STATE: &str = "LIMAVM_FAKE_WSL_STATE";
/// The sandbox root a process runs in (set by the harness on everything it
/// starts, to find leftovers by environment).
pub const SANDBOX: &str = "LIMAVM_SANDBOX";
