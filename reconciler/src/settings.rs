//! Everything a service run is configured with: directories, timeouts,
//! the external tools it calls and the regression switches.

use crate::regression::{Regression, Regressions};
use lima_layout::LimaHome;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The external programs, looked up on PATH unless a test names a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub limactl: OsString,
    pub wsl: OsString,
    pub ssh_keygen: OsString,
    /// Only to end an instance's ControlMaster (`ssh -O exit`).
    pub ssh: OsString,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            limactl: "limactl".into(),
            wsl: "wsl.exe".into(),
            ssh_keygen: "ssh-keygen".into(),
            ssh: "ssh".into(),
        }
    }
}

/// How the hostagent is launched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HostagentEntry {
    /// `limactl hostagent --pidfile DIR/ha.pid --socket DIR/ha.sock NAME`:
    /// the instance is ready to run (the fakes, or an instance Lima
    /// prepared before).
    #[default]
    Hostagent,
    /// `limactl start --foreground --tty=false NAME`: real Lima prepares the
    /// instance (disks, cidata) and then becomes the hostagent itself, with
    /// its pid file, socket and logs at Lima's default places.
    StartForeground,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub lima_home: LimaHome,
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    pub start_timeout: Duration,
    pub graceful_timeout: Duration,
    pub wsl_timeout: Duration,
    pub delete_timeout: Duration,
    pub keygen_timeout: Duration,
    pub delete_backoff: Duration,
    pub delete_backoff_max: Duration,
    /// Failed delete attempts after which the finalizer is dropped with a
    /// recorded report; 0 retries forever.
    pub delete_retry_budget: u32,
    pub restart_backoff: Duration,
    pub regressions: Regressions,
    pub tools: Tools,
    pub hostagent_entry: HostagentEntry,
}

impl Settings {
    /// The documented defaults.
    pub fn new(lima_home: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            lima_home: LimaHome::new(lima_home),
            state_dir: state_dir.into(),
            poll_interval: Duration::from_millis(100),
            start_timeout: Duration::from_secs(10),
            graceful_timeout: Duration::from_secs(30),
            wsl_timeout: Duration::from_secs(30),
            delete_timeout: Duration::from_secs(60),
            keygen_timeout: Duration::from_secs(30),
            delete_backoff: Duration::from_secs(1),
            delete_backoff_max: Duration::from_secs(60),
            delete_retry_budget: 8,
            restart_backoff: Duration::from_secs(1),
            regressions: Regressions::none(),
            tools: Tools::default(),
            hostagent_entry: HostagentEntry::default(),
        }
    }

    pub fn is_on(&self, regression: Regression) -> bool {
        self.regressions.is_on(regression)
    }

    /// The bound for a `wsl.exe` call, `None` when a regression removes it.
    pub fn wsl_bound(&self, timeout: Duration) -> Option<Duration> {
        (!self.is_on(Regression::WslHangUnbounded)).then_some(timeout)
    }

    /// The bound for an `ssh-keygen` call, `None` when a regression removes it.
    pub fn keygen_bound(&self) -> Option<Duration> {
        (!self.is_on(Regression::KeygenUnbounded)).then_some(self.keygen_timeout)
    }

    pub fn service_file(&self) -> PathBuf {
        self.state_dir.join("service.json")
    }

    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("reconciler.log")
    }

    pub fn events_file(&self) -> PathBuf {
        self.state_dir.join("events.jsonl")
    }

    pub fn lima_home_path(&self) -> &Path {
        self.lima_home.path()
    }
}

/// The longest duration any option accepts: a deadline this far ahead is
/// representable on every platform (an `Instant` plus
/// `18446744073709551615s` overflows), and no wait of this project is
/// meant to be longer.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration such as `250ms`, `2s` or `1m 30s`, of at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "duration {text:?} is longer than the longest accepted, {}",
            format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

/// [`parse_duration`] for an interval between polls: not zero (a zero
/// interval busy-loops a core).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "interval {text:?} is zero: the service would poll without pause (use at least 1ms)"
        )),
        d => Ok(d),
    }
}

/// Formats a duration the way it is written on the command line.
pub fn format_duration(duration: Duration) -> String {
    // Whole milliseconds read better than humantime's nanosecond tails.
    let rounded = Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX));
    if rounded.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(rounded).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_like_the_command_line() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
        assert_eq!(parse_duration("7days"), Ok(MAX_DURATION));
        assert!(
            parse_duration("18446744073709551615s")
                .unwrap_err()
                .contains("longer than the longest accepted, 7days")
        );
        assert!(parse_interval("0s").unwrap_err().contains("is zero"));
        assert_eq!(parse_interval("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(
            format_duration(Duration::from_micros(1_500_700)),
            "1s 500ms"
        );
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

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
