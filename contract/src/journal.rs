//! The journal: every fake appends one JSON line per event to the file
//! named by `LIMAVM_JOURNAL`; the harness reads it back to assert what
//! happened. One line is a [`JournalEntry`]; what it records is a
//! [`Record`], an [`Event`] with its typed payload.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming the journal file.
pub const JOURNAL_ENV: &str = crate::env::JOURNAL;

/// The name of what a journal line records, written as its snake_case name
/// (`port_bound`); the payload of each is the [`Record`] of the same name.
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

/// What a journal line records, with its payload: the event's name is
/// written as `"event"` (the [`Event`] of the same name), its fields as the
/// object `"details"` (absent for an event without a payload), e.g.
/// `"event":"port_bound","details":{"port":4242}`. Paths are written as
/// text; a fake never journals a path that is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "details", rename_all = "snake_case")]
pub enum Record {
    /// See [`Event::Invoked`].
    Invoked {
        /// The arguments after the program name.
        args: Vec<String>,
    },
    /// See [`Event::Fault`].
    Fault {
        /// The fault's kind ([`crate::plan::Fault::kind`]: `hang`, `fail`, ...).
        kind: String,
    },
    /// See [`Event::Exit`].
    Exit {
        /// The exit code.
        code: i32,
    },
    /// See [`Event::PortBound`].
    PortBound {
        /// The TCP port, on 127.0.0.1.
        port: u16,
    },
    /// See [`Event::PortBindFailed`].
    PortBindFailed {
        /// The TCP port, on 127.0.0.1.
        port: u16,
        /// The OS error's text.
        error: String,
    },
    /// See [`Event::ChildStarted`].
    ChildStarted {
        /// The child's pid.
        pid: u32,
        /// The program it runs (a tool name or a path).
        tool: String,
    },
    /// See [`Event::PidFileWritten`].
    PidFileWritten {
        /// The pid file (`ha.pid`).
        path: PathBuf,
    },
    /// See [`Event::Listening`].
    Listening {
        /// The socket (`ha.sock`, the ssh ControlPath).
        path: PathBuf,
    },
    /// See [`Event::SpawnAttributes`]: what the hostagent observed of itself.
    SpawnAttributes {
        /// It leads a process group of its own.
        own_process_group: bool,
        /// It runs at background priority.
        background_priority: bool,
    },
    /// See [`Event::InterruptReceived`].
    InterruptReceived,
    /// See [`Event::InterruptIgnored`].
    InterruptIgnored,
    /// See [`Event::DriverReplaced`].
    DriverReplaced {
        /// The old driver's pid.
        old: u32,
        /// The new driver's pid.
        new: u32,
    },
    /// See [`Event::HostagentExec`].
    HostagentExec {
        /// The hostagent's arguments.
        args: Vec<String>,
    },
    /// See [`Event::ShutdownComplete`].
    ShutdownComplete,
    /// See [`Event::DiskLocked`].
    DiskLocked {
        /// The disk image.
        path: PathBuf,
    },
    /// See [`Event::KeyWritten`].
    KeyWritten {
        /// The private key file.
        path: PathBuf,
        /// The public key file.
        public_path: PathBuf,
    },
    /// See [`Event::DriverStopped`].
    DriverStopped {
        /// How the driver exited (its exit status as text).
        status: String,
    },
    /// See [`Event::KeyRefused`].
    KeyRefused {
        /// The identity file.
        path: PathBuf,
        /// Its mode in octal (`0644`).
        mode: String,
    },
    /// See [`Event::DistroState`].
    DistroState {
        /// The WSL distro (`lima-NAME`).
        distro: String,
        /// Its new state: `Stopped`, `Running` or `Unregistered`.
        state: String,
    },
}

