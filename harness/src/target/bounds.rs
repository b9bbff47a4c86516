//! `[timeouts]` and `[harness]` of a target file: the target's own fixed
//! timeouts, and the harness's bounds and parallelism for it.

use crate::settings::{DriverSettings, SHUTDOWN_MARGIN};
use serde::Deserialize;
use std::time::Duration;

/// The target's own timeouts, fixed in its code (not flags): each one set
/// replaces the harness's value, and scenarios derive their expectations
/// from it. Durations as `30s`, `500ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedTimeouts {
    /// Graceful stop: interrupt, then this long before forcing.
    #[serde(default, with = "opt_duration")]
    pub graceful: Option<Duration>,
    /// A hostagent start (until it reports running).
    #[serde(default, with = "opt_duration")]
    pub start: Option<Duration>,
    /// One `wsl.exe` call.
    #[serde(default, with = "opt_duration")]
    pub wsl: Option<Duration>,
    /// One backend delete attempt.
    #[serde(default, with = "opt_duration")]
    pub delete: Option<Duration>,
    /// One `ssh-keygen` call.
    #[serde(default, with = "opt_duration")]
    pub keygen: Option<Duration>,
    /// The wait before a crashed hostagent is started again.
    #[serde(default, with = "opt_duration")]
    pub restart_backoff: Option<Duration>,
    /// How long the target waits for a hostagent's pid file (informational:
    /// no scenario depends on it yet).
    #[serde(default, with = "opt_duration")]
    pub pid_file_wait: Option<Duration>,
}

impl FixedTimeouts {
    /// `settings` with every fixed timeout in place.
    pub(crate) fn apply(&self, mut settings: DriverSettings) -> DriverSettings {
        let timings = &mut settings.timings;
        let fields = [
            (self.graceful, &mut timings.graceful_timeout),
            (self.start, &mut timings.start_timeout),
            (self.wsl, &mut timings.wsl_timeout),
            (self.delete, &mut timings.delete_timeout),
            (self.keygen, &mut timings.keygen_timeout),
            (self.restart_backoff, &mut timings.restart_backoff),
        ];
        for (fixed, field) in fields {
            if let Some(value) = fixed {
                *field = value;
            }
        }
        // A service's own shutdown stops its VMs gracefully first: give it
        // that long, and a margin for the forced stops after it, before
        // the harness kills it.
        settings.drop_shutdown_timeout = settings
            .drop_shutdown_timeout
            .max(settings.graceful_timeout + SHUTDOWN_MARGIN);
        settings
    }

    /// The fixed timeouts, as `graceful 30s, pid_file_wait 5s`.
    pub(crate) fn describe(&self) -> String {
        [
            ("graceful", self.graceful),
            ("start", self.start),
            ("wsl", self.wsl),
            ("delete", self.delete),
            ("keygen", self.keygen),
            ("restart_backoff", self.restart_backoff),
            ("pid_file_wait", self.pid_file_wait),
        ]
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| format!("{name} {}", humantime::format_duration(d))))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// How the harness drives the target: its own bounds and parallelism,
/// not timeouts of the target's code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessSection {
    /// The bound of every command the harness runs for the target (CLI
    /// verbs, ready, stop and kubeconfig commands); `reproduce
    /// --command-timeout` overrides it. Default
    /// [`crate::settings::DEFAULT_COMMAND_TIMEOUT`].
    #[serde(default, with = "opt_duration")]
    pub command_timeout: Option<Duration>,
    /// How long the VMs are read, nothing asked, before each service stop
    /// (the statuses-settle invariant); `0s` skips it. Default
    /// [`crate::settings::DEFAULT_SETTLE_WINDOW`].
    #[serde(default, with = "opt_duration")]
    pub settle_window: Option<Duration>,
    /// How long a started service gets to be ready (its ready file, ready
    /// and kubeconfig commands; one that hangs while the service comes up
    /// is tried again). Default
    /// [`crate::service::EXTERNAL_READY_TIMEOUT`].
    #[serde(default, with = "opt_duration")]
    pub ready_timeout: Option<Duration>,
    /// At most this many scenarios at once (a service with fixed ports and
    /// no slots: 1). Default: no limit beyond `reproduce --jobs`.
    #[serde(default)]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Instance slots: each sandbox holds one, named by the `{slot}`
    /// placeholder, and as many scenarios run at once as there are slots.
    #[serde(default)]
    pub slots: Option<crate::slots::Slots>,
}

impl HarnessSection {
    /// Checks the bounds: a command or ready timeout of more than 0s and
    /// at most 1h (as `reproduce --command-timeout`), a settle window of at
    /// most a minute, and the slots' numbers.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let hour = Duration::from_secs(3600);
        for (field, value) in [
            ("command_timeout", self.command_timeout),
            ("ready_timeout", self.ready_timeout),
        ] {
            match value {
                Some(d) if d.is_zero() => {
                    return Err(format!("harness.{field} must be more than 0s"));
                }
                Some(d) if d > hour => return Err(format!("harness.{field} must be at most 1h")),
                _ => {}
            }
        }
        if self
            .settle_window
            .is_some_and(|d| d > Duration::from_secs(60))
        {
            return Err("harness.settle_window must be at most 1m".into());
        }
        self.slots
            .as_ref()
            .map_or(Ok(()), crate::slots::Slots::validate)
    }

    /// `settings` with this section's bounds in place.
    pub(crate) fn apply(&self, mut settings: DriverSettings) -> DriverSettings {
        if let Some(timeout) = self.command_timeout {
            settings.command_timeout = timeout;
        }
        if let Some(window) = self.settle_window {
            settings.settle_window = window;
        }
        settings
    }

    /// How many scenarios may run at once: the slots' count, or `jobs`.
    pub(crate) fn max_jobs(&self) -> Option<usize> {
        [
            self.slots.map(|slots| slots.count as usize),
            self.jobs.map(std::num::NonZeroUsize::get),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t)
                .map_err(|e| serde::de::Error::custom(format!("{t:?} is not a duration: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_timeouts_replace_the_settings() {
        let fixed: FixedTimeouts =
            toml::from_str("graceful = \"30s\"\npid_file_wait = \"5s\"").unwrap();
        let settings = fixed.apply(DriverSettings::fast());
        assert_eq!(settings.graceful_timeout, Duration::from_secs(30));
        assert_eq!(fixed.describe(), "graceful 30s, pid_file_wait 5s");
        let bad = toml::from_str::<FixedTimeouts>("graceful = \"soon\"").unwrap_err();
        assert!(bad.to_string().contains("soon"), "{bad}");
    }
}
