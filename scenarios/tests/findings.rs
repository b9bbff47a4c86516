//! Every finding of the catalogue is two tests, generated from it:
//! `ID::fixed` (the scenario passes and leaves nothing behind) and
//! `ID::regressed` (the scenario fails with the finding's own switch on, and
//! its message names the symptom). A finding that cannot run on this OS is
//! listed as ignored, with why.
//!
//! A custom test harness (`harness = false`, libtest-mimic) speaks the
//! libtest protocol nextest uses to list and run single tests, so adding a
//! finding to the catalogue adds its tests here.

use harness::Binaries;
use libtest_mimic::{Arguments, Failed, Trial};
use scenarios::catalogue::{CATALOGUE, Finding};
use scenarios::runner::{RunConfig, Variant, Verdict, run_finding};

fn config() -> RunConfig {
    RunConfig::new(Binaries::multicall(
        env!("CARGO_BIN_EXE_reproduce").as_ref(),
    ))
}

/// Runs one variant of `finding`; fails with the verdict and its message
/// when the outcome is not the one the variant expects.
fn run(finding: &'static Finding, variant: Variant) -> Result<(), Failed> {
    let outcome = run_finding(finding, variant, &config());
    let expected = match variant {
        Variant::Fixed => matches!(outcome.verdict, Verdict::Passed | Verdict::Unsupported),
        Variant::Regressed => {
            matches!(outcome.verdict, Verdict::Reproduced | Verdict::Unsupported)
        }
    };
    if expected {
        Ok(())
    } else {
        Err(format!(
            "{} {variant:?}: {:?}: {}",
            finding.id, outcome.verdict, outcome.message
        )
        .into())
    }
}

fn trials() -> Vec<Trial> {
    CATALOGUE
        .iter()
        .flat_map(|finding| {
            [("fixed", Variant::Fixed), ("regressed", Variant::Regressed)].map(|(name, variant)| {
                Trial::test(format!("{}::{name}", finding.id), move || {
                    run(finding, variant)
                })
                .with_ignored_flag(finding.unsupported_here.is_some())
            })
        })
        .collect()
}

fn main() {
    libtest_mimic::run(&Arguments::from_args(), trials()).exit();
}
