//! A driver that tells the sandbox's [`crate::witness::Witness`] what
//! the harness asks and what it reads, around the driver of any target:
//! every scenario's calls go through it, so the invariants hold for the
//! reference and for external targets alike.

use crate::driver::{ReconcilerDriver, VmSpec, VmView};
use crate::error::HarnessError;
use crate::invariants::SettleRead;
use crate::sandbox::Sandbox;
use crate::template::Template;
use crate::witness::now_ms;
use std::time::Duration;

/// The driver `inner`, watched.
pub(crate) struct Witnessed<'s> {
    inner: Box<dyn ReconcilerDriver + 's>,
    sandbox: &'s Sandbox,
    /// The run's graceful timeout: the hostagent is not forced before it.
    graceful_timeout: Duration,
    /// How long the VMs are watched, nothing asked, before the service is
    /// stopped ([`crate::invariants::Invariant::StatusesSettle`]); zero
    /// skips the watch.
    settle_window: Duration,
}

impl<'s> Witnessed<'s> {
    pub(crate) fn new(
        inner: Box<dyn ReconcilerDriver + 's>,
        sandbox: &'s Sandbox,
        graceful_timeout: Duration,
        delete_retry_budget: u32,
        settle_window: Duration,
    ) -> Self {
        sandbox
            .witness()
            .set_delete_retry_budget(delete_retry_budget);
        Self {
            inner,
            sandbox,
            graceful_timeout,
            settle_window,
        }
    }

    /// The service is about to stop: its VMs are read for the settle
    /// window, nothing asked (their statuses must settle), and what is not
    /// Stopped then is the shutdown's to stop.
    fn before_shutdown(&mut self) {
        // A service already stopped (or crashed) has nothing left to stop:
        // the record of its last stop stands.
        if self.inner.service_alive() {
            self.watch_settling();
            self.sandbox.witness().shutdown_begins();
        }
    }

    /// Reads every VM the scenario left (not deleted) as often as it can
    /// within the settle window, each read with the sandbox's live pids,
    /// and hands the reads to the witness.
    fn watch_settling(&mut self) {
        if self.settle_window.is_zero() {
            return;
        }
        let names = self.sandbox.witness().settling_candidates();
        if names.is_empty() {
            return;
        }
        let deadline = std::time::Instant::now() + self.settle_window;
        let mut reads: Vec<Vec<SettleRead>> = vec![Vec::new(); names.len()];
        // The window, and enough reads to see a change there and back
        // through a slow CLI.
        let more = |reads: &[Vec<SettleRead>]| {
            std::time::Instant::now() < deadline || reads[0].len() < SETTLE_MIN_READS
        };
        while more(&reads) && !crate::runs::stopping() {
            let pids = crate::invariants::pid_set(&self.sandbox.live_processes());
            for (name, reads) in names.iter().zip(reads.iter_mut()) {
                // A read that fails ends the watch: it judges nothing.
                let Ok(view) = self.inner.get(name) else {
                    return;
                };
                reads.push(SettleRead::of(view.as_ref(), pids.clone()));
            }
            // Reads are samples, not a wait for a condition: space them so
            // that a quick CLI is not read thousands of times.
            std::thread::sleep(SETTLE_SAMPLE_GAP);
        }
        for (name, reads) in names.iter().zip(&reads) {
            self.sandbox
                .witness()
                .settle_reads(name, reads, self.settle_window);
        }
    }
}

/// The fewest reads of each VM in the settle window, however slow its CLI.
const SETTLE_MIN_READS: usize = 5;

/// The least time between two reads of the settle window.
const SETTLE_SAMPLE_GAP: Duration = Duration::from_millis(20);

/// The scenario is over: what only the service's whole log can tell.
impl Drop for Witnessed<'_> {
    fn drop(&mut self) {
        self.before_shutdown();
        self.sandbox
            .witness()
            .service_log_read(&self.inner.log_text());
    }
}

impl ReconcilerDriver for Witnessed<'_> {
    fn spawn_service(&mut self) -> Result<u32, HarnessError> {
        self.inner.spawn_service()
    }
    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        self.inner.wait_ready()
    }
    fn start_service(&mut self) -> Result<(), HarnessError> {
        self.inner.start_service()
    }
    fn stop_service(&mut self, timeout: Duration) -> Result<Option<i32>, HarnessError> {
        self.before_shutdown();
        self.inner.stop_service(timeout)
    }
    fn crash_service(&mut self) -> Result<(), HarnessError> {
        // A crash stops nothing: what outlives it is the scenario's.
        self.sandbox.witness().service_crashed();
        self.inner.crash_service()
    }
    fn service_pid(&self) -> Option<u32> {
        self.inner.service_pid()
    }
    fn service_alive(&self) -> bool {
        self.inner.service_alive()
    }

    fn apply(&mut self, vm: &VmSpec) -> Result<(), HarnessError> {
        let witness = self.sandbox.witness();
        if vm.running {
            witness.start_asked(&vm.name);
        } else {
            witness.stop_asked(&vm.name, self.graceful_timeout);
        }
        self.inner.apply(vm)
    }

    fn set_running(&mut self, name: &str, running: bool) -> Result<(), HarnessError> {
        let witness = self.sandbox.witness();
        if running {
            witness.start_asked(name);
        } else {
            witness.stop_asked(name, self.graceful_timeout);
        }
        self.inner.set_running(name, running)
    }

    fn set_template(&mut self, name: &str, template: &Template) -> Result<(), HarnessError> {
        self.sandbox.witness().start_asked(name);
        self.inner.set_template(name, template)
    }

    fn delete(&mut self, name: &str) -> Result<(), HarnessError> {
        self.sandbox.witness().delete_asked(name);
        self.inner.delete(name)
    }

    fn get(&mut self, name: &str) -> Result<Option<VmView>, HarnessError> {
        let read_ms = now_ms();
        let view = self.inner.get(name)?;
        self.sandbox.witness().observed(
            name,
            read_ms,
            view.as_ref(),
            || self.sandbox.live_processes(),
            || self.sandbox.wsl_distros(false),
            || self.inner.log_text(),
        );
        Ok(view)
    }

    fn request_restart(&mut self, name: &str) -> Result<(), HarnessError> {
        self.sandbox.witness().start_asked(name);
        self.inner.request_restart(name)
    }

    fn log_text(&self) -> String {
        self.inner.log_text()
    }
}
