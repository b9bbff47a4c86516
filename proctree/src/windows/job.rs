//! Job objects for the processes a caller starts: every process they start
//! in turn is in the same job (Windows puts a child in its parent's job), so
//! terminating the job kills the whole tree, children whose parent already
//! died included, without reading the process table.
//!
//! The child is created suspended, assigned to its job, then resumed, so not
//! even its first instruction runs outside the job (the order Microsoft's
//! job-object documentation gives). Jobs are kept per process, keyed by the
//! pid they were made for; an entry is used only while that pid is still a
//! member, so a recycled pid never reaches somebody else's job.

use super::check;
use std::collections::HashMap;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
    JobObjectBasicAccountingInformation, JobObjectBasicProcessIdList, QueryInformationJobObject,
    TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{OpenThread, ResumeThread, THREAD_SUSPEND_RESUME};

/// The most member pids one query reads; a hostagent's tree is a handful.
const MAX_MEMBERS: usize = 1024;

/// Jobs made by [`spawn_in_job`], by the pid of the process each was made for.
static JOBS: Mutex<Option<HashMap<u32, OwnedHandle>>> = Mutex::new(None);

fn jobs() -> MutexGuard<'static, Option<HashMap<u32, OwnedHandle>>> {
    JOBS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Spawns `cmd` (whose creation flags must include `CREATE_SUSPENDED`) into
/// a new job and resumes it. When the job cannot be made or joined, the
/// child still runs, and only a tree walk can reach its descendants.
pub(crate) fn spawn_in_job(cmd: &mut Command) -> io::Result<Child> {
    let mut child = cmd.spawn()?;
    let job = create_job().and_then(|job| {
        // SAFETY: both handles are valid for the duration of the call.
        check(unsafe { AssignProcessToJobObject(raw(&job), child.as_raw_handle()) })?;
        Ok(job)
    });
    if let Err(e) = resume_threads(child.id()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot resume the suspended child: {e}"),
        ));
    }
    if let Ok(job) = job {
        let mut jobs = jobs();
        let jobs = jobs.get_or_insert_with(HashMap::new);
        jobs.retain(|_, job| active_processes(job).is_ok_and(|n| n > 0));
        jobs.insert(child.id(), job);
    }
    Ok(child)
}

/// Terminates the job made for `pid` when `pid` is still one of its
/// members; returns the members it had (`pid` first). `Ok(None)`: no job
/// of this process holds `pid`.
pub(crate) fn terminate_job_of(pid: u32) -> io::Result<Option<Vec<u32>>> {
    let mut jobs = jobs();
    let Some(job) = jobs.as_mut().and_then(|jobs| jobs.remove(&pid)) else {
        return Ok(None);
    };
    let mut members = members(&job)?;
    if !members.contains(&pid) {
        // `pid` left the job (it exited): the number may be someone else's now.
        return Ok(None);
    }
    members.retain(|m| *m != pid);
    members.insert(0, pid);
    // SAFETY: the job handle is valid.
    check(unsafe { TerminateJobObject(raw(&job), 1) })?;
    Ok(Some(members))
}

/// Terminates the job made for `pid`, whether `pid` is still a member or
/// has exited (the caller must still hold `pid`'s process handle, so that
/// the number is not reused). `Ok(false)`: no job was made for `pid`.
pub(crate) fn terminate_job_made_for(pid: u32) -> io::Result<bool> {
    let Some(job) = jobs().as_mut().and_then(|jobs| jobs.remove(&pid)) else {
        return Ok(false);
    };
    // SAFETY: the job handle is valid.
    check(unsafe { TerminateJobObject(raw(&job), 1) })?;
    Ok(true)
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

fn create_job() -> io::Result<OwnedHandle> {
    // SAFETY: null attributes and name are allowed: an unnamed job with a
    // default security descriptor.
    let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if job.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `job` is a fresh handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(job as _) })
}

/// The pids in `job`.
fn members(job: &OwnedHandle) -> io::Result<Vec<u32>> {
    // JOBOBJECT_BASIC_PROCESS_ID_LIST: two u32 counts, then ULONG_PTR pids.
    let mut buffer = vec![0usize; 1 + MAX_MEMBERS];
    let size = u32::try_from(std::mem::size_of_val(buffer.as_slice())).expect("a small buffer");
    // SAFETY: the buffer is writable for `size` bytes and aligned for the
    // structure (its first field sits in buffer[0]).
    check(unsafe {
        QueryInformationJobObject(
            raw(job),
            JobObjectBasicProcessIdList,
            buffer.as_mut_ptr().cast(),
            size,
            std::ptr::null_mut(),
        )
    })?;
    // SAFETY: buffer[0] holds the two u32 counts.
    let listed = unsafe { *(buffer.as_ptr().cast::<u32>().add(1)) } as usize;
    Ok(buffer[1..=listed.min(MAX_MEMBERS)]
        .iter()
        .filter_map(|pid| u32::try_from(*pid).ok())
        .collect())
}

fn active_processes(job: &OwnedHandle) -> io::Result<u32> {
    let mut info = JOBOBJECT_BASIC_ACCOUNTING_INFORMATION::default();
    // SAFETY: `info` is writable for its own size.
    check(unsafe {
        QueryInformationJobObject(
            raw(job),
            JobObjectBasicAccountingInformation,
            (&raw mut info).cast(),
            std::mem::size_of_val(&info) as u32,
            std::ptr::null_mut(),
        )
    })?;
    Ok(info.ActiveProcesses)
}

/// Resumes every thread of `pid` (a process created suspended has one).
fn resume_threads(pid: u32) -> io::Result<()> {
    // SAFETY: a snapshot handle, checked and owned at once.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    if snapshot == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(snapshot as _) };
    let mut entry = THREADENTRY32 {
        dwSize: std::mem::size_of::<THREADENTRY32>() as u32,
        ..THREADENTRY32::default()
    };
    let mut resumed = 0;
    // SAFETY: `entry` is a THREADENTRY32 with dwSize set, as both calls need.
    let mut more = unsafe { Thread32First(raw(&snapshot), &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: the thread handle is checked, then owned.
            let thread = unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) };
            if thread.is_null() {
                return Err(io::Error::last_os_error());
            }
            let thread = unsafe { OwnedHandle::from_raw_handle(thread as _) };
            // SAFETY: a valid thread handle with THREAD_SUSPEND_RESUME.
            if unsafe { ResumeThread(raw(&thread)) } == u32::MAX {
                return Err(io::Error::last_os_error());
            }
            resumed += 1;
        }
        // SAFETY: as for Thread32First.
        more = unsafe { Thread32Next(raw(&snapshot), &mut entry) } != 0;
    }
    if resumed == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no thread of pid {pid} in the thread snapshot"),
        ));
    }
    Ok(())
}
