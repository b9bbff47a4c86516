//! One executable, many roles: installed under a tool's name it is that
//! fake; as `limavm-reconciler` it is the reference reconciler. A sandbox
//! built from this one binary needs nothing else.
//!
//! This package is the only one that links the reference reconciler and the
//! fakes next to the scenarios: the `scenarios` library depends on neither,
//! so a scenario can drive the reconciler only the way it drives any other,
//! through the harness.

use std::path::Path;

/// Runs the role `argv[0]` names, if it names one; returns its exit code.
pub fn dispatch() -> Option<i32> {
    let argv0 = std::env::args().next().unwrap_or_default();
    if fakes::is_fake_process() {
        return Some(fakes::run_multicall());
    }
    if Path::new(&argv0)
        .file_stem()
        .is_some_and(|stem| stem == "limavm-reconciler")
    {
        return Some(reconciler::cli_main());
    }
    None
}
