//! What a hostagent leaves when it ends without stopping everything: its
//! children after a "graceful" exit, its driver and forwarders after it
//! died, and the identity checks that must tell this instance's processes
//! from a neighbour's.

use super::qemu_vm;
use crate::checks::{self, says_degraded};
use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::cross_path::PathFault;
use crate::steps::{self, SETTLE};
use crate::symptom;
use contract::plan::Fault;
use harness::ports::pick_free_port;
use harness::{FaultPlanBuilder, Template, VmSpec, waits};
use lima_layout::VmType;
use lima_layout::paths::{read_pid_file, write_pid_file};
use std::net::{Ipv4Addr, TcpListener};

/// The sandbox's live processes except the service, for "nothing of the
/// first run survives" checks.
fn processes_of_the_run(ctx: &Ctx, service: Option<u32>) -> Vec<(u32, String)> {
    ctx.sandbox
        .live_processes()
        .into_iter()
        .filter(|p| Some(p.pid) != service)
        .map(|p| (p.pid, p.cmd.join(" ")))
        .collect()
}

/// Fault `keep_children`: the hostagent honours the interrupt, says it is
/// exiting and exits 0, but leaves its `ssh` forwarders running.
pub(crate) fn graceful_exit_leftovers(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox
        .set_faults(&FaultPlanBuilder::new().hostagent(Fault::KeepChildren))?;
    let mut svc = ctx.started_service()?;
    let vm = qemu_vm("vm", 1);
    let ports = vm.template.host_ports();
    steps::start_vm(svc.as_mut(), &vm)?;
    steps::stop_vm(svc.as_mut(), "vm", SETTLE)?;
    let after = |e: ScenarioError| match e {
        ScenarioError::Symptom(m) => {
            symptom!("{m}, after the hostagent exited gracefully with running=false")
        }
        harness => harness,
    };
    checks::ports_free(ctx.sandbox, &ports).map_err(after)?;
    checks::only_alive(ctx.sandbox, &[svc.service_pid().unwrap_or_default()]).map_err(after)?;
    let view = steps::restart_vm(svc.as_mut(), "vm")?;
    ensure(!says_degraded(&view), || {
        format!(
            "the restarted VM runs degraded, after the hostagent exited gracefully: {}",
            view.running_summary()
        )
    })
}

/// Faults `control_master` and `keep_children`: the hostagent forwards
/// through a daemonized `ssh` ControlMaster, as real Lima v2.2.0 does, and
/// exits on the interrupt without `ssh -O exit`. The master (its own
/// session, parent pid 1, titled `ssh: DIR/ssh.sock [mux]`, so no process
/// tree and no path argument leads to it) must not keep the port.
pub(crate) fn control_master_leftover(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox
        .set_faults(&PathFault::ControlMasterKept.plan())?;
    let mut svc = ctx.started_service()?;
    let vm = qemu_vm("vm", 1);
    let ports = vm.template.host_ports();
    let view = steps::start_vm(svc.as_mut(), &vm)?;
    let service = svc.service_pid();
    let masters: Vec<String> = processes_of_the_run(ctx, service)
        .into_iter()
        .filter(|(_, cmd)| cmd.trim_end().ends_with("[mux]"))
        .map(|(pid, cmd)| format!("ssh ControlMaster pid {pid} ({cmd})"))
        .collect();
    if masters.is_empty() {
        return Err(ScenarioError::Harness(
            "no ssh ControlMaster runs for vm although the hostagent was told to forward through one".into(),
        ));
    }
    let unheld: Vec<&u16> = ports
        .iter()
        .filter(|p| harness::ports::is_free(**p))
        .collect();
    if !unheld.is_empty() {
        return Err(ScenarioError::Harness(format!(
            "ports {unheld:?} are not held while vm runs through {}: {}",
            masters.join(", "),
            view.running_summary()
        )));
    }
    steps::stop_vm(svc.as_mut(), "vm", SETTLE)?;
    let after = |e: ScenarioError| match e {
        ScenarioError::Symptom(m) => symptom!(
            "{m}, after the stop; the daemonized {} outlived its hostagent",
            masters.join(", ")
        ),
        harness => harness,
    };
    checks::ports_free(ctx.sandbox, &ports).map_err(after)?;
    checks::only_alive(ctx.sandbox, &[service.unwrap_or_default()]).map_err(after)
}

