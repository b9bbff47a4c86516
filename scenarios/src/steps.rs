//! Steps scenarios share: bring a VM up, stop it through one path, wait for
//! a resource to reach a state.

use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::symptom;
use contract::condition::{kind, reason};
use harness::real_lima::{lima_status, qmp_answers};
use harness::{ReconcilerDriver, VmSpec, VmView, eventually};
use lima_layout::VmType;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Generous bound for things that take milliseconds when they work.
pub const SETTLE: Duration = Duration::from_secs(20);
/// Bound for the real guest's boot to the hostagent's running event
/// (seconds under KVM; 15-30 s under TCG on a loaded 2-core machine).
pub const GUEST_BOOT: Duration = Duration::from_secs(120);

/// Names a fault of the harness's own, if there is one now.
type FaultCheck = Rc<dyn Fn() -> Option<String>>;

thread_local! {
    /// What ends this thread's waits on a resource at once: a fault of the
    /// harness's own (see [`end_waits_when`]).
    static HARNESS_FAULT: RefCell<Option<FaultCheck>> = const { RefCell::new(None) };
}

/// While the returned guard lives, every [`wait_for`] on this thread asks
/// `fault` at each poll and ends at once with a harness error when it
/// names one (the fault plan removed under the fakes, say): nothing a
/// reconciler does afterwards can make the run's verdict anything else,
/// so waiting out the bound would only cost its seconds.
pub fn end_waits_when(fault: impl Fn() -> Option<String> + 'static) -> HarnessFaultGuard {
    let previous = HARNESS_FAULT.with(|f| f.replace(Some(Rc::new(fault))));
    HarnessFaultGuard { previous }
}

/// Restores the waits' earlier fault check when dropped.
#[must_use = "waits end early only while the guard lives"]
pub struct HarnessFaultGuard {
    previous: Option<FaultCheck>,
}

impl Drop for HarnessFaultGuard {
    fn drop(&mut self) {
        HARNESS_FAULT.with(|f| *f.borrow_mut() = self.previous.take());
    }
}

fn harness_fault() -> Option<String> {
    let check = HARNESS_FAULT.with(|f| f.borrow().clone())?;
    check()
}

/// Waits for `name` to satisfy `wanted`; the symptom says what `what` was
/// waited for and what the resource looked like last.
pub fn wait_for(
    svc: &mut dyn ReconcilerDriver,
    name: &str,
    timeout: Duration,
    what: &str,
    mut wanted: impl FnMut(&VmView) -> bool,
) -> Result<VmView, ScenarioError> {
    let mut harness_error = None;
    let result = eventually(timeout, what, || {
        if let Some(fault) = harness_fault() {
            return Ok(Err(ScenarioError::Harness(fault)));
        }
        match svc.get(name) {
            Ok(Some(view)) if wanted(&view) => Ok(Ok(view)),
            Ok(Some(view)) => Err(view.running_summary()),
            Ok(None) => Err(format!("{name} does not exist")),
            // A `get` that hung used its whole command timeout, one whose child
            // held its output does so on every call: asking again until
            // `timeout` would only repeat that.
            Err(
                e @ (harness::HarnessError::CommandHung { .. }
                | harness::HarnessError::OutputHeld { .. }),
            ) => Ok(Err(e.into())),
            Err(e) => {
                harness_error = Some(contract::error_chain::chain(&e));
                Err(format!("cannot read {name}"))
            }
        }
    });
    match (result, harness_error) {
        (Ok(Ok(view)), _) => Ok(view),
        (Ok(Err(ended)), _) => Err(ended),
        (Err(_), Some(e)) => Err(ScenarioError::Harness(e)),
        (Err(e), None) => Err(symptom!("VM {name}: {}", contract::error_chain::chain(&e))),
    }
}

