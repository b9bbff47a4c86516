//! Finding the installed real Lima: the project-local tools directory
//! first (where `scripts/install-real-lima` puts it), then PATH.

use std::path::{Path, PathBuf};

/// Overrides the tools directory (default `<workspace>/tools`).
pub const TOOLS_DIR_ENV: &str = "LIMAVM_TOOLS_DIR";
/// Names the `limactl` to use, wherever it is.
const LIMACTL_ENV: &str = "LIMAVM_REAL_LIMACTL";
/// The Linux guest agent limactl embeds in the VM's cidata, looked up in
/// `<prefix>/share/lima` next to `<prefix>/bin/limactl`.
pub const GUEST_AGENT: &str = "lima-guestagent.Linux-x86_64";

/// `LIMAVM_TOOLS_DIR`, or `<workspace>/tools`.
pub(super) fn tools_dir() -> PathBuf {
    std::env::var_os(TOOLS_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools"))
}

/// The real `limactl`: `LIMAVM_REAL_LIMACTL`, the tools directory, PATH.
pub fn limactl_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(LIMACTL_ENV) {
        return Some(PathBuf::from(path));
    }
    let local = tools_dir().join("lima/bin/limactl");
    if local.is_file() {
        return Some(local.canonicalize().unwrap_or(local));
    }
    which::which("limactl").ok()
}

/// Lima needs its guest agent even for a guest that never runs it.
pub(crate) fn check_guest_agent(limactl: &Path) -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let real = limactl
        .canonicalize()
        .unwrap_or_else(|_| limactl.to_owned());
    let share = real
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("share/lima"))
        .unwrap_or_default();
    let found = [GUEST_AGENT.to_owned(), format!("{GUEST_AGENT}.gz")]
        .iter()
        .any(|name| share.join(name).is_file());
    if found {
        Ok(())
    } else {
        Err(format!(
            "{GUEST_AGENT} is missing from {}: run `just real-lima-install`",
            share.display()
        ))
    }
}
