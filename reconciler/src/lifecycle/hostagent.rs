//! Starting `limactl hostagent` (or this executable as the hostagent) and
//! watching it: its pid file, its exit and
//! the JSON events it prints on stdout.

use crate::regression::Regression;
use crate::settings::{HostagentEntry, Settings, format_duration};
use lima_layout::paths::read_pid_file;
use lima_layout::{HostagentEvent, InstancePaths};
use proctree::SpawnAttributes;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How much of `ha.stderr.log` a failure message quotes.
const STDERR_TAIL_BYTES: u64 = 2048;
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("limactl not found on PATH")]
    LimactlNotFound,
    #[error("cannot start limactl hostagent")]
    Spawn(#[source] std::io::Error),
    #[error("cannot prepare {}", path.display())]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error(
        "the hostagent exited ({status}) before writing ha.pid{}",
        quoted_tail(stderr_tail)
    )]
    ExitedEarly { status: String, stderr_tail: String },
    #[error("ha.pid did not appear within {}{}", format_duration(*timeout), quoted_tail(stderr_tail))]
    PidFileTimeout {
        timeout: Duration,
        stderr_tail: String,
    },
    /// It started, then exited before its first running event: a failed
    /// start, not a crash of a running VM (a QEMU that aborts at once).
    #[error(
        "the hostagent (pid {pid}) exited ({status}) before the VM was running{}",
        last_line.as_deref().map(|l| format!("; last stderr line: {l}")).unwrap_or_default()
    )]
    DiedBeforeRunning {
        pid: u32,
        status: String,
        last_line: Option<String>,
    },
    #[error(transparent)]
    DiskInUse(#[from] crate::lifecycle::disk_locks::DiskInUse),
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error("the resource was removed")]
    ResourceGone,
}

fn quoted_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", tail.trim())
    }
}

/// The attributes the hostagent is started with, built the way the review's
/// code built them: background priority first, then its own group on top.
pub(crate) fn spawn_attributes(settings: &Settings) -> SpawnAttributes {
    let mut attributes = SpawnAttributes {
        background_priority: true,
        ..SpawnAttributes::default()
    };
    if !settings.is_on(Regression::ConsoleGroupSignal) {
        set_own_process_group(
            &mut attributes,
            settings.is_on(Regression::SpawnAttributesOverwritten),
        );
    }
    attributes
}

/// Puts the child in a process group of its own, keeping every attribute
/// already set (unless the regression makes it replace them).
fn set_own_process_group(attributes: &mut SpawnAttributes, replace: bool) {
    if replace {
        *attributes = SpawnAttributes {
            own_process_group: true,
            ..SpawnAttributes::default()
        };
    } else {
        attributes.own_process_group = true;
    }
}

/// Starts the hostagent through the configured entry point: `limactl
/// hostagent --pidfile DIR/ha.pid --socket DIR/ha.sock NAME` with its output
/// in the two log files (truncated first; the `embedded` entry runs this
/// executable with the same arguments), or `limactl start --foreground
/// --tty=false NAME`, which writes those logs itself (its own output before
/// that goes to `ha.start.log`).
pub(crate) fn spawn(settings: &Settings, paths: &InstancePaths) -> Result<Child, StartError> {
    let log =
        |path: PathBuf| File::create(&path).map_err(|source| StartError::Prepare { path, source });
    let mut cmd = match settings.hostagent_entry {
        HostagentEntry::Embedded => Command::new(own_executable().map_err(StartError::Spawn)?),
        _ => Command::new(&settings.tools.limactl),
    };
    let (stdout, stderr) = match settings.hostagent_entry {
        HostagentEntry::Hostagent | HostagentEntry::Embedded => {
            cmd.arg("hostagent")
                .arg("--pidfile")
                .arg(paths.ha_pid())
                .arg("--socket")
                .arg(paths.ha_sock());
            (log(paths.ha_stdout_log())?, log(paths.ha_stderr_log())?)
        }
        HostagentEntry::StartForeground => {
            cmd.args(["start", "--foreground", "--tty=false"]);
            let start_log = log(paths.dir.join("ha.start.log"))?;
            let copy = start_log
                .try_clone()
                .map_err(|source| StartError::Prepare {
                    path: paths.dir.join("ha.start.log"),
                    source,
                })?;
            (start_log, copy)
        }
    };
    if paths.name.starts_with('-') {
        // A name must never read as an option.
        cmd.arg("--");
    }
    cmd.arg(&paths.name)
        .env("LIMA_HOME", settings.lima_home.path())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // Contained: on Windows a job object holds the hostagent and everything
    // it starts, so a forced stop kills the whole tree, orphans included.
    proctree::spawn_contained(&mut cmd, spawn_attributes(settings)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound
            && settings.hostagent_entry != HostagentEntry::Embedded
        {
            StartError::LimactlNotFound
        } else {
            StartError::Spawn(e)
        }
    })
}

