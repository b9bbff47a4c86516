//! Lima's SSH key pair, `LIMA_HOME/_config/user` and `user.pub`, made ready
//! before any VM starts.
//!
//! Several services may start at once on one config directory, and a
//! service may die half way through `ssh-keygen`. So: hold an inter-process
//! lock while checking and generating; validate an existing private key;
//! derive a missing or mismatched public key with `ssh-keygen -y`; generate
//! to a unique temporary name and rename into place; clean stale
//! temporaries first; bound every `ssh-keygen` call.

use crate::command::{CommandError, CommandOutput, ExternalCommand};
use crate::logging::ShownPath;
use crate::platform;
use crate::regression::Regression;
use crate::settings::{Settings, format_duration};
use crate::store::atomic_file;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOCK_FILE: &str = ".keygen.lock";
const TMP_PREFIX: &str = "user.tmp-";
const LOCK_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another process held {} for longer than {}", path.display(), format_duration(*timeout))]
    LockTimeout { path: PathBuf, timeout: Duration },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{command} failed ({status}): {stderr}")]
    KeygenFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("ssh-keygen left no usable key at {}: {message}", path.display())]
    Unusable { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyOutcome {
    /// A valid pair was already there.
    Existing,
    /// The private key was kept; `user.pub` was derived from it.
    PublicKeyRepaired,
    Generated,
    /// The private key was unusable and was replaced.
    Regenerated {
        reason: String,
    },
}

/// What the private key file holds.
enum PrivateKeyState {
    Missing,
    Invalid(String),
    /// Present; `None` when accepted without being read (a regression).
    Present(Option<Box<ssh_key::PrivateKey>>),
}

pub(crate) fn ensure_ssh_keys(settings: &Settings) -> Result<KeyOutcome, KeyError> {
    let config_dir = settings.lima_home.config_dir();
    std::fs::create_dir_all(&config_dir).map_err(io(&config_dir))?;
    let _lock = if settings.is_on(Regression::ConcurrentKeygenRace) {
        None
    } else {
        Some(lock(&config_dir.join(LOCK_FILE), settings.keygen_timeout)?)
    };
    let keys = Keys {
        settings,
        private: settings.lima_home.user_private_key(),
        public: settings.lima_home.user_public_key(),
        config_dir,
    };
    let outcome = keys.ensure()?;
    tracing::info!(key = %ShownPath(&keys.private), outcome = ?outcome, "SSH keys ready");
    Ok(outcome)
}

struct Keys<'a> {
    settings: &'a Settings,
    config_dir: PathBuf,
    private: PathBuf,
    public: PathBuf,
}

