//! The cross-path matrix: the same fault, entered through every stop path,
//! must leave the same clean state.

use crate::checks;
use crate::context::{Ctx, ScenarioResult, ensure};
use crate::findings::{qemu_vm, wsl_vm};
use crate::steps::{self, SETTLE};
use contract::plan::Fault;
use harness::ports::pick_free_port;
use harness::{FaultPlanBuilder, ReconcilerDriver, VmSpec};
use lima_layout::InstancePaths;
use lima_layout::paths::read_pid_file;
use std::time::Duration;

/// A way the reconciler under test stops a VM's hostagent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPath {
    /// The VM resource's `running` is set to false.
    RunningFalse,
    /// The VM resource asks for a restart.
    Restart,
    /// The VM resource is deleted.
    Delete,
    /// The service shuts down (its console's interrupt) with the VM up.
    ServiceShutdown,
    /// The service dies, and its successor finds the VM and stops it.
    OrphanRecovery,
    /// The hostagent is killed outright (SIGKILL / TerminateProcess) while
    /// its driver and forwarders run; the reconciler restarts the VM.
    HostagentDied,
    /// The driver ends under a hostagent that takes no notice (fault
    /// `ignore_driver_exit`): QEMU is killed, or the WSL2 distro is shut
    /// down from outside (`wsl.exe --shutdown`); the reconciler restarts
    /// the VM.
    DriverDied,
}

/// The fault a stop path meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    /// The hostagent ignores the graceful interrupt: only the forced stop
    /// ends it.
    IgnoresInterrupt,
    /// The hostagent ignores the interrupt and re-executes its driver, so
    /// the pid file names a process that is no longer the driver.
    ReplacesDriver,
    /// The hostagent ignores the interrupt while ssh forwarders hold host
    /// ports: the forced stop must free them.
    PortHolders,
    /// A WSL2 VM (no hostagent fault): the distro must be stopped through
    /// `wsl.exe`.
    Wsl2Distro,
    /// The hostagent honours the interrupt but leaves its forwarders.
    KeepsChildren,
    /// The forwards go through a daemonized `ssh` ControlMaster (as real
    /// Lima's do), which the hostagent leaves running when it exits.
    ControlMasterKept,
}

impl PathFault {
    /// The fault plan that makes the fault (empty for WSL2: the VM type
    /// is the fault).
    pub(crate) fn plan(self) -> FaultPlanBuilder {
        let plan = FaultPlanBuilder::new();
        match self {
            PathFault::IgnoresInterrupt | PathFault::PortHolders => {
                plan.hostagent(Fault::IgnoreInterrupt)
            }
            PathFault::ReplacesDriver => plan
                .hostagent(Fault::IgnoreInterrupt)
                .hostagent(Fault::ReplaceDriver),
            PathFault::Wsl2Distro => plan,
            PathFault::KeepsChildren => plan.hostagent(Fault::KeepChildren),
            PathFault::ControlMasterKept => plan
                .hostagent(Fault::ControlMaster)
                .hostagent(Fault::KeepChildren),
        }
    }

    fn vm(self) -> VmSpec {
        match self {
            PathFault::PortHolders | PathFault::KeepsChildren | PathFault::ControlMasterKept => {
                qemu_vm("vm", 2)
            }
            PathFault::Wsl2Distro => wsl_vm("vm"),
            _ => qemu_vm("vm", 0),
        }
    }
}

/// Starts a VM under `fault`, stops it through `path`, and checks that
/// nothing of the first run survives: its processes, ports, tmp files and
/// (for WSL2) the running distro.
///
/// # Errors
///
/// A [`ScenarioError::Symptom`](crate::ScenarioError::Symptom) naming what
/// survived (or that the stop itself failed), or a harness error.
pub fn stop_through(ctx: &Ctx, path: StopPath, fault: PathFault) -> ScenarioResult {
    let plan = match path {
        StopPath::DriverDied => fault.plan().hostagent(Fault::IgnoreDriverExit),
        _ => fault.plan(),
    };
    ctx.sandbox.set_faults(&plan)?;
    let vm = fault.vm();
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &vm)?;
    let first = FirstRun::read(ctx, vm);
    let bound = ctx.settings.graceful_timeout + SETTLE;
    take(ctx, svc.as_mut(), path, fault, &first, bound)?;
    first_run_gone(ctx, svc.as_ref(), &first)?;
    if path.restarts() {
        return restarted_clean(svc.as_mut());
    }
    stopped_clean(ctx, svc.as_ref(), path, fault, &first)
}

