//! Where the user's files are: `HOME` (as Go's `os.UserHomeDir` finds it)
//! and `LIMA_HOME` (as Lima v2.2.0's `pkg/limatype/dirnames.LimaDir`
//! derives it).

use crate::error::FakeError;
use std::path::PathBuf;

/// The user's home directory: `HOME`, or on Windows `USERPROFILE`.
/// Fails (exit 1) when neither is set or it is empty.
pub(crate) fn home_dir() -> Result<PathBuf, FakeError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| {
            if cfg!(windows) {
                std::env::var_os("USERPROFILE")
            } else {
                None
            }
        })
        .map(PathBuf::from)
        .ok_or_else(|| FakeError::failed("HOME is not set, so there is no default to derive"))
}

/// `LIMA_HOME`, by default `$HOME/.lima` (Lima's `dirnames.LimaDir`).
/// Fails as [`home_dir`] does when the default is needed.
pub(crate) fn lima_home() -> Result<lima_layout::LimaHome, FakeError> {
    match std::env::var_os("LIMA_HOME").filter(|h| !h.is_empty()) {
        Some(path) => Ok(lima_layout::LimaHome::new(path)),
        None => Ok(lima_layout::LimaHome::new(home_dir()?.join(".lima"))),
    }
}
