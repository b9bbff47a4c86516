//! Process control that a VM reconciler and its test harness share: spawning
//! into a group of its own, interrupting a group, killing a whole tree, and a
//! process table to ask who is alive and who descends from whom.

mod attributes;
pub mod bounded;
mod protected;
mod table;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

pub use attributes::{ObservedAttributes, SpawnAttributes};
pub use bounded::{BoundedError, Finished, run_bounded, run_bounded_observed};
pub use table::{ProcessInfo, ProcessTable};

/// Errors of a signalling or killing call, naming the process; the OS
/// error, when there is one, is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The interrupt or shutdown request could not be delivered.
    #[error("cannot signal pid {pid}")]
    Signal {
        /// The process (or group) it was for.
        pid: u32,
        /// The OS's error (`kill(2)`, `GenerateConsoleCtrlEvent`).
        source: std::io::Error,
    },
    /// The kill could not be delivered.
    #[error("cannot kill pid {pid}")]
    Kill {
        /// The process it was for.
        pid: u32,
        /// The OS's error (`kill(2)`, `TerminateProcess`).
        source: std::io::Error,
    },
    /// Nothing was sent: `pid` is 0, 1, this process or one of its
    /// ancestors, which no caller of this crate may signal.
    #[error("refused to signal pid {pid}: {reason}")]
    Refused {
        /// The pid (or group) refused.
        pid: u32,
        /// Which rule refused it.
        reason: &'static str,
    },
}

/// Fails with [`SignalError::Refused`] for a pid no signal may reach.
fn check_signallable(pid: u32) -> Result<(), SignalError> {
    match protected::refusal(pid) {
        Some(reason) => Err(SignalError::Refused { pid, reason }),
        None => Ok(()),
    }
}

/// Delivers the graceful interrupt to the process group whose id is `group`
/// (Unix: SIGINT to the group; Windows: CTRL_BREAK_EVENT to the console
/// group, whose id is the pid of the process that was created with
/// `CREATE_NEW_PROCESS_GROUP`).
///
/// Refused ([`SignalError::Refused`]) for group 0, 1, and a group whose
/// id is this process's pid or an ancestor's.
pub fn interrupt_group(group: u32) -> Result<(), SignalError> {
    check_signallable(group)?;
    platform::interrupt_group(group).map_err(|source| SignalError::Signal { pid: group, source })
}

/// Delivers the graceful interrupt to the caller's own process group: every
/// process sharing it receives it, the caller included. Only the regressed
/// reconciler does this on purpose.
pub fn interrupt_own_group() -> Result<(), SignalError> {
    platform::interrupt_own_group().map_err(|source| SignalError::Signal {
        pid: std::process::id(),
        source,
    })
}

/// Kills one process outright (SIGKILL / TerminateProcess). Refused
/// ([`SignalError::Refused`]) for pid 0, 1, this process and its ancestors.
pub fn kill(pid: u32) -> Result<(), SignalError> {
    check_signallable(pid)?;
    platform::kill(pid).map_err(|source| SignalError::Kill { pid, source })
}

/// Starts `cmd` with `attributes` so that [`kill_tree`] can later reach
/// every process it starts, also children whose parent already died.
/// Windows: in a job object of its own, assigned before the child runs (it
/// is created suspended); its descendants join the job. Unix: a plain spawn;
/// a process group of its own (`attributes.own_process_group`) plays that
/// part. Errors: the spawn's, or a suspended child that cannot be resumed
/// (it is killed then); a job that cannot be made leaves the child running
/// outside any job, reachable by the tree walk only.
pub fn spawn_contained(
    cmd: &mut std::process::Command,
    attributes: SpawnAttributes,
) -> std::io::Result<std::process::Child> {
    platform::spawn_contained(attributes, cmd)
}

/// True when this Windows build runs under Wine (its ntdll exports
/// `wine_get_version`); always false on other platforms. Wine runs Windows
/// programs but lacks some of what a test may need (AF_UNIX sockets, console
/// control events).
pub fn running_under_wine() -> bool {
    platform::running_under_wine()
}

/// Kills `pid` and every process descending from it.
///
/// When this process started `pid` with [`spawn_contained`] on Windows and
/// `pid` is still in its job, the job is terminated: every process in it
/// dies, orphans included, and its members are returned. Otherwise (a
/// process found rather than started, or on Unix) the tree is read from a
/// fresh process table before the first kill; the root dies first so that it
/// cannot start new children, and on Unix its process group goes with it.
/// Returns the pids that were killed; every failure is reported, the first
/// one as the error, after every kill has been tried. Refused, before any
/// kill, for a root that [`kill`] refuses.
pub fn kill_tree(pid: u32) -> Result<Vec<u32>, SignalError> {
    check_signallable(pid)?;
    if let Ok(Some(killed)) = platform::terminate_job_of(pid) {
        return Ok(killed);
    }
    let table = ProcessTable::snapshot();
    let mut victims = vec![pid];
    victims.extend(table.descendants(pid));
    let mut killed = Vec::new();
    let mut first_error = None;
    for victim in victims {
        match platform::kill(victim) {
            Ok(()) => killed.push(victim),
            Err(e) if victim != pid && platform::is_gone_error(&e) => {}
            Err(source) => {
                first_error.get_or_insert(SignalError::Kill {
                    pid: victim,
                    source,
                });
            }
        }
    }
    platform::kill_group_if_leader(pid);
    match first_error {
        Some(error) => Err(error),
        None => Ok(killed),
    }
}

/// True while `pid` names a running process (a zombie counts as dead).
pub fn is_alive(pid: u32) -> bool {
    ProcessTable::snapshot_of(&[pid]).is_alive(pid)
}

/// Asks a service to shut down the way an operator would (Unix: SIGTERM;
/// Windows: CTRL_BREAK_EVENT to the console group the service leads).
/// Refused ([`SignalError::Refused`]) as [`kill`] is.
pub fn request_shutdown(pid: u32) -> Result<(), SignalError> {
    check_signallable(pid)?;
    platform::request_shutdown(pid).map_err(|source| SignalError::Signal { pid, source })
}

/// What Wine lacks that some tests need, for [`skip_under_wine`].
pub mod wine_lacks {
    /// Wine (8) has no AF_UNIX sockets: binding `ha.sock` fails with
    /// WSAEAFNOSUPPORT (10047).
    pub const AF_UNIX: &str = "AF_UNIX sockets (ha.sock): Wine fails them with WSAEAFNOSUPPORT";
    /// Wine starts a child with `BELOW_NORMAL_PRIORITY_CLASS` in its
    /// creation flags at normal priority, as the child then reads back.
    pub const PRIORITY_CLASS: &str =
        "a priority class set at creation, which Wine does not give the child";
    /// Wine does not deliver CTRL_BREAK_EVENT to a console process group:
    /// `GenerateConsoleCtrlEvent` fails with ERROR_INVALID_ACCESS (12).
    pub const CONSOLE_EVENTS: &str =
        "console control events (CTRL_BREAK_EVENT to a process group), which Wine does not deliver";
}

/// For tests: true when running under Wine, after writing
/// `SKIPPED under Wine: TEST: needs WHAT` to stderr (past the test
/// harness's output capture, so every skip shows). A test calls it first
/// and returns at once when it is true; elsewhere, a real Windows included,
/// it is false and the test runs.
pub fn skip_under_wine(needs: &str) -> bool {
    if !running_under_wine() {
        return false;
    }
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED under Wine: {test}: needs {needs}"
    );
    true
}
