//! The image of the blank-disk template: a small qcow2 with nothing on it.

use crate::error::HarnessError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Small: Lima copies the image into the instance, then grows the disk.
const SIZE: &str = "64M";

/// `<dir>/blank.qcow2`, made with `qemu-img create` unless it exists.
pub fn blank_disk(dir: &Path) -> Result<PathBuf, HarnessError> {
    let path = dir.join("blank.qcow2");
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir)
        .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
    let mut create = Command::new("qemu-img");
    create
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg(SIZE);
    crate::commands::run_cli(
        create,
        None,
        &format!("qemu-img create {}", path.display()),
        crate::commands::TOOL_TIMEOUT,
    )?;
    Ok(path)
}
