//! The real guest `scripts/build-real-guest` builds: a Debian kernel and
//! an initramfs under `<tools>/real-guest/`, booted through the `kernel` /
//! `initrd` fields of a Lima image (`fixtures/lima/real-guest.yaml`).

use super::locate::tools_dir;
use std::ffi::OsString;
use std::path::PathBuf;

/// Lima's override of the QEMU binary it runs for x86_64 guests.
pub const QEMU_BINARY_ENV: &str = "QEMU_SYSTEM_X86_64";

/// The built guest's files (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealGuest {
    /// The image `location`: an empty qcow2 (the guest runs in RAM).
    pub disk: PathBuf,
    /// The guest's kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// Its initrd, holding the whole root file system.
    pub initrd: PathBuf,
    /// `Some(wrapper)` when this host's KVM cannot run the guest's kernel
    /// (the build's probe wrote `tcg` to `accel`): a `qemu-system-x86_64`
    /// that turns Lima's `accel=kvm` into `accel=tcg`, for
    /// [`QEMU_BINARY_ENV`].
    pub tcg_wrapper: Option<PathBuf>,
}

impl RealGuest {
    /// The guest under the tools directory, `None` when it is not built
    /// (run `scripts/build-real-guest`).
    pub fn built() -> Option<Self> {
        let dir = tools_dir().join("real-guest");
        let dir = dir.canonicalize().unwrap_or(dir);
        let guest = Self {
            disk: dir.join("disk.qcow2"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            tcg_wrapper: None,
        };
        if ![&guest.disk, &guest.kernel, &guest.initrd]
            .iter()
            .all(|p| p.is_file())
        {
            return None;
        }
        let tcg = std::fs::read_to_string(dir.join("accel")).is_ok_and(|a| a.trim() == "tcg");
        Some(Self {
            tcg_wrapper: tcg.then(|| dir.join("qemu-system-x86_64-tcg")),
            ..guest
        })
    }

    /// The environment real `limactl` needs to boot this guest here.
    pub fn env(&self) -> Vec<(String, OsString)> {
        self.tcg_wrapper
            .iter()
            .map(|w| (QEMU_BINARY_ENV.to_owned(), w.clone().into_os_string()))
            .collect()
    }
}
