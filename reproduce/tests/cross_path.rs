//! The cross-path matrix: every fault through every stop path ends clean.

use harness::{Binaries, DriverSettings, Sandbox};
use rstest::rstest;
use scenarios::Ctx;
use scenarios::cross_path::{PathFault, StopPath, stop_through};
use std::time::Duration;

#[rstest]
fn every_stop_path_ends_clean(
    #[values(
        StopPath::RunningFalse,
        StopPath::Restart,
        StopPath::Delete,
        StopPath::ServiceShutdown,
        StopPath::OrphanRecovery,
        StopPath::HostagentDied,
        StopPath::DriverDied
    )]
    path: StopPath,
    #[values(
        PathFault::IgnoresInterrupt,
        PathFault::ReplacesDriver,
        PathFault::PortHolders,
        PathFault::Wsl2Distro,
        PathFault::KeepsChildren,
        PathFault::ControlMasterKept
    )]
    fault: PathFault,
) {
    let binaries = Binaries::multicall(env!("CARGO_BIN_EXE_reproduce").as_ref());
    let sandbox = Sandbox::new(&binaries).expect("sandbox");
    {
        let ctx = Ctx::new(&sandbox, DriverSettings::fast());
        if let Err(e) = stop_through(&ctx, path, fault) {
            panic!(
                "{path:?} under {fault:?}: {e}\njournal tail:\n{}",
                sandbox.journal().tail()
            );
        }
    }
    let leaks = sandbox.settled_leak_report(Duration::from_secs(3));
    assert!(leaks.is_clean(), "{path:?} under {fault:?}: {leaks}");
}

/// Runs the restart-request scenario on `target` with `settings`; after a
/// pass nothing may be left running (the sandbox's drop cleans up after a
/// failure).
fn restart_requested(
    target: harness::Target,
    settings: DriverSettings,
) -> scenarios::ScenarioResult {
    let binaries = Binaries::multicall(env!("CARGO_BIN_EXE_reproduce").as_ref());
    let sandbox = Sandbox::new(&binaries).expect("sandbox");
    let result = {
        let ctx = Ctx::for_target(&sandbox, settings, target);
        scenarios::restart::restart_requested(&ctx)
    };
    let leaks = sandbox.settled_leak_report(Duration::from_secs(3));
    if result.is_ok() {
        assert!(leaks.is_clean(), "{leaks}");
    }
    result
}

#[test]
fn a_requested_restart_stops_the_hostagent_gracefully_and_leaves_nothing_of_it() {
    restart_requested(harness::Target::Reference, DriverSettings::fast())
        .unwrap_or_else(|e| panic!("fixed: {e}"));
    // A reconciler that does not clean up after a graceful exit keeps the
    // old hostagent's forwarders.
    let regressed =
        DriverSettings::fast().with_regression(contract::FindingId::GracefulExitLeftovers);
    let e = restart_requested(harness::Target::Reference, regressed)
        .expect_err("graceful-exit-leftovers switched on: the old forwarders survive");
    assert!(
        e.to_string()
            .contains("a process of the hostagent before the restart"),
        "{e}"
    );
}
