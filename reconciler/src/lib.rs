//! The reference Lima-backed VM reconciler.
//!
//! A store of LimaVM resources ([`store::Store`]), a service that keeps one
//! Lima instance per resource in the state it asks for ([`service::serve`]),
//! and one regression switch per finding of the review
//! ([`regression::Regression`]), each putting back exactly one defect.
//! `shared/design/lifecycle.md` is the behaviour it follows.

mod atomic_file;
pub mod cli;
pub mod command;
pub mod configmap_schema;
pub mod ctl;
pub mod deletion;
pub mod disk_locks;
pub mod event_log;
pub mod forced_stop;
pub mod hostagent;
pub mod identity;
pub mod instance;
pub mod keys;
pub mod leftovers;
pub mod logging;
pub mod merge_patch;
pub mod names;
pub mod orphan;
mod platform;
pub mod regression;
pub mod resource;
pub mod service;
pub mod settings;
pub mod state_lock;
pub mod stop;
pub mod store;
pub mod template;
mod worker;
pub mod wsl;

#[cfg(all(test, unix))]
mod test_support;

pub use cli::{cli_main, cli_main_from};
pub use regression::{Regression, Regressions};
pub use resource::LimaVm;
pub use settings::Settings;
pub use store::Store;
