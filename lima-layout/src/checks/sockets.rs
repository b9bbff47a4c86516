//! How long an instance directory may be: Lima puts Unix sockets in it,
//! and a socket path must fit `sun_path`.
//!
//! Lima v2.2.0 refuses a path of `UNIX_PATH_MAX` bytes or more
//! (`pkg/osutil`: 108 on Linux and Windows, 104 elsewhere). `create`
//! measures the instance directory with the longest socket name it will
//! ever make (`pkg/instance/create.go:Create`, `filenames.LongestSock`);
//! the hostagent of `start` measures it with `ssh.sock`
//! (`pkg/sshutil/sshutil.go:SSHOpts`). On Linux that leaves 81 bytes of
//! instance directory for `create` and 98 for `start` (both confirmed
//! against the real `limactl`).

use super::{Refusal, Rule};
use std::path::Path;

/// Lima's `osutil.UnixPathMax`: the size of `sun_path`, its NUL included
/// (bytes).
pub const UNIX_PATH_MAX: usize = if cfg!(any(target_os = "linux", windows)) {
    108
} else {
    104
};

/// The longest socket name `create` makes room for (Lima's
/// `filenames.LongestSock`: `ssh.sock` and a 16-digit suffix of the
/// ControlMaster's temporary socket).
pub const LONGEST_SOCKET_NAME: &str = "ssh.sock.1234567890123456";

/// The ssh ControlMaster socket the hostagent checks (`filenames.SSHSock`).
pub const SSH_SOCKET_NAME: &str = "ssh.sock";

/// Which command's socket rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `limactl create` (or a reconciler that creates the instance
    /// directory itself): rule `socket-path-create`.
    Create,
    /// `limactl start`/`hostagent` of an existing instance: rule
    /// `socket-path-start`.
    Start,
}

impl Stage {
    fn rule(self) -> Rule {
        match self {
            Stage::Create => Rule::SocketPathCreate,
            Stage::Start => Rule::SocketPathStart,
        }
    }

    fn socket_name(self) -> &'static str {
        match self {
            Stage::Create => LONGEST_SOCKET_NAME,
            Stage::Start => SSH_SOCKET_NAME,
        }
    }
}

/// The longest instance directory `stage` accepts, in bytes (on Linux:
/// 81 for create, 98 for start).
pub const fn max_instance_dir_len(stage: Stage) -> usize {
    let socket_name = match stage {
        Stage::Create => LONGEST_SOCKET_NAME,
        Stage::Start => SSH_SOCKET_NAME,
    };
    // dir + "/" + name must stay under UNIX_PATH_MAX.
    UNIX_PATH_MAX - 1 - 1 - socket_name.len()
}

/// Refuses an instance directory that leaves no room for the socket
/// `stage` measures; the refusal names the socket path and the limit.
pub fn check_instance_dir(dir: &Path, stage: Stage) -> Result<(), Refusal> {
    let len = dir.as_os_str().len();
    if len <= max_instance_dir_len(stage) {
        return Ok(());
    }
    let socket = dir.join(stage.socket_name());
    Err(Refusal::new(
        stage.rule(),
        "instanceDir",
        format!(
            "makes the socket path {} {} bytes long, over the limit of {} \
             (UNIX_PATH_MAX={UNIX_PATH_MAX}): the instance directory may have at most {} bytes",
            socket.display(),
            socket.as_os_str().len(),
            UNIX_PATH_MAX - 1,
            max_instance_dir_len(stage)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_limits_are_those_measured_against_real_lima() {
        assert_eq!(max_instance_dir_len(Stage::Create), 81);
        assert_eq!(max_instance_dir_len(Stage::Start), 98);
    }

    #[test]
    fn each_stage_is_checked_at_its_exact_boundary() {
        for stage in [Stage::Create, Stage::Start] {
            let max = max_instance_dir_len(stage);
            let dir = |len: usize| format!("/{}", "d".repeat(len - 1));
            assert_eq!(check_instance_dir(Path::new(&dir(max)), stage), Ok(()));
            let err = check_instance_dir(Path::new(&dir(max + 1)), stage).unwrap_err();
            assert_eq!(err.rule, stage.rule());
            let text = err.to_string();
            assert!(
                text.contains(stage.socket_name()) && text.contains("limit"),
                "{text}"
            );
        }
    }
}
