//! Checks on the user's SSH key pair in `LIMA_HOME/_config`, shared by the
//! key scenarios and the key-generation property.

use std::path::Path;

/// The private key parses, and the public key file holds its public half.
pub fn valid_pair(config_dir: &Path) -> Result<(), String> {
    let private_path = config_dir.join("user");
    let public_path = config_dir.join("user.pub");
    let private_text = std::fs::read_to_string(&private_path)
        .map_err(|e| format!("private key {} unreadable: {e}", private_path.display()))?;
    let private = ssh_key::PrivateKey::from_openssh(&private_text).map_err(|e| {
        format!(
            "private key {} is not a valid OpenSSH key ({} bytes): {e}",
            private_path.display(),
            private_text.len()
        )
    })?;
    let public_text = std::fs::read_to_string(&public_path)
        .map_err(|e| format!("public key {} missing: {e}", public_path.display()))?;
    let public = ssh_key::PublicKey::from_openssh(public_text.trim())
        .map_err(|e| format!("public key {} is not valid: {e}", public_path.display()))?;
    if public.key_data() != private.public_key().key_data() {
        return Err(format!(
            "key pair mismatch: {} is not the public half of {}",
            public_path.display(),
            private_path.display()
        ));
    }
    Ok(())
}

/// Files of the config directory other than the pair and the lock: a
/// second pair, or a temporary that was never renamed into place.
pub fn stray_key_files(config_dir: &Path) -> Vec<String> {
    let mut stray: Vec<String> = std::fs::read_dir(config_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "user" && n != "user.pub" && !n.ends_with(".lock"))
        .collect();
    stray.sort();
    stray
}

/// Exactly one valid pair and nothing else in `config_dir`.
pub fn exactly_one_valid_pair(config_dir: &Path) -> Result<(), String> {
    valid_pair(config_dir)?;
    let stray = stray_key_files(config_dir);
    if stray.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "more than one key pair: stray files {stray:?} in {}",
            config_dir.display()
        ))
    }
}
