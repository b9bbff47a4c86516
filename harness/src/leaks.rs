//! What a sandbox left behind: live processes, held ports, and the
//! invariants broken on the way (see [`crate::invariants`]).

use std::fmt;

/// A process of the sandbox still alive after the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedProcess {
    /// Its pid.
    pub pid: u32,
    /// Its executable name.
    pub name: String,
    /// Its command line, joined by spaces.
    pub cmd: String,
}

/// A port a fake of the sandbox bound and that is still held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedPort {
    /// The TCP port.
    pub port: u16,
    /// Who bound it, from the journal.
    pub pid: u32,
    /// The tool that fake played, from the journal.
    pub tool: String,
}

/// What a sandbox left behind after a scenario; clean when all is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReport {
    /// Processes still alive.
    pub processes: Vec<LeakedProcess>,
    /// Ports still held.
    pub ports: Vec<LeakedPort>,
    /// Invariants broken during the scenario, one message each
    /// ([`crate::invariants`]).
    pub broken: Vec<crate::invariants::Broken>,
}

impl LeakReport {
    /// True when nothing leaked and no invariant broke.
    pub fn is_clean(&self) -> bool {
        self.processes.is_empty() && self.ports.is_empty() && self.broken.is_empty()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str("nothing leaked");
        }
        let mut parts = Vec::new();
        for p in &self.processes {
            parts.push(format!(
                "process {} (pid {}) still alive: {}",
                p.name, p.pid, p.cmd
            ));
        }
        for p in &self.ports {
            parts.push(format!(
                "port {} still held (bound by {} pid {})",
                p.port, p.tool, p.pid
            ));
        }
        for invariant in &self.broken {
            parts.push(format!("invariant broken: {invariant}"));
        }
        f.write_str(&parts.join("; "))
    }
}
