//! WSL2: bounded `wsl.exe` calls, deletion behind the finalizer, and the
//! service-shutdown fallback.

use super::stop::{forced_stop_bound, ignoring_interrupt};
use super::wsl_vm;
use crate::checks;
use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use crate::symptom;
use contract::FindingId;
use contract::condition::{kind, reason, status};
use contract::plan::{Fault, Tool};
use harness::{FaultPlanBuilder, ReconcilerDriver, VmView, eventually, waits};
use std::time::{Duration, Instant};

pub(crate) fn finalizer_after_failed_delete(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox.set_faults(&FaultPlanBuilder::new().times(
        Tool::Wsl,
        &["--unregister"],
        2,
        Fault::Hang,
    ))?;
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &wsl_vm("vm"))?;
    svc.delete("vm")?;
    let mut failure_reported = false;
    let mut outcome: Option<ScenarioResult> = None;
    // Two hung deletes, each to its bound, and the backoffs after them.
    let floor = ctx.settings.delete_timeout * 2 + ctx.settings.delete_backoff * 3;
    let waited = waits::timed(floor, || {
        eventually(SETTLE, "the deletion to finish", || match svc.get("vm") {
            Ok(Some(view)) => {
                if view
                    .condition(kind::CLEANUP)
                    .is_some_and(|c| c.status == status::FALSE)
                {
                    failure_reported = true;
                }
                Err(format!(
                    "finalizers {:?}, conditions {:?}",
                    view.finalizers, view.conditions
                ))
            }
            Ok(None) => {
                outcome = Some(
                    checks::distro_down(ctx.sandbox, "lima-vm", false).map_err(|e| {
                        symptom!("resource vm was deleted while the backend delete had failed: {e}")
                    }),
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        })
    });
    waited.map_err(|e| symptom!("VM vm: {e}"))?;
    outcome.unwrap_or(Ok(()))?;
    ensure(failure_reported, || {
        "the failed deletes were never reported in the resource's status".into()
    })
}

pub(crate) fn shutdown_fallback_skips_cleanup(ctx: &Ctx) -> ScenarioResult {
    let ctx = &ignoring_interrupt(
        ctx,
        ctx.graceful_stop_held(FaultPlanBuilder::new(), Some("lima-vm")),
    )?;
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &wsl_vm("vm"))?;
    let code = waits::timed(ctx.settings.graceful_timeout, || {
        svc.stop_service(ctx.settings.graceful_timeout + SETTLE)
    })?;
    ensure(code == Some(0), || {
        format!("the service exited with {code:?} on SIGTERM")
    })?;
    checks::distro_down(ctx.sandbox, "lima-vm", true)
        .map_err(|e| symptom!("after the service shut down: {e}"))?;
    checks::only_alive(ctx.sandbox, &[])?;
    ctx.follow_on(
        FindingId::BracketedHomePath,
        checks::no_tmp_files(&ctx.sandbox.lima_home().instance("vm")),
    )
}

const WSL_TIMEOUT_MESSAGE: &str = "The operation timed out because a response was not received from the virtual machine or container.";

pub(crate) fn silent_cleanup_errors(ctx: &Ctx) -> ScenarioResult {
    let ctx = &ignoring_interrupt(
        ctx,
        ctx.graceful_stop_held(FaultPlanBuilder::new(), Some("lima-quiet-vm"))
            .always(
                Tool::Wsl,
                &["--terminate"],
                Fault::Fail {
                    code: 1,
                    stderr: WSL_TIMEOUT_MESSAGE.into(),
                },
            ),
    )?;
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &wsl_vm("quiet-vm"))?;
    svc.set_running("quiet-vm", false)?;
    let names_the_failure = |line: &str| {
        line.contains("quiet-vm")
            && line.contains("terminate")
            && line.contains(WSL_TIMEOUT_MESSAGE)
    };
    // The forced stop runs after the graceful wait; its wsl.exe call fails
    // at once. Once the reconciler says the stop is over (Running=False,
    // no longer Stopping), the line is due: a few polls for a log written
    // a moment later, then the symptom.
    waits::timed(ctx.settings.graceful_timeout, || {
        steps::wait_for(
            svc.as_mut(),
            "quiet-vm",
            forced_stop_bound(ctx),
            "the stop to be over",
            stop_over,
        )
    })?;
    let grace = ctx.settings.poll_interval * 10;
    waits::timed(Duration::ZERO, || {
        eventually(
            grace,
            "a log line about the failed wsl.exe --terminate",
            || {
                let log = svc.log_text();
                if log.lines().any(names_the_failure) {
                    Ok(())
                } else {
                    Err(format!("{} log lines, none names it", log.lines().count()))
                }
            },
        )
    })
    .map_err(|e| {
        symptom!(
            "no log line names the failed `wsl.exe --terminate lima-quiet-vm` of instance quiet-vm \
             (error {WSL_TIMEOUT_MESSAGE:?}): {}",
            e.last_seen
        )
    })
    .map(|_| ())
}

