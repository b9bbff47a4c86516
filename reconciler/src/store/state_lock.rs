//! One service per state directory: `serve` holds an exclusive lock on
//! `<state>/service.lock` for as long as it runs, with its pid written in
//! the file, so that a second `serve` on the same directory refuses to
//! start (naming the holder) instead of taking over the first's VMs.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the state directory.
pub(crate) const LOCK_FILE: &str = "service.lock";

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateLockError {
    #[error("--state {}: the path is a file, not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot create the state directory {}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another reconciler service{} already serves the state directory {} (it holds {})",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(), dir.display(), file.display())]
    Held {
        dir: PathBuf,
        file: PathBuf,
        holder: Option<u32>,
    },
    #[error("cannot lock {}", file.display())]
    Lock {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateLock {
    /// Creates the state directory when needed and takes its lock, or says
    /// who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StateLockError> {
        if dir.exists() && !dir.is_dir() {
            return Err(StateLockError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| StateLockError::Create {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(LOCK_FILE);
        let lock_error = |source| StateLockError::Lock {
            file: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StateLockError::Held {
                    dir: dir.to_owned(),
                    file: path.clone(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(lock_error(source)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(lock_error)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state).unwrap();
        let err = StateLock::acquire(&state).unwrap_err().to_string();
        assert!(
            err.contains(&format!("(pid {})", std::process::id()))
                && err.contains("already serves"),
            "{err}"
        );
        drop(first);
        StateLock::acquire(&state).unwrap();
    }

    #[test]
    fn a_state_path_naming_a_file_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let err = StateLock::acquire(&file).unwrap_err().to_string();
        assert!(err.contains("is a file, not a directory"), "{err}");
    }
}
