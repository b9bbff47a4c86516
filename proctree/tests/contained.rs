//! A tree started with `spawn_contained` dies whole on `kill_tree`, also a
//! grandchild whose parent already died (which no walk of the process table
//! reaches: nothing names the root as its ancestor any more). Windows: the
//! job object does it (Wine supports job objects, so this runs there too);
//! Unix: the process group.
//!
//! The processes are this test binary run again, their role chosen by
//! `PROCTREE_TEST_ROLE`: `root` starts `middle` and waits for it; `middle`
//! starts `leaf`, writes the leaf's pid to a file and exits; `leaf` waits to
//! be killed (and exits on its own after a minute, so nothing outlives a
//! broken run for long).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "PROCTREE_TEST_ROLE";
const LEAF_PID_FILE_ENV: &str = "PROCTREE_TEST_LEAF_PID_FILE";
const TIMEOUT: Duration = Duration::from_secs(20);

fn rerun(role: &str, leaf_pid_file: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["tree_role", "--exact", "--ignored", "--nocapture"])
        .env(ROLE_ENV, role)
        .env(LEAF_PID_FILE_ENV, leaf_pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Not a test: the processes of the tree.
#[test]
#[ignore = "a process of the tree that `an_orphaned_grandchild_dies_with_its_tree` starts"]
fn tree_role() {
    let (Ok(role), Some(pid_file)) = (
        std::env::var(ROLE_ENV),
        std::env::var_os(LEAF_PID_FILE_ENV).map(PathBuf::from),
    ) else {
        return;
    };
    match role.as_str() {
        "root" => {
            let _ = rerun("middle", &pid_file).status();
            std::thread::sleep(Duration::from_secs(60));
        }
        "middle" => {
            // Never waited for: the middle exits and leaves it orphaned.
            #[allow(clippy::zombie_processes)]
            let leaf = rerun("leaf", &pid_file).spawn().unwrap();
            let partial = pid_file.with_extension("partial");
            std::fs::write(&partial, leaf.id().to_string()).unwrap();
            std::fs::rename(&partial, &pid_file).unwrap();
        }
        _ => std::thread::sleep(Duration::from_secs(60)),
    }
}

/// Polls `probe` until it returns `Some`, panicking after [`TIMEOUT`] with
/// what it last saw.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {TIMEOUT:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Kills the leaf on drop when a failed test left it: only while the
/// process with its pid still runs this test binary in the leaf role.
struct LeafGuard(Option<u32>);

impl Drop for LeafGuard {
    fn drop(&mut self) {
        let Some(pid) = self.0 else { return };
        let table = proctree::ProcessTable::snapshot();
        if table
            .get(pid)
            .is_some_and(|p| p.env_var(ROLE_ENV) == Some("leaf"))
        {
            let _ = proctree::kill(pid);
        }
    }
}

#[test]
fn an_orphaned_grandchild_dies_with_its_tree() {
    let dir = tempfile::Builder::new()
        .prefix("contained [1] ")
        .tempdir()
        .unwrap();
    let pid_file = dir.path().join("leaf.pid");
    let attributes = proctree::SpawnAttributes {
        own_process_group: true,
        background_priority: false,
    };
    let mut root = proctree::spawn_contained(&mut rerun("root", &pid_file), attributes)
        .expect("the root starts");
    let root_pid = root.id();
    let mut leaf = LeafGuard(None);
    let leaf_pid: u32 = eventually("the middle process to write the leaf's pid", || {
        std::fs::read_to_string(&pid_file)
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|e| format!("{e}"))
    });
    leaf.0 = Some(leaf_pid);
    eventually("the leaf to be orphaned", || {
        let table = proctree::ProcessTable::snapshot();
        let descendants = table.descendants(root_pid);
        if table.is_alive(leaf_pid) && !descendants.contains(&leaf_pid) {
            Ok(())
        } else {
            Err(format!(
                "leaf alive: {}, descendants of the root: {descendants:?}",
                table.is_alive(leaf_pid)
            ))
        }
    });

    let killed = proctree::kill_tree(root_pid).expect("the tree is killed");
    assert_eq!(killed.first(), Some(&root_pid), "{killed:?}");
    eventually("the orphaned leaf to die with its tree", || {
        if proctree::is_alive(leaf_pid) {
            Err(format!("pid {leaf_pid} alive; kill_tree killed {killed:?}"))
        } else {
            Ok(())
        }
    });
    let status = root.wait().unwrap();
    assert!(
        !status.success(),
        "the root was killed, not finished: {status}"
    );
}
