//! The cross-path matrix: the same fault, entered through every stop path,
//! must leave the same clean state.

use crate::checks;
use crate::context::{Ctx, ScenarioResult, ensure};
use crate::findings::{qemu_vm, wsl_vm};
use crate::steps::{self, SETTLE};
use contract::plan::Fault;
use harness::ports::pick_free_port;
use harness::{FaultPlanBuilder, VmSpec, VmView};
use lima_layout::paths::read_pid_file;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPath {
    RunningFalse,
    Restart,
    Delete,
    ServiceShutdown,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    IgnoresInterrupt,
    ReplacesDriver,
    PortHolders,
    Wsl2Distro,
    /// The hostagent honours the interrupt but leaves its forwarders.
    KeepsChildren,
    /// The forwards go through a daemonized `ssh` ControlMaster (as real
    /// Lima's do), which the hostagent leaves running when it exits.
    ControlMasterKept,
}

impl PathFault {
    fn plan(self) -> FaultPlanBuilder {
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
pub fn stop_through(ctx: &Ctx, path: StopPath, fault: PathFault) -> ScenarioResult {
    let plan = match path {
        StopPath::DriverDied => fault.plan().hostagent(Fault::IgnoreDriverExit),
        _ => fault.plan(),
    };
    ctx.sandbox.set_faults(&plan)?;
    let vm = fault.vm();
    let ports = vm.template.host_ports();
    let instance = ctx.sandbox.lima_home().instance("vm");
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &vm)?;
    let before: Vec<u32> = ctx.sandbox.live_processes().iter().map(|p| p.pid).collect();
    let first_hostagent = read_pid_file(&instance.ha_pid()).unwrap_or_default();
    let bound = ctx.settings.graceful_timeout + SETTLE;
    match path {
        StopPath::RunningFalse => steps::stop_vm(svc.as_mut(), "vm", bound)?,
        StopPath::Restart => {
            // One more forward makes it a different template.
            let changed = vm.template.clone().forward(9000, pick_free_port());
            svc.set_template("vm", &changed)?;
            steps::wait_for(
                svc.as_mut(),
                "vm",
                bound,
                "a restart with the new template",
                |v: &VmView| {
                    v.is_running()
                        && read_pid_file(&instance.ha_pid()).is_some_and(|p| p != first_hostagent)
                },
            )?;
        }
        StopPath::Delete => {
            svc.delete("vm")?;
            steps::wait_gone(svc.as_mut(), "vm", bound)?;
            ensure(!instance.dir.exists(), || {
                format!(
                    "instance directory {} left after delete",
                    instance.dir.display()
                )
            })?;
        }
        StopPath::ServiceShutdown => {
            let code = svc.stop_service(bound)?;
            ensure(code == Some(0), || {
                format!("the service exited with {code:?}")
            })?;
        }
        StopPath::HostagentDied => {
            steps::kill_hostagent(&instance)?;
            steps::wait_restarted(
                svc.as_mut(),
                &instance,
                first_hostagent,
                bound,
                "a restart after the hostagent died",
            )?;
        }
        StopPath::DriverDied => {
            if fault == PathFault::Wsl2Distro {
                steps::wsl_shutdown(ctx.sandbox)?;
            } else {
                steps::kill_driver(&instance)?;
            }
            steps::wait_restarted(
                svc.as_mut(),
                &instance,
                first_hostagent,
                bound,
                "a restart after the driver died",
            )?;
        }
        StopPath::OrphanRecovery => {
            svc.crash_service()?;
            svc.start_service()?;
            steps::wait_for(
                svc.as_mut(),
                "vm",
                bound,
                "the orphan replaced",
                |v: &VmView| {
                    v.is_running()
                        && read_pid_file(&instance.ha_pid()).is_some_and(|p| p != first_hostagent)
                },
            )?;
        }
    }
    let service = svc.service_pid();
    for pid in before.iter().filter(|p| Some(**p) != service) {
        checks::dead(*pid, "a process of the first run")?;
    }
    for new in ctx.sandbox.journal().replacement_drivers() {
        checks::dead(new, "the driver started during shutdown")?;
    }
    let restarted = matches!(
        path,
        StopPath::Restart
            | StopPath::OrphanRecovery
            | StopPath::HostagentDied
            | StopPath::DriverDied
    );
    if restarted {
        let view = svc
            .get("vm")?
            .ok_or_else(|| crate::symptom!("VM vm disappeared after the restart"))?;
        ensure(!crate::findings::leftovers::says_degraded(&view), || {
            format!("the restarted VM runs degraded: {}", view.running_summary())
        })?;
        // A new run holds the ports again; what matters is that the old
        // holders are dead (checked above).
        return Ok(());
    }
    checks::ports_free(ctx.sandbox, &ports)?;
    checks::no_tmp_files(&instance)?;
    if fault == PathFault::Wsl2Distro {
        checks::distro_down(ctx.sandbox, "lima-vm", path != StopPath::Delete)?;
    }
    ensure(
        svc.service_alive() || path == StopPath::ServiceShutdown,
        || "the service died during the stop".into(),
    )
}
