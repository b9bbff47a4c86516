//! The journal: every fake appends one JSON line per event to the file named
//! by `LIMAVM_JOURNAL`; the harness reads it back to assert what happened.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use contract::journal::*;

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

    /// A writer that writes nothing (code that is not one of the fakes).
    pub fn disabled() -> Self {
        Self {
            path: None,
            tool: String::new(),
        }
    }

    /// A writer to `path`, whatever the environment says.
    #[cfg(test)]
    fn to_file(path: &std::path::Path, tool: &str) -> Self {
        Self {
            path: Some(path.to_owned()),
            tool: tool.to_owned(),
        }
    }

    /// Appends `record` as one line, stamped with the time, this tool,
    /// this process and its parent.
    pub fn record(&self, record: Record) {
        let Some(path) = &self.path else { return };
        let entry = JournalEntry {
            time_ms: now_ms(),
            tool: self.tool.clone(),
            pid: std::process::id(),
            ppid: parent_pid(),
            record,
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

/// Milliseconds since the Unix epoch, 0 if the clock is before it.
fn now_ms() -> u64 {
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
        writer.record(Record::PortBound { port: 4242 });
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"time_ms\":1,\"tool\"")
            .unwrap();
        let entries = read_journal(&path).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].record, Record::PortBound { port: 4242 });
        assert_eq!(entries[0].pid, std::process::id());
    }
}
