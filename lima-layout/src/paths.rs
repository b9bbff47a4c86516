//! Paths inside LIMA_HOME.

use std::path::{Path, PathBuf};

/// An entry of an instance directory whose name ends in one of these is a
/// "tmp file": a forced stop removes it.
pub const TMP_SUFFIXES: [&str; 3] = [".pid", ".sock", ".tmp"];

/// True when `name` (a file name, not a path) is a tmp file.
pub fn is_tmp_file_name(name: &str) -> bool {
    TMP_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// The root of a Lima installation (`LIMA_HOME`, by default `~/.lima`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimaHome(PathBuf);

impl LimaHome {
    /// The installation rooted at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `<name>/`, the directory of instance `name` (not checked).
    pub fn instance(&self, name: &str) -> InstancePaths {
        InstancePaths {
            name: name.to_owned(),
            dir: self.0.join(name),
        }
    }

    /// `_config/`, where the user's SSH key pair lives.
    pub fn config_dir(&self) -> PathBuf {
        self.0.join("_config")
    }

    /// `_config/user`, the private key Lima logs in to every guest with.
    pub fn user_private_key(&self) -> PathBuf {
        self.config_dir().join("user")
    }

    /// `_config/user.pub`, its public half.
    pub fn user_public_key(&self) -> PathBuf {
        self.config_dir().join("user.pub")
    }

    /// `_disks/<disk>/`, one additional disk.
    pub fn disk_dir(&self, disk: &str) -> PathBuf {
        self.0.join("_disks").join(disk)
    }

    /// `_disks/<disk>/in_use_by`: present while an instance holds the disk.
    pub fn disk_in_use_by(&self, disk: &str) -> PathBuf {
        self.disk_dir(disk).join("in_use_by")
    }
}

/// The files of one instance directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePaths {
    /// The instance name.
    pub name: String,
    /// `<LIMA_HOME>/<name>`.
    pub dir: PathBuf,
}

impl InstancePaths {
    /// `lima.yaml`, the instance's config.
    pub fn lima_yaml(&self) -> PathBuf {
        self.dir.join("lima.yaml")
    }
    /// `ha.pid`, the hostagent's pid file.
    pub fn ha_pid(&self) -> PathBuf {
        self.dir.join("ha.pid")
    }
    /// `ha.sock`, the hostagent's API socket.
    pub fn ha_sock(&self) -> PathBuf {
        self.dir.join("ha.sock")
    }
    /// `ha.stdout.log`, where `limactl start` sends the hostagent's events.
    pub fn ha_stdout_log(&self) -> PathBuf {
        self.dir.join("ha.stdout.log")
    }
    /// `ha.stderr.log`, the hostagent's log.
    pub fn ha_stderr_log(&self) -> PathBuf {
        self.dir.join("ha.stderr.log")
    }
    /// QEMU's QMP socket, through which real Lima presses the power button
    /// (`system_powerdown`); a stop asked for before QEMU opened it makes
    /// Lima kill QEMU instead (Lima v2.2.0, the QEMU driver's stop).
    pub fn qmp_sock(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    /// `<vmType>.pid`, the VM driver's pid file (`qemu.pid`, ...).
    pub fn driver_pid(&self, vm_type: crate::VmType) -> PathBuf {
        self.dir.join(format!("{}.pid", vm_type.as_str()))
    }
    /// The instance's main disk image; the driver holds a lock on it.
    pub fn disk_image(&self) -> PathBuf {
        self.dir.join("diffdisk")
    }
    /// WSL2 distro name of this instance.
    pub fn wsl_distro(&self) -> String {
        format!("lima-{}", self.name)
    }
}

/// Reads a pid file: `None` when it is missing or does not hold a positive
/// decimal number (a trailing newline is allowed).
pub fn read_pid_file(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse::<u32>().ok().filter(|pid| *pid > 0)
}

/// Writes a pid file atomically (temporary name, then rename), so a reader
/// never sees a half-written number.
pub fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path)
}

/// The longest Unix socket path the platform accepts (bytes, without the
/// terminating NUL): [`crate::checks::UNIX_PATH_MAX`] less the NUL.
pub const fn max_socket_path_len() -> usize {
    crate::checks::UNIX_PATH_MAX - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_file_names_are_matched_by_suffix_only() {
        assert!(is_tmp_file_name("ha.pid"));
        assert!(is_tmp_file_name("serial[1].sock"));
        assert!(is_tmp_file_name("x.tmp"));
        assert!(!is_tmp_file_name("lima.yaml"));
        assert!(!is_tmp_file_name("ha.pid.bak"));
    }

    #[test]
    fn pid_files_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.pid");
        assert_eq!(read_pid_file(&path), None);
        write_pid_file(&path, 4242).unwrap();
        assert_eq!(read_pid_file(&path), Some(4242));
        std::fs::write(&path, "0").unwrap();
        assert_eq!(read_pid_file(&path), None);
        std::fs::write(&path, "12ab").unwrap();
        assert_eq!(read_pid_file(&path), None);
    }
}
