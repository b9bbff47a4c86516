//! What a sandbox left behind: live processes, held ports, and the
//! invariants broken on the way (see [`crate::invariants`]).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedProcess {
    pub pid: u32,
    pub name: String,
    pub cmd: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedPort {
    pub port: u16,
    /// Who bound it, from the journal.
    pub pid: u32,
    pub tool: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReport {
    pub processes: Vec<LeakedProcess>,
    pub ports: Vec<LeakedPort>,
    /// Invariants broken during the scenario, one message each
    /// ([`crate::invariants`]).
    pub broken: Vec<crate::invariants::Broken>,
}

impl LeakReport {
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
