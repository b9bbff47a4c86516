//! Which sandboxes belong to which run of the harness: every live sandbox
//! is registered here so that an interrupted run can clean them all, and
//! every sandbox (its processes through their environment, its directories
//! through an owner file) names the run that made it, so that a later run
//! can find what a killed one left.
//!
//! A run is named `PID@START`: the harness's pid and its start time in
//! seconds since the Unix epoch, read from the process table. A recycled
//! pid has another start time, so a run counts as gone exactly when no
//! process has both.

use proctree::ProcessTable;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Environment variable naming the run (`PID@START`) that started a
/// sandbox process; set next to [`contract::env::SANDBOX`].
pub const OWNER_ENV: &str = "LIMAVM_HARNESS_RUN";

/// The file in a sandbox directory that names the run owning it.
pub const OWNER_FILE: &str = ".limavm-run";

/// How long a stop or a leftover removal keeps killing marked processes
/// that a dying parent started at the last moment.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

/// This process's run name, `PID@START`.
pub fn this_run() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let pid = std::process::id();
        let start = ProcessTable::snapshot_of(&[pid])
            .get(pid)
            .map_or(0, |p| p.start_time);
        format!("{pid}@{start}")
    })
}

/// True while the process table has a process with the run's pid and start
/// time (`run` as written by [`this_run`]).
pub fn run_is_alive(run: &str, table: &ProcessTable) -> bool {
    let Some((pid, start)) = run.trim().split_once('@') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    table
        .get(pid)
        .is_some_and(|p| !p.zombie && p.start_time == start)
}

struct Live {
    id: String,
    dirs: Vec<PathBuf>,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Held (shared) while a process of a sandbox is being started, and
/// (exclusively) by [`stop_all`] once it has said stop: after that no start
/// is half done.
static STARTS: RwLock<()> = RwLock::new(());

/// Registers a sandbox (its mark and its directories) as live in this run.
pub(crate) fn register(id: &str, dirs: Vec<PathBuf>) {
    lock_live().push(Live {
        id: id.to_owned(),
        dirs,
    });
}

/// Forgets a sandbox that cleaned itself up.
pub(crate) fn unregister(id: &str) {
    lock_live().retain(|l| l.id != id);
}

fn lock_live() -> std::sync::MutexGuard<'static, Vec<Live>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// True once [`stop_all`] was called: no sandbox or process may start.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Runs `start` (which starts one process of a sandbox) unless the run is
/// stopping; a stop waits for a start in progress.
pub(crate) fn start_process<T>(
    start: impl FnOnce() -> Result<T, crate::error::HarnessError>,
) -> Result<T, crate::error::HarnessError> {
    let _guard = STARTS.read().unwrap_or_else(|e| e.into_inner());
    if stopping() {
        return Err(crate::error::HarnessError::Interrupted);
    }
    start()
}

/// Writes the owner file of a sandbox directory.
pub(crate) fn mark_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), this_run())
}

/// A process that was killed or found, with what identified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedProcess {
    /// Its pid.
    pub pid: u32,
    /// Its executable name.
    pub name: String,
    /// Its sandbox mark.
    pub sandbox: String,
}

/// What a stop or a leftover removal found (and, when it removed, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// The marked processes found (killed when it removed).
    pub processes: Vec<MarkedProcess>,
    /// The sandbox directories found (removed when it removed).
    pub dirs: Vec<PathBuf>,
}

impl Cleaned {
    /// True when it found nothing.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.dirs.is_empty()
    }
}

impl fmt::Display for Cleaned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} process(es), {} sandbox director(y/ies)",
            self.processes.len(),
            self.dirs.len()
        )?;
        for p in &self.processes {
            write!(f, "\n  process {} (pid {}) of {}", p.name, p.pid, p.sandbox)?;
        }
        for d in &self.dirs {
            write!(f, "\n  directory {}", d.display())?;
        }
        Ok(())
    }
}

/// Stops the run: no sandbox or process starts from now on, every process
/// of every live sandbox is killed (identified by its mark), and their
/// directories are removed. Returns what it cleaned. Meant for an interrupt
/// handler, after which the process exits.
pub fn stop_all() -> Cleaned {
    STOPPING.store(true, Ordering::SeqCst);
    let _no_starts = STARTS.write().unwrap_or_else(|e| e.into_inner());
    let live: Vec<Live> = std::mem::take(&mut *lock_live());
    let ids: Vec<&str> = live.iter().map(|l| l.id.as_str()).collect();
    let run = this_run();
    let processes = kill_marked(|p, _| {
        let sandbox = p.env_var(contract::env::SANDBOX)?;
        (p.env_var(OWNER_ENV) == Some(run) && ids.contains(&sandbox)).then(|| sandbox.to_owned())
    });
    let dirs = live
        .iter()
        .flat_map(|l| l.dirs.iter())
        .filter(|d| remove_dir(d))
        .cloned()
        .collect();
    Cleaned { processes, dirs }
}

