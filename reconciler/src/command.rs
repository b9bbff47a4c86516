//! Every external command the reconciler waits for (`wsl.exe`,
//! `ssh-keygen`) runs through [`run`]: stdin closed, stdout and stderr
//! captured, and, when bounded, its whole tree killed at the deadline.

use crate::settings::format_duration;
use proctree::BoundedError;
use std::ffi::{OsStr, OsString};
use std::process::{Command, ExitStatus};
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct ExternalCommand {
    /// The name used in messages (`wsl.exe`), whatever path runs it.
    pub(crate) tool: String,
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    /// `None` waits for ever (only regressions ask for that).
    pub(crate) timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) struct CommandOutput {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("{tool} not found on PATH")]
    NotFound { tool: String },
    #[error("cannot run {tool}")]
    Spawn {
        tool: String,
        source: std::io::Error,
    },
    #[error("{tool} did not finish within {}{}", format_duration(*timeout), stderr_suffix(stderr))]
    TimedOut {
        tool: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("lost track of {tool}")]
    Wait {
        tool: String,
        source: std::io::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {stderr})")
    }
}

impl ExternalCommand {
    pub(crate) fn new(tool: &str, program: impl AsRef<OsStr>) -> Self {
        Self {
            tool: tool.to_owned(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: None,
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub(crate) fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// `wsl.exe --terminate lima-vm1`, for messages.
    pub(crate) fn display(&self) -> String {
        let mut text = self.tool.clone();
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            text.push(' ');
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                text.push_str(&format!("{arg:?}"));
            } else {
                text.push_str(&arg);
            }
        }
        text
    }

    pub(crate) fn run(&self) -> Result<CommandOutput, CommandError> {
        run(self)
    }
}

/// Runs `command` through [`proctree::run_bounded`]: stdin closed, output
/// captured, its tree killed at the deadline; a process it leaves holding
/// its output is killed [`proctree::bounded::OUTPUT_GRACE`] after its exit
/// and the output read until then is kept.
pub(crate) fn run(command: &ExternalCommand) -> Result<CommandOutput, CommandError> {
    let tool = command.tool.clone();
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)));
    match proctree::run_bounded(&mut cmd, None, command.timeout) {
        Ok(done) => Ok(CommandOutput {
            status: done.status,
            stdout: done.stdout,
            stderr: done.stderr,
        }),
        Err(BoundedError::Spawn(source)) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(CommandError::NotFound { tool })
        }
        Err(BoundedError::Spawn(source)) => Err(CommandError::Spawn { tool, source }),
        Err(BoundedError::TimedOut {
            timeout, stderr, ..
        }) => Err(CommandError::TimedOut {
            tool,
            timeout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
        Err(BoundedError::Wait(source)) => Err(CommandError::Wait { tool, source }),
    }
}

/// Text of a tool's output: UTF-16LE when it looks like it (`wsl.exe`
/// without `WSL_UTF8=1`), UTF-8 otherwise.
pub(crate) fn decode_output(bytes: &[u8]) -> String {
    let utf16 = bytes.starts_with(&[0xFF, 0xFE]) || looks_like_utf16le(bytes);
    if !utf16 {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let body = bytes.strip_prefix(&[0xFF, 0xFE]).unwrap_or(bytes);
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Mostly-ASCII UTF-16LE has a zero in (nearly) every odd byte.
fn looks_like_utf16le(bytes: &[u8]) -> bool {
    if bytes.len() < 2 || !bytes.len().is_multiple_of(2) {
        return false;
    }
    let odd = bytes.len() / 2;
    let zeros = bytes.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    zeros * 4 >= odd * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn decodes_utf16le_with_and_without_a_bom_and_plain_utf8() {
        let text = "There is no distribution with the supplied name.\r\n";
        assert_eq!(decode_output(&utf16le(text)), text);
        let mut with_bom = vec![0xFF, 0xFE];
        with_bom.extend(utf16le("lima-vm1"));
        assert_eq!(decode_output(&with_bom), "lima-vm1");
        assert_eq!(decode_output("lima-vm1\n".as_bytes()), "lima-vm1\n");
        assert_eq!(decode_output("ü".as_bytes()), "ü");
        assert_eq!(decode_output(b""), "");
    }

    #[test]
    fn one_utf16le_character_is_utf16le_and_half_zeros_are_not() {
        assert_eq!(decode_output(&utf16le("y")), "y");
        // Two of four odd bytes zero: binary-ish UTF-8, not UTF-16LE.
        assert!(!looks_like_utf16le(b"a\0b\0cdef"));
        assert!(looks_like_utf16le(&utf16le("abcd")));
        // An odd length is no UTF-16, whatever its zeros.
        assert!(!looks_like_utf16le(b"a\0b\0c"));
    }

    #[test]
    fn the_display_quotes_empty_and_spaced_arguments() {
        let command = ExternalCommand::new("ssh-keygen", "/usr/bin/ssh-keygen")
            .arg("-N")
            .arg("")
            .arg("-f")
            .arg("/a b/user");
        assert_eq!(command.display(), "ssh-keygen -N \"\" -f \"/a b/user\"");
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = ExternalCommand::new("ssh-keygen", "limavm-no-such-program")
            .timeout(Some(Duration::from_secs(5)))
            .run()
            .unwrap_err();
        assert_eq!(err.to_string(), "ssh-keygen not found on PATH");
    }

    #[cfg(unix)]
    #[test]
    fn a_program_that_cannot_run_is_not_a_missing_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ssh-keygen");
        std::fs::write(&file, "not a program").unwrap();
        // No execute bit: EACCES, for root too.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ExternalCommand::new("ssh-keygen", &file)
            .timeout(Some(Duration::from_secs(5)))
            .run()
            .unwrap_err();
        let text = contract::error_chain::chain(&err);
        assert!(text.starts_with("cannot run ssh-keygen: "), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn output_and_status_are_captured() {
        let out = ExternalCommand::new("sh", "sh")
            .arg("-c")
            .arg("echo out; echo err >&2; exit 3")
            .env("LIMAVM_X", "1")
            .timeout(Some(Duration::from_secs(10)))
            .run()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_hung_tree_is_killed_at_the_deadline() {
        use std::time::Instant;
        // sh leaves a grandchild that would hold the pipes for ten minutes.
        // Removed on drop, also when an assertion below fails.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let started = Instant::now();
        let err = ExternalCommand::new("wsl.exe", "sh")
            .arg("-c")
            .arg("echo stuck >&2; sleep 600 & echo $! > \"$0\"; wait")
            .arg(&pid_file)
            .timeout(Some(Duration::from_millis(300)))
            .run()
            .unwrap_err();
        let elapsed = started.elapsed();
        let text = err.to_string();
        assert!(
            text.starts_with("wsl.exe did not finish within 300ms"),
            "{text}"
        );
        assert!(text.contains("stuck"), "{text}");
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        let grandchild: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while proctree::is_alive(grandchild) {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            std::thread::yield_now();
        }
    }
}
