//! The few things the reconciler itself does differently per platform
//! (signals, groups and kills live in `proctree`).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
