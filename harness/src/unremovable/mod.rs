//! One entry of a directory that nobody can remove, root included, until
//! the harness undoes it: the fault behind a delete that fails for a reason
//! other than WSL2.
//!
//! [`make`] creates the file `DIR/held` and blocks its removal the way
//! this platform allows for whoever the harness runs as (see the `unix`
//! and `windows` modules); `DIR/held` is then the entry a delete of `DIR`
//! trips over. [`undo`] lets it go. A [`crate::sandbox::Sandbox`] records what it
//! made in [`RECORD_FILE`] and undoes it when dropped, and a later run's
//! leftover cleaning undoes what a killed run left.

#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
use windows as platform;

use std::io;
use std::path::{Path, PathBuf};

/// The name of the blocked file inside the directory given to [`make`].
pub const HELD: &str = "held";

/// The file in a sandbox root that lists, one a line, the entries made
/// unremovable there.
pub const RECORD_FILE: &str = ".limavm-unremovable";

/// Creates `dir` (if needed) and `dir/held`, and makes `dir/held`
/// unremovable; returns its path. Errors: `dir` cannot be made, or this
/// platform and user cannot block removal (an `Unsupported` error saying
/// why, e.g. a filesystem without the immutable attribute).
pub fn make(dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let held = dir.join(HELD);
    std::fs::write(&held, "the harness keeps this file from being removed\n")?;
    block(&held)?;
    Ok(held)
}

/// Blocks the removal of `path`, an existing file or (on Unix) an empty
/// directory, as [`make`] does for its file; [`undo`] lets it go. Errors
/// as [`make`]'s. Where the platform blocks through the parent directory
/// (Linux, not root: its mode), the parent's other entries are held too.
pub fn block(path: &Path) -> io::Result<()> {
    platform::block(path)
}

/// Lets `held` (made by [`make`] or [`block`]) be removed again; a path
/// that is gone is fine.
pub fn undo(held: &Path) -> io::Result<()> {
    if held.symlink_metadata().is_err() {
        return Ok(());
    }
    platform::unblock(held)
}

/// Undoes every entry listed in `root`'s [`RECORD_FILE`]; returns those
/// that could not be undone, with why.
pub fn undo_recorded(root: &Path) -> Vec<(PathBuf, io::Error)> {
    let Ok(text) = std::fs::read_to_string(root.join(RECORD_FILE)) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .filter_map(|held| undo(&held).err().map(|e| (held, e)))
        .collect()
}

/// Appends `held` to `root`'s [`RECORD_FILE`].
pub fn record(root: &Path, held: &Path) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(RECORD_FILE))?;
    writeln!(file, "{}", held.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_entry_resists_removal_until_undone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("inst").join("blocked");
        let held = match make(&dir) {
            Ok(held) => held,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("make: {e}"),
        };
        assert_eq!(held, dir.join(HELD));
        record(root.path(), &held).unwrap();
        let err = std::fs::remove_file(&held).unwrap_err();
        assert!(
            matches!(err.kind(), io::ErrorKind::PermissionDenied) || err.raw_os_error().is_some(),
            "{err}"
        );
        assert!(std::fs::remove_dir_all(root.path().join("inst")).is_err());
        assert!(undo_recorded(root.path()).is_empty());
        std::fs::remove_dir_all(root.path().join("inst")).unwrap();
        assert!(undo(&held).is_ok(), "undoing what is gone is fine");
    }
}
