use crate::{ObservedAttributes, SpawnAttributes};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Niceness added by `background_priority`.
const BACKGROUND_NICENESS: libc::c_int = 5;

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn as_pid(pid: u32) -> io::Result<libc::pid_t> {
    libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {pid}")))
}

pub(crate) fn interrupt_group(group: u32) -> io::Result<()> {
    // SAFETY: killpg has no memory-safety preconditions.
    check(unsafe { libc::killpg(as_pid(group)?, libc::SIGINT) })
}

pub(crate) fn interrupt_own_group() -> io::Result<()> {
    // SAFETY: as above; 0 addresses the caller's own group.
    check(unsafe { libc::kill(0, libc::SIGINT) })
}

pub(crate) fn request_shutdown(pid: u32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(as_pid(pid)?, libc::SIGTERM) })
}

pub(crate) fn kill(pid: u32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(as_pid(pid)?, libc::SIGKILL) })
}

pub(crate) fn is_gone_error(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ESRCH)
}

/// A process that leads its own group may have left members that no longer
/// descend from it (their parent died first): the group kill reaches them.
pub(crate) fn kill_group_if_leader(pid: u32) {
    let Ok(pid) = as_pid(pid) else { return };
    // SAFETY: getpgid and killpg have no memory-safety preconditions.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

/// Unix has no job objects: a process group of its own, when the
/// attributes ask for one, is what lets a tree kill reach orphans.
pub(crate) fn spawn_contained(attributes: SpawnAttributes, cmd: &mut Command) -> io::Result<Child> {
    apply_attributes(attributes, cmd);
    cmd.spawn()
}

/// No job objects on Unix.
pub(crate) fn terminate_job_of(_pid: u32) -> io::Result<Option<Vec<u32>>> {
    Ok(None)
}

pub(crate) fn running_under_wine() -> bool {
    false
}

pub(crate) fn apply_attributes(attributes: SpawnAttributes, cmd: &mut Command) {
    if attributes.own_process_group {
        cmd.process_group(0);
    }
    if attributes.background_priority {
        // SAFETY: nice() and setting errno are async-signal-safe, as
        // pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                // -1 is also a valid niceness: only errno tells failure.
                errno::set_errno(errno::Errno(0));
                if libc::nice(BACKGROUND_NICENESS) == -1 && errno::errno().0 != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The niceness of `pid`, `None` when it is gone.
fn niceness(pid: libc::pid_t) -> Option<libc::c_int> {
    // errno is cleared first because -1 is also a valid niceness.
    errno::set_errno(errno::Errno(0));
    // SAFETY: getpriority has no memory-safety preconditions.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, pid as libc::id_t) };
    (nice != -1 || errno::errno().0 == 0).then_some(nice)
}

pub(crate) fn observe_attributes_of(pid: u32, parent: u32) -> Option<ObservedAttributes> {
    let (pid, parent) = (as_pid(pid).ok()?, as_pid(parent).ok()?);
    // SAFETY: getpgid has no memory-safety preconditions.
    let group = unsafe { libc::getpgid(pid) };
    if group == -1 {
        return None;
    }
    Some(ObservedAttributes {
        own_process_group: group == pid,
        background_priority: niceness(pid)? > niceness(parent)?,
    })
}

pub(crate) fn observe_own_attributes() -> ObservedAttributes {
    // SAFETY: these calls only read the caller's own attributes.
    unsafe {
        let pid = libc::getpid();
        let parent_nice = libc::getpriority(libc::PRIO_PROCESS, libc::getppid() as libc::id_t);
        let own_nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        ObservedAttributes {
            own_process_group: libc::getpgrp() == pid,
            background_priority: own_nice > parent_nice,
        }
    }
}

/// Kills what a reaped command that led process group `leader` left
/// behind: every member of that group (a group id is not reused while the
/// group has members).
pub(crate) fn kill_leftovers_of(leader: u32) {
    let Ok(group) = as_pid(leader) else { return };
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(group, libc::SIGKILL);
    }
}
