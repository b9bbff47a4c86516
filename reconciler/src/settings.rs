//! Everything a service run is configured with: directories, timeouts,
//! the external tools it calls and the regression switches.

use crate::regression::{Regression, Regressions};
pub(crate) use contract::timings::{format_duration, parse_duration};
use contract::{Timings, Tool};
use lima_layout::LimaHome;
use std::ffi::OsString;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

/// The external programs, looked up on PATH unless a test names a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tools {
    pub(crate) limactl: OsString,
    pub(crate) wsl: OsString,
    pub(crate) ssh_keygen: OsString,
    /// Only to end an instance's ControlMaster (`ssh -O exit`).
    pub(crate) ssh: OsString,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            limactl: Tool::Limactl.as_str().into(),
            wsl: Tool::Wsl.as_str().into(),
            ssh_keygen: Tool::SshKeygen.as_str().into(),
            ssh: Tool::Ssh.as_str().into(),
        }
    }
}

/// How the hostagent is launched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HostagentEntry {
    /// `limactl hostagent --pidfile DIR/ha.pid --socket DIR/ha.sock NAME`:
    /// the instance is ready to run (the fakes, or an instance Lima
    /// prepared before).
    #[default]
    Hostagent,
    /// `limactl start --foreground --tty=false NAME`: real Lima prepares the
    /// instance (disks, cidata) and then becomes the hostagent itself, with
    /// its pid file, socket and logs at Lima's default places.
    StartForeground,
    /// `<this executable> hostagent --pidfile DIR/ha.pid --socket
    /// DIR/ha.sock NAME`: the service re-executes itself as the hostagent,
    /// as a reconciler that embeds Lima does (the embedded Lima is the
    /// fakes' hostagent, which still finds QEMU, `ssh` and `wsl.exe` on
    /// PATH); no `limactl` is called.
    Embedded,
}

/// A service run's configuration: the Lima home and state directory, the
/// timings (durations, see [`contract::Timings`]), the regression switches,
/// the external tools and how the hostagent is started. Built by
/// [`Settings::new`] with the documented defaults, then adjusted by the
/// command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) lima_home: LimaHome,
    pub(crate) state_dir: PathBuf,
    /// Timeouts, backoffs and budgets; they read as fields of the
    /// settings (`settings.graceful_timeout`).
    pub(crate) timings: Timings,
    pub(crate) regressions: Regressions,
    pub(crate) tools: Tools,
    pub(crate) hostagent_entry: HostagentEntry,
}

impl Settings {
    /// The documented defaults for Lima's home `lima_home` (what
    /// `LIMA_HOME` names) and `state_dir` (the store, logs, `service.json`
    /// and `events.jsonl`): default timings, no regression, tools on PATH.
    pub fn new(lima_home: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            lima_home: LimaHome::new(lima_home),
            state_dir: state_dir.into(),
            timings: Timings::default(),
            regressions: Regressions::none(),
            tools: Tools::default(),
            hostagent_entry: HostagentEntry::default(),
        }
    }

    pub(crate) fn is_on(&self, regression: Regression) -> bool {
        self.regressions.is_on(regression)
    }

    /// The bound for a `wsl.exe` call, `None` when a regression removes it.
    pub(crate) fn wsl_bound(&self, timeout: Duration) -> Option<Duration> {
        (!self.is_on(Regression::WslHangUnbounded)).then_some(timeout)
    }

    /// The bound for an `ssh-keygen` call, `None` when a regression removes it.
    pub(crate) fn keygen_bound(&self) -> Option<Duration> {
        (!self.is_on(Regression::KeygenUnbounded)).then_some(self.keygen_timeout)
    }

    pub(crate) fn service_file(&self) -> PathBuf {
        self.state_dir.join("service.json")
    }

    pub(crate) fn log_file(&self) -> PathBuf {
        self.state_dir.join("reconciler.log")
    }

    pub(crate) fn events_file(&self) -> PathBuf {
        self.state_dir.join("events.jsonl")
    }
}

impl Deref for Settings {
    type Target = Timings;

    fn deref(&self) -> &Timings {
        &self.timings
    }
}

impl DerefMut for Settings {
    fn deref_mut(&mut self) -> &mut Timings {
        &mut self.timings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regressions_remove_bounds() {
        let mut settings = Settings::new("/l", "/s");
        assert_eq!(settings.keygen_bound(), Some(Duration::from_secs(30)));
        assert_eq!(
            settings.wsl_bound(settings.wsl_timeout),
            Some(Duration::from_secs(30))
        );
        settings.regressions =
            Regressions::of([Regression::KeygenUnbounded, Regression::WslHangUnbounded]);
        assert_eq!(settings.keygen_bound(), None);
        assert_eq!(settings.wsl_bound(settings.delete_timeout), None);
    }
}
