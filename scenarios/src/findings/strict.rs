//! What real Lima refuses, the fakes refuse too; a reconciler must not
//! loop on a start that Lima would refuse: names Lima does not accept as
//! instance names, and an additional disk marked in use by an instance a
//! host crash left behind.

use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use crate::symptom;
use contract::condition::{kind, reason, status};
use harness::{ReconcilerDriver, VmView, eventually, waits};
use lima_layout::LimaHome;
use std::time::{Duration, Instant};

/// The names of the bug reports: brackets, a space, a leading dash,
/// non-ASCII, and one over Lima's 76 characters.
pub fn refused_names() -> Vec<String> {
    vec![
        "we[1]rd".to_owned(),
        "with space".to_owned(),
        "-dash".to_owned(),
        "ünïcødé".to_owned(),
        "a".repeat(77),
    ]
}

/// How many times a `limactl` for instance `name` was started.
fn limactl_starts(ctx: &Ctx, name: &str) -> usize {
    ctx.sandbox
        .journal()
        .events(Some("limactl"), contract::journal::event::INVOKED)
        .iter()
        .filter(|e| e.args().last().is_some_and(|a| a == name))
        .count()
}

/// Each name Lima refuses is refused by the reconciler with a reason
/// (Running=False, not a start in progress), which says why, and is not
/// started again and again. A reconciler may try one start and report
/// Lima's refusal; it may not loop on it.
pub(crate) fn invalid_lima_name(ctx: &Ctx) -> ScenarioResult {
    let names = refused_names();
    let mut svc = ctx.started_service()?;
    for name in &names {
        svc.apply(&ctx.qemu_vm(name, 0)?)?;
    }
    for name in &names {
        steps::wait_for(
            svc.as_mut(),
            name,
            SETTLE,
            "Running=False with a reason",
            |v: &VmView| {
                v.condition(kind::RUNNING).is_some_and(|c| {
                    c.status == status::FALSE
                        && !["", reason::STARTING, reason::STARTED].contains(&c.reason.as_str())
                })
            },
        )?;
    }
    not_started_again(ctx, svc.as_mut(), &names)?;
    refusals_say_why(svc.as_mut(), &names)?;
    for name in &names {
        svc.delete(name)?;
    }
    for name in &names {
        steps::wait_gone(svc.as_mut(), name, SETTLE)?;
    }
    Ok(())
}

/// No name of `names` gets its `limactl start` run twice within the retry
/// window: a reconciler may try once and report Lima's refusal, not loop.
fn not_started_again(
    ctx: &Ctx,
    svc: &mut dyn ReconcilerDriver,
    names: &[String],
) -> ScenarioResult {
    let window = retry_window(ctx);
    let looping = waits::timed(Duration::ZERO, || {
        eventually(window, "a name Lima refuses to be started again", || {
            let counts: Vec<(String, usize)> = names
                .iter()
                .map(|n| (n.clone(), limactl_starts(ctx, n)))
                .filter(|(_, count)| *count > 1)
                .collect();
            if counts.is_empty() {
                Err("no name started twice".to_owned())
            } else {
                Ok(counts)
            }
        })
    });
    let Ok(counts) = looping else {
        return Ok(());
    };
    let (name, count) = &counts[0];
    let summary = svc
        .get(name)?
        .map(|v| v.running_summary())
        .unwrap_or_default();
    Err(symptom!(
        "VM {name:?}, a name Lima refuses, was started {count} times instead of being \
         refused ({summary})"
    ))
}

/// Each VM of `names` says why it was refused: its Running message names
/// Lima, the identifier rule, or the socket path.
fn refusals_say_why(svc: &mut dyn ReconcilerDriver, names: &[String]) -> ScenarioResult {
    for name in names {
        let view = svc
            .get(name)?
            .ok_or_else(|| ScenarioError::Harness(format!("{name:?} vanished")))?;
        let message = view
            .condition(kind::RUNNING)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure(
            ["Lima", "identifier", "socket"]
                .iter()
                .any(|word| message.contains(word)),
            || {
                format!(
                    "VM {name:?}, a name Lima refuses, is refused without saying why: {}",
                    view.running_summary()
                )
            },
        )?;
    }
    Ok(())
}

