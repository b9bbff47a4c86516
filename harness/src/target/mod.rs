//! Which reconciler the scenarios drive ([`Target`]): the reference, or
//! one a target file describes.
//!
//! The target file's format and its checks are read in `file.rs` (the
//! file and its service, cli, resource and lima sections), `status.rs`,
//! `resource.rs` (changes, observed), `bounds.rs` (timeouts, harness),
//! `placeholders.rs` and `validate.rs`; the driver that follows it in
//! `driver.rs`, with `ready.rs`, `tracker.rs` and `home.rs`. See
//! `fixtures/targets/README.md` for the format.

mod bounds;
mod driver;
mod file;
mod home;
mod placeholders;
mod ready;
mod resource;
mod status;
mod tracker;
mod validate;

pub use bounds::{FixedTimeouts, HarnessSection};
pub use driver::ExternalDriver;
pub use file::{CliSection, LimaSection, ResourceSection, ServiceSection, TargetError, TargetFile};
pub use resource::{Change, Changes, Observed};
pub use status::{ConditionRule, StatusMap};

use crate::driver::ReconcilerDriver;
use crate::reference::ReferenceDriver;
use crate::sandbox::Sandbox;
use crate::settings::DriverSettings;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Environment variable naming a target file for the test suites.
pub const TARGET_ENV: &str = "HARNESS_TARGET";

/// The reconciler under test.
/// The reconciler under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// The reference reconciler, driven through its files and `ctl`.
    Reference,
    /// Any reconciler with a kubectl-style CLI, described by a target file.
    External(Arc<TargetFile>),
}

impl Target {
    /// `reference`, or the path of a target file.
    pub fn parse(spec: &str) -> Result<Self, TargetError> {
        if spec == "reference" {
            Ok(Target::Reference)
        } else {
            Ok(Target::External(Arc::new(TargetFile::load(Path::new(
                spec,
            ))?)))
        }
    }

    /// The target `HARNESS_TARGET` names, the reference one by default.
    pub fn from_env() -> Result<Self, TargetError> {
        std::env::var(TARGET_ENV).map_or(Ok(Target::Reference), |spec| Self::parse(&spec))
    }

    /// The name reports give it: `reference`, or the file's `name`.
    /// The name reports give it: `reference`, or the file's `name`.
    pub fn name(&self) -> &str {
        match self {
            Target::Reference => "reference",
            Target::External(file) => &file.name,
        }
    }

    /// True when the target can switch a finding's regression on.
    pub fn supports_regressions(&self) -> bool {
        match self {
            Target::Reference => true,
            Target::External(file) => file.supports_regressions(),
        }
    }

    /// `settings` with the target's fixed timeouts in place: what
    /// scenarios derive their expectations from.
    pub fn settings(&self, settings: DriverSettings) -> DriverSettings {
        match self {
            Target::Reference => settings,
            Target::External(file) => file.settings(settings),
        }
    }

    /// The same target, every command bounded by `timeout` whatever its
    /// file says (`reproduce --command-timeout`).
    pub fn with_command_timeout(self, timeout: std::time::Duration) -> Self {
        match self {
            Target::Reference => Target::Reference,
            Target::External(file) => {
                let mut file = TargetFile::clone(&file);
                file.harness.command_timeout = Some(timeout);
                Target::External(Arc::new(file))
            }
        }
    }

    /// How many scenarios of this target may run at once, if it limits
    /// them (`[harness] slots` or `jobs`).
    pub fn max_jobs(&self) -> Option<usize> {
        match self {
            Target::Reference => None,
            Target::External(file) => file.harness.max_jobs(),
        }
    }

    /// The target's fixed timeouts, as `graceful 30s` (empty when none).
    pub fn fixed_timeouts(&self) -> String {
        match self {
            Target::Reference => String::new(),
            Target::External(file) => file.timeouts.describe(),
        }
    }

    /// The spawn attributes its hostagents must have (names of
    /// [`proctree::SpawnAttributes::NAMES`]): the reference asks for all.
    pub fn spawn_attributes(&self) -> Vec<String> {
        match self {
            Target::Reference => proctree::SpawnAttributes::NAMES.map(String::from).to_vec(),
            Target::External(file) => file.lima.spawn_attributes(),
        }
    }

    /// True when the target embeds Lima and re-executes itself as the
    /// hostagent (no `limactl` on PATH is called).
    pub fn embeds_hostagent(&self) -> bool {
        match self {
            Target::Reference => false,
            Target::External(file) => file.lima.embedded_hostagent,
        }
    }

    /// True when the target's service runs as the unprivileged user
    /// (`[service] unprivileged`), not as the harness.
    pub fn runs_unprivileged(&self) -> bool {
        match self {
            Target::Reference => false,
            Target::External(file) => file.service.unprivileged,
        }
    }

    /// The words that make a command run as the user the target's service
    /// runs as (`setpriv ... --` when it is unprivileged and the harness is
    /// root, see [`crate::real_lima::drop_privileges_prefix`]); empty when
    /// it runs as the harness. Fails when the drop is needed but impossible.
    pub fn service_user_prefix(&self) -> Result<Vec<String>, String> {
        if !self.runs_unprivileged() {
            return Ok(Vec::new());
        }
        crate::real_lima::drop_privileges_prefix().map(Option::unwrap_or_default)
    }

    /// A driver of this target in `sandbox` with `settings`, its service's
    /// state in `state_dir`; every call is watched for the invariants
    /// ([`crate::witnessed::Witnessed`]).
    /// A driver of this target in `sandbox` with `settings`, its service's
    /// state in `state_dir`; every call is watched for the invariants
    /// ([`crate::witnessed::Witnessed`]).
    pub fn driver<'s>(
        &self,
        sandbox: &'s Sandbox,
        settings: DriverSettings,
        state_dir: PathBuf,
    ) -> Box<dyn ReconcilerDriver + 's> {
        let graceful_timeout = settings.graceful_timeout;
        let delete_retry_budget = settings.delete_retry_budget;
        let settle_window = settings.settle_window;
        let inner: Box<dyn ReconcilerDriver + 's> = match self {
            Target::Reference => {
                Box::new(ReferenceDriver::with_state(sandbox, settings, state_dir))
            }
            Target::External(file) => Box::new(ExternalDriver::new(
                sandbox,
                TargetFile::clone(file),
                settings,
                state_dir,
            )),
        };
        // Every call is watched: the invariants hold for every target.
        Box::new(crate::witnessed::Witnessed::new(
            inner,
            sandbox,
            graceful_timeout,
            delete_retry_budget,
            settle_window,
        ))
    }
}
