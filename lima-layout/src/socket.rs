//! Unix domain sockets on every platform (Windows 10 and later has AF_UNIX).

#[cfg(unix)]
pub(crate) use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(windows)]
pub(crate) use uds_windows::{UnixListener, UnixStream};
