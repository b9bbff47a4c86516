//! Real Lima for `--toolset real`: where the installed `limactl` is (see
//! `scripts/install-real-lima`), how the sandbox's shim runs it, the blank
//! disk and the real guest a template boots, and Lima's own status of an
//! instance.

mod disk;
mod guest;
mod locate;
#[cfg(unix)]
mod privilege;
mod status;

pub use disk::blank_disk;
pub use guest::{QEMU_BINARY_ENV, RealGuest};
pub use locate::{GUEST_AGENT, TOOLS_DIR_ENV, limactl_path};
pub use status::{LimaStatus, lima_status, qmp_answers};

use crate::error::HarnessError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Set to `true` by CI: a real-Lima test then fails instead of skipping
/// when real Lima is not installed.
pub const CI_ENV: &str = "CI";
/// `skip`: a CI job on a runner that cannot host real Lima (macOS,
/// Windows) says so explicitly, and the tests skip even with `CI=true`.
pub const OPT_OUT_ENV: &str = "LIMAVM_REAL_LIMA";

/// Why real Lima cannot run here, or `Ok` when it can. Checked once.
pub fn availability() -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED.get_or_init(check).clone()
}

fn check() -> Result<(), String> {
    if !cfg!(unix) {
        return Err("real Lima is driven on Linux and macOS only".to_owned());
    }
    let limactl = limactl_path().ok_or_else(|| {
        "limactl is not installed: run `just real-lima-install` (scripts/install-real-lima)"
            .to_owned()
    })?;
    locate::check_guest_agent(&limactl)?;
    for tool in ["qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"] {
        which::which(tool).map_err(|_| format!("{tool} is not on PATH"))?;
    }
    #[cfg(unix)]
    privilege::check()?;
    Ok(())
}

/// The words to put before a command so that it runs unprivileged, as the
/// limactl shim does (`setpriv` to the `limavm` user, keeping
/// CAP_DAC_OVERRIDE); `None` when the harness is not root or not on Unix.
/// Fails when the user or setpriv is missing.
pub fn drop_privileges_prefix() -> Result<Option<Vec<String>>, String> {
    #[cfg(unix)]
    {
        privilege::drop_privileges_prefix()
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// True when CI demands real Lima (`CI=true`, and no `LIMAVM_REAL_LIMA=skip`).
pub fn required() -> bool {
    std::env::var(CI_ENV).is_ok_and(|v| v == "true")
        && !std::env::var(OPT_OUT_ENV).is_ok_and(|v| v == "skip")
}

/// Installs the shim for the real `limactl` at `link` when the harness runs
/// as root: a script that drops to the unprivileged user first (limactl
/// refuses root). Otherwise returns the real `limactl`, for the sandbox to
/// link at `link`. Fails when limactl is not installed or the script
/// cannot be written.
pub(crate) fn install_limactl(link: &Path) -> Result<Option<PathBuf>, HarnessError> {
    let limactl = limactl_path().ok_or_else(|| HarnessError::RealToolMissing {
        tool: "limactl".to_owned(),
    })?;
    #[cfg(unix)]
    if let Some(script) = privilege::shim_script(&limactl).map_err(HarnessError::Driver)? {
        privilege::write_script(link, &script).map_err(HarnessError::io(format!(
            "writing the limactl shim {}",
            link.display()
        )))?;
        return Ok(None);
    }
    // Elsewhere nothing is written there: the sandbox links the binary.
    #[cfg(not(unix))]
    let _ = link;
    Ok(Some(limactl))
}
