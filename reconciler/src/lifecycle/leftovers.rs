//! The processes of an instance, found by what identifies them rather than
//! by who their parent is. A hostagent that exits (gracefully or not) or
//! dies can leave its driver, its `ssh` forwarders or a daemonized `ssh`
//! control master behind; those are reparented (to pid 1 or a subreaper)
//! and no longer descend from anything the reconciler knows. Each of them
//! names a path inside the instance directory on its command line (QEMU
//! its pid file and disks, `ssh` its `ControlPath`, the hostagent its pid
//! file and socket), which is how they are found here.

use crate::lifecycle::identity::InstanceDir;
use lima_layout::{InstancePaths, LimaHome};
use proctree::{ProcessInfo, ProcessTable};
use std::path::Path;

/// Whether [`find`] recognises a daemonized `ssh` ControlMaster by its
/// title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Masters {
    Seen,
    /// The `control-master-leftover` regression: only the command lines
    /// that still carry a path argument count.
    Unseen,
}

impl Masters {
    /// `Unseen` when `regressions` holds `control-master-leftover`.
    pub(crate) fn of(regressions: &crate::regression::Regressions) -> Self {
        if regressions.is_on(crate::regression::Regression::ControlMasterLeftover) {
            Masters::Unseen
        } else {
            Masters::Seen
        }
    }
}

/// One live process of the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leftover {
    pub(crate) pid: u32,
    /// Its command line, for log lines and status messages.
    pub(crate) command: String,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// Every live process of `instance`, except this process and its
/// ancestors: those whose command line names a path inside the instance
/// directory (see [`InstanceDir`]), an `ssh` ControlMaster whose title
/// (`ssh: DIR/ssh.sock [mux]`) does unless `masters` is
/// [`Masters::Unseen`], and a hostagent started as `limactl
/// hostagent|start ... NAME` whose `LIMA_HOME` is `lima_home`.
pub(crate) fn find(
    lima_home: &LimaHome,
    instance: &InstancePaths,
    masters: Masters,
) -> Vec<Leftover> {
    let table = ProcessTable::snapshot();
    // This process and every ancestor: never ours to kill.
    let spared = table.lineage_of(std::process::id());
    let dir = InstanceDir::new(&instance.dir);
    let home = InstanceDir::new(lima_home.path());
    let mut found: Vec<Leftover> = table
        .iter()
        .filter(|p| !spared.contains(&p.pid))
        .filter(|p| {
            dir.named_by(&p.cmd)
                || (masters == Masters::Seen && dir.is_master_title(&p.cmd))
                || is_hostagent_of(p, &instance.name, &home)
        })
        .map(|p| Leftover {
            pid: p.pid,
            command: p.cmd.join(" "),
        })
        .collect();
    found.sort_by_key(|l| l.pid);
    found
}

/// `limactl hostagent ... NAME` or `limactl start ... NAME`, run with
/// `LIMA_HOME` naming `home` (any spelling of it).
fn is_hostagent_of(process: &ProcessInfo, name: &str, home: &InstanceDir) -> bool {
    let args = &process.cmd;
    let entry = args
        .iter()
        .skip(1)
        .any(|a| a == "hostagent" || a == "start");
    entry
        && args.iter().skip(2).any(|a| a == name)
        && process
            .env_var("LIMA_HOME")
            .is_some_and(|value| home.is(Path::new(value)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_support::Spawned;

    #[test]
    fn finds_reparented_processes_by_the_paths_they_name_and_spares_the_neighbour() {
        let root = tempfile::tempdir().unwrap();
        let home = LimaHome::new(root.path().join("li[1]ma"));
        let vm = home.instance("vm");
        let vm2 = home.instance("vm2");
        std::fs::create_dir_all(&vm.dir).unwrap();
        std::fs::create_dir_all(&vm2.dir).unwrap();
        let control = format!("ControlPath={}", vm.dir.join("ssh.sock").display());
        let ours = Spawned::sh(
            "sleep 600 & wait",
            &["ssh", "-o", &control, "lima@127.0.0.1"],
        );
        let neighbour_pid = vm2.dir.join("qemu.pid").to_string_lossy().into_owned();
        let neighbour = Spawned::sh("sleep 600 & wait", &["qemu", "-pidfile", &neighbour_pid]);
        let found: Vec<u32> = find(&home, &vm, Masters::Seen)
            .iter()
            .map(|l| l.pid)
            .collect();
        assert!(found.contains(&ours.pid()), "{found:?}");
        assert!(!found.contains(&neighbour.pid()), "{found:?}");
        let found2: Vec<u32> = find(&home, &vm2, Masters::Seen)
            .iter()
            .map(|l| l.pid)
            .collect();
        assert!(found2.contains(&neighbour.pid()), "{found2:?}");
        assert!(!found2.contains(&ours.pid()), "{found2:?}");
    }
}

/// Platform-neutral: no process is started.
#[cfg(test)]
mod hostagent_identity {
    use super::*;

    #[test]
    fn a_leftover_is_shown_by_its_pid_and_command() {
        let leftover = Leftover {
            pid: 7,
            command: "ssh -N lima@127.0.0.1".into(),
        };
        assert_eq!(leftover.to_string(), "pid 7 (ssh -N lima@127.0.0.1)");
    }

    fn process(cmd: &[&str], lima_home: &Path) -> ProcessInfo {
        ProcessInfo {
            pid: 42,
            parent: Some(1),
            name: "limactl".into(),
            cmd: cmd.iter().map(|a| (*a).to_owned()).collect(),
            start_time: 0,
            zombie: false,
            environ: vec![format!("LIMA_HOME={}", lima_home.display())],
        }
    }

    #[test]
    fn a_hostagent_is_known_by_its_entry_its_name_and_its_lima_home() {
        let root = tempfile::tempdir().unwrap();
        let home_path = root.path().join("home");
        std::fs::create_dir_all(home_path.join("sub")).unwrap();
        let home = InstanceDir::new(&home_path);
        let other = root.path().join("other");
        let start = ["limactl", "start", "--foreground", "vm"];
        let hostagent = ["limactl", "hostagent", "--pidfile", "p", "vm"];
        assert!(is_hostagent_of(&process(&start, &home_path), "vm", &home));
        assert!(is_hostagent_of(
            &process(&hostagent, &home_path),
            "vm",
            &home
        ));
        // Another spelling of the same LIMA_HOME is the same instance.
        let spelled = home_path.join("sub").join("..");
        assert!(is_hostagent_of(&process(&start, &spelled), "vm", &home));
        // Another instance, another LIMA_HOME, another command: not ours.
        assert!(!is_hostagent_of(&process(&start, &home_path), "vm2", &home));
        assert!(!is_hostagent_of(&process(&start, &other), "vm", &home));
        let list = ["limactl", "list", "vm"];
        assert!(!is_hostagent_of(&process(&list, &home_path), "vm", &home));
        let mut no_home = process(&start, &home_path);
        no_home.environ.clear();
        assert!(!is_hostagent_of(&no_home, "vm", &home));
    }
}
