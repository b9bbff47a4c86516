//! The journal: every fake appends one JSON line per event to the file
//! named by `LIMAVM_JOURNAL`; the harness reads it back to assert what
//! happened. One line is a [`JournalEntry`]; its `event` is an [`Event`],
//! whose documentation gives the payload (`details`).

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Environment variable naming the journal file.
pub const JOURNAL_ENV: &str = crate::env::JOURNAL;

/// What a journal line records; written as its snake_case name
/// (`port_bound`). The payload of each is in `details`, as documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Any fake started: `{"args": [...]}`.
    Invoked,
    /// A fault from the plan took effect: `{"kind": "..."}`.
    Fault,
    /// The process is exiting: `{"code": N}`.
    Exit,
    /// A port is held: `{"port": N}` (ssh forwards, the driver's host port).
    PortBound,
    /// A port could not be bound: `{"port": N, "error": "..."}`.
    PortBindFailed,
    /// A child was started: `{"pid": N, "tool": "..."}`.
    ChildStarted,
    /// hostagent: the pid file was written: `{"path": "..."}`.
    PidFileWritten,
    /// hostagent: the socket answers: `{"path": "..."}`.
    Listening,
    /// hostagent: what it sees of its own spawn attributes:
    /// `{"own_process_group": bool, "background_priority": bool}`.
    SpawnAttributes,
    /// hostagent, ssh, driver: the graceful interrupt arrived.
    InterruptReceived,
    /// ...and was ignored on purpose (fault `ignore_interrupt`).
    InterruptIgnored,
    /// hostagent: a new driver replaced the old: `{"old": N, "new": N}`.
    DriverReplaced,
    /// limactl start --foreground: the instance is prepared and the process
    /// becomes the hostagent (exec, same pid): `{"args": [...]}`.
    HostagentExec,
    /// hostagent: graceful shutdown finished, tmp files removed.
    ShutdownComplete,
    /// driver: the disk image lock is held: `{"path": "..."}`.
    DiskLocked,
    /// ssh-keygen: a key pair was written:
    /// `{"path": "...", "public_path": "..."}`.
    KeyWritten,
    /// hostagent: its driver exited on its own; it stops and exits 1:
    /// `{"status": "..."}`.
    DriverStopped,
    /// `ssh` refused an identity file others may read, as OpenSSH does
    /// (`details.path`, `details.mode`).
    KeyRefused,
    /// wsl.exe: distro state changed: `{"distro": "...", "state": "..."}`,
    /// state `Stopped` (also on import), `Running` or `Unregistered`.
    DistroState,
}

impl Event {
    /// Every event.
    pub const ALL: &'static [Event] = &[
        Event::Invoked,
        Event::Fault,
        Event::Exit,
        Event::PortBound,
        Event::PortBindFailed,
        Event::ChildStarted,
        Event::PidFileWritten,
        Event::Listening,
        Event::SpawnAttributes,
        Event::InterruptReceived,
        Event::InterruptIgnored,
        Event::DriverReplaced,
        Event::HostagentExec,
        Event::ShutdownComplete,
        Event::DiskLocked,
        Event::KeyWritten,
        Event::DriverStopped,
        Event::KeyRefused,
        Event::DistroState,
    ];

    /// The name written in the journal (`port_bound`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Invoked => "invoked",
            Event::Fault => "fault",
            Event::Exit => "exit",
            Event::PortBound => "port_bound",
            Event::PortBindFailed => "port_bind_failed",
            Event::ChildStarted => "child_started",
            Event::PidFileWritten => "pid_file_written",
            Event::Listening => "listening",
            Event::SpawnAttributes => "spawn_attributes",
            Event::InterruptReceived => "interrupt_received",
            Event::InterruptIgnored => "interrupt_ignored",
            Event::DriverReplaced => "driver_replaced",
            Event::HostagentExec => "hostagent_exec",
            Event::ShutdownComplete => "shutdown_complete",
            Event::DiskLocked => "disk_locked",
            Event::KeyWritten => "key_written",
            Event::DriverStopped => "driver_stopped",
            Event::KeyRefused => "key_refused",
            Event::DistroState => "distro_state",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The events under the names they had as strings (`event::PORT_BOUND`).