impl Keys<'_> {
    /// Generating to a temporary name is the fix for both key regressions.
    fn generates_in_place(&self) -> bool {
        self.settings.is_on(Regression::ConcurrentKeygenRace)
            || self.settings.is_on(Regression::PartialKeyAfterCrash)
    }

    fn ensure(&self) -> Result<KeyOutcome, KeyError> {
        if !self.generates_in_place() {
            self.remove_stale_temporaries()?;
        }
        match self.private_key_state() {
            PrivateKeyState::Missing => {
                self.generate()?;
                Ok(KeyOutcome::Generated)
            }
            PrivateKeyState::Invalid(reason) => {
                tracing::warn!(
                    key = %ShownPath(&self.private),
                    reason = reason.as_str(),
                    "the private key is unusable; generating a new pair"
                );
                self.generate()?;
                Ok(KeyOutcome::Regenerated { reason })
            }
            PrivateKeyState::Present(key) => {
                if !self.settings.is_on(Regression::KeyModeUnrepaired) {
                    self.repair_mode()?;
                }
                if self.settings.is_on(Regression::MissingPublicKey)
                    || self.public_key_matches(key.as_deref())
                {
                    return Ok(KeyOutcome::Existing);
                }
                self.derive_public_key()?;
                Ok(KeyOutcome::PublicKeyRepaired)
            }
        }
    }

    fn private_key_state(&self) -> PrivateKeyState {
        let text = match std::fs::read_to_string(&self.private) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return PrivateKeyState::Missing,
            Err(e) => return PrivateKeyState::Invalid(format!("cannot read it: {e}")),
        };
        if self.settings.is_on(Regression::PartialKeyAfterCrash) {
            return PrivateKeyState::Present(
                ssh_key::PrivateKey::from_openssh(&text).ok().map(Box::new),
            );
        }
        match ssh_key::PrivateKey::from_openssh(&text) {
            Ok(key) if key.is_encrypted() => {
                PrivateKeyState::Invalid("it is passphrase-protected".to_owned())
            }
            Ok(key) => PrivateKeyState::Present(Some(Box::new(key))),
            Err(e) => PrivateKeyState::Invalid(format!("not an OpenSSH private key: {e}")),
        }
    }

    /// Makes the private key owner-only (OpenSSH ignores a key others
    /// may read, so every connection to the guest would fail).
    fn repair_mode(&self) -> Result<(), KeyError> {
        repair_private_key_mode(&self.private)
    }

    /// True when `user.pub` holds the public half of `private` (an unread
    /// private key can only be checked for a public key's presence).
    fn public_key_matches(&self, private: Option<&ssh_key::PrivateKey>) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.public) else {
            return false;
        };
        let Some(private) = private else {
            return true;
        };
        ssh_key::PublicKey::from_openssh(text.trim())
            .is_ok_and(|public| public.key_data() == private.public_key().key_data())
    }

    /// `ssh-keygen -y -f user` into `user.pub`, atomically.
    fn derive_public_key(&self) -> Result<(), KeyError> {
        tracing::info!(key = %ShownPath(&self.public), "deriving the missing or mismatched public key");
        self.repair_mode()?;
        let command = self.keygen().arg("-y").arg("-f").arg(&self.private);
        let output = run_keygen(&command)?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut text = text.trim().to_owned();
        text.push('\n');
        atomic_file::write(&self.public, text.as_bytes()).map_err(io(&self.public))
    }

    fn generate(&self) -> Result<(), KeyError> {
        if self.generates_in_place() {
            // ssh-keygen will not overwrite without a terminal.
            remove_if_present(&self.private)?;
            remove_if_present(&self.public)?;
            return self.run_keygen(&self.private);
        }
        let tmp = self.config_dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            random_suffix()
        ));
        let tmp_public = with_pub_extension(&tmp);
        let result = self.run_keygen(&tmp).and_then(|()| {
            check_generated(&tmp)?;
            // Public first: a private key is only ever in place with its pair.
            std::fs::rename(&tmp_public, &self.public).map_err(io(&self.public))?;
            std::fs::rename(&tmp, &self.private).map_err(io(&self.private))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&tmp_public);
        }
        result
    }

    fn run_keygen(&self, path: &Path) -> Result<(), KeyError> {
        let command = self
            .keygen()
            .arg("-t")
            .arg("ed25519")
            .arg("-q")
            .arg("-N")
            .arg("")
            .arg("-C")
            .arg("lima")
            .arg("-f")
            .arg(path);
        run_keygen(&command)?;
        Ok(())
    }

    fn keygen(&self) -> ExternalCommand {
        ExternalCommand::new("ssh-keygen", &self.settings.tools.ssh_keygen)
            .timeout(self.settings.keygen_bound())
    }

    fn remove_stale_temporaries(&self) -> Result<(), KeyError> {
        let entries = std::fs::read_dir(&self.config_dir).map_err(io(&self.config_dir))?;
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                tracing::info!(file = %ShownPath(&entry.path()), "removing a stale key temporary");
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Takes the inter-process key lock, polling until `timeout`.
fn lock(path: &Path, timeout: Duration) -> Result<File, KeyError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_POLL)
            }
            Err(TryLockError::WouldBlock) => {
                return Err(KeyError::LockTimeout {
                    path: path.to_owned(),
                    timeout,
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(KeyError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

fn check_generated(private: &Path) -> Result<(), KeyError> {
    let unusable = |message: String| KeyError::Unusable {
        path: private.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(private).map_err(|e| unusable(e.to_string()))?;
    let key = ssh_key::PrivateKey::from_openssh(&text).map_err(|e| unusable(e.to_string()))?;
    let public_path = with_pub_extension(private);
    let public = std::fs::read_to_string(&public_path).map_err(|e| KeyError::Unusable {
        path: public_path.clone(),
        message: e.to_string(),
    })?;
    let public =
        ssh_key::PublicKey::from_openssh(public.trim()).map_err(|e| KeyError::Unusable {
            path: public_path.clone(),
            message: e.to_string(),
        })?;
    if public.key_data() != key.public_key().key_data() {
        return Err(unusable("the public key does not match".to_owned()));
    }
    Ok(())
}

/// Takes the group's and others' access to the private key away, saying
/// so when it had any; a missing key is left to the key check.
pub(crate) fn repair_private_key_mode(private: &Path) -> Result<(), KeyError> {
    match platform::restrict_to_owner(private) {
        Ok(Some(mode)) => {
            tracing::warn!(
                key = %ShownPath(private),
                mode = format!("0{mode:o}").as_str(),
                "the private key was readable by others, which OpenSSH refuses; made it owner-only"
            );
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(private)(e)),
    }
}

fn with_pub_extension(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<(), KeyError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KeyError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process and varies per instance.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", hasher.finish())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::regression::Regressions;
    use ssh_key::{Algorithm, LineEnding, PrivateKey};

    #[test]
    fn a_generated_pair_that_is_no_key_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("user");
        std::fs::write(&private, "not a key").unwrap();
        std::fs::write(with_pub_extension(&private), "not a key either").unwrap();
        let err = check_generated(&private).unwrap_err();
        assert!(matches!(err, KeyError::Unusable { .. }), "{err}");
    }

    #[test]
    fn a_missing_key_needs_no_repair_and_another_error_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("user");
        assert!(repair_private_key_mode(&missing).is_ok());
        // A path through a file: neither there nor "not found".
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        let through_file = file.join("user");
        if cfg!(unix) {
            assert!(repair_private_key_mode(&through_file).is_err());
        }
    }

    #[test]
    fn removing_a_missing_file_is_no_error_and_another_error_is() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("user");
        std::fs::write(&file, "").unwrap();
        remove_if_present(&file).unwrap();
        assert!(!file.exists());
        remove_if_present(&file).unwrap();
        // A directory is neither removable as a file nor "not found".
        assert!(remove_if_present(root.path()).is_err());
    }

    struct Fixture {
        _root: tempfile::TempDir,
        settings: Settings,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(root.path().join("li[1]ma"), root.path().join("state"));
        settings.tools.ssh_keygen = "/usr/bin/ssh-keygen".into();
        settings.keygen_timeout = Duration::from_secs(20);
        Fixture {
            _root: root,
            settings,
        }
    }

    impl Fixture {
        fn private(&self) -> PathBuf {
            self.settings.lima_home.user_private_key()
        }
        fn public(&self) -> PathBuf {
            self.settings.lima_home.user_public_key()
        }
        fn write_private(&self, key: &PrivateKey) {
            std::fs::create_dir_all(self.settings.lima_home.config_dir()).unwrap();
            let text = key.to_openssh(LineEnding::LF).unwrap();
            std::fs::write(self.private(), text.as_bytes()).unwrap();
        }
        fn assert_matching_pair(&self) {
            let private =
                PrivateKey::from_openssh(std::fs::read_to_string(self.private()).unwrap()).unwrap();
            let public = ssh_key::PublicKey::from_openssh(
                std::fs::read_to_string(self.public()).unwrap().trim(),
            )
            .unwrap();
            assert_eq!(public.key_data(), private.public_key().key_data());
        }
        fn config_entries(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.settings.lima_home.config_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    fn random_key() -> PrivateKey {
        PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap()
    }

    #[test]
    fn generates_a_pair_and_leaves_no_temporaries() {
        let fx = fixture();
        assert_eq!(
            ensure_ssh_keys(&fx.settings).unwrap(),
            KeyOutcome::Generated
        );
        fx.assert_matching_pair();
        assert_eq!(fx.config_entries(), [".keygen.lock", "user", "user.pub"]);
        assert_eq!(ensure_ssh_keys(&fx.settings).unwrap(), KeyOutcome::Existing);
    }

    #[test]
    fn a_missing_public_key_is_derived_and_the_private_key_kept() {
        let fx = fixture();
        let key = random_key();
        fx.write_private(&key);
        let before = std::fs::read(fx.private()).unwrap();
        assert_eq!(
            ensure_ssh_keys(&fx.settings).unwrap(),
            KeyOutcome::PublicKeyRepaired
        );
        fx.assert_matching_pair();
        assert_eq!(std::fs::read(fx.private()).unwrap(), before);
    }

    #[test]
    fn a_mismatched_public_key_is_replaced() {
        let fx = fixture();
        fx.write_private(&random_key());
        let other = random_key().public_key().to_openssh().unwrap();
        std::fs::write(fx.public(), other).unwrap();
        assert_eq!(
            ensure_ssh_keys(&fx.settings).unwrap(),
            KeyOutcome::PublicKeyRepaired
        );
        fx.assert_matching_pair();
    }

    #[test]
    fn missing_public_key_regression_leaves_it_missing() {
        let mut fx = fixture();
        fx.settings.regressions = Regressions::of([Regression::MissingPublicKey]);
        fx.write_private(&random_key());
        assert_eq!(ensure_ssh_keys(&fx.settings).unwrap(), KeyOutcome::Existing);
        assert!(!fx.public().exists());
    }

    #[test]
    fn a_key_others_can_read_is_made_owner_only_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |fx: &Fixture| {
            std::fs::metadata(fx.private())
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let mut fx = fixture();
        let key = random_key();
        fx.write_private(&key);
        std::fs::write(fx.public(), key.public_key().to_openssh().unwrap()).unwrap();
        let loosen = |fx: &Fixture| {
            std::fs::set_permissions(fx.private(), std::fs::Permissions::from_mode(0o644)).unwrap()
        };
        loosen(&fx);
        let before = std::fs::read(fx.private()).unwrap();
        assert_eq!(ensure_ssh_keys(&fx.settings).unwrap(), KeyOutcome::Existing);
        assert_eq!(mode(&fx), 0o600);
        assert_eq!(std::fs::read(fx.private()).unwrap(), before);
        loosen(&fx);
        fx.settings.regressions = Regressions::of([Regression::KeyModeUnrepaired]);
        assert_eq!(ensure_ssh_keys(&fx.settings).unwrap(), KeyOutcome::Existing);
        assert_eq!(mode(&fx), 0o644);
    }

    #[test]
    fn a_half_written_key_and_stale_temporaries_are_replaced() {
        let fx = fixture();
        let text = random_key().to_openssh(LineEnding::LF).unwrap();
        std::fs::create_dir_all(fx.settings.lima_home.config_dir()).unwrap();
        std::fs::write(fx.private(), &text.as_bytes()[..text.len() / 2]).unwrap();
        let stale = fx.settings.lima_home.config_dir().join("user.tmp-1-dead");
        std::fs::write(&stale, "half").unwrap();
        let outcome = ensure_ssh_keys(&fx.settings).unwrap();
        assert!(
            matches!(outcome, KeyOutcome::Regenerated { .. }),
            "{outcome:?}"
        );
        fx.assert_matching_pair();
        assert_eq!(fx.config_entries(), [".keygen.lock", "user", "user.pub"]);
    }

    /// An ed25519 key protected by the passphrase "not-a-secret", made for
    /// this test with `ssh-keygen -t ed25519 -N not-a-secret`: Lima's
    /// `ssh` runs without a terminal and cannot use it.
    const PASSPHRASE_PROTECTED_KEY: &str = "\
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAJ0V+rBY
D5ArlC6xg9cx6CAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIF62OcTx6/Bxr0Bl
xr1hQDTe9xOqkXnIYvcOzZ1hgpIuAAAAsAsF0PQ+JT7TKfPQWpMn8pssQg2VrZA+3TsHyN
8flmkqtTXt7V4DFO/yTA1yY3+IT7yFErCUhGMnd1QQVbInOEjx7FJEbd/hgXElXoXltfWi
T1DSyPpoc5UO9MqjhZCqKYTvrGdTpbRyohfFIla9SJW8cN0PpIjhCbcnnNto3aMhckJdQt
bE84cApcR/RtrPk1zo0stR2iazTH8Pzp7nS2dqvVHk11IxByhpH8GgkCqU
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn a_passphrase_protected_key_is_replaced_and_the_reason_says_so() {
        let fx = fixture();
        std::fs::create_dir_all(fx.settings.lima_home.config_dir()).unwrap();
        std::fs::write(fx.private(), PASSPHRASE_PROTECTED_KEY).unwrap();
        let outcome = ensure_ssh_keys(&fx.settings).unwrap();
        assert!(
            matches!(&outcome, KeyOutcome::Regenerated { reason } if reason.contains("passphrase")),
            "{outcome:?}"
        );
        fx.assert_matching_pair();
    }

    #[test]
    fn partial_key_regression_accepts_a_half_written_key() {
        let mut fx = fixture();
        fx.settings.regressions = Regressions::of([Regression::PartialKeyAfterCrash]);
        let text = random_key().to_openssh(LineEnding::LF).unwrap();
        fx.write_private(&random_key());
        std::fs::write(fx.private(), &text.as_bytes()[..text.len() / 2]).unwrap();
        std::fs::write(fx.public(), "ssh-ed25519 AAAA lima\n").unwrap();
        assert_eq!(ensure_ssh_keys(&fx.settings).unwrap(), KeyOutcome::Existing);
    }

    #[test]
    fn racing_callers_end_with_one_matching_pair() {
        let fx = fixture();
        let outcomes: Vec<KeyOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| ensure_ssh_keys(&fx.settings).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let generated = outcomes
            .iter()
            .filter(|o| **o == KeyOutcome::Generated)
            .count();
        assert_eq!(generated, 1, "{outcomes:?}");
        fx.assert_matching_pair();
        assert_eq!(fx.config_entries(), [".keygen.lock", "user", "user.pub"]);
    }

    #[test]
    fn a_missing_ssh_keygen_is_named() {
        let mut fx = fixture();
        fx.settings.tools.ssh_keygen = "limavm-no-such-ssh-keygen".into();
        let err = ensure_ssh_keys(&fx.settings).unwrap_err();
        assert_eq!(err.to_string(), "ssh-keygen not found on PATH");
    }

    #[test]
    fn a_hanging_ssh_keygen_is_cut_off_at_the_timeout() {
        let mut fx = fixture();
        let script = fx._root.path().join("hanging-keygen");
        std::fs::write(&script, "#!/bin/sh\nsleep 600\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        fx.settings.tools.ssh_keygen = script.into();
        fx.settings.keygen_timeout = Duration::from_millis(300);
        let (err, took) = loop {
            let started = Instant::now();
            let err = ensure_ssh_keys(&fx.settings).unwrap_err();
            // A fork in another test thread may still hold the fresh
            // script open for writing (ETXTBSY): try again.
            if !contract::error_chain::chain(&err).contains("Text file busy") {
                break (err, started.elapsed());
            }
        };
        assert_eq!(err.to_string(), "ssh-keygen did not finish within 300ms");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(fx.config_entries(), [".keygen.lock"], "no temporary left");
    }

    #[test]
    fn a_held_lock_times_out_with_its_path() {
        let mut fx = fixture();
        fx.settings.keygen_timeout = Duration::from_millis(100);
        let config = fx.settings.lima_home.config_dir();
        std::fs::create_dir_all(&config).unwrap();
        let holder = File::create(config.join(LOCK_FILE)).unwrap();
        holder.lock().unwrap();
        let err = ensure_ssh_keys(&fx.settings).unwrap_err().to_string();
        assert!(
            err.contains(".keygen.lock") && err.contains("100ms"),
            "{err}"
        );
    }
}

/// Runs an `ssh-keygen` call; a non-zero exit is an error quoting its
/// stderr.
fn run_keygen(command: &ExternalCommand) -> Result<CommandOutput, KeyError> {
    let output = command.run()?;
    if !output.status.success() {
        return Err(KeyError::KeygenFailed {
            command: command.display(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output)
}