/// The hostagent is killed (SIGKILL: no cleanup at all) while its driver
/// and forwarders run: the reconciler must end all of them, then the
/// restarted VM must get its port again.
pub(crate) fn hostagent_death_leftovers(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    let vm = qemu_vm("vm", 1);
    steps::start_vm(svc.as_mut(), &vm)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let service = svc.service_pid();
    let first_run = processes_of_the_run(ctx, service);
    let hostagent = steps::kill_hostagent(&instance)?;
    let view = waits::timed(ctx.settings.restart_backoff, || {
        steps::wait_restarted(
            svc.as_mut(),
            &instance,
            hostagent,
            SETTLE,
            "Running=True with a new hostagent",
        )
    })?;
    for (pid, cmd) in &first_run {
        checks::dead(*pid, "a process of the hostagent that died").map_err(|e| match e {
            ScenarioError::Symptom(m) => {
                symptom!("{m} (started as {cmd}; the VM was restarted around it)")
            }
            harness => harness,
        })?;
    }
    ensure(!says_degraded(&view), || {
        format!(
            "the VM restarted after its hostagent died runs degraded: {}",
            view.running_summary()
        )
    })
}

/// A stale `vm/qemu.pid` names `vm2`'s live QEMU, and `LIMA_HOME/vm` is a
/// text prefix of `LIMA_HOME/vm2/...`: deleting `vm` must leave `vm2` alone.
pub(crate) fn path_prefix_identity(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    steps::start_vm(svc.as_mut(), &qemu_vm("vm", 0))?;
    steps::start_vm(svc.as_mut(), &qemu_vm("vm2", 0))?;
    steps::stop_vm(svc.as_mut(), "vm", SETTLE)?;
    let home = ctx.sandbox.lima_home();
    let neighbour = read_pid_file(&home.instance("vm2").driver_pid(VmType::Qemu))
        .ok_or_else(|| ScenarioError::Harness("vm2's qemu.pid is missing".into()))?;
    write_pid_file(&home.instance("vm").driver_pid(VmType::Qemu), neighbour)
        .map_err(|e| ScenarioError::Harness(format!("writing the stale qemu.pid: {e}")))?;
    svc.delete("vm")?;
    steps::wait_gone(svc.as_mut(), "vm", SETTLE)?;
    ensure(proctree::is_alive(neighbour), || {
        format!(
            "vm2's QEMU (pid {neighbour}) was killed when vm was deleted: a stale vm/qemu.pid named it, \
             and {} is a text prefix of its paths",
            home.instance("vm").dir.display()
        )
    })?;
    let view = svc
        .get("vm2")?
        .ok_or_else(|| symptom!("vm2 disappeared when vm was deleted"))?;
    ensure(view.is_running(), || {
        format!(
            "vm2 no longer runs after vm was deleted: {}",
            view.running_summary()
        )
    })
}

/// A forward's host port is taken by someone else: the hostagent runs, but
/// reports `degraded` with the forwarding error; the resource must say so.
pub(crate) fn degraded_not_reported(ctx: &Ctx) -> ScenarioResult {
    let port = pick_free_port();
    let _holder = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| ScenarioError::Harness(format!("holding port {port}: {e}")))?;
    let mut svc = ctx.started_service()?;
    let vm = VmSpec::new("vm", Template::new(VmType::Qemu).forward(8000, port));
    let view = steps::start_vm(svc.as_mut(), &vm)?;
    ensure(says_degraded(&view), || {
        format!(
            "VM vm reports {} although its hostagent reported it degraded (port {port} is taken)",
            view.running_summary()
        )
    })
}
