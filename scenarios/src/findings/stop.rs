//! Stopping a VM: graceful interrupt, forced fallback, the forced-stop
//! routine's steps.

use super::qemu_vm;
use crate::checks;
use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::cross_path::PathFault;
use crate::steps::{self, SETTLE};
use crate::symptom;
use contract::FindingId;
use contract::journal::{Record, event};
use harness::invariants::Invariant;
use harness::{FaultPlanBuilder, ReconcilerDriver, VmSpec, VmView, eventually, waits};
use lima_layout::paths::{read_pid_file, write_pid_file};
use std::time::{Duration, Instant};

/// The graceful timeout of a scenario whose hostagents ignore the
/// interrupt: no graceful stop can complete there, so the wait is only sat
/// out, and a short one tells a fallback that comes from one that never
/// does as well as a long one.
const SAT_OUT_GRACEFUL: Duration = Duration::from_millis(200);

/// Sets the fault `plan`, in which hostagents ignore the interrupt, and
/// returns the context with the graceful timeout at most
/// [`SAT_OUT_GRACEFUL`] (a target's fixed timeout still wins).
pub(crate) fn ignoring_interrupt<'s>(
    ctx: &Ctx<'s>,
    plan: FaultPlanBuilder,
) -> Result<Ctx<'s>, ScenarioError> {
    ctx.sandbox.set_faults(&plan)?;
    let mut settings = ctx.settings.clone();
    settings.graceful_timeout = settings.graceful_timeout.min(SAT_OUT_GRACEFUL);
    Ok(ctx.with_settings(settings))
}

/// The hostagent's graceful stop of a QEMU VM never completes (see
/// [`Ctx::graceful_stop_held`]).
fn hostagent_ignores_interrupt<'s>(ctx: &Ctx<'s>) -> Result<Ctx<'s>, ScenarioError> {
    ignoring_interrupt(ctx, ctx.graceful_stop_held(FaultPlanBuilder::new(), None))
}

/// A stop that has to fall back to force: the bound for it.
pub(crate) fn forced_stop_bound(ctx: &Ctx) -> Duration {
    ctx.settings.graceful_timeout + SETTLE
}

/// Sets running=false on VM `name`, whose hostagent ignores the interrupt,
/// and waits for Stopped: the graceful timeout is sat out first.
fn forced_stop(ctx: &Ctx, svc: &mut dyn ReconcilerDriver, name: &str) -> ScenarioResult {
    waits::timed(ctx.settings.graceful_timeout, || {
        steps::stop_vm(svc, name, forced_stop_bound(ctx))
    })
}

pub(crate) fn console_group_signal(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    // On real Lima the guest boots and powers off when asked, so the
    // graceful stop really completes.
    let vm = ctx.guest_vm("vm", 1)?;
    steps::bring_up(ctx, svc.as_mut(), &vm)?;
    let service_pid = svc.service_pid().unwrap_or_default();
    svc.set_running("vm", false)?;
    let mut service_died = false;
    // A target whose graceful stop cannot complete (real Lima's blank-disk
    // guest never answers) stops by force after its graceful timeout.
    let stopped = eventually(forced_stop_bound(ctx), "the stop", || {
        if !svc.service_alive() {
            service_died = true;
            return Ok(());
        }
        match svc.get("vm") {
            Ok(Some(view)) if view.is_stopped() => Ok(()),
            Ok(view) => Err(view.map(|v| v.running_summary()).unwrap_or_default()),
            Err(e) => Err(contract::error_chain::chain(&e)),
        }
    });
    ensure(!service_died, || {
        format!(
            "the reconciler (pid {service_pid}) died when VM vm was stopped gracefully: \
             the interrupt reached the reconciler's own process group"
        )
    })?;
    stopped.map_err(|e| symptom!("VM vm: {e}"))?;
    steps::service_answers(svc.as_mut(), &probe_vm(ctx)?).map_err(|e| {
        symptom!(
            "the reconciler (pid {service_pid}) stopped answering after the graceful stop: {e}"
        )
    })
}

