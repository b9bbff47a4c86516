//! Is the process a pid file names really this instance's? A pid file can
//! outlive its process, and the pid can be reused by anything.

use proctree::{ProcessInfo, ProcessTable};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

const CMDLINE_RETRIES: u32 = 20;
const CMDLINE_RETRY_PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The process belongs to this instance.
    Ours,
    /// No such live process: the pid file is stale.
    Gone,
    /// Some other live process holds the pid; `description` says what.
    Foreign { description: String },
}

/// A hostagent of this instance runs `limactl hostagent ... <name>`.
pub(crate) fn hostagent_identity(pid: u32, instance_name: &str) -> Identity {
    identify(pid, |process| {
        let args = &process.cmd;
        args.iter().any(|a| a == "hostagent") && args.iter().skip(1).any(|a| a == instance_name)
    })
}

/// A driver of this instance names a path inside the instance directory
/// in an argument (its pid file, its disk, its sockets). With `raw_text`
/// (the `path-prefix-identity` regression) any argument whose text merely
/// contains the directory's text counts, so `LIMA_HOME/vm` matches
/// `LIMA_HOME/vm2/qemu.pid`.
pub(crate) fn driver_identity(pid: u32, instance_dir: &Path, raw_text: bool) -> Identity {
    if raw_text {
        let dir = instance_dir.to_string_lossy();
        return identify(pid, |process| process.cmd_contains(&dir));
    }
    let dir = InstanceDir::new(instance_dir);
    identify(pid, |process| dir.named_by(&process.cmd))
}

/// An instance directory as identity: a process is the instance's when one
/// of its arguments is a path inside it, compared component by component
/// after resolving symlinks, `.` and `..` in whatever part of the path
/// exists. So `LIMA_HOME/vm` never matches `LIMA_HOME/vm2/...`, and
/// `LIMA_HOME/./vm/qemu.pid` or a path through a symlinked parent does.
#[derive(Debug, Clone)]
pub(crate) struct InstanceDir {
    resolved: PathBuf,
    /// The last component: an argument without it cannot name the dir
    /// (a cheap filter before resolving anything).
    leaf: String,
}

impl InstanceDir {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            resolved: resolve(dir),
            leaf: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// True when any of `args` names a path inside the directory (or the
    /// directory itself): the whole argument, or a value in it after `=`
    /// (`ControlPath=DIR/ssh.sock`), or one item of a comma list
    /// (`file=DIR/disk,if=virtio`).
    pub(crate) fn named_by(&self, args: &[String]) -> bool {
        args.iter()
            .filter(|arg| arg.contains(&self.leaf) || arg.replace(",,", ",").contains(&self.leaf))
            .flat_map(|arg| path_candidates(arg))
            .any(|candidate| self.contains(Path::new(&candidate)))
    }

    /// True when `args` is the title an OpenSSH ControlMaster gives itself
    /// (`ssh: CONTROL_PATH [mux]`, OpenSSH's `setproctitle("%s [mux]")`;
    /// seen on real Lima v2.2.0's master) and its control path lies inside
    /// the directory. The title replaces the whole command line, so the
    /// `ControlPath=` argument [`InstanceDir::named_by`] looks for is gone.
    pub(crate) fn is_master_title(&self, args: &[String]) -> bool {
        let title = args.join(" ");
        title
            .trim_end()
            .strip_prefix("ssh: ")
            .and_then(|rest| rest.strip_suffix(" [mux]"))
            .is_some_and(|path| self.contains(Path::new(path)))
    }

    /// True when `path` (absolute) is the directory itself.
    pub(crate) fn is(&self, path: &Path) -> bool {
        path.is_absolute() && resolve(path) == self.resolved
    }

    /// True when `path` (absolute) lies inside the directory.
    pub(crate) fn contains(&self, path: &Path) -> bool {
        path.is_absolute() && resolve(path).starts_with(&self.resolved)
    }
}

/// The strings in one argument that may be paths: the argument, its value
/// after the first `=`, and each comma-separated item's value, also with
/// QEMU's doubled commas (`,,`) read as one.
fn path_candidates(arg: &str) -> Vec<String> {
    let mut found = vec![arg.to_owned()];
    if let Some((_, value)) = arg.split_once('=') {
        found.push(value.to_owned());
    }
    found.extend(
        arg.split(',')
            .filter_map(|item| item.split_once('=').map(|(_, value)| value.to_owned())),
    );
    if arg.contains(",,") {
        let unescaped: Vec<String> = found.iter().map(|c| c.replace(",,", ",")).collect();
        found.extend(unescaped);
    }
    found
}

/// `path` with its longest existing ancestor canonicalised and the rest
/// appended (lexically, `.` dropped); unresolvable: as it is.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut resolved = canonical;
            for component in rest.iter().rev() {
                match component {
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::CurDir => {}
                    other => resolved.push(other.as_os_str()),
                }
            }
            return resolved;
        }
        let mut components = existing.components();
        match components.next_back() {
            Some(last) => rest.push(last),
            None => return path.to_owned(),
        }
        existing = components.as_path();
        if existing.as_os_str().is_empty() {
            return path.to_owned();
        }
    }
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

