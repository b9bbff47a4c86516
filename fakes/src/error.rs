//! How a fake fails: a usage error (exit 2) or the tool's own failure.

use crate::plan::PlanError;
use contract::exit;

/// The exit code of OpenSSH's `fatal()` (`cleanup_exit(255)`, OpenSSH's
/// log.c), which `ssh` and `ssh-keygen` end with on a fatal error.
pub(crate) const OPENSSH_FATAL: i32 = 255;

/// Why a fake failed; printed with [`chain`], it exits with [`FakeError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum FakeError {
    /// A bad command line, fault plan or state file: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The fault plan cannot be read, parsed or counted: exit code 2.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The tool failed the way the real one would: its message and code.
    #[error("{message}")]
    Failed { code: i32, message: String },
}

impl FakeError {
    /// A usage error, prefixed with the tool so the message says who refused.
    pub(crate) fn usage(tool: &str, message: impl std::fmt::Display) -> Self {
        FakeError::Usage(format!("{tool} (limavm fake): {message}"))
    }

    /// A failure with exit code 1.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        FakeError::Failed {
            code: exit::FAILURE,
            message: message.into(),
        }
    }

    /// The code the fake exits with: 2 for usage and plan errors, the
    /// failure's own code otherwise.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            FakeError::Usage(_) | FakeError::Plan(_) => exit::USAGE,
            FakeError::Failed { code, .. } => *code,
        }
    }
}

/// An OS error as the C library words it (`strerror`), without Rust's
/// `(os error N)` suffix: the real tools print it that way, on Windows too
/// (OpenSSH for Windows words errors through its POSIX layer, not with
/// Windows' "The system cannot find the file specified."), so the common
/// kinds have fixed words.
pub(crate) fn os_error_text(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let words = match error.kind() {
        ErrorKind::NotFound => Some("No such file or directory"),
        ErrorKind::AddrInUse => Some("Address already in use"),
        ErrorKind::PermissionDenied => Some("Permission denied"),
        ErrorKind::AlreadyExists => Some("File exists"),
        _ => None,
    };
    if let (Some(words), Some(_)) = (words, error.raw_os_error()) {
        return words.to_owned();
    }
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
