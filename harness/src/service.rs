//! The service process of a reconciler under test: started inside the
//! sandbox with its output kept in a file, waited for until ready, stopped
//! the way an operator would, or crashed.

use crate::{HarnessError, Sandbox, eventually};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a service gets to become ready (key generation included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct ServiceProcess<'s> {
    sandbox: &'s Sandbox,
    /// Where the service's stdout and stderr go.
    output: PathBuf,
    pid: Option<u32>,
}

impl<'s> ServiceProcess<'s> {
    pub fn new(sandbox: &'s Sandbox, output: PathBuf) -> Self {
        Self {
            sandbox,
            output,
            pid: None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Starts `cmd` (built with the sandbox's environment) as the service.
    pub fn spawn(&mut self, mut cmd: Command) -> Result<u32, HarnessError> {
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
    /// at once with its exit code and output.
    pub fn wait_ready(
        &mut self,
        mut ready: impl FnMut() -> Result<(), String>,
    ) -> Result<(), HarnessError> {
        let pid = self
            .pid
            .ok_or_else(|| HarnessError::Driver("no service was started".into()))?;
        let outcome = eventually(READY_TIMEOUT, "the reconciler service to be ready", || {
            if let Some(code) = self.sandbox.try_reap(pid) {
                return Ok(Some(code));
            }
            ready().map(|()| None)
        })
        .map_err(|e| HarnessError::Driver(e.to_string()))?;
        // Ready, but is it the service the harness started? (A CLI may
        // start one of its own, which then says it is ready.)
        let outcome = outcome.or_else(|| self.sandbox.try_reap(pid));
        match outcome {
            None => Ok(()),
            Some(code) => {
                self.pid = None;
                Err(HarnessError::Driver(format!(
                    "the service exited with {code:?} before it was ready; its output:\n{}",
                    self.output_text()
                )))
            }
        }
    }

    pub fn alive(&self) -> bool {
        self.pid
            .is_some_and(|pid| self.sandbox.try_reap(pid).is_none())
    }

    /// Asks the service to stop (SIGTERM / CTRL_BREAK, or `stop_command`)
    /// and waits up to `timeout`; returns its exit code.
    pub fn stop(
        &mut self,
        timeout: Duration,
        stop_command: Option<Command>,
    ) -> Result<Option<i32>, HarnessError> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        if let Some(code) = self.sandbox.try_reap(pid) {
            self.pid = None;
            return Ok(code);
        }
        match stop_command {
            Some(mut cmd) => {
                let status = cmd
                    .status()
                    .map_err(HarnessError::io("running the service's stop command"))?;
                if !status.success() {
                    return Err(HarnessError::Driver(format!(
                        "the service's stop command exited with {status}"
                    )));
                }
            }
            None => {
                proctree::request_shutdown(pid).map_err(|e| HarnessError::Driver(e.to_string()))?
            }
        }
        let code = self.sandbox.wait_child(pid, timeout)?;
        self.pid = None;
        Ok(code)
    }

    /// Kills the service outright.
    pub fn crash(&mut self) -> Result<(), HarnessError> {
        if let Some(pid) = self.pid.take() {
            if self.sandbox.try_reap(pid).is_none() {
                proctree::kill(pid).map_err(|e| HarnessError::Driver(e.to_string()))?;
            }
            self.sandbox.wait_child(pid, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Stops the service within `timeout`, killing it when it does not go.
    pub fn shut_down(&mut self, timeout: Duration, stop_command: Option<Command>) {
        if self.pid.is_some() && self.stop(timeout, stop_command).is_err() {
            let _ = self.crash();
        }
    }
}

/// Runs a short command of the target's CLI; fails with its stderr.
pub fn run_cli(mut cmd: Command, stdin: Option<&str>, what: &str) -> Result<String, HarnessError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(HarnessError::io(format!("running {what}")))?;
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes())
            .map_err(HarnessError::io(format!("writing to {what}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(HarnessError::io(format!("running {what}")))?;
    if !out.status.success() {
        return Err(HarnessError::Cli {
            what: what.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
