//! When an external target's service counts as ready: its ready file, its
//! kubeconfig command (saved), its ready command; one that fails or hangs
//! while the service comes up is "not yet".

use super::home::write_file;
use crate::commands::run_cli;
use crate::error::HarnessError;
use crate::sandbox::Sandbox;
use crate::service::NotReady;
use std::path::PathBuf;
use std::time::Duration;

/// When a target's service counts as ready.
pub(super) struct ReadyCheck {
    /// This command (full words) prints a kubeconfig, saved to the path...
    pub(super) kubeconfig: Option<(Vec<String>, PathBuf)>,
    /// This file exists...
    pub(super) file: Option<PathBuf>,
    /// ...and/or this command exits 0...
    pub(super) command: Option<Vec<String>>,
    /// ...within this bound.
    pub(super) timeout: Duration,
}

impl ReadyCheck {
    /// In order: the file, the kubeconfig, the command (a CLI that starts
    /// a service of its own when none runs must not be called before the
    /// service has said it runs).
    pub(super) fn holds(&self, sandbox: &Sandbox) -> Result<(), NotReady> {
        if let Some(path) = self.file.as_ref().filter(|p| !p.exists()) {
            return Err(NotReady::Yet(format!(
                "{} does not exist yet",
                path.display()
            )));
        }
        if let Some((args, path)) = &self.kubeconfig {
            match run_cli(
                sandbox.command_line(args),
                None,
                "kubeconfig_command",
                self.timeout,
            ) {
                Ok(text) => write_file(path, &text).map_err(NotReady::Yet)?,
                // Exited non-zero, or hung while the service comes up (a
                // CLI that waits for its API server): not serving yet.
                Err(e @ (HarnessError::Cli { .. } | HarnessError::CommandHung { .. })) => {
                    return Err(NotReady::Yet(e.to_string()));
                }
                Err(e) => return Err(NotReady::Never(e)),
            }
        }
        if let Some(args) = &self.command {
            match run_cli(
                sandbox.command_line(args),
                None,
                "ready_command",
                self.timeout,
            ) {
                Ok(_) => {}
                // Exited non-zero, or hung while the service comes up.
                Err(e @ (HarnessError::Cli { .. } | HarnessError::CommandHung { .. })) => {
                    return Err(NotReady::Yet(e.to_string()));
                }
                Err(e) => return Err(NotReady::Never(e)),
            }
        }
        Ok(())
    }
}