/// Kills, until none is left (bounded), every live process for which
/// `belongs` names a sandbox; returns each process killed once.
fn kill_marked(
    belongs: impl Fn(&proctree::ProcessInfo, &ProcessTable) -> Option<String>,
) -> Vec<MarkedProcess> {
    let mut killed: Vec<MarkedProcess> = Vec::new();
    let deadline = Instant::now() + KILL_DEADLINE;
    loop {
        let table = ProcessTable::snapshot();
        let victims: Vec<(u32, u64, MarkedProcess)> = table
            .iter()
            .filter(|p| p.pid != std::process::id())
            .filter_map(|p| {
                belongs(p, &table).map(|sandbox| {
                    (
                        p.pid,
                        p.start_time,
                        MarkedProcess {
                            pid: p.pid,
                            name: p.name.clone(),
                            sandbox,
                        },
                    )
                })
            })
            .collect();
        if victims.is_empty() || Instant::now() > deadline {
            return killed;
        }
        for (pid, start, victim) in victims {
            // The mark was read from this very process: kill it only while
            // the pid still has the start time it had then.
            let same = ProcessTable::snapshot_of(&[pid])
                .get(pid)
                .is_some_and(|p| p.start_time == start);
            if same && proctree::kill(pid).is_ok() && !killed.iter().any(|k| k.pid == pid) {
                killed.push(victim);
            }
        }
        std::thread::yield_now();
    }
}

/// Removes a directory tree; true when it existed.
fn remove_dir(dir: &Path) -> bool {
    // What a killed run made unremovable would keep the tree.
    let _ = crate::unremovable::undo_recorded(dir);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound && !dir.exists(),
    }
}

/// What earlier runs of the harness that are gone (killed) left in
/// `temp_dir`: processes carrying a sandbox mark and a run name whose run
/// is not alive, of a sandbox whose directory is in `temp_dir`, and the
/// directories directly inside `temp_dir` whose owner file names such a
/// run. Another temporary directory's leftovers are another harness's
/// (another user's, another test's) to find.
pub fn leftovers(temp_dir: &Path) -> Cleaned {
    let ids = sandbox_ids_in(temp_dir);
    let table = ProcessTable::snapshot();
    let processes = table
        .iter()
        .filter_map(|p| leftover_mark(p, &table))
        .filter(|m| ids.contains(&m.sandbox))
        .collect();
    Cleaned {
        processes,
        dirs: leftover_dirs(temp_dir, &table),
    }
}

fn leftover_mark(p: &proctree::ProcessInfo, table: &ProcessTable) -> Option<MarkedProcess> {
    let sandbox = p.env_var(contract::env::SANDBOX)?;
    let run = p.env_var(OWNER_ENV)?;
    (!run_is_alive(run, table)).then(|| MarkedProcess {
        pid: p.pid,
        name: p.name.clone(),
        sandbox: sandbox.to_owned(),
    })
}

/// The id of the sandbox whose root directory is named `dir_name`: the
/// name with its spaces made dashes, the value of [`contract::env::SANDBOX`] in its
/// processes.
pub(crate) fn id_of(dir_name: &str) -> String {
    dir_name.replace(' ', "-")
}

/// The sandbox ids (a sandbox's directory name, spaces made dashes: its
/// processes' mark) of the `limavm` directories directly inside `temp_dir`.
fn sandbox_ids_in(temp_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("limavm"))
        .map(|name| id_of(&name))
        .collect()
}

fn leftover_dirs(temp_dir: &Path, table: &ProcessTable) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|dir| {
            dir.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("limavm"))
        })
        .filter(|dir| {
            std::fs::read_to_string(dir.join(OWNER_FILE))
                .is_ok_and(|run| !run_is_alive(&run, table))
        })
        .collect();
    dirs.sort();
    dirs
}

/// Removes what [`leftovers`] finds: kills those processes (each proven a
/// sandbox's by its marks and start time) and removes those directories.
/// Returns what was removed.
pub fn remove_leftovers(temp_dir: &Path) -> Cleaned {
    let ids = sandbox_ids_in(temp_dir);
    let processes = kill_marked(|p, table| {
        leftover_mark(p, table)
            .map(|m| m.sandbox)
            .filter(|sandbox| ids.contains(sandbox))
    });
    let table = ProcessTable::snapshot();
    let dirs = leftover_dirs(temp_dir, &table)
        .into_iter()
        .filter(|d| remove_dir(d))
        .collect();
    Cleaned { processes, dirs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_run_is_alive_and_a_recycled_pid_is_not() {
        let table = ProcessTable::snapshot();
        assert!(run_is_alive(this_run(), &table), "{}", this_run());
        let (pid, start) = this_run().split_once('@').unwrap();
        let other_start: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!run_is_alive(&format!("{pid}@{other_start}"), &table));
        assert!(!run_is_alive("not a run", &table));
        assert!(!run_is_alive(pid, &table));
    }
}
