mod job;

use crate::{ObservedAttributes, SpawnAttributes};
pub(crate) use job::terminate_job_of;
use std::io;
use std::os::windows::process::CommandExt;
use std::process::{Child, Command};
use windows_sys::Win32::Foundation::{CloseHandle, ERROR_INVALID_PARAMETER};
use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::{
    BELOW_NORMAL_PRIORITY_CLASS, CREATE_NEW_PROCESS_GROUP, CREATE_SUSPENDED, GetCurrentProcess,
    GetPriorityClass, OpenProcess, PROCESS_TERMINATE, TerminateProcess,
};

/// Set in a child's environment when it was created with
/// `CREATE_NEW_PROCESS_GROUP` (see [`observe_own_attributes`]).
const NEW_GROUP_MARKER_ENV: &str = "LIMAVM_FAKE_NEW_GROUP";

fn check(ok: i32) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn interrupt_group(group: u32) -> io::Result<()> {
    // SAFETY: plain Win32 call without pointers.
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) })
}

pub(crate) fn interrupt_own_group() -> io::Result<()> {
    // SAFETY: as above; group 0 is every process on the caller's console.
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, 0) })
}

pub(crate) fn request_shutdown(pid: u32) -> io::Result<()> {
    interrupt_group(pid)
}

pub(crate) fn kill(pid: u32) -> io::Result<()> {
    // SAFETY: the handle is checked and closed on every path.
    unsafe {
        let handle = OpenProcess(PROCESS_TERMINATE, 0, pid);
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        let result = check(TerminateProcess(handle, 1));
        CloseHandle(handle);
        result
    }
}

pub(crate) fn is_gone_error(error: &io::Error) -> bool {
    error.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32)
}

/// Windows has no group kill: the tree walk already reached every member.
pub(crate) fn kill_group_if_leader(_pid: u32) {}

pub(crate) fn apply_attributes(attributes: SpawnAttributes, cmd: &mut Command) {
    apply_attributes_with_flags(attributes, cmd, 0);
}

/// Spawns into a job object of its own (see [`job`]).
pub(crate) fn spawn_contained(attributes: SpawnAttributes, cmd: &mut Command) -> io::Result<Child> {
    apply_attributes_with_flags(attributes, cmd, CREATE_SUSPENDED);
    job::spawn_in_job(cmd)
}

/// True when ntdll exports `wine_get_version`, which only Wine's does.
pub(crate) fn running_under_wine() -> bool {
    let ntdll: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: both strings are NUL-terminated; ntdll is loaded in every
    // process, and the module handle needs no release.
    unsafe {
        let module = GetModuleHandleW(ntdll.as_ptr());
        !module.is_null() && GetProcAddress(module, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Sets the attributes' creation flags together with `extra_flags`.
fn apply_attributes_with_flags(attributes: SpawnAttributes, cmd: &mut Command, extra_flags: u32) {
    let mut flags = extra_flags;
    if attributes.own_process_group {
        flags |= CREATE_NEW_PROCESS_GROUP;
        // A process cannot read its console group back on Windows; this
        // marker, set together with the flag, is what it can observe.
        cmd.env(NEW_GROUP_MARKER_ENV, "1");
    } else {
        // Inherited from a parent that had a group of its own: not true here.
        cmd.env_remove(NEW_GROUP_MARKER_ENV);
    }
    if attributes.background_priority {
        flags |= BELOW_NORMAL_PRIORITY_CLASS;
    }
    cmd.creation_flags(flags);
}

pub(crate) fn observe_attributes_of(_pid: u32, _parent: u32) -> Option<ObservedAttributes> {
    None
}

pub(crate) fn observe_own_attributes() -> ObservedAttributes {
    // SAFETY: reads the priority class of the current process only.
    let class = unsafe { GetPriorityClass(GetCurrentProcess()) };
    ObservedAttributes {
        // A console group of one's own cannot be read back on Windows; the
        // marker `apply_attributes` sets with the flag stands in for it.
        own_process_group: std::env::var_os(NEW_GROUP_MARKER_ENV).is_some(),
        background_priority: class == BELOW_NORMAL_PRIORITY_CLASS,
    }
}

/// Kills what a command started with [`spawn_contained`] left behind
/// after it exited: its job is terminated. The caller still holds the
/// command's process handle, so `pid` cannot name anyone else's job yet.
pub(crate) fn kill_leftovers_of(pid: u32) {
    let _ = job::terminate_job_made_for(pid);
}
