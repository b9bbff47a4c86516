//! Pids that no signal from this crate may reach, whatever its caller
//! computed: a defect upstream (a wrong pid, a recycled one, a mutant in
//! mutation testing) must not take down init or the caller's own ancestry.

use crate::ProcessTable;

/// Why `pid` must not be signalled, or `None` when it may be. Pid 0 names
/// no single process (on Unix it addresses the caller's own group, on
/// Windows every process on its console); pid 1 is init on Unix and never a
/// process on Windows (its pids are multiples of 4); the caller and its
/// ancestors run the very code that asks.
pub(crate) fn refusal(pid: u32) -> Option<&'static str> {
    match pid {
        0 => Some("pid 0 names no single process"),
        1 => Some("pid 1 is the system's init"),
        _ if pid == std::process::id() => Some("it is this process"),
        _ if own_ancestors().contains(&pid) => Some("it is an ancestor of this process"),
        _ => None,
    }
}

/// The caller's ancestors, nearest first, read from a fresh process table.
fn own_ancestors() -> Vec<u32> {
    let me = std::process::id();
    let mut lineage = ProcessTable::snapshot_parents().lineage_of(me);
    lineage.retain(|pid| *pid != me);
    lineage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_pid_0_this_process_and_its_parent_are_refused() {
        assert!(refusal(0).is_some());
        assert!(refusal(1).is_some());
        assert_eq!(refusal(std::process::id()), Some("it is this process"));
        let me = std::process::id();
        // Wine's process table gives no parent; elsewhere there is one.
        let parent = ProcessTable::snapshot_of(&[me])
            .get(me)
            .and_then(|p| p.parent);
        if let Some(parent) = parent.filter(|p| *p > 1) {
            assert_eq!(refusal(parent), Some("it is an ancestor of this process"));
        }
    }

    #[test]
    fn a_child_is_not_refused() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let verdict = refusal(child.id());
        child.wait().unwrap();
        assert_eq!(verdict, None);
    }
}
