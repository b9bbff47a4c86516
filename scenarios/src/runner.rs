//! Running one finding's scenario in a fresh sandbox, fixed or regressed,
//! and judging the outcome.

use crate::catalogue::Finding;
use crate::context::{Ctx, ScenarioError};
use contract::FindingId;
use harness::defects::{Defect, Seen};
use harness::{Binaries, DriverSettings, LeakReport, Sandbox, Target, Toolset, WaitSplit};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
/// Which reconciler build a finding's scenario runs against.
pub enum Variant {
    /// No regression switch: the scenario must pass and leave nothing behind.
    Fixed,
    /// The finding's own switch: the scenario must fail, naming the symptom.
    Regressed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
/// What one run came to.
pub enum Verdict {
    /// A fixed run's scenario passed and left nothing behind.
    Passed,
    /// A fixed run failed: its check, or something it left or broke.
    Failed,
    /// A regressed run failed naming its finding's symptom.
    Reproduced,
    /// A regressed run passed, or failed without the symptom.
    NotReproduced,
    /// The harness could not do its part; says nothing of the reconciler.
    HarnessError,
    /// The scenario cannot run on this OS, toolset or target.
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

    /// The verdict as the reports print it: `pass`, `FAIL`, `reproduced`,
    /// `NOT REPRODUCED`, `HARNESS ERROR` or `unsupported` (capitals for
    /// the unexpected).
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

/// A defect a run found beyond its own finding's check: a finding of the
/// catalogue or an invariant, by ID ([`harness::defects::Defect::id`]),
/// with what was seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Also {
    /// The defect's ID.
    pub id: String,
    /// What was seen.
    pub message: String,
}

/// One run of a finding's scenario, judged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The finding's ID.
    pub id: &'static str,
    /// Fixed or regressed.
    pub variant: Variant,
    /// What the run came to.
    pub verdict: Verdict,
    /// The symptom, the failure, or why it could not run.
    pub message: String,
    /// True when the finding's own check ran and passed (a fixed run may
    /// fail all the same, for what [`Outcome::also`] names).
    pub check_passed: bool,
    /// Defects of other findings and invariants seen in this run (fixed
    /// runs only): what the service's shutdown left running, a follow-on
    /// check of another finding's kind, a broken invariant.
    pub also: Vec<Also>,
    /// What the run left behind: processes, ports, broken invariants.
    #[serde(skip)]
    pub leaks: LeakReport,
    /// `leaks` as text; empty when clean.
    pub leaked: String,
    /// The run's time, from its start to its judgement.
    pub duration: Duration,
    /// `duration` split into waiting on configured timeouts, on margins,
    /// and everything else (see [`harness::waits`]).
    #[serde(skip)]
    pub waits: WaitSplit,
}

#[cfg(test)]
impl Outcome {
    /// A run of finding `id` that took 1.5 s and left nothing: reports'
    /// and audits' tests build their inputs from it.
    pub(crate) fn for_test(
        id: &'static str,
        variant: Variant,
        verdict: Verdict,
        message: &str,
    ) -> Self {
        Outcome {
            id,
            variant,
            verdict,
            message: message.into(),
            check_passed: false,
            also: Vec::new(),
            leaks: Default::default(),
            leaked: String::new(),
            duration: Duration::from_millis(1500),
            waits: Default::default(),
        }
    }
}

/// What a run needs besides the finding.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where the reconciler under test and the fakes are.
    pub binaries: Binaries,
    /// The tools on the sandbox's PATH: the fakes, or real Lima.
    pub toolset: Toolset,
    /// The reconciler's settings (a target's fixed timeouts replace them).
    pub settings: DriverSettings,
    /// The reconciler under test.
    pub target: Target,
}

