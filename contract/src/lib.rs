//! What the crates of this workspace, and the processes they start, must
//! agree on, declared once: the finding IDs, the resource's annotations,
//! the service timings, the environment variable names, the `Running` condition's types and
//! reasons, the exit codes, the tools the fakes stand in for, the fault
//! plan, the journal, and how one executable is installed under the tools'
//! names (its `argv[0]` picks the role).
//!
//! This crate holds data and its (de)serialisation only: it starts no
//! process and waits for nothing, so every other crate may depend on it
//! without depending on each other.

pub mod annotation;
pub mod condition;
pub mod env;
pub mod error_chain;
pub mod exit;
pub mod finding;
pub mod install;
pub mod journal;
pub mod plan;
pub mod timings;

pub use finding::{FindingId, UnknownFinding};
pub use plan::Tool;
pub use timings::{Timing, Timings};
