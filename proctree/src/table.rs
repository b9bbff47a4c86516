//! A snapshot of the process table, read through `sysinfo`.

use std::collections::HashMap;
use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// One process of a [`ProcessTable`] snapshot, as `sysinfo` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid, when the OS reports one.
    pub parent: Option<u32>,
    /// The executable's name (Linux: `comm`, at most 15 bytes).
    pub name: String,
    /// The command line, `argv[0]` first (empty when unreadable).
    pub cmd: Vec<String>,
    /// Seconds since the Unix epoch.
    pub start_time: u64,
    /// Exited but not yet reaped (Unix); never true on Windows.
    pub zombie: bool,
    /// The environment as `KEY=value` strings (empty when unreadable,
    /// e.g. another user's process).
    pub environ: Vec<String>,
}

impl ProcessInfo {
    /// True when any command-line argument contains `needle`.
    pub fn cmd_contains(&self, needle: &str) -> bool {
        self.cmd.iter().any(|arg| arg.contains(needle))
    }

    /// The value of an environment variable, when the table could read it.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.environ.iter().find_map(|entry| {
            entry
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
        })
    }
}

/// Processes as they were when the snapshot was taken.
#[derive(Debug, Default)]
pub struct ProcessTable {
    processes: HashMap<u32, ProcessInfo>,
}

impl ProcessTable {
    /// Every process, with command lines and environments.
    pub fn snapshot() -> Self {
        Self::read(ProcessesToUpdate::All, true)
    }

    /// Only the named processes, with command lines (cheaper than a full
    /// snapshot when checking a few pids).
    pub fn snapshot_of(pids: &[u32]) -> Self {
        let pids: Vec<Pid> = pids.iter().map(|p| Pid::from_u32(*p)).collect();
        Self::read(ProcessesToUpdate::Some(&pids), false)
    }

    /// Every process, with parents and start times only: enough for
    /// [`Self::lineage_of`], at a fraction of a full snapshot's cost.
    pub(crate) fn snapshot_parents() -> Self {
        Self::read_kind(
            ProcessesToUpdate::All,
            ProcessRefreshKind::nothing().without_tasks(),
        )
    }

    fn read(which: ProcessesToUpdate<'_>, with_environ: bool) -> Self {
        // Without tasks: on Linux, sysinfo would otherwise also read every
        // thread of every process (`/proc/PID/task/*`), most of a snapshot's
        // cost, for entries this table drops anyway.
        let mut kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cmd(UpdateKind::Always);
        if with_environ {
            kind = kind.with_environ(UpdateKind::Always);
        }
        Self::read_kind(which, kind)
    }

    fn read_kind(which: ProcessesToUpdate<'_>, kind: ProcessRefreshKind) -> Self {
        // Only unsupported platforms fail here; every platform this project
        // builds for (Linux, macOS, Windows) has a process table.
        let mut system = System::new().expect("the process table is readable on this platform");
        system.refresh_processes_specifics(which, true, kind);
        let processes = system
            .processes()
            .iter()
            .filter(|(_, p)| p.thread_kind().is_none())
            .map(|(pid, p)| {
                let info = ProcessInfo {
                    pid: pid.as_u32(),
                    parent: p.parent().map(Pid::as_u32),
                    name: p.name().to_string_lossy().into_owned(),
                    cmd: p
                        .cmd()
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect(),
                    start_time: p.start_time(),
                    zombie: matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead),
                    environ: p
                        .environ()
                        .iter()
                        .map(|e| e.to_string_lossy().into_owned())
                        .collect(),
                };
                (info.pid, info)
            })
            .collect();
        Self { processes }
    }

    /// The process `pid`, zombie or not, when the snapshot has it.
    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.processes.get(&pid)
    }

    /// True when the snapshot has `pid` and it is not a zombie.
    pub fn is_alive(&self, pid: u32) -> bool {
        self.get(pid).is_some_and(|p| !p.zombie)
    }

    /// Every live process.
    pub fn iter(&self) -> impl Iterator<Item = &ProcessInfo> {
        self.processes.values().filter(|p| !p.zombie)
    }

    /// Every live process descending from `root` (not `root` itself),
    /// parents before children.
    pub fn descendants(&self, root: u32) -> Vec<u32> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in self.iter() {
            if let Some(parent) = p.parent {
                children.entry(parent).or_default().push(p.pid);
            }
        }
        let mut found = Vec::new();
        let mut frontier = vec![root];
        while let Some(pid) = frontier.pop() {
            for child in children.get(&pid).into_iter().flatten() {
                // A recycled pid could make a cycle; never visit twice.
                if *child != root && !found.contains(child) {
                    found.push(*child);
                    frontier.push(*child);
                }
            }
        }
        found
    }

    /// `pid` and then its ancestors, nearest first, as far as this table
    /// knows them. The walk stops at pid 0, at a parent this table lacks, at
    /// a cycle, and at a "parent" started after its child: a recycled pid
    /// that names some other process now (start times in whole seconds).
    pub fn lineage_of(&self, pid: u32) -> Vec<u32> {
        let mut lineage = vec![pid];
        let mut current = self.get(pid);
        while let Some(child) = current {
            let Some(parent) = child.parent.and_then(|p| self.get(p)) else {
                break;
            };
            if parent.pid == 0
                || lineage.contains(&parent.pid)
                || parent.start_time > child.start_time
            {
                break;
            }
            lineage.push(parent.pid);
            current = Some(parent);
        }
        lineage
    }

    /// Live processes whose environment holds `key=value`.
    pub fn with_env(&self, key: &str, value: &str) -> Vec<&ProcessInfo> {
        self.iter()
            .filter(|p| p.env_var(key) == Some(value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, parent: u32, start_time: u64) -> (u32, ProcessInfo) {
        let info = ProcessInfo {
            pid,
            parent: Some(parent),
            name: format!("p{pid}"),
            cmd: Vec::new(),
            start_time,
            zombie: false,
            environ: Vec::new(),
        };
        (pid, info)
    }

    #[test]
    fn a_lineage_stops_at_a_parent_younger_than_its_child_and_at_a_cycle() {
        // 40's recorded parent 30 started after it: 30 is a recycled pid.
        let table = ProcessTable {
            processes: [process(50, 40, 9), process(40, 30, 5), process(30, 1, 7)]
                .into_iter()
                .collect(),
        };
        assert_eq!(table.lineage_of(50), vec![50, 40]);
        let cycle = ProcessTable {
            processes: [process(7, 8, 1), process(8, 7, 1)].into_iter().collect(),
        };
        assert_eq!(cycle.lineage_of(7), vec![7, 8]);
    }
}