/// Checks for `window` that VM `instance` goes on running under the
/// hostagent `hostagent`: Running=True throughout and the same pid in
/// `ha.pid`. A reconciler that takes a healthy VM for broken (and restarts
/// it) fails with a symptom naming `while`, what should have kept it up.
pub fn stays_up(
    svc: &mut dyn ReconcilerDriver,
    instance: &lima_layout::InstancePaths,
    hostagent: u32,
    window: Duration,
    while_: &str,
) -> ScenarioResult {
    let name = &instance.name;
    let left = wait_for(svc, name, window, "the VM to stop running", |v: &VmView| {
        !v.is_running() || lima_layout::paths::read_pid_file(&instance.ha_pid()) != Some(hostagent)
    });
    match left {
        Ok(view) => Err(symptom!(
            "VM {name} stopped running under its hostagent (pid {hostagent}, ha.pid now {:?}) \
             while {while_}: {}",
            lima_layout::paths::read_pid_file(&instance.ha_pid()),
            view.running_summary()
        )),
        // Running throughout: the wait for the opposite timed out.
        Err(ScenarioError::Symptom(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies `spec` and waits for Running=True.
pub fn start_vm(svc: &mut dyn ReconcilerDriver, spec: &VmSpec) -> Result<VmView, ScenarioError> {
    svc.apply(spec)?;
    wait_for(svc, &spec.name, SETTLE, "Running=True", VmView::is_running)
}

/// Waits until VM `name` is up: Running=True with the fakes. On real Lima
/// the blank-disk guest never boots, so never reports running: up is then
/// what `limactl list` calls Running, the hostagent answering and its QEMU
/// alive, while the resource is still starting, and QEMU answering on its
/// QMP socket (before that, Lima answers a stop by killing QEMU, not by
/// pressing the power button).
pub fn wait_up(
    ctx: &Ctx,
    svc: &mut dyn ReconcilerDriver,
    name: &str,
    what: &str,
) -> Result<VmView, ScenarioError> {
    wait_up_or(ctx, svc, name, what, |_| false)
}

/// [`wait_up`], also ending at the first view `done` accepts.
fn wait_up_or(
    ctx: &Ctx,
    svc: &mut dyn ReconcilerDriver,
    name: &str,
    what: &str,
    done: impl Fn(&VmView) -> bool,
) -> Result<VmView, ScenarioError> {
    if !ctx.real_lima() {
        return wait_for(svc, name, SETTLE, what, |view| {
            view.is_running() || done(view)
        });
    }
    let instance = ctx.sandbox.lima_home().instance(name);
    wait_for(svc, name, SETTLE, what, |view| {
        view.is_running()
            || done(view)
            || (view
                .condition(kind::RUNNING)
                .is_some_and(|c| c.reason == reason::STARTING)
                && lima_status(&instance, VmType::Qemu).is_running()
                && qmp_answers(&instance))
    })
}

/// Applies `spec` and waits until the VM is up, or until the reconciler
/// reports its start failed (Running=False reason=StartFailed): for checks
/// that hold once a start was tried, whatever became of it. The view
/// returned says which; the error is a symptom when neither came within
/// [`SETTLE`].
pub fn try_bring_up(
    ctx: &Ctx,
    svc: &mut dyn ReconcilerDriver,
    spec: &VmSpec,
) -> Result<VmView, ScenarioError> {
    svc.apply(spec)?;
    wait_up_or(
        ctx,
        svc,
        &spec.name,
        "the VM to be up or its start to fail",
        VmView::start_failed,
    )
}

/// Applies `spec` and waits until the VM is up (see [`wait_up`]).
pub fn bring_up(ctx: &Ctx, svc: &mut dyn ReconcilerDriver, spec: &VmSpec) -> ScenarioResult {
    if spec.template.boots_real_guest() {
        return boot_real_guest(svc, spec).map(|_| ());
    }
    svc.apply(spec)?;
    wait_up(ctx, svc, &spec.name, "the VM to be up").map(|_| ())
}

/// Applies `spec`, whose real guest boots, and waits for the hostagent's
/// running event (Running=True): the view then. Under TCG a boot takes a
/// core for 13-26 s, so boots go one at a time in this process, lest
/// parallel scenarios starve each other's boots past [`GUEST_BOOT`].
pub fn boot_real_guest(
    svc: &mut dyn ReconcilerDriver,
    spec: &VmSpec,
) -> Result<VmView, ScenarioError> {
    let _one_boot = GUEST_BOOTS.lock().unwrap_or_else(|e| e.into_inner());
    svc.apply(spec)?;
    wait_for(
        svc,
        &spec.name,
        GUEST_BOOT,
        "Running=True",
        VmView::is_running,
    )
}

/// Held while a real guest boots ([`boot_real_guest`]).
static GUEST_BOOTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Sets running=false and waits up to `timeout` for Running=False/Stopped.
pub fn stop_vm(svc: &mut dyn ReconcilerDriver, name: &str, timeout: Duration) -> ScenarioResult {
    svc.set_running(name, false)?;
    wait_for(
        svc,
        name,
        timeout,
        "Running=False reason=Stopped",
        VmView::is_stopped,
    )
    .map(|_| ())
}

/// Sets running=true on a stopped VM and waits up to `SETTLE` for
/// Running=True; returns its view then.
pub fn restart_vm(svc: &mut dyn ReconcilerDriver, name: &str) -> Result<VmView, ScenarioError> {
    svc.set_running(name, true)?;
    wait_for(
        svc,
        name,
        SETTLE,
        "Running=True after restart",
        VmView::is_running,
    )
}

/// Waits until the resource is gone.
pub fn wait_gone(svc: &mut dyn ReconcilerDriver, name: &str, timeout: Duration) -> ScenarioResult {
    let mut last = String::new();
    let gone = eventually(timeout, "the resource to disappear", || {
        match svc.get(name) {
            Ok(None) => Ok(()),
            Ok(Some(view)) => {
                last = format!(
                    "finalizers {:?}, conditions {:?}",
                    view.finalizers, view.conditions
                );
                Err(last.clone())
            }
            Err(e) => Err(contract::error_chain::chain(&e)),
        }
    });
    gone.map_err(|e| symptom!("VM {name} was not deleted: {e}"))
}

/// True when the service still reconciles: a spec change is observed.
pub fn service_answers(svc: &mut dyn ReconcilerDriver, probe: &VmSpec) -> ScenarioResult {
    svc.apply(probe)?;
    // A service that has died will never answer: say so at once.
    let answered = eventually(SETTLE, "the change to be observed", || {
        if !svc.service_alive() {
            return Ok(false);
        }
        match svc.get(&probe.name) {
            Ok(Some(v)) if v.generation > 0 && v.observed_generation >= v.generation => Ok(true),
            Ok(Some(v)) => Err(format!(
                "generation {}, observed {}",
                v.generation, v.observed_generation
            )),
            Ok(None) => Err(format!("{} does not exist", probe.name)),
            Err(e) => Err(contract::error_chain::chain(&e)),
        }
    })
    .map_err(|e| symptom!("VM {}: {e}", probe.name))?;
    ensure(answered, || "the service is no longer running".to_owned())
}

/// Waits for every service just spawned to be ready; the symptom counts
/// those that failed and quotes why.
pub fn all_ready(services: &mut [Box<dyn ReconcilerDriver + '_>]) -> ScenarioResult {
    let failed: Vec<String> = services
        .iter_mut()
        .filter_map(|svc| {
            svc.wait_ready()
                .err()
                .map(|_| first_error_line(svc.as_ref()))
        })
        .collect();
    ensure(failed.is_empty(), || {
        format!(
            "{} of {} services racing on one config dir failed to start: {}",
            failed.len(),
            services.len(),
            failed.join(" | ")
        )
    })
}

/// The first line of a service's output that names an error (else its
/// last line), for failure messages.
pub fn first_error_line(svc: &dyn ReconcilerDriver) -> String {
    let log = svc.log_text();
    log.lines()
        .find(|l| l.contains("ERROR") || l.contains("rror"))
        .unwrap_or_else(|| log.lines().last().unwrap_or_default())
        .to_owned()
}

/// Kills the hostagent that `ha.pid` names outright (SIGKILL /
/// TerminateProcess), as a crash would; returns its pid.
pub fn kill_hostagent(instance: &lima_layout::InstancePaths) -> Result<u32, ScenarioError> {
    let pid = lima_layout::paths::read_pid_file(&instance.ha_pid())
        .ok_or_else(|| ScenarioError::Harness(format!("ha.pid of {} is missing", instance.name)))?;
    proctree::kill(pid).map_err(|e| {
        ScenarioError::Harness(format!(
            "killing the hostagent: {}",
            contract::error_chain::chain(&e)
        ))
    })?;
    Ok(pid)
}

/// Waits up to `timeout` until VM `name` runs again under a hostagent other
/// than `old` (`ha.pid` names another pid).
pub fn wait_restarted(
    svc: &mut dyn ReconcilerDriver,
    instance: &lima_layout::InstancePaths,
    old: u32,
    timeout: Duration,
    what: &str,
) -> Result<VmView, ScenarioError> {
    let name = instance.name.clone();
    wait_for(svc, &name, timeout, what, |v: &VmView| {
        v.is_running()
            && lima_layout::paths::read_pid_file(&instance.ha_pid()).is_some_and(|p| p != old)
    })
}

/// Runs `wsl.exe --shutdown` in the sandbox (bounded), as a user or a
/// Windows update does: every distro stops, whoever started it.
pub fn wsl_shutdown(sandbox: &harness::Sandbox) -> ScenarioResult {
    let mut shutdown = sandbox.command(sandbox.tool_path("wsl.exe"));
    shutdown.arg("--shutdown");
    let out = proctree::run_bounded(&mut shutdown, None, Some(harness::commands::TOOL_TIMEOUT))
        .map_err(|e| {
            ScenarioError::Harness(format!(
                "wsl.exe --shutdown: {}",
                contract::error_chain::chain(&e)
            ))
        })?;
    if !out.status.success() {
        return Err(ScenarioError::Harness(format!(
            "wsl.exe --shutdown exited with {}",
            out.status
        )));
    }
    Ok(())
}

/// Kills the QEMU that `qemu.pid` names outright, as a crash or the OOM
/// killer would; returns its pid.
pub fn kill_driver(instance: &lima_layout::InstancePaths) -> Result<u32, ScenarioError> {
    let pid =
        lima_layout::paths::read_pid_file(&instance.driver_pid(VmType::Qemu)).ok_or_else(|| {
            ScenarioError::Harness(format!("qemu.pid of {} is missing", instance.name))
        })?;
    proctree::kill(pid).map_err(|e| {
        ScenarioError::Harness(format!(
            "killing QEMU: {}",
            contract::error_chain::chain(&e)
        ))
    })?;
    Ok(pid)
}
