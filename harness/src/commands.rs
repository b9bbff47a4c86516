//! The commands the harness runs itself, each within a bound: a target's
//! CLI verbs, ready and stop commands ([`run_cli`]), and its own tool calls
//! inside a sandbox ([`TOOL_TIMEOUT`]).

use crate::error::HarnessError;
use std::process::Command;
use std::time::Duration;

/// The bound of the harness's own tool calls inside a sandbox (preparing a
/// key or a disk, listing distros): generous, as they are not under test.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one command the harness needs from a target (a CLI verb, a ready
/// or stop command) within `timeout`, in a process group of its own that is
/// killed whole at the deadline; `what` names it in every error. Fails when
/// it exits non-zero (with its stderr), when it does not finish in time,
/// and when a process it started still holds its output after it exited.
pub fn run_cli(
    mut cmd: Command,
    stdin: Option<&str>,
    what: &str,
    timeout: Duration,
) -> Result<String, HarnessError> {
    // Not under the start lock: a stop must not wait for a whole command.
    // One that starts as the run stops carries the mark and is killed by it.
    if crate::runs::stopping() {
        return Err(HarnessError::Interrupted);
    }
    let done =
        proctree::run_bounded(&mut cmd, stdin.map(str::as_bytes), Some(timeout)).map_err(|e| {
            match e {
                proctree::BoundedError::TimedOut { stderr, .. } => HarnessError::CommandHung {
                    what: what.to_owned(),
                    timeout,
                    stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
                },
                other => HarnessError::Driver(format!("{what}: {other}")),
            }
        })?;
    if done.output_held {
        return Err(HarnessError::OutputHeld {
            what: what.to_owned(),
            grace: proctree::bounded::OUTPUT_GRACE,
        });
    }
    if !done.status.success() {
        return Err(HarnessError::Cli {
            what: what.to_owned(),
            status: done.status.to_string(),
            stderr: String::from_utf8_lossy(&done.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&done.stdout).into_owned())
}
