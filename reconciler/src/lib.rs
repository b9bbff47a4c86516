//! The reference Lima-backed VM reconciler.
//!
//! A store of LimaVM resources, a service that keeps one Lima instance per
//! resource in the state it asks for, and one regression switch per finding
//! of the review, each putting back exactly one defect.
//! `shared/design/lifecycle.md` is the behaviour it follows.
//!
//! The modules form one stack, each using only those below it:
//! [`cli_main`] (`cli/`) → `service` → `worker/` → `lifecycle/` →
//! `command` → `settings`, `template`, `regression` → `store/`, with
//! `logging` and `platform` as leaves any layer may use.
//!
//! Other crates use only [`cli_main`] (the `limavm-reconciler` command
//! line), [`Settings`], [`instance::inspect`] and [`forced_stop::forced_stop`]
//! (to compare the reference forced stop with Lima's `limactl stop --force`).

mod cli;
mod command;
mod lifecycle;
mod logging;
mod platform;
mod regression;
mod service;
mod settings;
mod store;
mod template;
mod worker;

#[cfg(all(test, unix))]
mod test_support;

pub use cli::cli_main;
pub use lifecycle::{forced_stop, instance};
pub use settings::Settings;
