//! Installing one executable under many names (`limactl`, `ssh`,
//! `wsl.exe`...), as the fakes' multicall binary is installed in a test's
//! `bin/`.
//!
//! Unix: a symlink, so `argv[0]` keeps the link's name.
//!
//! Windows: the executable is copied once per directory into a staged file,
//! and every name is a hard link to that copy. Never a link to the source
//! itself: the source may be running (a test binary or `reproduce`
//! installing itself), and on Windows no name of a running image can be
//! deleted, so a directory holding a link to it could not be removed until
//! that process ends. The staged copy runs only as the sandbox's own
//! processes, which die before their directory goes. The copy reads the
//! source with every share mode granted: `CopyFileW` asks for one that a
//! running image refuses under Wine. A link is never overwritten and the
//! staged copy is only ever created, never rewritten.

use std::io;
use std::path::Path;

/// Installs `source` as `link` (which must not exist yet).
///
/// Errors: the file system's, e.g. `link` already exists or its directory
/// is missing; the message of a failed copy names both paths.
pub fn install_executable(source: &Path, link: &Path) -> io::Result<()> {
    platform::install(source, link)
}

#[cfg(unix)]
mod platform {
    use std::io;
    use std::path::Path;

    pub(super) fn install(source: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(source, link)
    }
}

#[cfg(windows)]
mod platform {
    use std::hash::{DefaultHasher, Hash, Hasher};
    use std::io;
    use std::path::{Path, PathBuf};

    pub(super) fn install(source: &Path, link: &Path) -> io::Result<()> {
        if link.exists() {
            let message = format!("{} already exists", link.display());
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, message));
        }
        let staged = staged_copy(source, link)?;
        std::fs::hard_link(&staged, link).or_else(|_| copy_shared(&staged, link))
    }

    /// The staged copy of `source` in `link`'s directory, made on first use.
    fn staged_copy(source: &Path, link: &Path) -> io::Result<PathBuf> {
        let mut hasher = DefaultHasher::new();
        source.hash(&mut hasher);
        let dir = link.parent().unwrap_or(Path::new("."));
        let staged = dir.join(format!(".staged-{:016x}.exe", hasher.finish()));
        if !staged.exists() {
            copy_shared(source, &staged)?;
        }
        Ok(staged)
    }

    /// Copies `from` to `to` (created new), reading `from` with every share
    /// mode granted; `to` appears whole or not at all.
    fn copy_shared(from: &Path, to: &Path) -> io::Result<()> {
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("copying {} to {}: {e}", from.display(), to.display()),
            )
        };
        // std opens files with FILE_SHARE_READ | FILE_SHARE_WRITE |
        // FILE_SHARE_DELETE.
        let mut reader = std::fs::File::open(from).map_err(context)?;
        let mut partial_name = to.file_name().unwrap_or_default().to_owned();
        partial_name.push(format!(".{}.partial", std::process::id()));
        let partial = to.with_file_name(partial_name);
        let result = std::fs::File::create_new(&partial)
            .and_then(|mut writer| io::copy(&mut reader, &mut writer))
            .and_then(|_| std::fs::rename(&partial, to));
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result.map_err(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_executable_is_installed_under_two_names_in_two_directories() {
        // The test binary itself is running while it is installed.
        let source = std::env::current_exe().unwrap();
        let root = tempfile::Builder::new()
            .prefix("install [1] ")
            .tempdir()
            .unwrap();
        let expected = std::fs::metadata(&source).unwrap().len();
        for dir in ["bin", "sut"] {
            let dir = root.path().join(dir);
            std::fs::create_dir(&dir).unwrap();
            for name in ["limactl", "ssh"] {
                let link = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
                install_executable(&source, &link).unwrap();
                assert_eq!(std::fs::metadata(&link).unwrap().len(), expected);
            }
        }
        let existing = root
            .path()
            .join("bin")
            .join(format!("ssh{}", std::env::consts::EXE_SUFFIX));
        assert!(install_executable(&source, &existing).is_err());
    }
}