/// Platform-neutral: no process is started.
#[cfg(test)]
mod description {
    use super::*;

    #[test]
    fn a_process_is_described_by_its_command_line_or_else_its_name() {
        let mut process = ProcessInfo {
            pid: 42,
            parent: Some(1),
            name: "qemu".into(),
            cmd: vec!["qemu".into(), "-pidfile".into(), "/a b/qemu.pid".into()],
            start_time: 0,
            zombie: false,
            environ: Vec::new(),
        };
        assert_eq!(describe(&process), "\"qemu -pidfile /a b/qemu.pid\"");
        process.cmd.clear();
        assert_eq!(describe(&process), "\"qemu\" (command line unreadable)");
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_support::Spawned;

    #[test]
    fn an_ssh_control_master_is_the_instance_s_by_its_title() {
        let root = tempfile::tempdir().unwrap();
        let vm = InstanceDir::new(&root.path().join("with space").join("vm"));
        let title = |dir: &str| {
            vec![format!(
                "ssh: {} [mux]",
                root.path()
                    .join("with space")
                    .join(dir)
                    .join("ssh.sock")
                    .display()
            )]
        };
        assert!(vm.is_master_title(&title("vm")));
        assert!(!vm.is_master_title(&title("vm2")));
        assert!(!vm.named_by(&title("vm")), "a title is no path argument");
        let plain = format!("{}", root.path().join("with space/vm/ssh.sock").display());
        assert!(!vm.is_master_title(&["ssh".into(), plain]));
    }

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
        assert_eq!(driver_identity(driver.pid(), dir, false), Identity::Ours);
        assert!(matches!(
            driver_identity(driver.pid(), Path::new("/tmp/home[1]/.lima/vm2"), false),
            Identity::Foreign { .. }
        ));
    }

    #[test]
    fn a_directory_that_is_a_prefix_of_another_is_not_it() {
        let root = tempfile::tempdir().unwrap();
        let vm = root.path().join("vm");
        let vm2 = root.path().join("vm2");
        std::fs::create_dir_all(&vm).unwrap();
        std::fs::create_dir_all(&vm2).unwrap();
        let pid_file = vm2.join("qemu.pid").to_string_lossy().into_owned();
        let driver = Spawned::sh("sleep 600 & wait", &["qemu", "-pidfile", &pid_file]);
        assert!(matches!(
            driver_identity(driver.pid(), &vm, false),
            Identity::Foreign { .. }
        ));
        assert_eq!(driver_identity(driver.pid(), &vm, true), Identity::Ours);
        assert_eq!(driver_identity(driver.pid(), &vm2, false), Identity::Ours);
    }

    #[test]
    fn other_spellings_of_the_directory_are_it() {
        let root = tempfile::tempdir().unwrap();
        let vm = root.path().join("home[1] x").join("vm");
        std::fs::create_dir_all(&vm).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path().join("home[1] x"), &link).unwrap();
        let dir = InstanceDir::new(&vm);
        let spell = |p: PathBuf| vec![p.to_string_lossy().into_owned()];
        assert!(dir.named_by(&spell(vm.join("qemu.pid"))));
        assert!(dir.named_by(&spell(root.path().join("home[1] x/./vm/ssh.sock"))));
        assert!(dir.named_by(&spell(link.join("vm").join("not-yet"))));
        assert!(dir.named_by(&[format!("ControlPath={}/ssh.sock", vm.display())]));
        assert!(dir.named_by(&[format!("file={}/diffdisk,if=virtio", vm.display())]));
        assert!(!dir.named_by(&spell(root.path().join("home[1] x/vm2/qemu.pid"))));
        assert!(!dir.named_by(&spell(root.path().join("home[1] x/vm/../vm2/x"))));
        assert!(!dir.named_by(&["vm/qemu.pid".to_owned()]));
        let comma = root.path().join(",vm");
        std::fs::create_dir_all(&comma).unwrap();
        let comma_dir = InstanceDir::new(&comma);
        assert!(comma_dir.named_by(&[format!("ControlPath={}/ssh.sock", comma.display())]));
        let doubled = comma.display().to_string().replace(',', ",,");
        assert!(comma_dir.named_by(&[format!("file={doubled}/disk,format=raw")]));
        // QEMU doubles the comma inside a name, so the name itself is not in
        // the argument: only the argument unescaped holds it.
        let inner = root.path().join("v,m");
        std::fs::create_dir_all(&inner).unwrap();
        let escaped = inner.display().to_string().replace(',', ",,");
        assert!(InstanceDir::new(&inner).named_by(&[format!("file={escaped}/disk,if=virtio")]));
    }

    #[test]
    fn a_dead_pid_is_gone() {
        let mut gone = Spawned::sh("exit 0", &[]);
        let pid = gone.pid();
        gone.wait();
        assert_eq!(hostagent_identity(pid, "vm1"), Identity::Gone);
    }
}