/// A resource that only has to be observed, never started; its template
/// is one the toolset's Lima can prepare (a reconciler may prepare the
/// instance of a VM it does not start).
fn probe_vm(ctx: &Ctx) -> Result<VmSpec, ScenarioError> {
    let mut probe = ctx.qemu_vm("probe", 0)?;
    probe.running = false;
    Ok(probe)
}

pub(crate) fn orphaned_port_holders(ctx: &Ctx) -> ScenarioResult {
    let ctx = &hostagent_ignores_interrupt(ctx)?;
    let mut svc = ctx.started_service()?;
    let vm = qemu_vm("vm", 2);
    let ports = vm.template.host_ports();
    steps::start_vm(svc.as_mut(), &vm)?;
    forced_stop(ctx, svc.as_mut(), "vm")?;
    checks::ports_free(ctx.sandbox, &ports)?;
    checks::only_alive(ctx.sandbox, &[svc.service_pid().unwrap_or_default()])?;
    // The next start must bind the same ports again.
    let bound_before = ctx.sandbox.journal().bound_ports().len();
    steps::restart_vm(svc.as_mut(), "vm")?;
    let rebound: Vec<u16> = ctx.sandbox.journal().bound_ports()[bound_before..]
        .iter()
        .map(|b| b.port)
        .collect();
    ensure(ports.iter().all(|p| rebound.contains(p)), || {
        format!("the restarted VM did not bind its ports {ports:?} again (bound {rebound:?})")
    })
}

pub(crate) fn bracketed_home_path(ctx: &Ctx) -> ScenarioResult {
    let ctx = &hostagent_ignores_interrupt(ctx)?;
    let mut svc = ctx.started_service()?;
    let vm = ctx.qemu_vm("vm", 0)?;
    steps::bring_up(ctx, svc.as_mut(), &vm)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    ensure(instance.dir.to_string_lossy().contains("[1]"), || {
        "the sandbox path lost its brackets".into()
    })?;
    forced_stop(ctx, svc.as_mut(), "vm")?;
    checks::no_tmp_files(&instance)?;
    svc.set_running("vm", true)?;
    steps::wait_up(ctx, svc.as_mut(), "vm", "the VM up on the next start").map(|_| ())
}

pub(crate) fn ignored_signal_fallback(ctx: &Ctx) -> ScenarioResult {
    // On real Lima nobody answers the power button, so the real hostagent
    // outlives the graceful wait as one that ignores the interrupt does.
    let ctx = &hostagent_ignores_interrupt(ctx)?;
    let mut svc = ctx.started_service()?;
    steps::bring_up(ctx, svc.as_mut(), &ctx.qemu_vm("vm", 1)?)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let hostagent = read_pid_file(&instance.ha_pid()).unwrap_or_default();
    // A stop that never falls back to force never completes; one that
    // does completes its forced stop well within five more graceful
    // timeouts, also on a loaded machine (a target whose graceful timeout
    // is 30 s may report it through a slower status path than a 200 ms
    // one).
    let margin = ctx.settings.graceful_timeout * 5;
    let bound = ctx.settings.graceful_timeout + margin;
    let started = Instant::now();
    svc.set_running("vm", false)?;
    waits::timed(ctx.settings.graceful_timeout, || {
        steps::wait_for(
            svc.as_mut(),
            "vm",
            bound,
            "Running=False reason=Stopped",
            VmView::is_stopped,
        )
    })
    .map_err(|e| {
        symptom!(
            "the stop did not complete within the graceful timeout ({:?}) plus {margin:?} \
                 ({:?} elapsed; hostagent pid {hostagent} alive: {}): {e}",
            ctx.settings.graceful_timeout,
            started.elapsed(),
            proctree::is_alive(hostagent)
        )
    })?;
    stopped_leaves_nothing(ctx, svc.service_pid(), &instance)
}

