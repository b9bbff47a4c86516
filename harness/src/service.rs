//! The service process of a reconciler under test: started inside the
//! sandbox with its output kept in a file, waited for until ready, stopped
//! the way an operator would, or crashed.

use crate::commands::run_cli;
use crate::error::HarnessError;
use crate::eventually::eventually;
use crate::sandbox::Sandbox;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::time::Duration;

/// How long the reference's service gets to become ready (key generation
/// included).
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a target file's service gets by default: a real reconciler
/// starts an API server first, on a machine that may be loaded.
pub(crate) const EXTERNAL_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Why a readiness check did not hold.
#[derive(Debug)]
pub(crate) enum NotReady {
    /// Not yet: what was seen.
    Yet(String),
    /// The check itself failed (a ready command that hung): waiting on
    /// would not help.
    Never(HarnessError),
}

pub(crate) struct ServiceProcess<'s> {
    sandbox: &'s Sandbox,
    /// Where the service's stdout and stderr go.
    output: PathBuf,
    pid: Option<u32>,
}

impl<'s> ServiceProcess<'s> {
    pub(crate) fn new(sandbox: &'s Sandbox, output: PathBuf) -> Self {
        Self {
            sandbox,
            output,
            pid: None,
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub(crate) fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Starts `cmd` (built with the sandbox's environment) as the service.
    pub(crate) fn spawn(&mut self, mut cmd: Command) -> Result<u32, HarnessError> {
        if let Some(dir) = self.output.parent() {
            std::fs::create_dir_all(dir)
                .map_err(HarnessError::io("creating the service's output directory"))?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output)
            .map_err(HarnessError::io("opening the service output file"))?;
        let err = out
            .try_clone()
            .map_err(HarnessError::io("opening the service output file"))?;
        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        let pid = self.sandbox.spawn(cmd)?;
        self.pid = Some(pid);
        Ok(pid)
    }

    /// Waits until `ready()` holds; a service that exits first ends the wait
    /// at once with its exit code and output, and so does a check that
    /// answers [`NotReady::Never`].
    pub(crate) fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<(), NotReady>,
    ) -> Result<(), HarnessError> {
        let pid = self
            .pid
            .ok_or_else(|| HarnessError::Driver("no service was started".into()))?;
        let outcome = eventually(timeout, "the reconciler service to be ready", || {
            if let Some(code) = self.sandbox.try_reap(pid) {
                return Ok(Some(Ok(code)));
            }
            match ready() {
                Ok(()) => Ok(None),
                Err(NotReady::Yet(seen)) => Err(seen),
                Err(NotReady::Never(e)) => Ok(Some(Err(e))),
            }
        })
        .map_err(|e| HarnessError::Driver(contract::error_chain::chain(&e)))?;
        // Ready, but is it the service the harness started? (A CLI may
        // start one of its own, which then says it is ready.)
        let outcome = outcome.or_else(|| self.sandbox.try_reap(pid).map(Ok));
        match outcome {
            None => Ok(()),
            Some(Err(e)) => Err(e),
            Some(Ok(code)) => {
                self.pid = None;
                // No code: a signal ended it (Unix).
                let ended = code.map_or_else(
                    || "was killed by a signal".to_owned(),
                    |code| format!("exited with code {code}"),
                );
                Err(HarnessError::Driver(format!(
                    "the service {ended} before it was ready; its output:\n{}",
                    self.output_text()
                )))
            }
        }
    }

    pub(crate) fn alive(&self) -> bool {
        self.pid
            .is_some_and(|pid| self.sandbox.try_reap(pid).is_none())
    }

    /// Asks the service to stop (SIGTERM / CTRL_BREAK, or `stop_command`
    /// run within its bound) and waits up to `timeout`; returns its exit
    /// code.
    pub(crate) fn stop(
        &mut self,
        timeout: Duration,
        stop_command: Option<(Command, Duration)>,
    ) -> Result<Option<i32>, HarnessError> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        if let Some(code) = self.sandbox.try_reap(pid) {
            self.pid = None;
            return Ok(code);
        }
        match stop_command {
            Some((cmd, bound)) => {
                run_cli(cmd, None, "the service's stop_command", bound)?;
            }
            None => proctree::request_shutdown(pid)
                .map_err(|e| HarnessError::Driver(contract::error_chain::chain(&e)))?,
        }
        let code = self.sandbox.wait_child(pid, timeout)?;
        self.pid = None;
        Ok(code)
    }

    /// Kills the service outright.
    pub(crate) fn crash(&mut self) -> Result<(), HarnessError> {
        if let Some(pid) = self.pid.take() {
            if self.sandbox.try_reap(pid).is_none() {
                proctree::kill(pid)
                    .map_err(|e| HarnessError::Driver(contract::error_chain::chain(&e)))?;
            }
            self.sandbox.wait_child(pid, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Stops the service within `timeout`, killing it when it does not go.
    pub(crate) fn shut_down(
        &mut self,
        timeout: Duration,
        stop_command: Option<(Command, Duration)>,
    ) {
        if self.pid.is_some() && self.stop(timeout, stop_command).is_err() {
            let _ = self.crash();
        }
    }
}
