//! The two `wsl.exe` calls a forced stop and a deletion make, each bounded.

use crate::command::{CommandError, CommandOutput, ExternalCommand, decode_output};
use std::ffi::OsStr;
use std::time::Duration;

/// What `wsl.exe` says when the distro is not registered (then "not found"
/// counts as done), in its English message and its error code.
const NOT_FOUND_MARKERS: [&str; 2] = [
    "there is no distribution with the supplied name",
    "wsl_e_distro_not_found",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum WslError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{command} exited with {status}: {}", output_text(.stdout, .stderr))]
    Failed {
        command: String,
        status: String,
        stdout: String,
        stderr: String,
    },
}

fn output_text(stdout: &str, stderr: &str) -> String {
    let text = [stderr.trim(), stdout.trim()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if text.is_empty() {
        "no output".to_owned()
    } else {
        text
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WslOutcome {
    Done,
    /// The distro was not registered: nothing to do.
    NotFound,
}

/// `wsl.exe --terminate <distro>`.
pub(crate) fn terminate(
    program: &OsStr,
    distro: &str,
    timeout: Option<Duration>,
) -> Result<WslOutcome, WslError> {
    call(program, "--terminate", distro, timeout)
}

/// `wsl.exe --unregister <distro>`.
pub(crate) fn unregister(
    program: &OsStr,
    distro: &str,
    timeout: Option<Duration>,
) -> Result<WslOutcome, WslError> {
    call(program, "--unregister", distro, timeout)
}

/// Whether `wsl.exe --list --quiet` names `distro` (bounded like every
/// call). Names are compared without case, as WSL does.
pub(crate) fn is_registered(
    program: &OsStr,
    distro: &str,
    timeout: Option<Duration>,
) -> Result<bool, WslError> {
    lists(program, distro, false, timeout)
}

/// Whether `wsl.exe --list --quiet --running` names `distro`: the distro
/// runs (a `wsl.exe --shutdown` or `--terminate` from anyone ends that).
pub(crate) fn is_running(
    program: &OsStr,
    distro: &str,
    timeout: Option<Duration>,
) -> Result<bool, WslError> {
    lists(program, distro, true, timeout)
}

fn lists(
    program: &OsStr,
    distro: &str,
    running_only: bool,
    timeout: Option<Duration>,
) -> Result<bool, WslError> {
    let mut command = ExternalCommand::new("wsl.exe", program)
        .arg("--list")
        .arg("--quiet");
    if running_only {
        command = command.arg("--running");
    }
    let command = command.env("WSL_UTF8", "1").timeout(timeout);
    let output = command.run()?;
    let stdout = decode_output(&output.stdout);
    if !output.status.success() {
        return Err(WslError::Failed {
            command: command.display(),
            status: output.status.to_string(),
            stdout,
            stderr: decode_output(&output.stderr),
        });
    }
    Ok(stdout
        .lines()
        .any(|line| line.trim().eq_ignore_ascii_case(distro)))
}

fn call(
    program: &OsStr,
    verb: &str,
    distro: &str,
    timeout: Option<Duration>,
) -> Result<WslOutcome, WslError> {
    let command = ExternalCommand::new("wsl.exe", program)
        .arg(verb)
        .arg(distro)
        .env("WSL_UTF8", "1")
        .timeout(timeout);
    let output = command.run()?;
    judge(&command.display(), &output)
}

fn judge(command: &str, output: &CommandOutput) -> Result<WslOutcome, WslError> {
    let stdout = decode_output(&output.stdout);
    let stderr = decode_output(&output.stderr);
    if output.status.success() {
        return Ok(WslOutcome::Done);
    }
    let text = format!("{stdout}\n{stderr}").to_lowercase();
    if NOT_FOUND_MARKERS.iter().any(|marker| text.contains(marker)) {
        return Ok(WslOutcome::NotFound);
    }
    Err(WslError::Failed {
        command: command.to_owned(),
        status: output.status.to_string(),
        stdout,
        stderr,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn output(code: i32, stdout: &[u8], stderr: &[u8]) -> CommandOutput {
        CommandOutput {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
        }
    }

    #[test]
    fn not_found_is_success_also_in_utf16() {
        let utf16: Vec<u8> = "There is no distribution with the supplied name.\r\nError code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let judged = judge("wsl.exe --unregister lima-a", &output(255, &utf16, b""));
        assert_eq!(judged.unwrap(), WslOutcome::NotFound);
        assert_eq!(judge("w", &output(0, b"", b"")).unwrap(), WslOutcome::Done);
    }

    #[test]
    fn a_failure_names_the_command_status_and_stderr() {
        let err = judge(
            "wsl.exe --terminate lima-a",
            &output(1, b"", b"The service is degraded\n"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "wsl.exe --terminate lima-a exited with exit status: 1: The service is degraded"
        );
    }
}
