//! Annotations of the reference reconciler's LimaVM resource.

/// Asks for a restart of the VM: when its value differs from the one the
/// running hostagent was started under (any text; the harness writes an
/// RFC 3339 time), the reconciler stops that hostagent gracefully and
/// starts a new one with the same template. Like rancher-desktop-daemon's
/// `lima.rancherdesktop.io/restartRequested`, a metadata change: it does
/// not bump `metadata.generation`.
pub const RESTART_REQUESTED: &str = "limavm.dev/restartRequested";
