//! Logs go to stderr and to `<state>/reconciler.log`, as text (every field
//! on the line, the VM's span first: `vm{instance=vm1}: forced stop step
//! failed step="wsl terminate" error="..."`) or JSON (one object a line,
//! the event's fields at the top level and the VM's span under `"span"`:
//! `{"span":{"instance":"vm1","name":"vm"},...}`).
//!
//! Work for one VM runs inside one [`instance_span`], so the instance is
//! named once, by the span, instead of by a field of every log call.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::SubscriberBuilder;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Json, JsonFields};
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
        LogFormat::Json => as_json(builder).try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInstalled)
}

/// The JSON lines: the event's fields at the top level, and the current
/// span (the VM's, which names the instance) under `"span"`; the list of
/// all spans would only repeat it.
fn as_json<F, W>(
    builder: SubscriberBuilder<DefaultFields, Format, F, W>,
) -> SubscriberBuilder<JsonFields, Format<Json>, F, W> {
    builder
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
}

/// The name of the span that work for one VM runs in.
const INSTANCE_SPAN: &str = "vm";

/// Enters the span of the VM `name` (field `instance`, shown as
/// [`Shown`]) unless the current span already is a VM's: the worker
/// enters it for the thread's life, and a lifecycle step entered from
/// elsewhere (a test, the forced stop other crates call) enters it itself.
/// The span is left when the guard drops.
pub(crate) fn enter_instance(name: &str) -> Option<tracing::span::EnteredSpan> {
    let current = tracing::Span::current();
    if current
        .metadata()
        .is_some_and(|meta| meta.name() == INSTANCE_SPAN)
    {
        return None;
    }
    Some(tracing::info_span!(INSTANCE_SPAN, instance = %Shown(name)).entered())
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

    #[cfg(unix)]
    #[test]
    fn a_json_line_of_vm_work_names_the_instance_once_under_span() {
        let buffer = crate::test_support::LogBuffer::default();
        let subscriber = as_json(tracing_subscriber::fmt().with_writer(buffer.clone())).finish();
        tracing::subscriber::with_default(subscriber, || {
            let _vm = enter_instance("my vm");
            // A nested step for the same VM opens no second span.
            let _step = enter_instance("my vm");
            tracing::warn!(step = "wsl terminate", "forced stop step failed");
        });
        let text = buffer.contents();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["span"]["instance"], "\"my vm\"", "{text}");
        assert_eq!(line["step"], "wsl terminate", "{text}");
        assert!(line.get("spans").is_none(), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn a_text_line_of_vm_work_names_the_instance_once() {
        let ((), text) = crate::test_support::with_captured_log(|| {
            let _vm = enter_instance("vm1");
            let _step = enter_instance("vm1");
            tracing::info!("forced stop done");
        });
        assert!(
            text.contains("vm{instance=vm1}: forced stop done"),
            "{text}"
        );
        assert_eq!(text.matches("instance=").count(), 1, "{text}");
    }
}
