//! The findings catalogue as code: one scenario per finding, each run against
//! a reconciler with the regression switched off (it must pass) and on (it
//! must fail, naming the symptom).

pub mod audit;
pub mod catalogue;
pub mod checks;
pub mod context;
pub mod cross_path;
mod findings;
pub mod hostile;
pub mod junit;
pub mod key_pair;
pub mod report;
pub mod restart;
pub mod runner;
pub mod shard;
pub mod steps;

pub use catalogue::{CATALOGUE, Finding};
pub use context::{Ctx, ScenarioError, ScenarioResult};
pub use findings::strict::refused_names;
pub use findings::{qemu_vm, wsl_vm};
pub use runner::{Outcome, Variant, run_finding};
