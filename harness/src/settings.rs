//! [`DriverSettings`]: how a driver runs any target (the reference, a
//! target file), and the harness's default bounds.

use contract::{FindingId, Timings};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// The `--hostagent-entry` value for real Lima.
pub(crate) const START_FOREGROUND: &str = "start-foreground";

/// How a driver runs any target (the reference, a target file): the
/// service's timings and regression switches, and the harness's own bounds.
/// `fast()` is what scenarios use ([`Timings::fast`]). The timings
/// read as fields of the settings (`settings.graceful_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSettings {
    /// The findings whose regression switches the service runs with.
    pub regressions: Vec<FindingId>,
    /// The service's timeouts, backoffs and budgets.
    pub timings: Timings,
    /// How long a dropped driver waits for its service to shut down.
    pub drop_shutdown_timeout: Duration,
    /// The bound of every command the harness runs for the target (a CLI
    /// verb, a ready or stop command); at it the command's group is killed
    /// and the scenario ends with a harness error naming the command.
    pub command_timeout: Duration,
    /// How long the VMs are read, nothing asked, before a service is
    /// stopped: their statuses must settle meanwhile
    /// ([`crate::invariants::Invariant::StatusesSettle`]). Zero skips it.
    pub settle_window: Duration,
    /// PATH holds the sandbox's `bin/` only (to make a tool missing).
    pub isolated_path: bool,
    /// `--hostagent-entry`: how the service starts a hostagent (`hostagent`
    /// by default; `start-foreground` for real Lima, which prepares the
    /// instance's disks before it becomes the hostagent). Not passed when
    /// unset.
    pub hostagent_entry: Option<String>,
}

/// How long past its graceful timeout a service's own shutdown may take
/// (the forced stops after the graceful ones, process exits) before the
/// harness kills it: seconds, where the work takes well under one.
pub(crate) const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

/// The default bound of a command the harness runs for a target: a real
/// reconciler's CLI may wait for its API server first (rancher-desktop-
/// daemon's `service config` waits up to 90 s), and a loaded 2-core machine
/// slows every call; a command that hangs is still ended.
pub(crate) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The default settle window: several reads of a status whose reconcile
/// loop takes milliseconds a turn.
pub(crate) const DEFAULT_SETTLE_WINDOW: Duration = Duration::from_millis(100);

impl DriverSettings {
    /// The settings scenarios use: [`Timings::fast`], no regression, the
    /// default bounds.
    pub fn fast() -> Self {
        let timings = Timings::fast();
        Self {
            regressions: Vec::new(),
            drop_shutdown_timeout: timings.graceful_timeout + SHUTDOWN_MARGIN,
            timings,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            settle_window: DEFAULT_SETTLE_WINDOW,
            isolated_path: false,
            hostagent_entry: None,
        }
    }

    /// The settings for `toolset`: real Lima is started with
    /// `limactl start --foreground` (the plain `hostagent` entry expects a
    /// prepared instance, which only a start makes).
    pub fn for_toolset(mut self, toolset: &crate::toolset::Toolset) -> Self {
        if toolset.has_real_lima() {
            self.hostagent_entry = Some(START_FOREGROUND.to_owned());
        }
        self
    }

    /// These settings with `finding`'s regression switch on.
    pub fn with_regression(mut self, finding: FindingId) -> Self {
        self.regressions.push(finding);
        self
    }
}

impl Deref for DriverSettings {
    type Target = Timings;

    fn deref(&self) -> &Timings {
        &self.timings
    }
}

impl DerefMut for DriverSettings {
    fn deref_mut(&mut self) -> &mut Timings {
        &mut self.timings
    }
}
