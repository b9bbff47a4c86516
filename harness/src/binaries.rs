//! Where the fake tools' and the reference reconciler's executables are.

use crate::error::HarnessError;
use std::path::{Path, PathBuf};

/// Overrides for the executables (a multicall binary may name itself).
pub(crate) const FAKE_BIN_ENV: &str = "LIMAVM_FAKE_BIN";
pub(crate) const RECONCILER_BIN_ENV: &str = "LIMAVM_RECONCILER_BIN";

/// The workspace executables a sandbox installs: the multicall fake and the
/// reference reconciler (found next to the test binary, or by `LIMAVM_FAKE_BIN`
/// / `LIMAVM_RECONCILER_BIN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The multicall fake (`limavm-fake`), installed under each tool's name.
    pub fake: PathBuf,
    /// The reference reconciler (`limavm-reconciler`).
    pub reconciler: PathBuf,
}

impl Binaries {
    /// Finds both executables: the environment overrides first, then the
    /// cargo target directory the running executable lives in (tests run
    /// from `target/<profile>/deps`, binaries sit in `target/<profile>`).
    pub fn locate() -> Result<Self, HarnessError> {
        Ok(Self {
            fake: locate_one("limavm-fake", FAKE_BIN_ENV)?,
            reconciler: locate_one("limavm-reconciler", RECONCILER_BIN_ENV)?,
        })
    }

    /// Both roles played by one multicall executable.
    pub fn multicall(exe: &Path) -> Self {
        Self {
            fake: exe.to_owned(),
            reconciler: exe.to_owned(),
        }
    }
}

fn locate_one(name: &str, env: &str) -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let exe =
        std::env::current_exe().map_err(HarnessError::io("locating the running executable"))?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&file))
        .collect();
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| HarnessError::BinaryMissing {
            name: file.clone(),
            looked_in: candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
