//! Is the process a pid file names really this instance's? A pid file can
//! outlive its process, and the pid can be reused by anything.

use proctree::{ProcessInfo, ProcessTable};
use std::path::Path;
use std::time::Duration;

const CMDLINE_RETRIES: u32 = 20;
const CMDLINE_RETRY_PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The process belongs to this instance.
    Ours,
    /// No such live process: the pid file is stale.
    Gone,
    /// Some other live process holds the pid; `description` says what.
    Foreign { description: String },
}

/// A hostagent of this instance runs `limactl hostagent ... <name>`.
pub fn hostagent_identity(pid: u32, instance_name: &str) -> Identity {
    identify(pid, |process| {
        let args = &process.cmd;
        args.iter().any(|a| a == "hostagent") && args.iter().skip(1).any(|a| a == instance_name)
    })
}

/// A driver of this instance names the instance directory in an argument
/// (its pid file, its disk, its sockets).
pub fn driver_identity(pid: u32, instance_dir: &Path) -> Identity {
    let dir = instance_dir.to_string_lossy();
    identify(pid, |process| process.cmd_contains(&dir))
}

fn identify(pid: u32, is_ours: impl Fn(&ProcessInfo) -> bool) -> Identity {
    let mut process = None;
    for _ in 0..CMDLINE_RETRIES {
        let table = ProcessTable::snapshot_of(&[pid]);
        process = table.get(pid).filter(|p| !p.zombie).cloned();
        // A process caught in the middle of exec shows an empty command
        // line for a moment; a moment later it is readable.
        if process.as_ref().is_none_or(|p| !p.cmd.is_empty()) {
            break;
        }
        std::thread::sleep(CMDLINE_RETRY_PAUSE);
    }
    match process {
        Some(process) if is_ours(&process) => Identity::Ours,
        Some(process) => Identity::Foreign {
            description: describe(&process),
        },
        None => Identity::Gone,
    }
}

fn describe(process: &ProcessInfo) -> String {
    if process.cmd.is_empty() {
        format!("{:?} (command line unreadable)", process.name)
    } else {
        format!("{:?}", process.cmd.join(" "))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_support::Spawned;

    #[test]
    fn a_hostagent_is_recognised_by_its_arguments() {
        let ours = Spawned::sh("sleep 600 & wait", &["hostagent", "--pidfile", "x", "vm1"]);
        assert_eq!(hostagent_identity(ours.pid(), "vm1"), Identity::Ours);
        assert!(matches!(
            hostagent_identity(ours.pid(), "vm"),
            Identity::Foreign { .. }
        ));
        let bystander = Spawned::sh("sleep 600 & wait", &["bystander", "vm1"]);
        let Identity::Foreign { description } = hostagent_identity(bystander.pid(), "vm1") else {
            panic!("a bystander passed for a hostagent");
        };
        assert!(description.contains("bystander"), "{description}");
    }

    #[test]
    fn a_driver_is_recognised_by_its_instance_directory() {
        let dir = Path::new("/tmp/home[1]/.lima/vm1");
        let driver = Spawned::sh(
            "sleep 600 & wait",
            &["qemu", "-pidfile", "/tmp/home[1]/.lima/vm1/qemu.pid"],
        );
        assert_eq!(driver_identity(driver.pid(), dir), Identity::Ours);
        assert!(matches!(
            driver_identity(driver.pid(), Path::new("/tmp/home[1]/.lima/vm2")),
            Identity::Foreign { .. }
        ));
    }

    #[test]
    fn a_dead_pid_is_gone() {
        let mut gone = Spawned::sh("exit 0", &[]);
        let pid = gone.pid();
        gone.wait();
        assert_eq!(hostagent_identity(pid, "vm1"), Identity::Gone);
    }
}