/// What every stop must leave, checked after a scenario's own check: no
/// process but the service (else Stopped was not true) and no tmp file
/// (`bracketed-home-path`'s kind).
fn stopped_leaves_nothing(
    ctx: &Ctx,
    service: Option<u32>,
    instance: &lima_layout::InstancePaths,
) -> ScenarioResult {
    let alive = checks::only_alive(ctx.sandbox, &[service.unwrap_or_default()]).map_err(|e| {
        symptom!(
            "Stopped is true: VM {} was reported Stopped while {e}",
            instance.name
        )
    });
    ctx.follow_on(Invariant::StoppedIsTrue, alive)?;
    ctx.follow_on(FindingId::BracketedHomePath, checks::no_tmp_files(instance))
}

/// The service's own shutdown with a QEMU VM whose graceful stop outlasts
/// the graceful timeout (a hostagent that ignores the interrupt; on real
/// Lima a power button nobody answers): the shutdown must force it through
/// the forced-stop routine, so that nothing of the VM (QEMU, its ports,
/// its tmp files) outlives the service. The review's finding is WSL2's;
/// this is the same defect where there is no WSL2.
pub(crate) fn shutdown_fallback_skips_qemu_cleanup(ctx: &Ctx) -> ScenarioResult {
    let ctx = &hostagent_ignores_interrupt(ctx)?;
    let mut svc = ctx.started_service()?;
    steps::bring_up(ctx, svc.as_mut(), &ctx.qemu_vm("vm", 1)?)?;
    waits::timed(ctx.settings.graceful_timeout, || {
        svc.stop_service(forced_stop_bound(ctx))
    })?;
    checks::only_alive(ctx.sandbox, &[])
        .map_err(|e| symptom!("still running after the service's shutdown: {e}"))?;
    ctx.follow_on(
        FindingId::BracketedHomePath,
        checks::no_tmp_files(&ctx.sandbox.lima_home().instance("vm")),
    )
}

pub(crate) fn divergent_shutdown_paths(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox.set_faults(&PathFault::ReplacesDriver.plan())?;
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &qemu_vm("vm", 0))?;
    forced_stop(ctx, svc.as_mut(), "vm")?;
    let replaced = ctx.sandbox.journal().replacement_drivers();
    ensure(!replaced.is_empty(), || {
        "the hostagent never replaced its driver (fault not applied)".into()
    })?;
    for new in replaced {
        checks::dead(
            new,
            "the driver started during shutdown (stop via running=false)",
        )?;
    }
    stopped_leaves_nothing(
        ctx,
        svc.service_pid(),
        &ctx.sandbox.lima_home().instance("vm"),
    )
}

pub(crate) fn disk_lock_leak(ctx: &Ctx) -> ScenarioResult {
    let ctx = &hostagent_ignores_interrupt(ctx)?;
    std::fs::create_dir_all(ctx.sandbox.lima_home().disk_dir("data"))
        .map_err(|e| crate::ScenarioError::Harness(format!("creating the disk: {e}")))?;
    disk_released_by_forced_stop(ctx)
}

/// Runs a VM on the additional disk `data` (which the caller made), stops
/// it by force, and checks that the disk is no longer marked in use.
pub(crate) fn disk_released_by_forced_stop(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    let mut vm = ctx.qemu_vm("vm", 0)?;
    vm.template = vm.template.disk("data");
    steps::bring_up(ctx, svc.as_mut(), &vm)?;
    let in_use_by = ctx.sandbox.lima_home().disk_in_use_by("data");
    if std::fs::symlink_metadata(&in_use_by).is_err() {
        return Err(crate::ScenarioError::Harness(format!(
            "{} was never created by the hostagent",
            in_use_by.display()
        )));
    }
    forced_stop(ctx, svc.as_mut(), "vm")?;
    ensure(std::fs::symlink_metadata(&in_use_by).is_err(), || {
        format!(
            "_disks/data/in_use_by still present after the forced stop: {}",
            in_use_by.display()
        )
    })
}

