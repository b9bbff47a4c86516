//! Running one finding's scenario in a fresh sandbox, fixed or regressed,
//! and judging the outcome.

use crate::catalogue::Finding;
use crate::context::{Ctx, ScenarioError};
use harness::{Binaries, LeakReport, ReferenceSettings, Sandbox, Target, Toolset, WaitSplit};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// No regression switch: the scenario must pass and leave nothing behind.
    Fixed,
    /// The finding's own switch: the scenario must fail, naming the symptom.
    Regressed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    Failed,
    Reproduced,
    NotReproduced,
    HarnessError,
    Unsupported,
}

impl Verdict {
    /// True when the outcome is what the catalogue expects.
    pub fn as_expected(self) -> bool {
        matches!(
            self,
            Verdict::Passed | Verdict::Reproduced | Verdict::Unsupported
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Passed => "pass",
            Verdict::Failed => "FAIL",
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "NOT REPRODUCED",
            Verdict::HarnessError => "HARNESS ERROR",
            Verdict::Unsupported => "unsupported",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub variant: Variant,
    pub verdict: Verdict,
    /// The symptom, the failure, or why it could not run.
    pub message: String,
    #[serde(skip)]
    pub leaks: LeakReport,
    pub leaked: String,
    pub duration: Duration,
    /// `duration` split into waiting on configured timeouts, on margins,
    /// and everything else (see [`harness::waits`]).
    #[serde(skip)]
    pub waits: WaitSplit,
}

/// What a run needs besides the finding.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub binaries: Binaries,
    pub toolset: Toolset,
    pub settings: ReferenceSettings,
    pub target: Target,
}

impl RunConfig {
    pub fn new(binaries: Binaries) -> Self {
        Self {
            binaries,
            toolset: Toolset::fakes(),
            settings: ReferenceSettings::fast(),
            target: Target::Reference,
        }
    }

    /// The same, with `toolset` and the settings it needs.
    pub fn with_toolset(mut self, toolset: Toolset) -> Self {
        self.settings = self.settings.for_toolset(&toolset);
        self.toolset = toolset;
        self
    }
}

/// How long processes get to go after a scenario before they count as
/// leaked.
const LEAK_SETTLE: Duration = Duration::from_secs(3);

/// Runs `finding`'s scenario as `variant` in a sandbox of its own and
/// judges it; the outcome carries its time, split by what it waited on.
pub fn run_finding(finding: &Finding, variant: Variant, config: &RunConfig) -> Outcome {
    let (mut outcome, split) = harness::waits::measure(|| run(finding, variant, config));
    let waited = split.timeouts + split.margins;
    outcome.waits = WaitSplit {
        other: outcome.duration.saturating_sub(waited),
        ..split
    };
    outcome
}

fn run(finding: &Finding, variant: Variant, config: &RunConfig) -> Outcome {
    let started = Instant::now();
    let outcome = |verdict, message: String, leaks: LeakReport| Outcome {
        id: finding.id.id(),
        variant,
        verdict,
        message,
        leaked: if leaks.is_clean() {
            String::new()
        } else {
            leaks.to_string()
        },
        leaks,
        duration: started.elapsed(),
        waits: WaitSplit::default(),
    };
    let scenario = match finding.scenario_for_target(&config.toolset, &config.target) {
        Ok(scenario) => scenario,
        Err(reason) => {
            return outcome(
                Verdict::Unsupported,
                reason.to_owned(),
                LeakReport::default(),
            );
        }
    };
    let resolved = config.target.settings(config.settings.clone());
    if let Some(why) = finding.needs.iter().find_map(|n| n.unmet(&resolved)) {
        return outcome(Verdict::Unsupported, why, LeakReport::default());
    }
    let sandbox = match Sandbox::with_toolset(&config.binaries, config.toolset.clone()) {
        Ok(sandbox) => sandbox,
        Err(e) => return outcome(Verdict::HarnessError, e.to_string(), LeakReport::default()),
    };
    let mut settings = config.settings.clone();
    if variant == Variant::Regressed {
        settings = settings.with_regression(finding.id);
        // A regressed service may be stuck for good, and what it leaves is
        // not judged: give it no more than one graceful wait to go.
        settings.drop_shutdown_timeout = settings.graceful_timeout;
    }
    let result = {
        // The fakes refuse a plan that is named but gone: once it is, the
        // run is the harness's failure whatever the reconciler does next.
        let plan = sandbox.plan_path();
        let _plan_removed = crate::steps::end_waits_when(move || plan_removed(&plan));
        let ctx = Ctx::for_target(&sandbox, settings, config.target.clone());
        catch_unwind(AssertUnwindSafe(|| scenario(&ctx))).unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(ScenarioError::Harness(format!(
                "the scenario panicked: {text}"
            )))
        })
    };
    // The fakes refuse a plan that is named but gone: every tool call after
    // that failed for the harness's sake, not the reconciler's.
    let result = match plan_removed(&sandbox.plan_path()) {
        Some(removed) => Err(ScenarioError::Harness(removed)),
        None => result,
    };
    // A regressed run is expected to leave things behind: no point waiting
    // for them to go.
    let leaks = match variant {
        Variant::Fixed => {
            let report = harness::waits::timed(Duration::ZERO, || {
                let report = sandbox.settled_leak_report(LEAK_SETTLE);
                if report.is_clean() {
                    Ok(report)
                } else {
                    Err(report)
                }
            });
            report.unwrap_or_else(|report| report)
        }
        Variant::Regressed => sandbox.leak_report(),
    };
    let (verdict, message) = judge(finding, variant, result, &leaks);
    if !verdict.as_expected() {
        keep_artifacts(&sandbox, finding.id.id(), variant);
    }
    drop(sandbox);
    outcome(verdict, message, leaks)
}

