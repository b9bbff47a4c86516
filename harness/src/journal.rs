//! Reading the fakes' journal back, with the queries scenarios need.

use contract::journal::{Event, JournalEntry, Record, read_journal};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The fakes' journal of one sandbox (JSON lines, `contract::journal`), read
/// back whole at every query.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

/// A port some fake bound, and who bound it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPort {
    pub port: u16,
    pub pid: u32,
    pub tool: String,
}

impl Journal {
    /// The journal at `path` (it need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Every entry so far, in file order; none when the file does not exist.
    pub fn entries(&self) -> Vec<JournalEntry> {
        // A journal that cannot be read is an empty one: the assertions that
        // need entries then fail with what they expected to find.
        read_journal(&self.path).unwrap_or_default()
    }

    /// Entries of one event, optionally from one tool only.
    pub fn events(&self, tool: Option<&str>, name: Event) -> Vec<JournalEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.event() == name && tool.is_none_or(|t| e.tool == t))
            .collect()
    }

    /// Every pid that wrote to the journal.
    pub fn pids(&self) -> BTreeSet<u32> {
        self.entries().iter().map(|e| e.pid).collect()
    }

    /// Pids of one tool's invocations whose arguments include `arg`.
    pub fn pids_invoked_with(&self, tool: &str, arg: &str) -> Vec<u32> {
        self.events(Some(tool), Event::Invoked)
            .iter()
            .filter(|e| e.args().iter().any(|a| a == arg))
            .map(|e| e.pid)
            .collect()
    }

    /// Every port a fake journaled as bound, with who bound it.
    pub fn bound_ports(&self) -> Vec<BoundPort> {
        self.events(None, Event::PortBound)
            .into_iter()
            .filter_map(|e| match e.record {
                Record::PortBound { port } => Some(BoundPort {
                    port,
                    pid: e.pid,
                    tool: e.tool,
                }),
                _ => None,
            })
            .collect()
    }

    /// The pids of the drivers a hostagent started to replace its first
    /// one (fault `replace_driver`), in journal order.
    pub fn replacement_drivers(&self) -> Vec<u32> {
        self.events(None, Event::DriverReplaced)
            .into_iter()
            .filter_map(|e| match e.record {
                Record::DriverReplaced { new, .. } => Some(new),
                _ => None,
            })
            .collect()
    }

    /// The last 20 entries, one per line, for failure messages.
    pub fn tail(&self) -> String {
        let entries = self.entries();
        entries[entries.len().saturating_sub(20)..]
            .iter()
            .map(|e| format!("{} pid {} {:?}", e.tool, e.pid, e.record))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
