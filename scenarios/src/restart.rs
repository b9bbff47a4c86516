//! A restart asked for through the reconciler's restart request
//! ([`harness::ReconcilerDriver::request_restart`]: the reference's
//! annotation `limavm.dev/restartRequested`, a target file's
//! `resource.changes.restart`): the running hostagent must be stopped
//! gracefully and a new one started, with nothing of the old one left.

use crate::checks;
use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::findings::real_lima::INTERRUPT_LOGGED;
use crate::findings::stop::forced_stop_bound;
use crate::steps::{self, GUEST_BOOT};
use contract::journal::event;
use contract::plan::Fault;
use harness::{FaultPlanBuilder, eventually};
use lima_layout::paths::read_pid_file;
use std::io::Read;

/// Runs VM `vm` (the real guest on real Lima, two forwards), asks for a
/// restart, and checks that the old hostagent received the graceful
/// interrupt, that a new hostagent runs the VM (not degraded), and that
/// every process of the old one (its descendants, and whatever names the
/// instance directory, such as an `ssh` ControlMaster) is dead.
///
/// With the fake hostagent, it honours the interrupt but leaves its
/// forwarders running (fault `keep_children`): a reconciler that does not
/// clean up after a graceful exit leaves them (the reference's regression
/// `graceful-exit-leftovers`).
pub fn restart_requested(ctx: &Ctx) -> ScenarioResult {
    let fake_hostagent = !ctx.real_lima() && !ctx.target.embeds_hostagent();
    if fake_hostagent {
        ctx.sandbox
            .set_faults(&FaultPlanBuilder::new().hostagent(Fault::KeepChildren))?;
    }
    let mut svc = ctx.started_service()?;
    let vm = ctx.guest_vm("vm", 2)?;
    steps::bring_up(ctx, svc.as_mut(), &vm)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let old = read_pid_file(&instance.ha_pid())
        .ok_or_else(|| ScenarioError::Harness("ha.pid of vm is missing".into()))?;
    let old_run = processes_of(ctx, &instance, old);
    // The real hostagent logs the interrupt; the next start replaces its
    // log, so the old one is held open and followed from here.
    let old_log = (!fake_hostagent)
        .then(|| std::fs::File::open(instance.ha_stderr_log()))
        .transpose()
        .map_err(|e| ScenarioError::Harness(format!("opening ha.stderr.log: {e}")))?;
    svc.request_restart("vm")?;
    let stopped_gracefully = interrupted_before_exit(ctx, old, old_log)?;
    let boot = if vm.template.boots_real_guest() {
        GUEST_BOOT
    } else {
        steps::SETTLE
    };
    let view = steps::wait_restarted(
        svc.as_mut(),
        &instance,
        old,
        forced_stop_bound(ctx) + boot,
        "a new hostagent running after the restart request",
    )?;
    ensure(stopped_gracefully, || {
        format!(
            "the restart stopped hostagent pid {old} without the graceful interrupt ({})",
            if fake_hostagent {
                "the journal has no interrupt_received from it".to_owned()
            } else {
                format!("its stderr log has no {INTERRUPT_LOGGED:?}")
            }
        )
    })?;
    for pid in old_run {
        checks::dead(pid, "a process of the hostagent before the restart")?;
    }
    ensure(!crate::checks::says_degraded(&view), || {
        format!("the restarted VM runs degraded: {}", view.running_summary())
    })?;
    ensure(svc.service_alive(), || {
        "the service died during the restart".into()
    })
}

/// Whether hostagent `old` got the graceful interrupt before it exited, as
/// its held-open stderr log (`old_log`, real Lima's: it logs
/// [`INTERRUPT_LOGGED`]) or the fakes' journal shows; waits up to the
/// forced-stop bound for either.
fn interrupted_before_exit(
    ctx: &Ctx,
    old: u32,
    mut old_log: Option<std::fs::File>,
) -> Result<bool, ScenarioError> {
    let mut logged = String::new();
    eventually(forced_stop_bound(ctx), "the old hostagent to stop", || {
        if let Some(file) = old_log.as_mut() {
            let _ = file.read_to_string(&mut logged);
        }
        let interrupted = match old_log {
            Some(_) => logged.contains(INTERRUPT_LOGGED),
            None => ctx
                .sandbox
                .journal()
                .events(Some("limactl"), event::INTERRUPT_RECEIVED)
                .iter()
                .any(|e| e.pid == old),
        };
        if interrupted {
            Ok(true)
        } else if !proctree::is_alive(old) {
            Ok(false)
        } else {
            Err(format!("hostagent pid {old} alive, not interrupted yet"))
        }
    })
    .map_err(ScenarioError::from)
}

/// The hostagent `hostagent` of `instance`, its descendants, and the
/// sandbox's processes that name the instance directory (a daemonized
/// `ssh` ControlMaster is no descendant).
fn processes_of(ctx: &Ctx, instance: &lima_layout::InstancePaths, hostagent: u32) -> Vec<u32> {
    let table = proctree::ProcessTable::snapshot();
    let dir = instance.dir.to_string_lossy().into_owned();
    let mut pids = vec![hostagent];
    pids.extend(table.descendants(hostagent));
    for p in ctx.sandbox.live_processes() {
        if p.cmd_contains(&dir) && !pids.contains(&p.pid) {
            pids.push(p.pid);
        }
    }
    pids
}
