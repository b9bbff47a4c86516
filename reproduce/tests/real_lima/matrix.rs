//! Every finding through `run_finding` with `--toolset real`, as
//! `reproduce --toolset real` runs it: the ones real Lima can show, fixed
//! and regressed; the others report unsupported with their reason.

use crate::support::{binaries, real_lima_here};
use harness::Toolset;
use rstest::rstest;
use scenarios::catalogue::{self, OnRealLima};
use scenarios::runner::{RunConfig, Variant, Verdict, run_finding};

fn real_config() -> RunConfig {
    RunConfig::new(binaries()).with_toolset(Toolset::real_lima())
}

/// The findings whose real-Lima scenario uses the blank disk.
#[rstest]
#[case::bracketed_home_path("bracketed-home-path")]
#[case::orphan_recovery_skips_graceful("orphan-recovery-skips-graceful")]
#[case::missing_public_key("missing-public-key")]
#[case::disk_lock_leak("disk-lock-leak")]
#[case::ignored_signal_fallback("ignored-signal-fallback")]
#[case::key_mode_unrepaired("key-mode-unrepaired")]
#[case::delete_blocker_unnamed("delete-blocker-unnamed")]
#[case::shutdown_fallback_skips_cleanup("shutdown-fallback-skips-cleanup")]
fn on_real_lima(#[case] id: &str, #[values(Variant::Fixed, Variant::Regressed)] variant: Variant) {
    run_on_real_lima(id, variant);
}

/// The findings whose real-Lima scenario boots the real guest (a boot
/// takes 13-26 s under TCG): the nextest profile `real-guest` runs every
/// test named `on_the_real_guest`, not `ci` (`.config/nextest.toml`).
/// recycled-pid-kill boots it for its second phase, a running instance.
#[rstest]
#[case::console_group_signal("console-group-signal")]
#[case::spawn_attributes_overwritten("spawn-attributes-overwritten")]
#[case::degraded_not_reported("degraded-not-reported")]
#[case::recycled_pid_kill("recycled-pid-kill")]
fn on_the_real_guest(
    #[case] id: &str,
    #[values(Variant::Fixed, Variant::Regressed)] variant: Variant,
) {
    run_on_real_lima(id, variant);
}

fn run_on_real_lima(id: &str, variant: Variant) {
    if !real_lima_here() {
        return;
    }
    let finding = catalogue::find(id).unwrap();
    let outcome = run_finding(finding, variant, &real_config());
    let expected = match variant {
        Variant::Fixed => Verdict::Passed,
        Variant::Regressed => Verdict::Reproduced,
    };
    assert_eq!(
        outcome.verdict, expected,
        "{id} {variant:?} on real Lima: {} {}",
        outcome.message, outcome.leaked
    );
}

/// `fixtures/targets/reference-ctl.toml` gives the built-in target's
/// verdicts on real Lima too: its `real_lima_args` pass
/// `--hostagent-entry=start-foreground`, without which real Lima never
/// reaches Running.
#[rstest]
#[case::missing_public_key("missing-public-key")]
fn the_ctl_target_file_on_real_lima(
    #[case] id: &str,
    #[values(Variant::Fixed, Variant::Regressed)] variant: Variant,
) {
    run_through_the_ctl_target(id, variant);
}

/// As [`the_ctl_target_file_on_real_lima`], for a finding that boots the
/// real guest.
#[rstest]
#[case::console_group_signal("console-group-signal")]
fn the_ctl_target_file_on_the_real_guest(
    #[case] id: &str,
    #[values(Variant::Fixed, Variant::Regressed)] variant: Variant,
) {
    run_through_the_ctl_target(id, variant);
}

fn run_through_the_ctl_target(id: &str, variant: Variant) {
    if !real_lima_here() {
        return;
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/targets/reference-ctl.toml"
    );
    let mut config = real_config();
    config.target = harness::Target::parse(path).unwrap_or_else(|e| panic!("{e}"));
    let finding = catalogue::find(id).unwrap();
    let outcome = run_finding(finding, variant, &config);
    let expected = match variant {
        Variant::Fixed => Verdict::Passed,
        Variant::Regressed => Verdict::Reproduced,
    };
    assert_eq!(
        outcome.verdict, expected,
        "{id} {variant:?} through reference-ctl.toml on real Lima: {} {}",
        outcome.message, outcome.leaked
    );
}

#[test]
fn the_matrix_covers_every_finding_real_lima_can_run() {
    let source = include_str!("matrix.rs");
    for finding in catalogue::CATALOGUE {
        let listed = source.contains(&format!("(\"{}\")", finding.id));
        let runs = !matches!(finding.on_real_lima, OnRealLima::NeedsFakes(_));
        assert_eq!(listed, runs, "finding {}", finding.id);
    }
}

#[test]
fn findings_that_need_the_fakes_say_why_without_starting_anything() {
    for finding in catalogue::CATALOGUE {
        let OnRealLima::NeedsFakes(reason) = finding.on_real_lima else {
            continue;
        };
        for variant in [Variant::Fixed, Variant::Regressed] {
            let outcome = run_finding(finding, variant, &real_config());
            assert_eq!(outcome.verdict, Verdict::Unsupported, "{}", finding.id);
            assert_eq!(outcome.message, reason);
        }
    }
}
