//! The cross-path matrix: every fault through every stop path ends clean.

use harness::{Binaries, ReferenceSettings, Sandbox};
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
        let ctx = Ctx::new(&sandbox, ReferenceSettings::fast());
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
