use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// ssh and `ssh-keygen -y` refuse a private key others can read: takes
/// the group's and others' permissions away. Returns the mode it had when
/// it changed it (`0o644`), `None` when it was owner-only already.
pub(crate) fn restrict_to_owner(path: &Path) -> std::io::Result<Option<u32>> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    Ok(Some(mode))
}
