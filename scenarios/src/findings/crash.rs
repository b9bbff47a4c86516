//! A hostagent that starts and dies within moments, every time (a QEMU
//! that aborts right after it starts): a failed start, not a crash of a
//! running VM.

use super::qemu_vm;
use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::steps::SETTLE;
use crate::symptom;
use contract::condition::{kind, reason, status};
use contract::plan::{Fault, Tool};
use harness::{FaultPlanBuilder, eventually, waits};
use std::time::Duration;

/// How long the fake QEMU lives before it fails.
const QEMU_LIFETIME: Duration = Duration::from_millis(100);

/// The line with every run of digits (pids, ports) as `#`: one attempt's
/// stderr line equals another's.
fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn last_line(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

pub(crate) fn crash_loop(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox.set_faults(
        &FaultPlanBuilder::new()
            .always(
                Tool::Qemu,
                &[],
                Fault::Delay {
                    ms: QEMU_LIFETIME.as_millis() as u64,
                },
            )
            .always(
                Tool::Qemu,
                &[],
                Fault::Fail {
                    code: 1,
                    stderr: "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory".into(),
                },
            ),
    )?;
    let mut svc = ctx.started_service()?;
    svc.apply(&qemu_vm("vm", 0))?;
    // Before the 4th start: 3 QEMU lifetimes and the 1, 2 and 4 restart
    // backoffs after them.
    let floor = QEMU_LIFETIME * 3 + ctx.settings.restart_backoff * 7;
    waits::timed(floor, || crash_loop_observed(ctx, svc.as_mut()))
}

/// VM vm's Running message comes to carry the crash-looping hostagent's
/// last stderr line (numbers aside: pids and times differ), within
/// `SETTLE`.
fn status_carries_last_stderr_line(
    ctx: &Ctx,
    svc: &mut dyn harness::ReconcilerDriver,
) -> ScenarioResult {
    let stderr_log = ctx.sandbox.lima_home().instance("vm").ha_stderr_log();
    eventually(
        SETTLE,
        "the hostagent's last stderr line in the status",
        || {
            let line = last_line(&stderr_log).ok_or("no stderr line yet")?;
            let message = svc
                .get("vm")
                .ok()
                .flatten()
                .and_then(|v| v.condition(kind::RUNNING).map(|c| c.message.clone()))
                .unwrap_or_default();
            if without_numbers(&message).contains(&without_numbers(&line)) {
                Ok(())
            } else {
                Err(format!("message {message:?} lacks {line:?}"))
            }
        },
    )
    .map_err(|e| {
        symptom!(
            "VM vm crash-loops and its status does not carry the hostagent's last stderr line: {}",
            e.last_seen
        )
    })
}

/// The hostagent of VM vm fails to start again and again: the status says
/// why, and the restarts back off.
fn crash_loop_observed(ctx: &Ctx, svc: &mut dyn harness::ReconcilerDriver) -> ScenarioResult {
    let starts = |n: usize| {
        eventually(SETTLE, "the hostagent to be started again", || {
            let times = hostagent_starts(ctx);
            if times.len() >= n {
                Ok(times)
            } else {
                Err(format!("{} starts", times.len()))
            }
        })
    };
    starts(3)?;
    let view = svc
        .get("vm")?
        .ok_or_else(|| ScenarioError::Harness("vm does not exist".into()))?;
    let running = view
        .condition(kind::RUNNING)
        .cloned()
        .ok_or_else(|| symptom!("VM vm has no Running condition while it crash-loops"))?;
    ensure(
        running.status != status::TRUE
            && ![reason::STARTING, reason::STARTED, ""].contains(&running.reason.as_str()),
        || {
            format!(
                "VM vm crash-loops (3 hostagents died before running) and reports {}: \
                 no failed start and no cause",
                view.running_summary()
            )
        },
    )?;
    status_carries_last_stderr_line(ctx, svc)?;
    // The third failure's backoff is at least four times the first one.
    let times = starts(4)?;
    let gap = Duration::from_millis(times[3].saturating_sub(times[2]));
    let least = QEMU_LIFETIME + ctx.settings.restart_backoff * 4;
    ensure(gap >= least, || {
        format!(
            "VM vm crash-loops without backing off: the 4th start came {gap:?} after the 3rd \
             (an exponential backoff makes it at least {least:?})"
        )
    })
}

/// When each hostagent started, in ms since the epoch: each `limactl
/// hostagent`; under a target that embeds its hostagent (which writes no
/// journal), each QEMU it started, one per start.
fn hostagent_starts(ctx: &Ctx) -> Vec<u64> {
    let embedded = ctx.target.embeds_hostagent() && !ctx.real_lima();
    let (tool, marker) = if embedded {
        (Tool::Qemu, None)
    } else {
        (Tool::Limactl, Some("hostagent"))
    };
    let mut times: Vec<u64> = ctx
        .sandbox
        .journal()
        .events(Some(tool.as_str()), contract::journal::event::INVOKED)
        .into_iter()
        .filter(|e| marker.is_none_or(|m| e.args().iter().any(|a| a == m)))
        .map(|e| e.time_ms)
        .collect();
    times.sort_unstable();
    times
}

/// QEMU is killed while the hostagent runs, and this hostagent takes no
/// notice (fault `ignore_driver_exit`; real Lima's exits, which the
/// reconciler sees as any hostagent exit): the reconciler must notice the
/// driver's end itself, say the VM is not running, and restart it.
pub(crate) fn driver_death(ctx: &Ctx) -> ScenarioResult {
    use lima_layout::paths::read_pid_file;
    ctx.sandbox
        .set_faults(&FaultPlanBuilder::new().hostagent(Fault::IgnoreDriverExit))?;
    let mut svc = ctx.started_service()?;
    crate::steps::start_vm(svc.as_mut(), &qemu_vm("vm", 0))?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let hostagent = read_pid_file(&instance.ha_pid()).unwrap_or_default();
    let qemu = crate::steps::kill_driver(&instance)?;
    broken_then_restarted(
        ctx,
        svc.as_mut(),
        &instance,
        hostagent,
        &format!("QEMU (pid {qemu}) was killed"),
        notice_bound(ctx),
    )
}

/// A WSL2 distro is shut down from outside (`wsl.exe --shutdown`, as a
/// user or Windows update does) while its hostagent stays up (fault
/// `ignore_driver_exit`: Lima's keep-alive reports only a `wsl.exe -d`
/// that exits with an error): the reconciler must notice through WSL
/// itself, say the VM is not running, and start it again.
pub(crate) fn distro_stop(ctx: &Ctx) -> ScenarioResult {
    use lima_layout::paths::read_pid_file;
    ctx.sandbox
        .set_faults(&FaultPlanBuilder::new().hostagent(Fault::IgnoreDriverExit))?;
    let mut svc = ctx.started_service()?;
    crate::steps::start_vm(svc.as_mut(), &super::wsl_vm("vm"))?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let hostagent = read_pid_file(&instance.ha_pid()).unwrap_or_default();
    // First, while the distro runs, the VM must stay as it is: a watcher
    // that takes a running distro for a stopped one restarts it at once.
    crate::steps::stays_up(
        svc.as_mut(),
        &instance,
        hostagent,
        watch_window(ctx),
        "its WSL2 distro lima-vm ran",
    )?;
    crate::steps::wsl_shutdown(ctx.sandbox)?;
    if crate::checks::wsl_distros(ctx.sandbox, true).contains(&"lima-vm".to_owned()) {
        return Err(ScenarioError::Harness(
            "WSL still lists lima-vm as running after wsl.exe --shutdown".into(),
        ));
    }
    broken_then_restarted(
        ctx,
        svc.as_mut(),
        &instance,
        hostagent,
        "WSL2 distro lima-vm was shut down",
        notice_bound(ctx) + ctx.settings.wsl_timeout,
    )?;
    ensure(
        crate::checks::wsl_distros(ctx.sandbox, true).contains(&"lima-vm".to_owned()),
        || "VM vm says it runs again, but WSL does not list lima-vm as running".into(),
    )
}

/// How long a VM must stay up while nothing happens to it: thirty poll
/// intervals, three looks for a watcher that asks every ten (the
/// reference's distro watch does: each look is a `wsl.exe` process).
fn watch_window(ctx: &Ctx) -> Duration {
    ctx.settings.poll_interval * 30
}

/// How long a reconciler that polls may take to notice a driver's end:
/// fifty poll intervals (a pass over the resources, its process-table
/// reads, the status write, on a loaded machine), and the time a process
/// just killed takes to go. One that does not notice never does.
fn notice_bound(ctx: &Ctx) -> Duration {
    ctx.settings.poll_interval * 50 + crate::checks::VANISH
}

/// The driver of VM vm (`what`) ended under its live `hostagent`, which
/// takes no notice: the VM must say it is not running within `notice`,
/// run again under a new hostagent, and the old one must be gone.
fn broken_then_restarted(
    ctx: &Ctx,
    svc: &mut dyn harness::ReconcilerDriver,
    instance: &lima_layout::InstancePaths,
    hostagent: u32,
    what: &str,
    notice: Duration,
) -> ScenarioResult {
    waits::timed(Duration::ZERO, || {
        crate::steps::wait_for(
            svc,
            "vm",
            notice,
            "Running=False once the driver ended",
            |v: &harness::VmView| !v.is_running(),
        )
    })
    .map_err(|e| match e {
        ScenarioError::Symptom(m) => symptom!(
            "VM vm still claims to run after its {what} under a live hostagent (pid \
             {hostagent}): {m}"
        ),
        harness => harness,
    })?;
    waits::timed(ctx.settings.restart_backoff, || {
        crate::steps::wait_restarted(
            svc,
            instance,
            hostagent,
            SETTLE,
            "Running=True with a new hostagent",
        )
    })?;
    crate::checks::dead(hostagent, "the hostagent whose driver ended")
}
