//! Against real Lima (`just real-lima-install`): the blank-disk template
//! really runs, the fakes behave as the real tools do where both exist, and
//! the findings that can run on real Lima do. Without real Lima every test
//! skips, saying why, unless `CI=true`: then it fails.
//!
//! Real Lima here runs on Linux and macOS only.
#![cfg(unix)]

mod fidelity;
mod guest;
mod lifecycle;
mod matrix;
mod strict;
mod support;
mod template;
