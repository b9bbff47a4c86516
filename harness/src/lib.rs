//! The test harness: a sandbox per scenario, fake or real tools on its PATH,
//! a fault plan, the fakes' journal, process and port observation, and
//! drivers for the reconciler under test.

pub mod binaries;
pub mod defects;
pub mod driver;
pub mod eventually;
pub mod external;
pub mod faults;
pub mod invariants;
pub mod journal;
pub mod leaks;
pub mod ports;
pub mod real_lima;
pub mod reference;
pub mod runs;
pub mod sandbox;
pub mod service;
pub mod slots;
pub mod target;
pub mod target_lima;
pub mod target_schema;
pub mod template;
pub mod toolset;
pub mod unremovable;
pub mod waits;
pub mod witnessed;

pub use binaries::Binaries;
pub use driver::{Condition, ReconcilerDriver, ResourceKind, VmSpec, VmView};
pub use eventually::{WaitError, eventually, eventually_every};
pub use external::{ExternalDriver, TargetFile};
pub use faults::FaultPlanBuilder;
pub use journal::Journal;
pub use leaks::LeakReport;
pub use reference::{DriverSettings, ReferenceDriver};
pub use sandbox::Sandbox;
pub use target::Target;
pub use template::Template;
pub use toolset::{ToolChoice, Toolset};
pub use waits::WaitSplit;

/// Errors of the harness itself (not of the system under test).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "binary {name} not found (looked in {looked_in}); build it with `cargo build --workspace --bins`"
    )]
    BinaryMissing { name: String, looked_in: String },
    #[error(
        "tool {tool} not found for the real toolset (limactl: `just real-lima-install`; the others: PATH)"
    )]
    RealToolMissing { tool: String },
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("reconciler under test: {0}")]
    Driver(String),
    #[error("{what} did not finish within {timeout:?} (killed with its process group){}", if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    CommandHung {
        what: String,
        timeout: std::time::Duration,
        stderr: String,
    },
    /// A command exited, but a process it started still held its output
    /// `grace` later (then killed).
    #[error(
        "{what} exited, but a process it started still held its output {grace:?} later (killed)"
    )]
    OutputHeld {
        what: String,
        grace: std::time::Duration,
    },
    #[error("the run was interrupted: no sandbox or process starts any more")]
    Interrupted,
    #[error("{0}")]
    Setup(String),
    #[error("{what} failed with {status}: {stderr}")]
    Cli {
        what: String,
        status: String,
        stderr: String,
    },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}
