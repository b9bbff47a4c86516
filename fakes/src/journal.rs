//! The journal: every fake appends one JSON line per event to the file named
//! by `LIMAVM_JOURNAL`; the harness reads it back to assert what happened.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable naming the journal file.
pub const JOURNAL_ENV: &str = "LIMAVM_JOURNAL";

/// Event names, shared by the writers and the readers.
pub mod event {
    /// Any fake started: `{"args": [...]}`.
    pub const INVOKED: &str = "invoked";
    /// A fault from the plan took effect: `{"kind": "..."}`.
    pub const FAULT: &str = "fault";
    /// The process is exiting: `{"code": N}`.
    pub const EXIT: &str = "exit";
    /// A port is held: `{"port": N}` (ssh forwards, the driver's host port).
    pub const PORT_BOUND: &str = "port_bound";
    /// A port could not be bound: `{"port": N, "error": "..."}`.
    pub const PORT_BIND_FAILED: &str = "port_bind_failed";
    /// A child was started: `{"pid": N, "tool": "..."}`.
    pub const CHILD_STARTED: &str = "child_started";
    /// hostagent: the pid file was written: `{"path": "..."}`.
    pub const PID_FILE_WRITTEN: &str = "pid_file_written";
    /// hostagent: the socket answers: `{"path": "..."}`.
    pub const LISTENING: &str = "listening";
    /// hostagent: what it sees of its own spawn attributes:
    /// `{"own_process_group": bool, "background_priority": bool}`.
    pub const SPAWN_ATTRIBUTES: &str = "spawn_attributes";
    /// hostagent, ssh, driver: the graceful interrupt arrived.
    pub const INTERRUPT_RECEIVED: &str = "interrupt_received";
    /// ...and was ignored on purpose (fault `ignore_interrupt`).
    pub const INTERRUPT_IGNORED: &str = "interrupt_ignored";
    /// hostagent: a new driver replaced the old: `{"old": N, "new": N}`.
    pub const DRIVER_REPLACED: &str = "driver_replaced";
    /// limactl start --foreground: the instance is prepared and the process
    /// becomes the hostagent (exec, same pid): `{"args": [...]}`.
    pub const HOSTAGENT_EXEC: &str = "hostagent_exec";
    /// hostagent: graceful shutdown finished, tmp files removed.
    pub const SHUTDOWN_COMPLETE: &str = "shutdown_complete";
    /// driver: the disk image lock is held: `{"path": "..."}`.
    pub const DISK_LOCKED: &str = "disk_locked";
    /// ssh-keygen: a key pair was written:
    /// `{"path": "...", "public_path": "..."}`.
    pub const KEY_WRITTEN: &str = "key_written";
    /// hostagent: its driver exited on its own; it stops and exits 1:
    /// `{"status": "..."}`.
    pub const DRIVER_STOPPED: &str = "driver_stopped";
    /// `ssh` refused an identity file others may read, as OpenSSH does
    /// (`details.path`, `details.mode`).
    pub const KEY_REFUSED: &str = "key_refused";
    /// wsl.exe: distro state changed: `{"distro": "...", "state": "..."}`,
    /// state `Stopped` (also on import), `Running` or `Unregistered`.
    pub const DISTRO_STATE: &str = "distro_state";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub tool: String,
    pub pid: u32,
    #[serde(default)]
    pub ppid: Option<u32>,
    pub event: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

impl JournalEntry {
    /// A numeric detail, such as `port` or `pid`.
    pub fn detail_u64(&self, key: &str) -> Option<u64> {
        self.details.get(key).and_then(serde_json::Value::as_u64)
    }

    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.get(key).and_then(serde_json::Value::as_str)
    }
}

/// Appends entries to a journal file. Each entry is one `write` of one line
/// under an exclusive lock, so concurrent fakes never interleave.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    path: Option<PathBuf>,
    tool: String,
}

impl JournalWriter {
    /// A writer for the journal named by `LIMAVM_JOURNAL`; writes nothing
    /// when the variable is unset.
    pub fn from_env(tool: &str) -> Self {
        Self {
            path: std::env::var_os(JOURNAL_ENV).map(PathBuf::from),
            tool: tool.to_owned(),
        }
    }

    pub fn to_file(path: &Path, tool: &str) -> Self {
        Self {
            path: Some(path.to_owned()),
            tool: tool.to_owned(),
        }
    }

    pub fn record(&self, event: &str, details: serde_json::Value) {
        let Some(path) = &self.path else { return };
        let entry = JournalEntry {
            time_ms: now_ms(),
            tool: self.tool.clone(),
            pid: std::process::id(),
            ppid: parent_pid(),
            event: event.to_owned(),
            details,
        };
        let mut line = serde_json::to_string(&entry).expect("journal entries serialise");
        line.push('\n');
        // A journal that cannot be written must not change the fake's
        // behaviour: the harness notices the missing entry instead.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.lock();
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Reads every entry of a journal; a missing file is an empty journal, a
/// torn last line (a fake killed mid-write) is skipped.
pub fn read_journal(path: &Path) -> std::io::Result<Vec<JournalEntry>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn parent_pid() -> Option<u32> {
    #[cfg(unix)]
    {
        // SAFETY: getppid cannot fail.
        Some(unsafe { libc::getppid() } as u32)
    }
    #[cfg(windows)]
    {
        proctree::ProcessTable::snapshot_of(&[std::process::id()])
            .get(std::process::id())
            .and_then(|p| p.parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let writer = JournalWriter::to_file(&path, "ssh");
        writer.record(event::PORT_BOUND, serde_json::json!({"port": 4242}));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"time_ms\":1,\"tool\"")
            .unwrap();
        let entries = read_journal(&path).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].event, event::PORT_BOUND);
        assert_eq!(entries[0].detail_u64("port"), Some(4242));
        assert_eq!(entries[0].pid, std::process::id());
    }
}
