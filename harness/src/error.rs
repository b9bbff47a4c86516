//! The harness's own errors ([`HarnessError`], failures of the harness, not
//! of the system under test) printed with
//! [`contract::error_chain::chain`].

use crate::eventually::WaitError;
use std::time::Duration;

/// Errors of the harness itself (not of the system under test). A variant
/// with a cause exposes it as [`std::error::Error::source`] and does not
/// repeat it in its message: print it with
/// [`contract::error_chain::chain`].
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file-system or process call of the harness failed.
    #[error("{what}")]
    Io {
        /// What the harness was doing (`creating /tmp/x`).
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A binary of the workspace (a fake, the reference reconciler) is not
    /// built.
    #[error(
        "binary {name} not found (looked in {looked_in}); build it with `cargo build --workspace --bins`"
    )]
    BinaryMissing {
        /// The binary's file name.
        name: String,
        /// The directories searched, for the message.
        looked_in: String,
    },
    /// A tool of the real toolset is not installed.
    #[error(
        "tool {tool} not found for the real toolset (limactl: `just real-lima-install`; the others: PATH)"
    )]
    RealToolMissing {
        /// The tool's executable name (`limactl`, `qemu-img`).
        tool: String,
    },
    /// A bounded wait of the harness ran out.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// The reconciler under test could not be driven (its service did not
    /// start, a CLI printed no JSON...): the message says how.
    #[error("reconciler under test: {0}")]
    Driver(String),
    /// A command did not finish within its bound; its process group was
    /// killed.
    #[error("{what} did not finish within {timeout:?} (killed with its process group){}", if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    CommandHung {
        /// The command, as the harness names it.
        what: String,
        /// The bound it had.
        timeout: Duration,
        /// What it wrote to stderr before it was killed (trimmed).
        stderr: String,
    },
    /// A command exited, but a process it started still held its output
    /// `grace` later (then killed).
    #[error(
        "{what} exited, but a process it started still held its output {grace:?} later (killed)"
    )]
    OutputHeld {
        /// The command, as the harness names it.
        what: String,
        /// How long the harness waited for its output to close.
        grace: Duration,
    },
    /// The run is stopping (Ctrl-C, `runs::stop_all`).
    #[error("the run was interrupted: no sandbox or process starts any more")]
    Interrupted,
    /// The harness could not set a scenario up (a slot, a fixture).
    #[error("{0}")]
    Setup(String),
    /// A command exited non-zero.
    #[error("{what} failed with {status}: {stderr}")]
    Cli {
        /// The command, as the harness names it.
        what: String,
        /// Its exit status, as the platform prints it.
        status: String,
        /// Its stderr (trimmed).
        stderr: String,
    },
}

impl HarnessError {
    /// A `map_err` adapter: an I/O error while doing `what`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::error_chain::chain;

    #[test]
    fn the_chain_names_what_failed_and_why() {
        let err = HarnessError::io("creating /x")(std::io::Error::other("no room"));
        assert_eq!(err.to_string(), "creating /x");
        assert_eq!(chain(&err), "creating /x: no room");
    }
}
