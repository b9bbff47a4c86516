use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// `_disks/<disk>/in_use_by`: creating symlinks needs a privilege on
/// Windows, so the marker is a file holding the instance directory.
pub(crate) fn mark_disk_in_use(marker: &Path, instance_dir: &Path) -> io::Result<()> {
    std::fs::write(marker, instance_dir.to_string_lossy().as_bytes())
}

pub(crate) fn disk_user(marker: &Path) -> Option<PathBuf> {
    std::fs::read_to_string(marker).ok().map(PathBuf::from)
}

/// Windows keys are protected by ACLs that the fake leaves as they are.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

pub(crate) fn too_open_key_mode(_path: &Path) -> Option<u32> {
    None
}

pub(crate) fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".to_owned())
}

pub(crate) fn user_name() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "user".to_owned())
}

/// Lima runs no foreground hostagent on Windows, so nothing redirects.
pub(crate) fn redirect_stdio(_stdout: &File, _stderr: &File) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no stdio redirection on Windows",
    ))
}

/// Windows has no exec: a process cannot become another program.
pub(crate) fn exec(_cmd: std::process::Command, _arg0: &std::ffi::OsStr) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "no exec on Windows")
}
