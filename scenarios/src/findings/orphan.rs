//! Recovering a hostagent orphaned by a crashed reconciler.

use super::qemu_vm;
use crate::checks;
use crate::context::{Ctx, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use contract::journal::event;
use harness::VmView;
use lima_layout::paths::read_pid_file;

pub fn orphan_recovery_skips_graceful(ctx: &Ctx) -> ScenarioResult {
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
    let interrupted = ctx
        .sandbox
        .journal()
        .events(Some("limactl"), event::INTERRUPT_RECEIVED)
        .iter()
        .any(|e| e.pid == orphan);
    ensure(interrupted, || {
        format!(
            "orphaned hostagent pid {orphan} was killed without the graceful interrupt \
             (the journal has no interrupt_received from it)"
        )
    })
}