impl RunConfig {
    /// The reference reconciler of `binaries` with the fakes and fast
    /// settings ([`DriverSettings::fast`]).
    pub fn new(binaries: Binaries) -> Self {
        Self {
            binaries,
            toolset: Toolset::fakes(),
            settings: DriverSettings::fast(),
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
        check_passed: false,
        also: Vec::new(),
        leaked: if leaks.is_clean() {
            String::new()
        } else {
            leaks.to_string()
        },
        leaks,
        duration: started.elapsed(),
        waits: WaitSplit::default(),
    };
    let scenario = match runnable(finding, config) {
        Ok(scenario) => scenario,
        Err(why) => return outcome(Verdict::Unsupported, why, LeakReport::default()),
    };
    let sandbox = match Sandbox::with_toolset(&config.binaries, config.toolset.clone()) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            let message = contract::error_chain::chain(&e);
            return outcome(Verdict::HarnessError, message, LeakReport::default());
        }
    };
    let settings = settings_for(finding, variant, config);
    let result = run_scenario(&sandbox, scenario, settings, &config.target);
    let leaks = leaks_after(&sandbox, variant);
    let (result, also) = match variant {
        Variant::Fixed => seen_beyond_check(finding, result, &sandbox, &leaks),
        // A regressed run's knock-on defects are the switch's, not news.
        Variant::Regressed => (result, Vec::new()),
    };
    let check_passed = result.is_ok();
    let (verdict, message) = judge(finding, variant, result, &also);
    if !verdict.as_expected() {
        keep_artifacts(&sandbox, finding.id.id(), variant);
    }
    drop(sandbox);
    Outcome {
        check_passed,
        also: also
            .into_iter()
            .map(|s| Also {
                id: s.defect.id().to_owned(),
                message: s.message,
            })
            .collect(),
        ..outcome(verdict, message, leaks)
    }
}

/// The scenario to run for `finding` under `config`, or why it cannot run
/// there: the toolset or target lacks what it needs, or a timeout the
/// target fixes is not below what the scenario needs.
fn runnable(finding: &Finding, config: &RunConfig) -> Result<Scenario, String> {
    let scenario = finding.scenario_for_target(&config.toolset, &config.target)?;
    let resolved = config.target.settings(config.settings.clone());
    match finding.needs.iter().find_map(|n| n.unmet(&resolved)) {
        Some(why) => Err(why),
        None => Ok(scenario),
    }
}

/// A scenario of the catalogue.
type Scenario = fn(&Ctx) -> crate::ScenarioResult;

/// The settings of `variant`'s run: a regressed run has the finding's
/// switch on.
fn settings_for(finding: &Finding, variant: Variant, config: &RunConfig) -> DriverSettings {
    let mut settings = config.settings.clone();
    if variant == Variant::Regressed {
        settings = settings.with_regression(finding.id);
        // A regressed service may be stuck for good, and what it leaves is
        // not judged: give it no more than one graceful wait to go.
        settings.drop_shutdown_timeout = settings.graceful_timeout;
    }
    settings
}

