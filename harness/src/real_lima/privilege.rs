//! Running the real limactl as an unprivileged user when the harness is
//! root: limactl refuses root ("must not run as the root user"), and this
//! project's sessions and CI run as root. The shim execs `setpriv` (so the
//! pid and the environment, LIMAVM_SANDBOX included, stay) into the user
//! that `scripts/install-real-lima` creates, keeping CAP_DAC_OVERRIDE only:
//! the root reconciler creates instance directories, lima.yaml and keys
//! after the sandbox exists, and /dev/kvm is root's; the script explains.

use std::path::Path;
use std::process::Command;

/// The user limactl runs as (default `limavm`).
const USER_ENV: &str = "LIMAVM_LIMA_USER";
const DEFAULT_USER: &str = "limavm";

fn user() -> String {
    std::env::var(USER_ENV).unwrap_or_else(|_| DEFAULT_USER.to_owned())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `id -u USER` / `id -g USER`.
fn id_of(user: &str, flag: &str) -> Result<u32, String> {
    let output = proctree::run_bounded(
        Command::new("id").args([flag, user]),
        None,
        Some(crate::commands::TOOL_TIMEOUT),
    )
    .map_err(|e| format!("running id: {}", contract::error_chain::chain(&e)))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!("user {user} does not exist: run `just real-lima-install` as root to create it")
        })
}

/// What a root harness needs to drop privileges: the user and setpriv.
pub(crate) fn check() -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    which::which("setpriv").map_err(|_| "setpriv (util-linux) is not on PATH".to_owned())?;
    id_of(&user(), "-u").map(|_| ())
}

/// The shim's text when the harness runs as root, `None` otherwise.
pub(crate) fn shim_script(limactl: &Path) -> Result<Option<String>, String> {
    if !is_root() {
        return Ok(None);
    }
    let user = user();
    let prefix = setpriv_args(&user)?;
    Ok(Some(format!(
        "#!/bin/sh\n\
         # limactl refuses to run as root: run it as {user}, keeping the pid and\n\
         # the environment (see scripts/install-real-lima for CAP_DAC_OVERRIDE).\n\
         exec {} {} \"$@\"\n",
        prefix.join(" "),
        shell_quoted(&limactl.to_string_lossy())
    )))
}

/// `setpriv ... --` dropping to `user` (keeping CAP_DAC_OVERRIDE).
fn setpriv_args(user: &str) -> Result<Vec<String>, String> {
    let (uid, gid) = (id_of(user, "-u")?, id_of(user, "-g")?);
    Ok([
        "setpriv".to_owned(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".to_owned(),
        "--inh-caps=-all,+dac_override".to_owned(),
        "--ambient-caps=+dac_override".to_owned(),
        "--bounding-set=-all,+dac_override".to_owned(),
        "--".to_owned(),
    ]
    .to_vec())
}

/// The words to put before a command so that it runs as the unprivileged
/// user, as the limactl shim does: `None` when the harness is not root.
pub(crate) fn drop_privileges_prefix() -> Result<Option<Vec<String>>, String> {
    if !is_root() {
        return Ok(None);
    }
    check()?;
    setpriv_args(&user()).map(Some)
}

/// Single quotes, each embedded quote closed, escaped and reopened.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub(crate) fn write_script(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_quotes_and_spaces_stays_one_word() {
        assert_eq!(shell_quoted("/a b/it's"), r"'/a b/it'\''s'");
    }
}
