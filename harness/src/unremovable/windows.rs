//! Windows: the read-only attribute. `DeleteFileW` refuses a read-only
//! file with "Access is denied", whoever asks (an administrator too), until
//! the attribute is cleared.

use std::io;
use std::path::Path;

pub(crate) fn block(held: &Path) -> io::Result<()> {
    set_readonly(held, true)
}

pub(crate) fn unblock(held: &Path) -> io::Result<()> {
    set_readonly(held, false)
}

fn set_readonly(held: &Path, on: bool) -> io::Result<()> {
    let mut permissions = std::fs::metadata(held)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(on);
    std::fs::set_permissions(held, permissions)
}