/// Runs `scenario` in `sandbox`; a panic is the harness's error, and so is
/// any result once the fault plan was removed.
fn run_scenario(
    sandbox: &Sandbox,
    scenario: Scenario,
    settings: DriverSettings,
    target: &Target,
) -> Result<(), ScenarioError> {
    let result = {
        // The fakes refuse a plan that is named but gone: once it is, the
        // run is the harness's failure whatever the reconciler does next.
        let plan = sandbox.plan_path();
        let _plan_removed = crate::steps::end_waits_when(move || plan_removed(&plan));
        let ctx = Ctx::for_target(sandbox, settings, target.clone());
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
    match plan_removed(&sandbox.plan_path()) {
        Some(removed) => Err(ScenarioError::Harness(removed)),
        None => result,
    }
}

/// What the run left: a fixed run's processes get [`LEAK_SETTLE`] to go; a
/// regressed run is expected to leave things behind, so no point waiting
/// for them.
fn leaks_after(sandbox: &Sandbox, variant: Variant) -> LeakReport {
    match variant {
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
    }
}

/// A fixed run's result with its own follow-on checks folded in, and the
/// defects it saw beyond its check: what was left running, left on disk,
/// and the invariants broken. A follow-on check of the run's own kind is
/// its check; what was left and what broke stay apart, also when they are
/// its own finding's (the audit makes that row PRESENT).
fn seen_beyond_check(
    finding: &Finding,
    result: Result<(), ScenarioError>,
    sandbox: &Sandbox,
    leaks: &LeakReport,
) -> (Result<(), ScenarioError>, Vec<Seen>) {
    let found = sandbox.witness().found_defects();
    let owned_by_shutdown = sandbox.witness().owned_by_shutdown();
    let (result, mut also) = fold_own(finding, result, found);
    also.extend(leftovers(finding, leaks, &owned_by_shutdown));
    if leaks.processes.is_empty() {
        also.extend(left_files(sandbox));
    }
    also.extend(leaks.broken.iter().map(|b| Seen {
        defect: Defect::Invariant(b.invariant),
        message: b.message.clone(),
    }));
    (result, also)
}

/// What a fixed run left running (processes, ports) as the defect of the
/// path that left it: the service's shutdown when it had VMs to stop (any
/// not reported Stopped when it began), the scenario's own otherwise.
fn leftovers(finding: &Finding, leaks: &LeakReport, owned_by_shutdown: &[String]) -> Option<Seen> {
    if leaks.processes.is_empty() && leaks.ports.is_empty() {
        return None;
    }
    let left = LeakReport {
        broken: Vec::new(),
        ..leaks.clone()
    };
    Some(if owned_by_shutdown.is_empty() {
        Seen {
            defect: Defect::Finding(finding.id),
            message: format!("left running after its scenario, every VM stopped: {left}"),
        }
    } else {
        Seen {
            defect: Defect::Finding(FindingId::ShutdownFallbackSkipsCleanup),
            message: format!(
                "still running after the service's shutdown, which had VM {} to stop: {left}",
                owned_by_shutdown.join(", ")
            ),
        }
    })
}

/// What the run left on disk once nothing of it runs, by kind whichever
/// path left it (nothing runs, so every kill was done and a cleanup step
/// failed): tmp files in an instance directory (a stop removes them all:
/// `bracketed-home-path`'s kind) and disks still marked in use by one of
/// the run's instances (`disk-lock-leak`'s).
fn left_files(sandbox: &Sandbox) -> Vec<Seen> {
    let home = sandbox.lima_home();
    let ours = sandbox.witness().instances_seen();
    let tmp: Vec<String> = ours
        .iter()
        .filter_map(|name| {
            let files = crate::checks::tmp_files(&home.instance(name));
            (!files.is_empty()).then(|| {
                format!(
                    "{}: {}",
                    home.instance(name).dir.display(),
                    files.join(", ")
                )
            })
        })
        .collect();
    // A scenario may plant marks of instances it made up.
    let marked: Vec<String> = std::fs::read_dir(home.path().join("_disks"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|disk| disk.file_name().to_string_lossy().into_owned())
        .filter(|disk| {
            std::fs::read_link(home.disk_in_use_by(disk))
                .ok()
                .and_then(|to| to.file_name().map(|n| n.to_string_lossy().into_owned()))
                .is_some_and(|owner| ours.contains(&owner))
        })
        .collect();
    let mut seen = Vec::new();
    if !tmp.is_empty() {
        seen.push(Seen {
            defect: Defect::Finding(FindingId::BracketedHomePath),
            message: format!(
                "tmp files left in {} once nothing of the run ran",
                tmp.join("; ")
            ),
        });
    }
    if !marked.is_empty() {
        seen.push(Seen {
            defect: Defect::Finding(FindingId::DiskLockLeak),
            message: format!(
                "_disks/{{{}}}/in_use_by still present once nothing of the run ran",
                marked.join(",")
            ),
        });
    }
    seen
}

/// The defects `found` that are the run's own finding's turn into its
/// result (the first, when its own check passed); the rest stay apart.
fn fold_own(
    finding: &Finding,
    result: Result<(), ScenarioError>,
    found: Vec<Seen>,
) -> (Result<(), ScenarioError>, Vec<Seen>) {
    let own = Defect::Finding(finding.id);
    let (mine, others): (Vec<Seen>, Vec<Seen>) = found.into_iter().partition(|s| s.defect == own);
    let result = match (result, mine.into_iter().next()) {
        (Ok(()), Some(seen)) => Err(ScenarioError::Symptom(seen.message)),
        (result, _) => result,
    };
    (result, others)
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

/// The verdict and its message; `also` (fixed runs) fails a run whose own
/// check passed, naming each defect by its ID.
fn judge(
    finding: &Finding,
    variant: Variant,
    result: Result<(), ScenarioError>,
    also: &[Seen],
) -> (Verdict, String) {
    match (variant, result) {
        (_, Err(ScenarioError::Harness(m))) => (Verdict::HarnessError, m),
        (Variant::Fixed, Ok(())) if also.is_empty() => (Verdict::Passed, String::new()),
        (Variant::Fixed, Ok(())) => (
            Verdict::Failed,
            format!(
                "the finding's check passed, but {}",
                also.iter()
                    .map(|s| format!("{}: {}", s.defect.id(), s.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use harness::invariants::Invariant;
    use harness::leaks::{LeakedPort, LeakedProcess};

    fn finding(id: &str) -> &'static Finding {
        crate::catalogue::find(id).unwrap()
    }

    fn left_running() -> LeakReport {
        LeakReport {
            processes: vec![LeakedProcess {
                pid: 42,
                name: "qemu-system-x86".into(),
                cmd: "qemu-system-x86_64 -name lima-vm".into(),
            }],
            ports: vec![LeakedPort {
                port: 60022,
                pid: 42,
                tool: "qemu".into(),
            }],
            broken: Vec::new(),
        }
    }

    #[test]
    fn what_the_shutdown_left_is_its_finding_and_what_a_stop_left_is_the_runs() {
        let own = finding("ignored-signal-fallback");
        let shutdown = leftovers(own, &left_running(), &["vm".to_owned()]).unwrap();
        assert_eq!(
            shutdown.defect,
            Defect::Finding(FindingId::ShutdownFallbackSkipsCleanup)
        );
        assert!(
            shutdown
                .message
                .starts_with("still running after the service's shutdown")
                && shutdown.message.contains("VM vm to stop")
                && shutdown.message.contains("qemu-system-x86 (pid 42)"),
            "{}",
            shutdown.message
        );
        assert!(FindingId::ShutdownFallbackSkipsCleanup.names_symptom(&shutdown.message));
        let stop = leftovers(own, &left_running(), &[]).unwrap();
        assert_eq!(stop.defect, Defect::Finding(own.id));
        assert!(leftovers(own, &LeakReport::default(), &["vm".to_owned()]).is_none());
    }

    #[test]
    fn a_defect_of_the_runs_own_finding_is_its_result_and_the_others_stay_apart() {
        let own = finding("bracketed-home-path");
        let seen = |defect, message: &str| Seen {
            defect,
            message: message.to_owned(),
        };
        let found = vec![
            seen(Defect::Finding(own.id), "tmp files left in /l/vm: ha.sock"),
            seen(
                Defect::Invariant(Invariant::StoppedIsTrue),
                "Stopped is true: ...",
            ),
        ];
        let (result, others) = fold_own(own, Ok(()), found.clone());
        assert_eq!(
            result,
            Err(ScenarioError::Symptom(
                "tmp files left in /l/vm: ha.sock".into()
            ))
        );
        assert_eq!(others, found[1..]);
        // A failed check of its own stays the result.
        let failed = Err(ScenarioError::Symptom("its own symptom".into()));
        let (result, _) = fold_own(own, failed.clone(), found);
        assert_eq!(result, failed);
        // A fixed run whose check passed fails for what else it saw,
        // naming each by its ID.
        let (verdict, message) = judge(own, Variant::Fixed, Ok(()), &others);
        assert_eq!(verdict, Verdict::Failed);
        assert!(
            message.starts_with("the finding's check passed, but stopped-is-true: "),
            "{message}"
        );
    }
}