pub mod event {
    use super::Event;

    /// [`Event::Invoked`].
    pub const INVOKED: Event = Event::Invoked;
    /// [`Event::Fault`].
    pub const FAULT: Event = Event::Fault;
    /// [`Event::Exit`].
    pub const EXIT: Event = Event::Exit;
    /// [`Event::PortBound`].
    pub const PORT_BOUND: Event = Event::PortBound;
    /// [`Event::PortBindFailed`].
    pub const PORT_BIND_FAILED: Event = Event::PortBindFailed;
    /// [`Event::ChildStarted`].
    pub const CHILD_STARTED: Event = Event::ChildStarted;
    /// [`Event::PidFileWritten`].
    pub const PID_FILE_WRITTEN: Event = Event::PidFileWritten;
    /// [`Event::Listening`].
    pub const LISTENING: Event = Event::Listening;
    /// [`Event::SpawnAttributes`].
    pub const SPAWN_ATTRIBUTES: Event = Event::SpawnAttributes;
    /// [`Event::InterruptReceived`].
    pub const INTERRUPT_RECEIVED: Event = Event::InterruptReceived;
    /// [`Event::InterruptIgnored`].
    pub const INTERRUPT_IGNORED: Event = Event::InterruptIgnored;
    /// [`Event::DriverReplaced`].
    pub const DRIVER_REPLACED: Event = Event::DriverReplaced;
    /// [`Event::HostagentExec`].
    pub const HOSTAGENT_EXEC: Event = Event::HostagentExec;
    /// [`Event::ShutdownComplete`].
    pub const SHUTDOWN_COMPLETE: Event = Event::ShutdownComplete;
    /// [`Event::DiskLocked`].
    pub const DISK_LOCKED: Event = Event::DiskLocked;
    /// [`Event::KeyWritten`].
    pub const KEY_WRITTEN: Event = Event::KeyWritten;
    /// [`Event::DriverStopped`].
    pub const DRIVER_STOPPED: Event = Event::DriverStopped;
    /// [`Event::KeyRefused`].
    pub const KEY_REFUSED: Event = Event::KeyRefused;
    /// [`Event::DistroState`].
    pub const DISTRO_STATE: Event = Event::DistroState;
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The tool that wrote it, as [`crate::Tool::as_str`] names it.
    pub tool: String,
    /// The writing process.
    pub pid: u32,
    /// Its parent, when known.
    #[serde(default)]
    pub ppid: Option<u32>,
    /// What happened.
    pub event: Event,
    /// The event's payload (see [`Event`]); `null` when it has none.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl JournalEntry {
    /// A numeric detail, such as `port` or `pid`.
    pub fn detail_u64(&self, key: &str) -> Option<u64> {
        self.details.get(key).and_then(serde_json::Value::as_u64)
    }

    /// A text detail, such as `path`.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.get(key).and_then(serde_json::Value::as_str)
    }

    /// The arguments of an [`Event::Invoked`] or [`Event::HostagentExec`]
    /// entry (`details.args`); empty for other events.
    pub fn args(&self) -> Vec<&str> {
        self.details
            .get("args")
            .and_then(serde_json::Value::as_array)
            .map(|args| args.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// Reads every entry of a journal; a missing file is an empty journal, a
/// torn last line (a fake killed mid-write) is skipped.
///
/// # Errors
///
/// The file exists but cannot be read.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_under_their_names() {
        for &event in Event::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }
    }

    #[test]
    fn args_are_read_from_details() {
        let entry: JournalEntry = serde_json::from_str(
            r#"{"time_ms":1,"tool":"ssh","pid":2,"event":"invoked","details":{"args":["-O","exit"]}}"#,
        )
        .unwrap();
        assert_eq!(entry.event, Event::Invoked);
        assert_eq!(entry.args(), ["-O", "exit"]);
    }
}