pub(crate) fn recycled_pid_kill(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    // A stopped instance whose ha.pid is stale: the delete forces it down.
    steps::bring_up(ctx, svc.as_mut(), &ctx.qemu_vm("vm", 0)?)?;
    steps::stop_vm(svc.as_mut(), "vm", forced_stop_bound(ctx))?;
    delete_naming_a_bystander(ctx, svc.as_mut(), "vm", "a stale ha.pid")?;
    // A running instance whose ha.pid names another process: a reconciler
    // that forces only an instance it sees running (Lima's status: both
    // pid files name live processes and the hostagent's socket answers)
    // reaches its kill only here. The guest boots, so on real Lima the
    // hostagent answers as running.
    steps::bring_up(ctx, svc.as_mut(), &ctx.guest_vm("live", 0)?)?;
    delete_naming_a_bystander(ctx, svc.as_mut(), "live", "ha.pid of the running instance")
}

/// Makes `ha.pid` of instance `name` name a bystander, deletes the VM, and
/// checks that the bystander survived and the instance directory is gone.
fn delete_naming_a_bystander(
    ctx: &Ctx,
    svc: &mut dyn harness::ReconcilerDriver,
    name: &str,
    named_by: &str,
) -> ScenarioResult {
    let bystander = spawn_bystander(ctx)?;
    let instance = ctx.sandbox.lima_home().instance(name);
    write_pid_file(&instance.ha_pid(), bystander)
        .map_err(|e| crate::ScenarioError::Harness(format!("writing ha.pid: {e}")))?;
    let deleted = svc
        .delete(name)
        .map_err(crate::ScenarioError::from)
        .and_then(|()| steps::wait_gone(svc, name, forced_stop_bound(ctx)));
    let survived = ctx.sandbox.try_reap(bystander).is_none();
    if survived {
        // Ours to stop, now that it has served.
        let _ = proctree::kill(bystander);
        ctx.sandbox.wait_child(bystander, SETTLE)?;
    }
    ensure(survived, || {
        format!(
            "bystander pid {bystander} (named by {named_by} of VM {name}) was killed by the forced stop"
        )
    })?;
    deleted?;
    ensure(!instance.dir.exists(), || {
        format!(
            "instance directory {} left after delete",
            instance.dir.display()
        )
    })
}

/// A process the harness owns, for a pid file to name: the fake ssh, which
/// stays up (a real one would give up at once). It runs as the user the
/// target's service runs as: a root harness's process is out of reach of
/// an unprivileged service, whose kill would fail whether it checked the
/// identity or not.
fn spawn_bystander(ctx: &Ctx) -> Result<u32, crate::ScenarioError> {
    let ssh = ctx.sandbox.fake_tool_path("ssh")?;
    let mut words = ctx
        .target
        .service_user_prefix()
        .map_err(|e| crate::ScenarioError::Harness(format!("the bystander's user: {e}")))?
        .into_iter();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut cmd = ctx.sandbox.command(program);
            cmd.args(words).arg(&ssh);
            cmd
        }
        None => ctx.sandbox.command(&ssh),
    };
    cmd.args(["-N", "bystander@127.0.0.1"]);
    Ok(ctx.sandbox.spawn(cmd)?)
}

pub(crate) fn spawn_attributes_overwritten(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &qemu_vm("vm", 0))?;
    let reports = ctx
        .sandbox
        .journal()
        .events(Some("limactl"), event::SPAWN_ATTRIBUTES);
    let (pid, observed) = match reports.last().map(|r| (r.pid, &r.record)) {
        Some((
            pid,
            &Record::SpawnAttributes {
                own_process_group,
                background_priority,
            },
        )) => (
            pid,
            [
                ("own_process_group", own_process_group),
                ("background_priority", background_priority),
            ],
        ),
        _ => {
            return Err(crate::ScenarioError::Harness(
                "the hostagent journaled no spawn attributes".into(),
            ));
        }
    };
    // Only what the target declares it asks for: the background priority
    // is the reference's choice, not a requirement. A name the hostagent
    // does not report counts as missing.
    let wanted = ctx.target.spawn_attributes();
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|key| !observed.contains(&(*key, true)))
        .collect();
    ensure(missing.is_empty(), || {
        let observed: Vec<String> = observed.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "hostagent pid {pid} was spawned without {}: it observed {}",
            missing.join(" and "),
            observed.join(", ")
        )
    })
}
