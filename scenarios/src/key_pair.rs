//! Checks on the user's SSH key pair in `LIMA_HOME/_config`, shared by the
//! key scenarios and the key-generation property.

use std::path::{Path, PathBuf};

/// What is wrong with the key pair; each is a symptom of the reconciler
/// that made it. Print it with its causes (`contract::error_chain::chain`, or
/// `ScenarioError::from`).
#[derive(Debug, thiserror::Error)]
pub enum KeyPairError {
    /// The private key file (`_config/user`) cannot be read.
    #[error("private key {} unreadable", .path.display())]
    PrivateUnreadable {
        /// The private key's path.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The private key file is not an OpenSSH private key.
    #[error("private key {} is not a valid OpenSSH key ({length} bytes)", .path.display())]
    PrivateInvalid {
        /// The private key's path.
        path: PathBuf,
        /// Its length in bytes (0: empty, as a crashed ssh-keygen leaves it).
        length: usize,
        /// What the parser found.
        #[source]
        source: ssh_key::Error,
    },
    /// The public key file (`_config/user.pub`) cannot be read.
    #[error("public key {} missing", .path.display())]
    PublicMissing {
        /// The public key's path.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The public key file is not an OpenSSH public key.
    #[error("public key {} is not valid", .path.display())]
    PublicInvalid {
        /// The public key's path.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: ssh_key::Error,
    },
    /// The public key is not the private key's public half.
    #[error("key pair mismatch: {} is not the public half of {}", .public.display(), .private.display())]
    Mismatch {
        /// The public key's path.
        public: PathBuf,
        /// The private key's path.
        private: PathBuf,
    },
    /// Files beside the pair: a second pair, or a temporary never renamed.
    #[error("more than one key pair: stray files {stray:?} in {}", .dir.display())]
    Stray {
        /// The config directory.
        dir: PathBuf,
        /// The stray files' names, sorted.
        stray: Vec<String>,
    },
}

/// The private key parses, and the public key file holds its public half.
///
/// # Errors
///
/// The first [`KeyPairError`] found, reading the private key first.
pub fn valid_pair(config_dir: &Path) -> Result<(), KeyPairError> {
    let private_path = config_dir.join("user");
    let public_path = config_dir.join("user.pub");
    let private_text = std::fs::read_to_string(&private_path).map_err(|source| {
        KeyPairError::PrivateUnreadable {
            path: private_path.clone(),
            source,
        }
    })?;
    let private = ssh_key::PrivateKey::from_openssh(&private_text).map_err(|source| {
        KeyPairError::PrivateInvalid {
            path: private_path.clone(),
            length: private_text.len(),
            source,
        }
    })?;
    let public_text =
        std::fs::read_to_string(&public_path).map_err(|source| KeyPairError::PublicMissing {
            path: public_path.clone(),
            source,
        })?;
    let public = ssh_key::PublicKey::from_openssh(public_text.trim()).map_err(|source| {
        KeyPairError::PublicInvalid {
            path: public_path.clone(),
            source,
        }
    })?;
    if public.key_data() != private.public_key().key_data() {
        return Err(KeyPairError::Mismatch {
            public: public_path,
            private: private_path,
        });
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
///
/// # Errors
///
/// What [`valid_pair`] finds, else [`KeyPairError::Stray`].
pub fn exactly_one_valid_pair(config_dir: &Path) -> Result<(), KeyPairError> {
    valid_pair(config_dir)?;
    let stray = stray_key_files(config_dir);
    if stray.is_empty() {
        Ok(())
    } else {
        Err(KeyPairError::Stray {
            dir: config_dir.to_owned(),
            stray,
        })
    }
}
