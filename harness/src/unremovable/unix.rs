//! Unix: permission bits do not stop root (`CAP_DAC_OVERRIDE`), so root
//! gets a file attribute instead.
//!
//! - Linux as root: the immutable attribute (`FS_IOC_SETFLAGS` with
//!   `FS_IMMUTABLE_FL`, `linux/fs.h`; needs `CAP_LINUX_IMMUTABLE` and a
//!   filesystem that keeps it: ext4, xfs, btrfs, tmpfs since Linux 6.0).
//!   Unlinking the file then fails with `EPERM` for everyone.
//! - Linux, not root: the file's directory loses its write permission
//!   (mode 0555): unlinking in it fails with `EACCES`.
//! - macOS: the user-immutable flag (`chflags(2)` `UF_IMMUTABLE`, which the
//!   owner may set): unlinking fails with `EPERM`, for root too.

use std::io;
use std::path::Path;

#[cfg(target_os = "linux")]
pub(crate) fn block(held: &Path) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return linux::set_immutable(held, true).map_err(|e| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot set the immutable attribute on {} (root ignores permission bits): {e}",
                    held.display()
                ),
            )
        });
    }
    set_dir_writable(held, false)
}

#[cfg(target_os = "linux")]
pub(crate) fn unblock(held: &Path) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return linux::set_immutable(held, false);
    }
    set_dir_writable(held, true)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// `FS_IMMUTABLE_FL` from `linux/fs.h`.
    const FS_IMMUTABLE_FL: libc::c_int = 0x0000_0010;

    pub(crate) fn set_immutable(path: &Path, on: bool) -> io::Result<()> {
        let file = std::fs::File::open(path)?;
        let fd = file.as_raw_fd();
        let mut flags: libc::c_int = 0;
        // SAFETY: fd is open for the call; the kernel reads and writes an
        // int through the pointer, which is valid for it.
        if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let wanted = if on {
            flags | FS_IMMUTABLE_FL
        } else {
            flags & !FS_IMMUTABLE_FL
        };
        if wanted == flags {
            return Ok(());
        }
        // SAFETY: as above.
        if unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &wanted) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn set_dir_writable(held: &Path, writable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = held.parent().unwrap_or(Path::new("."));
    let mode = if writable { 0o755 } else { 0o555 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn block(held: &Path) -> io::Result<()> {
    set_user_immutable(held, true)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn unblock(held: &Path) -> io::Result<()> {
    set_user_immutable(held, false)
}

#[cfg(not(target_os = "linux"))]
fn set_user_immutable(held: &Path, on: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(held.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let flags = if on { libc::UF_IMMUTABLE } else { 0 };
    // SAFETY: path is a NUL-terminated string valid for the call.
    if unsafe { libc::chflags(path.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
