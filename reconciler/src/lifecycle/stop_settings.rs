//! What the stop steps are configured with, taken from the service's
//! [`Settings`] in one place: [`ForcedStopSettings`] for the forced stop,
//! [`StopSettings`] (the forced stop's plus the graceful wait) for the
//! graceful stop and orphan recovery. The worker builds them once; the
//! steps pass them down instead of the whole service configuration.

use crate::lifecycle::leftovers::Masters;
use crate::regression::{Regression, Regressions};
use crate::settings::Settings;
use lima_layout::LimaHome;
use std::ffi::OsString;
use std::time::Duration;

/// How far a forced stop looks for the instance's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The pid files' trees, then every process still identified as the
    /// instance's (see [`crate::lifecycle::leftovers`]).
    Instance,
    /// Only what the pid files name and its descendants (the reviewed
    /// code's reach, which the regressions of the forced stop put back).
    PidFiles,
}

/// The forced stop's settings: where the instances are, the tools it
/// calls and their bounds, how far it looks for the instance's processes,
/// and the regression switches (several put back a defect of the forced
/// stop, see [`Regression`]).
#[derive(Debug, Clone)]
pub(crate) struct ForcedStopSettings {
    pub(crate) lima_home: LimaHome,
    /// `ssh`, to ask the instance's ControlMaster to exit.
    pub(crate) ssh: OsString,
    /// `wsl.exe`, to terminate a WSL2 distro.
    pub(crate) wsl: OsString,
    /// The bound of `ssh -O exit`: the graceful timeout, as Lima's
    /// `limactl stop` allows its own ssh calls.
    pub(crate) control_master_timeout: Duration,
    /// The bound of `wsl.exe --terminate`; `None` when the
    /// `wsl-hang-unbounded` regression removes it.
    pub(crate) wsl_timeout: Option<Duration>,
    /// Whether a daemonized ControlMaster is found by its title.
    pub(crate) masters: Masters,
    /// How far [`crate::lifecycle::forced_stop::forced_stop`] looks unless
    /// a caller names the reach.
    pub(crate) reach: Reach,
    pub(crate) regressions: Regressions,
}

impl ForcedStopSettings {
    /// The forced stop's part of `settings`.
    pub(crate) fn new(settings: &Settings) -> Self {
        let narrowed = [
            Regression::HostagentDeathLeftovers,
            Regression::OrphanedPortHolders,
        ]
        .into_iter()
        .any(|r| settings.is_on(r));
        Self {
            lima_home: settings.lima_home.clone(),
            ssh: settings.tools.ssh.clone(),
            wsl: settings.tools.wsl.clone(),
            control_master_timeout: settings.graceful_timeout,
            wsl_timeout: settings.wsl_bound(settings.wsl_timeout),
            masters: Masters::of(&settings.regressions),
            reach: if narrowed {
                Reach::PidFiles
            } else {
                Reach::Instance
            },
            regressions: settings.regressions.clone(),
        }
    }

    pub(crate) fn is_on(&self, regression: Regression) -> bool {
        self.regressions.is_on(regression)
    }
}

/// The settings of a stop that starts gracefully (see
/// [`crate::lifecycle::stop`]) and of orphan recovery: the graceful wait,
/// and the forced stop's settings for when it runs out.
#[derive(Debug, Clone)]
pub(crate) struct StopSettings {
    /// How long an interrupted hostagent gets to exit before it is forced.
    pub(crate) graceful_timeout: Duration,
    pub(crate) forced: ForcedStopSettings,
}

impl StopSettings {
    /// The stop's part of `settings`.
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            graceful_timeout: settings.graceful_timeout,
            forced: ForcedStopSettings::new(settings),
        }
    }

    pub(crate) fn lima_home(&self) -> &LimaHome {
        &self.forced.lima_home
    }

    pub(crate) fn is_on(&self, regression: Regression) -> bool {
        self.forced.is_on(regression)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forced_stop_reach_narrows_with_either_regression() {
        let mut settings = Settings::new("/l", "/s");
        assert_eq!(ForcedStopSettings::new(&settings).reach, Reach::Instance);
        for regression in [
            Regression::HostagentDeathLeftovers,
            Regression::OrphanedPortHolders,
        ] {
            settings.regressions = Regressions::of([regression]);
            assert_eq!(ForcedStopSettings::new(&settings).reach, Reach::PidFiles);
        }
    }

    #[test]
    fn the_graceful_timeout_bounds_the_wait_and_the_control_master_exit() {
        let mut settings = Settings::new("/l", "/s");
        settings.graceful_timeout = Duration::from_millis(300);
        let stop = StopSettings::new(&settings);
        assert_eq!(stop.graceful_timeout, Duration::from_millis(300));
        assert_eq!(
            stop.forced.control_master_timeout,
            Duration::from_millis(300)
        );
    }
}