/// This executable, to re-execute as the hostagent: the path it was run
/// as when that is a path (`argv[0]` with a directory), so that a multicall
/// binary linked under the reconciler's name keeps that name, else the
/// resolved executable.
fn own_executable() -> std::io::Result<PathBuf> {
    match std::env::args_os().next().map(PathBuf::from) {
        Some(argv0)
            if argv0
                .parent()
                .is_some_and(|dir| !dir.as_os_str().is_empty()) =>
        {
            std::path::absolute(argv0)
        }
        _ => std::env::current_exe(),
    }
}

/// Waits (bounded) for `ha.pid` to name the new hostagent. `previous` is
/// what the file held before the spawn, so a stale file does not count.
pub(crate) fn wait_for_pid_file(
    child: &mut Child,
    paths: &InstancePaths,
    previous: Option<u32>,
    timeout: Duration,
    shutting_down: &AtomicBool,
) -> Result<u32, StartError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(pid) = read_pid_file(&paths.ha_pid())
            && (pid == child.id() || Some(pid) != previous)
        {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartError::ExitedEarly {
                status: status.to_string(),
                stderr_tail: stderr_tail(&paths.ha_stderr_log()),
            });
        }
        if shutting_down.load(Ordering::SeqCst) {
            return Err(StartError::ShuttingDown);
        }
        if Instant::now() >= deadline {
            return Err(StartError::PidFileTimeout {
                timeout,
                stderr_tail: stderr_tail(&paths.ha_stderr_log()),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The last lines of a log file (at most a couple of kilobytes).
/// The last non-empty line the hostagent wrote to its stderr log
/// (`ha.stderr.log`, or `ha.start.log` before `limactl start` opened it).
pub(crate) fn last_stderr_line(paths: &InstancePaths) -> Option<String> {
    [paths.ha_stderr_log(), paths.dir.join("ha.start.log")]
        .iter()
        .find_map(|log| {
            stderr_tail(log)
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        })
}

pub(crate) fn stderr_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(STDERR_TAIL_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let text = if start > 0 {
        // Drop the partial first line.
        text.split_once('\n').map(|(_, rest)| rest).unwrap_or(&text)
    } else {
        &text
    };
    text.trim().to_owned()
}

/// Follows `ha.stdout.log`, yielding each complete event line once.
#[derive(Debug)]
pub(crate) struct EventTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl EventTail {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    pub(crate) fn poll(&mut self) -> Vec<HostagentEvent> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else {
            return Vec::new();
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .filter_map(HostagentEvent::parse_line)
            .collect()
    }
}

/// A hostagent this service started.
#[derive(Debug)]
pub(crate) struct Hostagent {
    pub(crate) child: Child,
    /// The `lima.yaml` it was started with: a different one means restart.
    pub(crate) config_text: String,
    /// The restart request annotation's value it was started under
    /// ([`crate::store::resource::LimaVm::restart_request`]): a different one
    /// means restart.
    pub(crate) restart_request: Option<String>,
    pub(crate) events: EventTail,
    pub(crate) running_reported: bool,
    /// The last running event reported was degraded (`Running=True`,
    /// reason `Degraded`, the hostagent's errors in the message).
    pub(crate) degraded: bool,
    /// The driver's pid once the VM ran (identity checked when read):
    /// its end while the hostagent lives means the VM is broken.
    pub(crate) driver: Option<u32>,
    /// When a driver without a pid (a WSL2 distro) was last asked about.
    pub(crate) driver_checked: Option<std::time::Instant>,
}

impl Hostagent {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regression::Regressions;
    use std::io::Write;

    #[test]
    fn attributes_merge_unless_a_regression_replaces_or_drops_the_group() {
        let mut settings = Settings::new("/l", "/s");
        let both = SpawnAttributes {
            own_process_group: true,
            background_priority: true,
        };
        assert_eq!(spawn_attributes(&settings), both);
        settings.regressions = Regressions::of([Regression::SpawnAttributesOverwritten]);
        assert_eq!(
            spawn_attributes(&settings),
            SpawnAttributes {
                own_process_group: true,
                background_priority: false,
            }
        );
        settings.regressions = Regressions::of([Regression::ConsoleGroupSignal]);
        assert_eq!(
            spawn_attributes(&settings),
            SpawnAttributes {
                own_process_group: false,
                background_priority: true,
            }
        );
    }

    #[test]
    fn the_event_tail_yields_complete_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.stdout.log");
        let mut tail = EventTail::new(path.clone());
        assert!(tail.poll().is_empty(), "no file yet");
        let mut file = File::create(&path).unwrap();
        write!(
            file,
            "level=info msg=booting\n{{\"status\":{{\"running\":tr"
        )
        .unwrap();
        assert!(tail.poll().is_empty(), "half a line");
        writeln!(file, "ue,\"sshLocalPort\":60022}}}}").unwrap();
        let events = tail.poll();
        assert_eq!(events.len(), 1);
        assert!(events[0].status.running);
        assert!(tail.poll().is_empty(), "each line once");
        writeln!(file, "{{\"status\":{{\"exiting\":true}}}}").unwrap();
        assert!(tail.poll()[0].status.exiting);
    }

    #[test]
    fn the_stderr_tail_is_the_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.stderr.log");
        assert_eq!(stderr_tail(&path), "");
        let mut text = "x".repeat(5000);
        text.push_str("\nlast words\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(stderr_tail(&path), "last words");
    }
}