/// Says so when the fault plan at `plan` is gone.
fn plan_removed(plan: &std::path::Path) -> Option<String> {
    (!plan.exists()).then(|| {
        format!(
            "the fault plan {} was removed during the run",
            plan.display()
        )
    })
}

/// Environment variable naming a directory where the journal and logs of
/// every run that did not go as expected are copied (CI uploads it).
pub const ARTIFACTS_ENV: &str = "LIMAVM_ARTIFACTS_DIR";

fn keep_artifacts(sandbox: &Sandbox, id: &str, variant: Variant) {
    let Some(dir) = std::env::var_os(ARTIFACTS_ENV) else {
        return;
    };
    let dest = std::path::Path::new(&dir).join(format!("{id}-{variant:?}").to_lowercase());
    if std::fs::create_dir_all(&dest).is_err() {
        return;
    }
    let state = sandbox.state_dir();
    for (from, name) in [
        (sandbox.journal_path(), "journal.jsonl"),
        (sandbox.plan_path(), "faults.json"),
        (state.join("reconciler.log"), "reconciler.log"),
        (state.join("service.out.log"), "service.out.log"),
    ] {
        let _ = std::fs::copy(from, dest.join(name));
    }
}

fn judge(
    finding: &Finding,
    variant: Variant,
    result: Result<(), ScenarioError>,
    leaks: &LeakReport,
) -> (Verdict, String) {
    match (variant, result) {
        (_, Err(ScenarioError::Harness(m))) => (Verdict::HarnessError, m),
        (Variant::Fixed, Ok(())) if leaks.is_clean() => (Verdict::Passed, String::new()),
        (Variant::Fixed, Ok(())) if leaks.processes.is_empty() && leaks.ports.is_empty() => {
            // Only invariants broke: the report says "invariant broken: ...".
            (Verdict::Failed, leaks.to_string())
        }
        (Variant::Fixed, Ok(())) => (Verdict::Failed, format!("leaked: {leaks}")),
        (Variant::Fixed, Err(ScenarioError::Symptom(m))) => (Verdict::Failed, m),
        (Variant::Regressed, Err(ScenarioError::Symptom(m))) if finding.names_symptom(&m) => {
            (Verdict::Reproduced, m)
        }
        (Variant::Regressed, Err(ScenarioError::Symptom(m))) => (
            Verdict::NotReproduced,
            format!("failed, but not with the finding's symptom: {m}"),
        ),
        (Variant::Regressed, Ok(())) => (
            Verdict::NotReproduced,
            "the scenario passed with the regression switched on".to_owned(),
        ),
    }
}
