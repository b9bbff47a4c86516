//! The service timings: every timeout, backoff and budget a reconciler
//! service runs with, declared once. [`Timings`] is the reference
//! reconciler's `serve` options (a `clap::Args` to flatten), their
//! documented defaults ([`Timings::default`]), the short values tests use
//! ([`Timings::fast`]), the arguments that pass them on
//! ([`Timings::args`]), the placeholders of a target file
//! ([`Timings::NAMES`], [`Timings::values`]) and a serde map of name to
//! value (`{"graceful_timeout": "500ms"}`).
//!
//! A new timing is one entry of the table below.

use serde::de::Error as _;
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest duration any timing accepts: a deadline this far ahead is
/// representable on every platform (an `Instant` plus
/// `18446744073709551615s` overflows), and no wait of this project is
/// meant to be longer.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A timing that cannot be parsed or does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// Not a duration humantime reads (`250ms`, `2s`, `1m 30s`).
    #[error("invalid duration {text:?}: {reason}")]
    InvalidDuration {
        /// The text as given.
        text: String,
        /// humantime's description of what is wrong.
        reason: String,
    },
    /// Longer than [`MAX_DURATION`].
    #[error(
        "duration {text:?} is longer than the longest accepted, {}",
        format_duration(MAX_DURATION)
    )]
    TooLong {
        /// The text as given.
        text: String,
    },
    /// A zero interval between polls, which would busy-loop a core.
    #[error("interval {text:?} is zero: the service would poll without pause (use at least 1ms)")]
    ZeroInterval {
        /// The text as given.
        text: String,
    },
    /// Not a count (a non-negative integer that fits 32 bits).
    #[error("invalid count {text:?}: {reason}")]
    InvalidCount {
        /// The text as given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// No timing has this name.
    #[error("unknown timing {name:?}; valid names: {}", Timings::NAMES.join(", "))]
    Unknown {
        /// The name as given.
        name: String,
    },
}

/// Parses a duration such as `250ms`, `2s` or `1m 30s`, of at most
/// [`MAX_DURATION`].
///
/// # Errors
///
/// [`TimingError::InvalidDuration`] or [`TimingError::TooLong`].
pub fn parse_duration(text: &str) -> Result<Duration, TimingError> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|e| TimingError::InvalidDuration {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
    if duration > MAX_DURATION {
        return Err(TimingError::TooLong {
            text: text.to_owned(),
        });
    }
    Ok(duration)
}

/// [`parse_duration`] for an interval between polls: not zero (a zero
/// interval busy-loops a core).
///
/// # Errors
///
/// Those of [`parse_duration`], or [`TimingError::ZeroInterval`].
pub fn parse_interval(text: &str) -> Result<Duration, TimingError> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(TimingError::ZeroInterval {
            text: text.to_owned(),
        }),
        d => Ok(d),
    }
}

/// Parses a count such as a retry budget.
///
/// # Errors
///
/// [`TimingError::InvalidCount`].
pub fn parse_count(text: &str) -> Result<u32, TimingError> {
    text.trim()
        .parse()
        .map_err(|e: std::num::ParseIntError| TimingError::InvalidCount {
            text: text.to_owned(),
            reason: e.to_string(),
        })
}

/// Formats a duration the way it is written on the command line, in whole
/// milliseconds (`1s 500ms`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    // Whole milliseconds read better than humantime's nanosecond tails.
    let rounded = Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX));
    if rounded.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(rounded).to_string()
}

/// A timing's value as the command line and target files take it.
trait Render {
    fn render(&self) -> String;
}

impl Render for Duration {
    /// Whole milliseconds (`500ms`): exact, and read by every duration
    /// parser the targets use.
    fn render(&self) -> String {
        format!("{}ms", self.as_millis())
    }
}

impl Render for u32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

/// Declares [`Timings`] and its tables from one entry per timing.
macro_rules! timings {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:literal, fast $fast:literal, parse $parse:path;
    )+) => {
        /// Every timeout, backoff and budget of a reconciler service.
        /// Durations are `std::time::Duration`; on the command line and in
        /// target files they are humantime text (`500ms`, `30s`).
        #[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
        pub struct Timings {
            $(
                $(#[doc = $doc])*
                #[arg(long, default_value = $default, value_parser = $parse)]
                pub $field: $ty,
            )+
        }

        impl Timings {
            /// The names of the timings: the fields, the serde keys and
            /// the target-file placeholders (`{graceful_timeout}`); the
            /// command-line flag is the name in kebab case.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            /// The documented defaults of `limavm-reconciler serve`.
            fn defaults() -> Self {
                Self {
                    $($field: $parse($default).expect("a default timing parses"),)+
                }
            }

            /// The short timings tests and scenarios use: short enough that
            /// a run takes well under a second of waiting, long enough to
            /// stay clear of scheduling noise on 2 cores.
            pub fn fast() -> Self {
                Self {
                    $($field: $parse($fast).expect("a fast timing parses"),)+
                }
            }

            /// `(name, value)` of every timing, values as the command line
            /// takes them (`500ms`, `8`).
            pub fn values(&self) -> Vec<(&'static str, String)> {
                vec![$((stringify!($field), Render::render(&self.$field)),)+]
            }

            /// Sets the timing `name` from its text.
            ///
            /// # Errors
            ///
            /// An unknown name, or text its parser refuses.
            pub fn set(&mut self, name: &str, text: &str) -> Result<(), TimingError> {
                match name {
                    $(stringify!($field) => self.$field = $parse(text)?,)+
                    _ => return Err(TimingError::Unknown { name: name.to_owned() }),
                }
                Ok(())
            }
        }
    };
}

