//! The file-system side of an external target: its own Lima home made a
//! link to the sandbox's, its `args_file` read, the kubeconfig written.

use crate::error::HarnessError;
use std::path::Path;

/// Makes `path` (where a target keeps its Lima instances whatever
/// `LIMA_HOME` says) a link to `sandbox_home`, so that the harness's checks
/// look where the target writes. A link already there is kept; a directory
/// or file there is an error (the target created it before the harness).
pub(super) fn link_lima_home(path: &Path, sandbox_home: &Path) -> Result<(), HarnessError> {
    if path == sandbox_home {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Ok(()),
        Ok(_) => {
            return Err(HarnessError::Driver(format!(
                "lima.home {} exists and is not the harness's link to {}",
                path.display(),
                sandbox_home.display()
            )));
        }
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(HarnessError::io(format!("creating {}", parent.display())))?;
    }
    let what = format!("linking {} to {}", path.display(), sandbox_home.display());
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(sandbox_home, path).map_err(HarnessError::io(what))
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::symlink_dir(sandbox_home, path).map_err(HarnessError::io(what))
    }
}

/// The arguments in `path`, a JSON array of strings.
pub(super) fn read_args_file(path: &Path) -> Result<Vec<String>, HarnessError> {
    let text = std::fs::read_to_string(path)
        .map_err(HarnessError::io(format!("reading {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        HarnessError::Driver(format!(
            "{} is not a JSON array of strings: {e}",
            path.display()
        ))
    })
}

/// Writes `text` to `path` (replacing it), for a ready check.
pub(super) fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_target_home_becomes_a_link_once_and_a_directory_there_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox_home = dir.path().join("home/.lima");
        std::fs::create_dir_all(&sandbox_home).unwrap();
        let target = dir.path().join("home/.rd2/lima");
        link_lima_home(&target, &sandbox_home).unwrap();
        link_lima_home(&target, &sandbox_home).unwrap();
        std::fs::write(target.join("x"), "").unwrap();
        assert!(sandbox_home.join("x").exists());
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let err = link_lima_home(&other, &sandbox_home).unwrap_err();
        assert!(
            err.to_string().contains("is not the harness's link"),
            "{err}"
        );
    }
}
