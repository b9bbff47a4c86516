use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// ssh and `ssh-keygen -y` refuse a private key others can read.
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}
