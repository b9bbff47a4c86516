//! Every finding is two tests: `fixed` (the scenario passes and leaves
//! nothing behind) and `regressed` (the scenario fails with the finding's
//! own switch on, and its message names the symptom).

use harness::Binaries;
use rstest::rstest;
use scenarios::catalogue;
use scenarios::runner::{RunConfig, Variant, Verdict, run_finding};

fn config() -> RunConfig {
    RunConfig::new(Binaries::multicall(
        env!("CARGO_BIN_EXE_reproduce").as_ref(),
    ))
}

fn run(id: &str, variant: Variant) -> scenarios::Outcome {
    let finding = catalogue::find(id).unwrap_or_else(|| panic!("{id} is not in the catalogue"));
    run_finding(finding, variant, &config())
}

#[rstest]
#[case::console_group_signal("console-group-signal")]
#[case::orphaned_port_holders("orphaned-port-holders")]
#[case::bracketed_home_path("bracketed-home-path")]
#[case::finalizer_after_failed_delete("finalizer-after-failed-delete")]
#[case::shutdown_fallback_skips_cleanup("shutdown-fallback-skips-cleanup")]
#[case::silent_cleanup_errors("silent-cleanup-errors")]
#[case::spawn_attributes_overwritten("spawn-attributes-overwritten")]
#[case::divergent_shutdown_paths("divergent-shutdown-paths")]
#[case::orphan_recovery_skips_graceful("orphan-recovery-skips-graceful")]
#[case::concurrent_keygen_race("concurrent-keygen-race")]
#[case::partial_key_after_crash("partial-key-after-crash")]
#[case::missing_public_key("missing-public-key")]
#[case::keygen_unbounded("keygen-unbounded")]
#[case::disk_lock_leak("disk-lock-leak")]
#[case::recycled_pid_kill("recycled-pid-kill")]
#[case::ignored_signal_fallback("ignored-signal-fallback")]
#[case::wsl_hang_unbounded("wsl-hang-unbounded")]
#[case::graceful_exit_leftovers("graceful-exit-leftovers")]
#[case::control_master_leftover("control-master-leftover")]
#[case::hostagent_death_leftovers("hostagent-death-leftovers")]
#[case::path_prefix_identity("path-prefix-identity")]
#[case::degraded_not_reported("degraded-not-reported")]
#[case::key_mode_unrepaired("key-mode-unrepaired")]
#[case::crash_loop_fixed_backoff("crash-loop-fixed-backoff")]
#[case::driver_death_unnoticed("driver-death-unnoticed")]
#[case::distro_stop_unnoticed("distro-stop-unnoticed")]
#[case::invalid_lima_name("invalid-lima-name")]
#[case::foreign_disk_lock("foreign-disk-lock")]
#[case::delete_blocker_unnamed("delete-blocker-unnamed")]
fn finding(#[case] id: &str, #[values(Variant::Fixed, Variant::Regressed)] variant: Variant) {
    let outcome = run(id, variant);
    match variant {
        Variant::Fixed => assert!(
            matches!(outcome.verdict, Verdict::Passed | Verdict::Unsupported),
            "{id} fixed: {:?}: {}",
            outcome.verdict,
            outcome.message
        ),
        Variant::Regressed => assert!(
            matches!(outcome.verdict, Verdict::Reproduced | Verdict::Unsupported),
            "{id} regressed: {:?}: {}",
            outcome.verdict,
            outcome.message
        ),
    }
}

#[test]
fn the_matrix_covers_the_whole_catalogue() {
    // The rstest cases above are written out so that test names stay
    // readable; this keeps them in step with the catalogue.
    let source = include_str!("findings.rs");
    for finding in catalogue::CATALOGUE {
        assert!(
            source.contains(&format!("(\"{}\")", finding.id)),
            "finding {} has no test case",
            finding.id
        );
    }
    assert_eq!(catalogue::CATALOGUE.len(), 29);
}
