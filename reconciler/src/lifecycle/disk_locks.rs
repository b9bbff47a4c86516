//! Additional disks marked in use by another instance.
//!
//! Lima marks a disk an instance holds with `_disks/<disk>/in_use_by`, a
//! link to the holder's instance directory, and refuses to start another
//! instance with it ("in use by instance `X`"), whether or not X still runs
//! (Lima v2.2.0, `store.Disk.LockForInstance`). A host crash leaves the mark
//! of an instance that no longer runs: it is removed before the start, as
//! `limactl disk unlock` does for an instance that is not running. The mark
//! of a running instance stays, and the start fails saying who holds it.

use crate::lifecycle::identity::{Identity, hostagent_identity};
use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, LimaHome};
use std::path::{Path, PathBuf};

/// A disk held by a running instance: the start cannot have it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "additional disk {disk:?} is in use by the running instance {} (hostagent pid {pid})",
    holder.display()
)]
pub(crate) struct DiskInUse {
    pub(crate) disk: String,
    /// The holder's instance directory, as the mark names it.
    pub(crate) holder: PathBuf,
    pub(crate) pid: u32,
}

/// A mark removed because its instance no longer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleasedMark {
    pub(crate) disk: String,
    pub(crate) holder: PathBuf,
}

/// Removes the in-use marks of `disks` that name an instance other than
/// `instance` whose hostagent is not running; returns them. A mark of a
/// running instance is an error; one naming `instance` is left (Lima takes
/// it over); one that cannot be read (not a link) is left for Lima to
/// judge.
pub(crate) fn release_stale_marks(
    lima_home: &LimaHome,
    instance: &InstancePaths,
    disks: &[String],
) -> Result<Vec<ReleasedMark>, DiskInUse> {
    let mut released = Vec::new();
    for disk in disks {
        let mark = lima_home.disk_in_use_by(disk);
        let Some(target) = marked_holder(&mark) else {
            continue;
        };
        let holder = match mark.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
        if same_dir(&holder, &instance.dir) {
            continue;
        }
        if let Some(pid) = running_hostagent(&holder) {
            return Err(DiskInUse {
                disk: disk.clone(),
                holder,
                pid,
            });
        }
        match crate::lifecycle::forced_stop::remove_link(&mark) {
            Ok(()) => released.push(ReleasedMark {
                disk: disk.clone(),
                holder,
            }),
            // The start then fails with Lima's own words about the mark.
            Err(e) => tracing::warn!(
                mark = %crate::logging::ShownPath(&mark),
                error = contract::error_chain::chain(&e).as_str(),
                "cannot remove the in-use mark of an instance that no longer runs"
            ),
        }
    }
    Ok(released)
}

/// What a mark names: a link's target; on Windows, where Lima-compatible
/// tools may write the path into a file instead, that file's text.
fn marked_holder(mark: &Path) -> Option<PathBuf> {
    std::fs::read_link(mark).ok().or_else(|| {
        cfg!(windows)
            .then(|| std::fs::read_to_string(mark).ok().map(PathBuf::from))
            .flatten()
    })
}

/// Both paths name one directory (resolved when they exist; as written
/// otherwise).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The pid of the hostagent running for the instance directory `dir`, if
/// one runs (its `ha.pid` names a live `limactl` of that instance).
fn running_hostagent(dir: &Path) -> Option<u32> {
    let name = dir.file_name()?.to_str()?;
    let pid = read_pid_file(&dir.join("ha.pid"))?;
    (hostagent_identity(pid, name) == Identity::Ours).then_some(pid)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_support::Spawned;

    fn setup() -> (tempfile::TempDir, LimaHome, InstancePaths) {
        let root = tempfile::tempdir().unwrap();
        let home = LimaHome::new(root.path());
        std::fs::create_dir_all(home.disk_dir("data")).unwrap();
        let vm = home.instance("vm");
        std::fs::create_dir_all(&vm.dir).unwrap();
        (root, home, vm)
    }

    fn mark(home: &LimaHome, holder: &Path) {
        std::os::unix::fs::symlink(holder, home.disk_in_use_by("data")).unwrap();
    }

    #[test]
    fn the_mark_of_an_instance_that_is_gone_is_removed() {
        let (_root, home, vm) = setup();
        let gone = home.instance("gone");
        std::fs::create_dir_all(&gone.dir).unwrap();
        // A host crash: ha.pid names a process that is no more.
        std::fs::write(gone.ha_pid(), "999999999\n").unwrap();
        mark(&home, &gone.dir);
        let released = release_stale_marks(&home, &vm, &["data".to_owned()]).unwrap();
        assert_eq!(
            released,
            [ReleasedMark {
                disk: "data".into(),
                holder: gone.dir.clone()
            }]
        );
        assert!(home.disk_in_use_by("data").symlink_metadata().is_err());
    }

    #[test]
    fn the_own_mark_and_no_mark_are_left_alone() {
        let (_root, home, vm) = setup();
        assert_eq!(
            release_stale_marks(&home, &vm, &["data".to_owned()]),
            Ok(vec![])
        );
        mark(&home, &vm.dir);
        assert_eq!(
            release_stale_marks(&home, &vm, &["data".to_owned()]),
            Ok(vec![])
        );
        assert!(home.disk_in_use_by("data").symlink_metadata().is_ok());
    }

    #[test]
    fn the_mark_of_a_running_instance_stays_and_says_who_holds_it() {
        let (_root, home, vm) = setup();
        let other = home.instance("other");
        std::fs::create_dir_all(&other.dir).unwrap();
        // What a hostagent of `other` looks like in the process table.
        let hostagent = Spawned::sh("sleep 60 & wait", &["limactl", "hostagent", "other"]);
        let script_pid = hostagent.pid();
        std::fs::write(other.ha_pid(), format!("{script_pid}\n")).unwrap();
        mark(&home, &other.dir);
        let err = release_stale_marks(&home, &vm, &["data".to_owned()]).unwrap_err();
        assert_eq!(err.pid, script_pid);
        let text = err.to_string();
        assert!(
            text.contains("in use by the running instance") && text.contains("other"),
            "{text}"
        );
        assert!(home.disk_in_use_by("data").symlink_metadata().is_ok());
    }
}
