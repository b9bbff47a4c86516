use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `_disks/<disk>/in_use_by`: a symlink to the instance directory, as Lima
/// makes it.
pub(crate) fn mark_disk_in_use(marker: &Path, instance_dir: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(instance_dir, marker)
}

/// The instance a disk marker names.
pub(crate) fn disk_user(marker: &Path) -> Option<PathBuf> {
    std::fs::read_link(marker).ok()
}

/// Creates (or truncates) a file only its owner may read: a private key.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// The permission bits of a private key that others may access, as
/// ssh-keygen refuses such keys.
pub(crate) fn too_open_key_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

pub(crate) fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (we also stop at its end).
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "localhost".to_owned();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

pub(crate) fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "user".to_owned())
}

/// Makes `stdout` and `stderr` this process's fds 1 and 2, as
/// `limactl start --foreground` does with the hostagent's log files.
pub(crate) fn redirect_stdio(stdout: &File, stderr: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    for (file, target) in [(stdout, 1), (stderr, 2)] {
        // SAFETY: both descriptors are valid for the call; dup2 has no
        // memory-safety preconditions.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Replaces this process with `cmd` (same pid); returns only on failure.
pub(crate) fn exec(mut cmd: std::process::Command, arg0: &std::ffi::OsStr) -> io::Error {
    use std::os::unix::process::CommandExt;
    cmd.arg0(arg0).exec()
}
