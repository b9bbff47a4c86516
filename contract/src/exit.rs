//! Exit codes of the project's command lines.

/// Success.
pub const OK: i32 = 0;
/// The command ran and failed (the service failed, a scenario did not
/// reproduce, a `ctl` request was refused).
pub const FAILURE: i32 = 1;
/// The command line or its configuration is invalid (clap's usage-error
/// code).
pub const USAGE: i32 = 2;

/// The exit codes a process can return on this platform: Unix keeps the
/// low 8 bits of the status (so 256 would read as 0 and -1 as 255);
/// Windows keeps all 32.
pub const RANGE: std::ops::RangeInclusive<i32> = if cfg!(windows) {
    i32::MIN..=i32::MAX
} else {
    0..=255
};
