//! Scenarios of their own for real Lima (`--toolset real`), for findings
//! whose catalogue scenario relies on what only the fakes show: spawn
//! attributes the hostagent reports itself, the journal of interrupts, a
//! bare directory as an additional disk, a port forward failing on demand.
//! Each checks the same defect through what real Lima makes observable,
//! with the blank-disk template where the hostagent and QEMU running is
//! enough, and with the real guest where the hostagent's running event is
//! what is checked.

use crate::checks;
use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use harness::real_lima::{LimaStatus, lima_status};
use harness::{VmView, eventually};
use lima_layout::VmType;
use lima_layout::paths::read_pid_file;
use std::io::Read;

/// What the real hostagent logs when the graceful interrupt arrives.
pub(crate) const INTERRUPT_LOGGED: &str = "Received SIGINT";

fn harness_error(what: &str) -> impl FnOnce(std::io::Error) -> ScenarioError + '_ {
    move |e| ScenarioError::Harness(format!("{what}: {e}"))
}

/// The hostagent reports nothing about itself, but its process group and
/// niceness are visible from outside. The real guest boots, so the VM is
/// up when the reconciler reports the hostagent's running event.
pub(crate) fn spawn_attributes_overwritten(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    steps::bring_up(ctx, svc.as_mut(), &ctx.guest_vm("vm", 0)?)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let hostagent = read_pid_file(&instance.ha_pid())
        .ok_or_else(|| ScenarioError::Harness("ha.pid is missing while the VM is up".into()))?;
    let service = svc.service_pid().unwrap_or_default();
    // `limactl start --foreground` execs into the hostagent, so the
    // service's child is the hostagent itself.
    let observed =
        proctree::ObservedAttributes::of_process(hostagent, service).ok_or_else(|| {
            ScenarioError::Harness(format!("hostagent pid {hostagent} cannot be observed"))
        })?;
    // Only what the target declares it asks for.
    let wanted = ctx.target.spawn_attributes();
    let missing: Vec<&str> = [
        ("own_process_group", observed.own_process_group),
        ("background_priority", observed.background_priority),
    ]
    .into_iter()
    .filter(|(name, present)| !present && wanted.iter().any(|w| w == name))
    .map(|(name, _)| name)
    .collect();
    ensure(missing.is_empty(), || {
        format!(
            "hostagent pid {hostagent} was spawned without {}: seen from outside, {observed:?}",
            missing.join(" and ")
        )
    })
}

/// The real hostagent logs the interrupt to its stderr log. The next start
/// truncates that file and Lima then replaces it, so the orphan's file is
/// held open and followed while the restarted service recovers the orphan.
pub(crate) fn orphan_recovery_skips_graceful(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    steps::bring_up(ctx, svc.as_mut(), &ctx.qemu_vm("vm", 0)?)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let orphan = read_pid_file(&instance.ha_pid()).unwrap_or_default();
    let mut orphan_log = std::fs::File::open(instance.ha_stderr_log())
        .map_err(harness_error("opening the hostagent's stderr log"))?;
    svc.crash_service()?;
    svc.spawn_service()?;
    let mut log = String::new();
    let interrupted = eventually(SETTLE, "the orphan to log the interrupt or die", || {
        let mut fresh = String::new();
        let _ = orphan_log.read_to_string(&mut fresh);
        log.push_str(&fresh);
        if log.contains(INTERRUPT_LOGGED) {
            Ok(true)
        } else if !proctree::is_alive(orphan) {
            Ok(false)
        } else {
            Err(format!("orphan {orphan} alive, no interrupt logged"))
        }
    })?;
    svc.wait_ready()?;
    // A recovery that interrupts first waits up to the graceful timeout
    // for the orphan (whose blank-disk guest never answers).
    steps::wait_for(
        svc.as_mut(),
        "vm",
        super::stop::forced_stop_bound(ctx),
        "a new hostagent up",
        |_: &VmView| {
            matches!(lima_status(&instance, VmType::Qemu),
                LimaStatus::Running { hostagent, .. } if hostagent != orphan)
        },
    )?;
    checks::dead(orphan, "the orphaned hostagent")?;
    ensure(interrupted, || {
        format!(
            "orphaned hostagent pid {orphan} was killed without the graceful interrupt \
             (its stderr log has no {INTERRUPT_LOGGED:?})"
        )
    })
}

/// A real additional disk, made with `limactl disk create`: Lima marks it
/// `in_use_by` the instance while it runs.
pub(crate) fn disk_lock_leak(ctx: &Ctx) -> ScenarioResult {
    let mut create = ctx.sandbox.command(ctx.sandbox.tool_path("limactl"));
    create.args(["disk", "create", "data", "--size", "64MiB"]);
    harness::commands::run_cli(
        create,
        None,
        "limactl disk create",
        harness::commands::TOOL_TIMEOUT,
    )?;
    super::stop::disk_released_by_forced_stop(ctx)
}

/// A guest file that does not exist, for a `copyToHost` rule that fails.
const MISSING_GUEST_FILE: &str = "/nonexistent/limavm-harness/degraded";

/// Real Lima's hostagent reports its running event `degraded`, with the
/// error, when a `copyToHost` copy fails (a port forward that fails is only
/// a log line for it). The real guest boots with one that names a guest
/// file that does not exist. The host side is an absolute path, not
/// `{{.Dir}}/...`: a reconciler that validates the template before Lima
/// fills it in (rancher-desktop-daemon's admission webhook) refuses a
/// relative one.
pub(crate) fn degraded_not_reported(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    let mut vm = ctx.guest_vm("vm", 0)?;
    let host = ctx
        .sandbox
        .root()
        .join("copied-from-guest")
        .join("degraded");
    vm.template = vm
        .template
        .copy_to_host(MISSING_GUEST_FILE, &host.to_string_lossy());
    let view = steps::boot_real_guest(svc.as_mut(), &vm)?;
    ensure(crate::checks::says_degraded(&view), || {
        format!(
            "VM vm reports {} although its hostagent reported it degraded (copyToHost of \
             {MISSING_GUEST_FILE} failed)",
            view.running_summary()
        )
    })
}