timings! {
    /// Interval between two passes of the service over the resources.
    poll_interval: Duration = "100ms", fast "20ms", parse parse_interval;
    /// How long to wait for the hostagent's ha.pid.
    start_timeout: Duration = "10s", fast "10s", parse parse_duration;
    /// How long a hostagent gets to stop after the interrupt.
    graceful_timeout: Duration = "30s", fast "500ms", parse parse_duration;
    /// Bound of `wsl.exe --terminate`.
    wsl_timeout: Duration = "30s", fast "500ms", parse parse_duration;
    /// Bound of `wsl.exe --unregister`.
    delete_timeout: Duration = "60s", fast "500ms", parse parse_duration;
    /// Bound of each `ssh-keygen` call and of the wait for the key lock.
    keygen_timeout: Duration = "30s", fast "5s", parse parse_duration;
    /// Wait before the first delete retry; doubles per failed attempt.
    delete_backoff: Duration = "1s", fast "50ms", parse parse_duration;
    /// The longest wait between two delete retries.
    delete_backoff_max: Duration = "60s", fast "400ms", parse parse_duration;
    /// Failed delete attempts before the finalizer is dropped with a recorded report (0: no limit).
    delete_retry_budget: u32 = "8", fast "8", parse parse_count;
    /// Wait before restarting a hostagent that exited unexpectedly.
    restart_backoff: Duration = "1s", fast "100ms", parse parse_duration;
}

impl Default for Timings {
    /// The documented defaults of `limavm-reconciler serve`.
    fn default() -> Self {
        Self::defaults()
    }
}

impl Timings {
    /// The command-line arguments that pass every timing on
    /// (`--graceful-timeout=500ms`).
    pub fn args(&self) -> Vec<String> {
        self.values()
            .into_iter()
            .map(|(name, value)| format!("--{}={value}", name.replace('_', "-")))
            .collect()
    }
}

impl serde::Serialize for Timings {
    /// A map of name to value as the command line takes it.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.values())
    }
}

impl<'de> serde::Deserialize<'de> for Timings {
    /// A map of name to value; a missing timing keeps its default, an
    /// unknown name or a bad value is an error naming it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut timings = Timings::default();
        for (name, text) in map {
            timings.set(&name, &text).map_err(D::Error::custom)?;
        }
        Ok(timings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        timings: Timings,
    }

    #[test]
    fn durations_parse_and_print_like_the_command_line() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .to_string()
                .contains("soon")
        );
        assert_eq!(parse_duration("7days"), Ok(MAX_DURATION));
        let too_long = parse_duration("18446744073709551615s").unwrap_err();
        assert!(
            too_long
                .to_string()
                .contains("longer than the longest accepted, 7days")
        );
        assert!(
            parse_interval("0s")
                .unwrap_err()
                .to_string()
                .contains("is zero")
        );
        assert_eq!(
            format_duration(Duration::from_micros(1_500_700)),
            "1s 500ms"
        );
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn the_flags_default_to_the_documented_values_and_args_round_trip() {
        let parsed = Cli::try_parse_from(["x"]).unwrap().timings;
        assert_eq!(parsed, Timings::default());
        assert_eq!(parsed.graceful_timeout, Duration::from_secs(30));
        let fast = Timings::fast();
        let args = fast.args();
        assert!(
            args.contains(&"--graceful-timeout=500ms".to_owned()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--delete-retry-budget=8".to_owned()),
            "{args:?}"
        );
        let again = Cli::try_parse_from(std::iter::once("x".to_owned()).chain(args))
            .unwrap()
            .timings;
        assert_eq!(again, fast);
    }

    #[test]
    fn serde_is_a_map_of_names_and_names_are_the_placeholders() {
        let json = serde_json::to_value(Timings::fast()).unwrap();
        assert_eq!(json["graceful_timeout"], "500ms");
        let back: Timings = serde_json::from_value(json).unwrap();
        assert_eq!(back, Timings::fast());
        let partial: Timings = serde_json::from_str(r#"{"wsl_timeout": "2s"}"#).unwrap();
        assert_eq!(partial.wsl_timeout, Duration::from_secs(2));
        assert_eq!(partial.delete_timeout, Timings::default().delete_timeout);
        let err = serde_json::from_str::<Timings>(r#"{"wsl": "2s"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown timing \"wsl\""), "{err}");
        let names: Vec<_> = Timings::fast()
            .values()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, Timings::NAMES);
    }
}