impl Record {
    /// The event this record is of.
    pub fn event(&self) -> Event {
        match self {
            Record::Invoked { .. } => Event::Invoked,
            Record::Fault { .. } => Event::Fault,
            Record::Exit { .. } => Event::Exit,
            Record::PortBound { .. } => Event::PortBound,
            Record::PortBindFailed { .. } => Event::PortBindFailed,
            Record::ChildStarted { .. } => Event::ChildStarted,
            Record::PidFileWritten { .. } => Event::PidFileWritten,
            Record::Listening { .. } => Event::Listening,
            Record::SpawnAttributes { .. } => Event::SpawnAttributes,
            Record::InterruptReceived => Event::InterruptReceived,
            Record::InterruptIgnored => Event::InterruptIgnored,
            Record::DriverReplaced { .. } => Event::DriverReplaced,
            Record::HostagentExec { .. } => Event::HostagentExec,
            Record::ShutdownComplete => Event::ShutdownComplete,
            Record::DiskLocked { .. } => Event::DiskLocked,
            Record::KeyWritten { .. } => Event::KeyWritten,
            Record::DriverStopped { .. } => Event::DriverStopped,
            Record::KeyRefused { .. } => Event::KeyRefused,
            Record::DistroState { .. } => Event::DistroState,
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// What happened, with its payload (`event` and `details`).
    #[serde(flatten)]
    pub record: Record,
}

impl JournalEntry {
    /// The event this entry records.
    pub fn event(&self) -> Event {
        self.record.event()
    }

    /// The arguments of an [`Event::Invoked`] or [`Event::HostagentExec`]
    /// entry; empty for other events.
    pub fn args(&self) -> &[String] {
        match &self.record {
            Record::Invoked { args } | Record::HostagentExec { args } => args,
            _ => &[],
        }
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
        assert_eq!(entry.event(), Event::Invoked);
        assert_eq!(entry.args(), ["-O", "exit"]);
    }

    /// One record of every event, in [`Event::ALL`]'s order.
    fn one_record_of_every_event() -> Vec<Record> {
        let path = PathBuf::from("/tmp/x");
        vec![
            Record::Invoked {
                args: vec!["a".into()],
            },
            Record::Fault {
                kind: "hang".into(),
            },
            Record::Exit { code: 7 },
            Record::PortBound { port: 4242 },
            Record::PortBindFailed {
                port: 1,
                error: "taken".into(),
            },
            Record::ChildStarted {
                pid: 3,
                tool: "qemu".into(),
            },
            Record::PidFileWritten { path: path.clone() },
            Record::Listening { path: path.clone() },
            Record::SpawnAttributes {
                own_process_group: true,
                background_priority: false,
            },
            Record::InterruptReceived,
            Record::InterruptIgnored,
            Record::DriverReplaced { old: 4, new: 5 },
            Record::HostagentExec {
                args: vec!["hostagent".into()],
            },
            Record::ShutdownComplete,
            Record::DiskLocked { path: path.clone() },
            Record::KeyWritten {
                path: path.clone(),
                public_path: path.clone(),
            },
            Record::DriverStopped {
                status: "exit status: 1".into(),
            },
            Record::KeyRefused {
                path: path.clone(),
                mode: "0644".into(),
            },
            Record::DistroState {
                distro: "lima-vm".into(),
                state: "Running".into(),
            },
        ]
    }

    /// One record of every event, written and read back: the name written
    /// is the event's, the payload is under `details` (absent for none).
    #[test]
    fn records_are_written_as_their_event_and_details() {
        let records = one_record_of_every_event();
        let events: Vec<Event> = records.iter().map(Record::event).collect();
        assert_eq!(events, Event::ALL, "one record of every event, in order");
        for record in records {
            let entry = JournalEntry {
                time_ms: 1,
                tool: "t".into(),
                pid: 2,
                ppid: None,
                record,
            };
            let json = serde_json::to_value(&entry).unwrap();
            assert_eq!(json["event"], entry.event().as_str(), "{json}");
            let read: JournalEntry = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(read, entry, "{json}");
        }
        let bound: JournalEntry = serde_json::from_str(
            r#"{"time_ms":1,"tool":"ssh","pid":2,"event":"port_bound","details":{"port":4242}}"#,
        )
        .unwrap();
        assert_eq!(bound.record, Record::PortBound { port: 4242 });
    }
}