/// `_disks/data/in_use_by` names instance `gone`, whose hostagent died with
/// the host (its `ha.pid` names no live process). Lima refuses the disk to
/// any other instance while the mark is there; the reconciler must see
/// that its holder no longer runs, release it, and start VM vm.
pub(crate) fn foreign_disk_lock(ctx: &Ctx) -> ScenarioResult {
    let home = ctx.sandbox.lima_home();
    leave_crashed_holders_mark(&home)?;
    let mut svc = ctx.started_service()?;
    let mut vm = ctx.qemu_vm("vm", 0)?;
    vm.template = vm.template.disk("data");
    svc.apply(&vm)?;
    runs_despite_stale_mark(ctx, svc.as_mut())?;
    let holder = marked_holder(&home.disk_in_use_by("data")).unwrap_or_default();
    // By name: a target with a Lima home of its own (a link to the
    // sandbox's) marks the disk with its own spelling of the directory.
    ensure(
        holder.file_name() == Some(std::ffi::OsStr::new("vm")),
        || {
            format!(
                "VM vm runs, but disk data is marked in use by {}",
                holder.display()
            )
        },
    )?;
    steps::stop_vm(svc.as_mut(), "vm", SETTLE)?;
    Ok(())
}

/// Leaves what a host crash leaves: `_disks/data/in_use_by` naming
/// instance `gone`, whose `ha.pid` names a dead process.
fn leave_crashed_holders_mark(home: &LimaHome) -> ScenarioResult {
    let gone = home.instance("gone");
    let made = std::fs::create_dir_all(home.disk_dir("data"))
        .and_then(|()| std::fs::create_dir_all(&gone.dir))
        .and_then(|()| std::fs::write(gone.ha_pid(), format!("{}\n", dead_pid())))
        .and_then(|()| mark_in_use(&home.disk_in_use_by("data"), &gone.dir));
    made.map_err(|e| ScenarioError::Harness(format!("leaving a host crash's disk mark: {e}")))
}

/// VM vm comes to run on disk data, within `SETTLE` and at most the retry
/// window after its first start refused for the stale mark.
fn runs_despite_stale_mark(ctx: &Ctx, svc: &mut dyn ReconcilerDriver) -> ScenarioResult {
    // Once a start was refused for the mark, a few restart backoffs to
    // recover (a reconciler may release the mark only after the refusal).
    let grace = retry_window(ctx);
    let mut refused: Option<(Instant, String)> = None;
    // A start still refused once the grace is over ran out a margin.
    let started = waits::timed(Duration::ZERO, || {
        match eventually(SETTLE, "VM vm to run on disk data", || {
            let view = svc.get("vm").map_err(|e| e.to_string())?;
            let Some(view) = view else {
                return Err("vm does not exist".to_owned());
            };
            if view.is_running() {
                return Ok(None);
            }
            let failing = view.condition(kind::RUNNING).is_some_and(|c| {
                c.status == status::FALSE
                    && c.message.contains("in use")
                    && c.message.contains("gone")
            });
            if failing {
                let (since, _) = refused.get_or_insert_with(|| (Instant::now(), String::new()));
                if since.elapsed() >= grace {
                    return Ok(Some(view.running_summary()));
                }
            }
            Err(view.running_summary())
        }) {
            Ok(None) => Ok(()),
            Ok(Some(summary)) => Err(Ok(summary)),
            Err(e) => Err(Err(e)),
        }
    });
    match started {
        Ok(()) => Ok(()),
        Err(Ok(summary)) => Err(symptom!(
            "VM vm never ran: disk data stays marked in use by instance gone, which no \
             longer runs (a host crash's leftover in_use_by): {summary}"
        )),
        Err(Err(e)) => Err(symptom!("VM vm never ran on disk data: {}", e.last_seen)),
    }
}

/// Long enough for a retry at the restart backoff (a start that fails is
/// retried after 1, 2, 4 backoffs): the first retry's backoff, and three
/// more for the failed start itself and the status it writes.
fn retry_window(ctx: &Ctx) -> Duration {
    ctx.settings.restart_backoff * 4
}

/// A pid no process has: one past the largest pid a Linux or macOS kernel
/// hands out, within what a pid file holds.
fn dead_pid() -> u32 {
    (1 << 22) + 1
}

#[cfg(unix)]
fn mark_in_use(mark: &std::path::Path, holder: &std::path::Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(holder, mark)
}

/// On Windows the fake hostagent's mark is a file holding the path
/// (a symlink needs a privilege there).
#[cfg(windows)]
fn mark_in_use(mark: &std::path::Path, holder: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(mark, holder.to_string_lossy().as_bytes())
}

/// The instance directory a disk's in-use mark names.
fn marked_holder(mark: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_link(mark).ok().or_else(|| {
        cfg!(windows)
            .then(|| std::fs::read_to_string(mark).ok().map(Into::into))
            .flatten()
    })
}
