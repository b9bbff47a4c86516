//! Recovering a hostagent orphaned by a crashed reconciler.

use super::qemu_vm;
use crate::checks;
use crate::context::{Ctx, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use contract::journal::event;
use contract::plan::{Fault, Tool};
use harness::{FaultPlanBuilder, VmView};
use lima_layout::paths::read_pid_file;
use std::time::Duration;

pub(crate) fn orphan_recovery_skips_graceful(ctx: &Ctx) -> ScenarioResult {
    // The orphan (the first hostagent) takes a third of the graceful
    // timeout to shut down: given the graceful wait, it exits by itself.
    let shutdown = Duration::from_millis(ctx.settings.graceful_timeout.as_millis() as u64 / 3);
    ctx.sandbox.set_faults(&FaultPlanBuilder::new().times(
        Tool::Limactl,
        &["hostagent"],
        1,
        Fault::SlowExit {
            ms: shutdown.as_millis() as u64,
        },
    ))?;
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &qemu_vm("vm", 1))?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let orphan = read_pid_file(&instance.ha_pid()).unwrap_or_default();
    svc.crash_service()?;
    svc.start_service()?;
    steps::wait_for(
        svc.as_mut(),
        "vm",
        SETTLE,
        "Running=True with a new hostagent",
        |v: &VmView| {
            v.is_running() && read_pid_file(&instance.ha_pid()).is_some_and(|pid| pid != orphan)
        },
    )?;
    checks::dead(orphan, "the orphaned hostagent")?;
    let journal = ctx.sandbox.journal();
    let of_orphan = |name| {
        journal
            .events(Some("limactl"), name)
            .iter()
            .any(|e| e.pid == orphan)
    };
    ensure(of_orphan(event::INTERRUPT_RECEIVED), || {
        format!(
            "orphaned hostagent pid {orphan} was killed without the graceful interrupt \
             (the journal has no interrupt_received from it)"
        )
    })?;
    ensure(of_orphan(event::EXIT), || {
        format!(
            "orphaned hostagent pid {orphan} was interrupted, then killed during its graceful \
             shutdown ({shutdown:?}, within the graceful timeout of {:?}): the journal has no \
             exit from it",
            ctx.settings.graceful_timeout
        )
    })
}
