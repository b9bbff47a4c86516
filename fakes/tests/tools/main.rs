//! The fakes run as real processes under their tool names, one module per
//! personality. One test binary keeps linking cheap.

mod hostagent;
mod keygen;
mod keygen_fidelity;
mod multicall;
mod qemu;
mod sandbox;
mod ssh;
#[cfg(unix)]
mod start_foreground;
mod wsl;
