//! The test harness: a sandbox per scenario, fake or real tools on its PATH,
//! a fault plan, the fakes' journal, process and port observation, and
//! drivers for the reconciler under test.

mod binaries;
pub mod commands;
pub mod defects;
pub mod driver;
pub mod error;
pub mod eventually;
mod faults;
pub mod invariants;
mod journal;
pub mod leaks;
pub mod ports;
pub mod real_lima;
mod reference;
pub mod runs;
pub mod sandbox;
mod service;
mod settings;
pub mod slots;
pub mod target;
pub mod template;
mod toolset;
pub mod unremovable;
pub mod waits;
pub mod witness;
mod witnessed;

pub use binaries::Binaries;
pub use driver::{Condition, ReconcilerDriver, ResourceKind, VmSpec, VmView};
pub use error::HarnessError;
pub use eventually::{WaitError, eventually, eventually_every};
pub use faults::FaultPlanBuilder;
pub use journal::Journal;
pub use leaks::LeakReport;
pub use reference::ReferenceDriver;
pub use sandbox::Sandbox;
pub use settings::DriverSettings;
pub use target::Target;
pub use target::{ExternalDriver, TargetFile};
pub use template::Template;
pub use toolset::{ToolChoice, Toolset};
pub use waits::WaitSplit;