impl StopPath {
    /// True for the paths after which the reconciler runs the VM again.
    fn restarts(self) -> bool {
        matches!(
            self,
            StopPath::Restart
                | StopPath::OrphanRecovery
                | StopPath::HostagentDied
                | StopPath::DriverDied
        )
    }
}

/// The VM's first run, as it was once up.
struct FirstRun {
    vm: VmSpec,
    instance: InstancePaths,
    /// Every process alive in the sandbox.
    processes: Vec<u32>,
    /// The hostagent's pid (0 when `ha.pid` could not be read).
    hostagent: u32,
}

impl FirstRun {
    fn read(ctx: &Ctx, vm: VmSpec) -> Self {
        let instance = ctx.sandbox.lima_home().instance(&vm.name);
        Self {
            processes: ctx.sandbox.live_processes().iter().map(|p| p.pid).collect(),
            hostagent: read_pid_file(&instance.ha_pid()).unwrap_or_default(),
            vm,
            instance,
        }
    }
}

/// Stops the first run through `path`, waiting up to `bound` for the stop,
/// the deletion or the restart to be done.
fn take(
    ctx: &Ctx,
    svc: &mut dyn ReconcilerDriver,
    path: StopPath,
    fault: PathFault,
    first: &FirstRun,
    bound: Duration,
) -> ScenarioResult {
    let instance = &first.instance;
    let restarted = |svc: &mut dyn ReconcilerDriver, what: &str| {
        steps::wait_restarted(svc, instance, first.hostagent, bound, what).map(drop)
    };
    match path {
        StopPath::RunningFalse => steps::stop_vm(svc, "vm", bound),
        StopPath::Restart => {
            // One more forward makes it a different template.
            let changed = first.vm.template.clone().forward(9000, pick_free_port());
            svc.set_template("vm", &changed)?;
            restarted(svc, "a restart with the new template")
        }
        StopPath::Delete => {
            svc.delete("vm")?;
            steps::wait_gone(svc, "vm", bound)?;
            ensure(!instance.dir.exists(), || {
                format!(
                    "instance directory {} left after delete",
                    instance.dir.display()
                )
            })
        }
        StopPath::ServiceShutdown => {
            let code = svc.stop_service(bound)?;
            ensure(code == Some(0), || {
                format!("the service exited with {code:?}")
            })
        }
        StopPath::HostagentDied => {
            steps::kill_hostagent(instance)?;
            restarted(svc, "a restart after the hostagent died")
        }
        StopPath::DriverDied => {
            if fault == PathFault::Wsl2Distro {
                steps::wsl_shutdown(ctx.sandbox)?;
            } else {
                steps::kill_driver(instance)?;
            }
            restarted(svc, "a restart after the driver died")
        }
        StopPath::OrphanRecovery => {
            svc.crash_service()?;
            svc.start_service()?;
            restarted(svc, "the orphan replaced")
        }
    }
}

/// Every process of the first run but the service is dead, and so is any
/// driver the hostagent started during its shutdown.
fn first_run_gone(ctx: &Ctx, svc: &dyn ReconcilerDriver, first: &FirstRun) -> ScenarioResult {
    let service = svc.service_pid();
    for pid in first.processes.iter().filter(|p| Some(**p) != service) {
        checks::dead(*pid, "a process of the first run")?;
    }
    for new in ctx.sandbox.journal().replacement_drivers() {
        checks::dead(new, "the driver started during shutdown")?;
    }
    Ok(())
}

/// The restarted VM is there and not degraded. A new run holds the ports
/// again; what matters is that the old holders are dead (checked before).
fn restarted_clean(svc: &mut dyn ReconcilerDriver) -> ScenarioResult {
    let view = svc
        .get("vm")?
        .ok_or_else(|| crate::symptom!("VM vm disappeared after the restart"))?;
    ensure(!crate::checks::says_degraded(&view), || {
        format!("the restarted VM runs degraded: {}", view.running_summary())
    })
}

/// After a stop for good: the ports are free, no tmp file is left, a WSL2
/// distro is down (and, after a delete, unregistered), and the service is
/// alive unless `path` shut it down.
fn stopped_clean(
    ctx: &Ctx,
    svc: &dyn ReconcilerDriver,
    path: StopPath,
    fault: PathFault,
    first: &FirstRun,
) -> ScenarioResult {
    checks::ports_free(ctx.sandbox, &first.vm.template.host_ports())?;
    checks::no_tmp_files(&first.instance)?;
    if fault == PathFault::Wsl2Distro {
        checks::distro_down(ctx.sandbox, "lima-vm", path != StopPath::Delete)?;
    }
    ensure(
        svc.service_alive() || path == StopPath::ServiceShutdown,
        || "the service died during the stop".into(),
    )
}