/// True once a stop is over, whether it succeeded or not: Running=False
/// with a reason other than Stopping.
fn stop_over(view: &VmView) -> bool {
    view.condition(kind::RUNNING).is_some_and(|c| {
        c.status == status::FALSE && ![reason::STOPPING, ""].contains(&c.reason.as_str())
    })
}

/// VM stuck's hostagent ignores the interrupt and its `wsl.exe
/// --terminate` hangs: other VMs are still reconciled, and the stop ends
/// within the WSL timeout of reaching the hung call (a margin of three
/// more), naming it when it does not.
pub(crate) fn wsl_hang_unbounded(ctx: &Ctx) -> ScenarioResult {
    let ctx = &ignoring_interrupt(
        ctx,
        FaultPlanBuilder::new()
            .always(
                Tool::Limactl,
                &["hostagent", "stuck"],
                Fault::IgnoreInterrupt,
            )
            .always(Tool::Wsl, &["--terminate", "lima-stuck"], Fault::Hang),
    )?;
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &wsl_vm("stuck"))?;
    svc.set_running("stuck", false)?;
    // Another VM is reconciled while the first one's stop is stuck.
    steps::start_vm(svc.as_mut(), &wsl_vm("other"))
        .map_err(|e| symptom!("VM other was not reconciled while stuck was stopping: {e}"))?;
    // The forced stop reaches the hung `wsl.exe --terminate` after the
    // graceful wait (the journal shows when); from then on, a bounded call
    // ends within the WSL timeout and the stop right after. Three times as
    // long again is the margin (a loaded machine delays the kill and the
    // status): an unbounded call never ends.
    let Some(reached) = terminate_reached(ctx, svc.as_mut())? else {
        return Ok(());
    };
    let bound = ctx.settings.wsl_timeout * 4;
    let stopped = waits::timed(ctx.settings.wsl_timeout, || {
        steps::wait_for(
            svc.as_mut(),
            "stuck",
            bound.saturating_sub(reached.elapsed()),
            "Running=False reason=Stopped",
            VmView::is_stopped,
        )
    });
    stopped.map_err(|e| {
        let hung = ctx
            .sandbox
            .journal()
            .pids_invoked_with("wsl.exe", "--terminate")
            .into_iter()
            .filter(|pid| proctree::is_alive(*pid))
            .map(|pid| pid.to_string())
            .collect::<Vec<_>>();
        match e {
            ScenarioError::Symptom(m) => symptom!(
                "the stop of stuck did not complete within {bound:?} of its \
                 `wsl.exe --terminate lima-stuck` (pid {}), which never returned; {m}",
                hung.join(", ")
            ),
            other => other,
        }
    })?;
    Ok(())
}

/// When the stop of VM stuck ran `wsl.exe --terminate lima-stuck` (the
/// forced stop, after the graceful wait); `None` when stuck stopped
/// without it.
fn terminate_reached(
    ctx: &Ctx,
    svc: &mut dyn ReconcilerDriver,
) -> Result<Option<Instant>, ScenarioError> {
    let mut stopped_before = false;
    let reached = waits::timed(ctx.settings.graceful_timeout, || {
        eventually(SETTLE, "the stop to run wsl.exe --terminate", || {
            let invoked = ctx
                .sandbox
                .journal()
                .events(Some("wsl.exe"), contract::journal::event::INVOKED)
                .iter()
                .any(|e| e.args().iter().any(|a| a == "lima-stuck"));
            stopped_before = !invoked
                && svc
                    .get("stuck")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v.is_stopped());
            if invoked || stopped_before {
                Ok(Instant::now())
            } else {
                Err("no wsl.exe --terminate lima-stuck yet".to_owned())
            }
        })
    })?;
    Ok((!stopped_before).then_some(reached))
}
