//! Logs go to stderr and to `<state>/reconciler.log`, as text (every field
//! on the line: `instance=vm1 step="wsl terminate" error="..."`) or JSON
//! (one object a line, fields at the top level).

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Environment variable with a tracing filter (default `info`).
pub(crate) const LOG_FILTER_ENV: &str = contract::env::LOG;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoggingError {
    #[error("cannot open the log file {path}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Installs the process-wide logger.
pub(crate) fn init(log_file: &Path, format: LogFormat) -> Result<(), LoggingError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .map_err(|source| LoggingError::Open {
            path: log_file.display().to_string(),
            source,
        })?;
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = std::io::stderr.and(Mutex::new(file));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInstalled)
}

/// A field value shown bare when that is unambiguous (`instance=vm1`) and
/// quoted otherwise (`instance="my vm"`).
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = !self.0.is_empty()
            && self
                .0
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '=' | '\\'));
        if bare {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// A path field, quoted like [`Shown`] when it holds spaces or quotes.
pub(crate) struct ShownPath<'a>(pub(crate) &'a std::path::Path);

impl fmt::Display for ShownPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(&self.0.to_string_lossy()).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bare_only_when_unambiguous() {
        assert_eq!(Shown("vm1").to_string(), "vm1");
        assert_eq!(Shown("we[1]rd").to_string(), "we[1]rd");
        assert_eq!(Shown("my vm").to_string(), "\"my vm\"");
        assert_eq!(Shown("a=b").to_string(), "\"a=b\"");
        assert_eq!(Shown("").to_string(), "\"\"");
        let path = std::path::Path::new("/tmp/a [1] b/x");
        assert_eq!(ShownPath(path).to_string(), "\"/tmp/a [1] b/x\"");
    }
}
