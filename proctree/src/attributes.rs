//! Spawn attributes requested for a child, applied in one place so that one
//! attribute can never replace another.

use std::process::Command;

/// What a reconciler asks of the processes it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpawnAttributes {
    /// A process group (Windows: console process group) of its own, so that
    /// an interrupt sent to it reaches nobody else.
    pub own_process_group: bool,
    /// Lower scheduling priority (Unix: nice +5; Windows:
    /// `BELOW_NORMAL_PRIORITY_CLASS`), so a busy VM cannot starve its
    /// supervisor.
    pub background_priority: bool,
}

impl SpawnAttributes {
    /// Each attribute's name, as the fakes' journal records it and a target
    /// file lists it: the field names above.
    pub const NAMES: [&'static str; 2] = ["own_process_group", "background_priority"];

    /// Sets every requested attribute on `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        crate::platform::apply_attributes(*self, cmd);
    }
}

/// The attributes a process can observe about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObservedAttributes {
    /// It leads a process group of its own (Unix: its group id is its pid;
    /// Windows: it was created with `CREATE_NEW_PROCESS_GROUP`).
    pub own_process_group: bool,
    /// It runs below its parent's priority (Unix: a higher nice value;
    /// Windows: `BELOW_NORMAL_PRIORITY_CLASS`).
    pub background_priority: bool,
}

impl ObservedAttributes {
    /// What this process observes about itself.
    pub fn of_current_process() -> Self {
        crate::platform::observe_own_attributes()
    }

    /// What the outside sees of process `pid` whose parent is `parent`
    /// (for a real tool, which reports nothing itself). `None` when either
    /// is gone, or on Windows, where another process's creation flags are
    /// not observable.
    pub fn of_process(pid: u32, parent: u32) -> Option<Self> {
        crate::platform::observe_attributes_of(pid, parent)
    }
}
