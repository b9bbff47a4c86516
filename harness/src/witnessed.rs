//! A driver that tells the sandbox's [`crate::invariants::Witness`] what
//! the harness asks and what it reads, around the driver of any target:
//! every scenario's calls go through it, so the invariants hold for the
//! reference and for external targets alike.

use crate::driver::{ReconcilerDriver, VmSpec, VmView};
use crate::invariants::now_ms;
use crate::{HarnessError, Sandbox, Template};
use std::time::Duration;

/// The driver `inner`, watched.
pub struct Witnessed<'s> {
    inner: Box<dyn ReconcilerDriver + 's>,
    sandbox: &'s Sandbox,
    /// The run's graceful timeout: the hostagent is not forced before it.
    graceful_timeout: Duration,
}

impl<'s> Witnessed<'s> {
    pub fn new(
        inner: Box<dyn ReconcilerDriver + 's>,
        sandbox: &'s Sandbox,
        graceful_timeout: Duration,
        delete_retry_budget: u32,
    ) -> Self {
        sandbox
            .witness()
            .set_delete_retry_budget(delete_retry_budget);
        Self {
            inner,
            sandbox,
            graceful_timeout,
        }
    }
}

/// The scenario is over: what only the service's whole log can tell.
impl Drop for Witnessed<'_> {
    fn drop(&mut self) {
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
        self.inner.stop_service(timeout)
    }
    fn crash_service(&mut self) -> Result<(), HarnessError> {
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
