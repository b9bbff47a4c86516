//! The report as JUnit XML (`reproduce --format junit`), for the test views
//! of CI systems: one test case per finding and variant run (a normal run)
//! or per audit row (an audit), its class name the finding's or
//! invariant's ID, its name the variant (`fixed`, `regressed`; `invariant`
//! for an invariant's row), its time in seconds, and the symptom as the
//! failure message. Built from the rows that [`crate::report`] and
//! [`crate::audit`] render, so every format tells the same verdicts.
//!
//! A verdict that is not what it should be is a `<failure>`; a harness
//! error is an `<error>` (JUnit's "the test could not do its part"); a run
//! that cannot run here is `<skipped>`. The XML is quick-junit's, the
//! serialiser nextest writes its own JUnit with.

use crate::audit::{Audit, AuditRow, Diff};
use crate::catalogue;
use crate::report::{Row, one_line};
use crate::runner::{Outcome, Variant, Verdict};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The name of every report (the `<testsuites name>`).
const REPORT: &str = "limavm-harness";

/// A normal run's report: one suite, `findings`, with a case per finding
/// and variant run. A case fails when its verdict is not what it should
/// be: a regressed run not reproduced, a fixed run that failed. A
/// reproduced run passes and keeps its symptom as its `system-out`.
pub fn findings(rows: &[Row]) -> String {
    let runs = rows
        .iter()
        .flat_map(|row| [&row.fixed, &row.regressed])
        .flatten();
    serialise([suite("findings", runs.map(run_case))])
}

/// An audit's report: one suite, `audit of <target>`, with a case per
/// audit row ([`crate::audit::rows`]): PRESENT fails, a harness error is
/// an error, `cannot run here` is skipped, absent passes.
pub fn audit(target: &str, rows: &[AuditRow]) -> String {
    serialise([audit_suite(target, rows)])
}

/// A baseline audit's report: the baseline's suite (`audit of <baseline>`)
/// then the target's, each as [`audit`] gives it; each target case also
/// carries the properties `change` ([`crate::audit::Change`]'s label) and
/// `baseline` (the baseline's verdict and message), from `diffs`.
pub fn baseline(
    baseline: &str,
    baseline_rows: &[AuditRow],
    target: &str,
    target_rows: &[AuditRow],
    diffs: &[Diff],
) -> String {
    let mut target_suite = audit_suite(target, target_rows);
    for case in &mut target_suite.test_cases {
        let Some(diff) = diffs.iter().find(|d| {
            case.classname
                .as_ref()
                .is_some_and(|id| id.as_str() == d.id)
        }) else {
            continue;
        };
        case.add_property(Property::new("change", diff.change.label()));
        case.add_property(Property::new("baseline", diff.baseline.text()));
    }
    serialise([audit_suite(baseline, baseline_rows), target_suite])
}

/// One finding's run: its verdict read as the catalogue expects it.
fn run_case(outcome: &Outcome) -> TestCase {
    let label = outcome.verdict.label();
    let status = match outcome.verdict {
        Verdict::Passed | Verdict::Reproduced => TestCaseStatus::success(),
        Verdict::Unsupported => skipped(&outcome.message),
        Verdict::HarnessError => non_success(NonSuccessKind::Error, label, &outcome.message),
        Verdict::Failed | Verdict::NotReproduced => {
            non_success(NonSuccessKind::Failure, label, &outcome.message)
        }
    };
    let name = match outcome.variant {
        Variant::Fixed => "fixed",
        Variant::Regressed => "regressed",
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(outcome.id).set_time(outcome.duration);
    if outcome.verdict == Verdict::Reproduced && !outcome.message.is_empty() {
        case.set_system_out(outcome.message.as_str());
    }
    case
}

/// The suite `audit of <target>`.
fn audit_suite(target: &str, rows: &[AuditRow]) -> TestSuite {
    suite(&format!("audit of {target}"), rows.iter().map(audit_case))
}

/// One audit row: a finding's fixed run, or an invariant.
fn audit_case(row: &AuditRow) -> TestCase {
    let label = row.audit.label();
    let status = match row.audit {
        Audit::Absent => TestCaseStatus::success(),
        Audit::Present => non_success(NonSuccessKind::Failure, label, &row.message),
        Audit::CannotRun => skipped(&row.message),
        Audit::HarnessError => non_success(NonSuccessKind::Error, label, &row.message),
    };
    let name = match catalogue::find(row.id) {
        Some(_) => "fixed",
        None => "invariant",
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(row.id)
        .set_time(Duration::from_millis(row.duration_ms));
    case
}

/// A suite of `cases`, its time their sum.
fn suite(name: &str, cases: impl IntoIterator<Item = TestCase>) -> TestSuite {
    let mut suite = TestSuite::new(name);
    suite.add_test_cases(cases);
    let time = suite.test_cases.iter().filter_map(|c| c.time).sum();
    suite.set_time(time);
    suite
}

/// A failure or an error: the message on one line (the verdict's label
/// when there is none), the whole message as the element's text.
fn non_success(kind: NonSuccessKind, label: &str, message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_type(label).set_message(headline(label, message));
    if !message.is_empty() {
        status.set_description(message);
    }
    status
}

/// Skipped, saying why.
fn skipped(why: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(one_line(why));
    status
}

fn headline(label: &str, message: &str) -> String {
    match message.trim() {
        "" => label.to_owned(),
        _ => one_line(message),
    }
}

/// The suites as one `<testsuites>` document.
fn serialise(suites: impl IntoIterator<Item = TestSuite>) -> String {
    let mut report = Report::new(REPORT);
    report.add_test_suites(suites);
    // Into memory: only the writer's I/O could fail, and quick-junit
    // strips the characters XML cannot carry.
    report
        .to_string()
        .expect("a JUnit report serialises into memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Change;
    use crate::shard::{self, Mode, Of, Part, Run, Selection};
    use harness::invariants::Invariant;

    fn outcome(id: &'static str, variant: Variant, verdict: Verdict, message: &str) -> Outcome {
        Outcome::for_test(id, variant, verdict, message)
    }

    fn row(id: &'static str, audit: Audit, message: &str) -> AuditRow {
        AuditRow {
            id,
            audit,
            message: message.into(),
            duration_ms: 2500,
        }
    }

    /// A case read back: class name, name, status, message, seconds.
    #[derive(Debug, PartialEq)]
    struct Case {
        class: String,
        name: String,
        status: &'static str,
        message: Option<String>,
        seconds: f64,
    }

    /// The suites of `xml` parsed back, each with its name and cases.
    fn parse(xml: &str) -> Vec<(String, Vec<Case>)> {
        let report = Report::deserialize_from_str(xml).expect("the JUnit parses back");
        assert_eq!(report.name.as_ref().map(|n| n.as_str()), Some(REPORT));
        report
            .test_suites
            .iter()
            .map(|suite| {
                let cases = suite.test_cases.iter().map(case).collect();
                (suite.name.as_str().to_owned(), cases)
            })
            .collect()
    }

    fn case(case: &TestCase) -> Case {
        let text = |s: &Option<quick_junit::XmlString>| s.as_ref().map(|s| s.as_str().to_owned());
        let (status, message) = match &case.status {
            TestCaseStatus::Success { .. } => ("success", None),
            TestCaseStatus::NonSuccess { kind, message, .. } => match kind {
                NonSuccessKind::Failure => ("failure", text(message)),
                NonSuccessKind::Error => ("error", text(message)),
            },
            TestCaseStatus::Skipped { message, .. } => ("skipped", text(message)),
        };
        Case {
            class: text(&case.classname).unwrap_or_default(),
            name: case.name.as_str().to_owned(),
            status,
            message,
            seconds: case.time.map_or(0.0, |t| t.as_secs_f64()),
        }
    }

    fn expect(
        class: &str,
        name: &str,
        status: &'static str,
        message: Option<&str>,
        seconds: f64,
    ) -> Case {
        Case {
            class: class.into(),
            name: name.into(),
            status,
            message: message.map(Into::into),
            seconds,
        }
    }

    #[test]
    fn a_run_has_a_case_per_finding_and_variant_failing_where_the_verdict_is_wrong() {
        use Variant::{Fixed, Regressed};
        use Verdict::*;
        let outcomes = [
            outcome("a", Fixed, Passed, ""),
            outcome("a", Regressed, Reproduced, "the symptom"),
            outcome("b", Fixed, Failed, "it broke:\n  here"),
            outcome("b", Regressed, NotReproduced, ""),
            outcome("c", Fixed, Unsupported, "needs wsl.exe"),
            outcome("d", Regressed, HarnessError, "no fake"),
        ];
        let rows = crate::report::rows(&["a", "b", "c", "d"], &outcomes);
        let xml = findings(&rows);
        let suites = parse(&xml);
        assert_eq!(suites.len(), 1);
        let (name, cases) = &suites[0];
        assert_eq!(name, "findings");
        assert_eq!(
            cases,
            &[
                expect("a", "fixed", "success", None, 1.5),
                expect("a", "regressed", "success", None, 1.5),
                expect("b", "fixed", "failure", Some("it broke: here"), 1.5),
                expect("b", "regressed", "failure", Some("NOT REPRODUCED"), 1.5),
                expect("c", "fixed", "skipped", Some("needs wsl.exe"), 1.5),
                expect("d", "regressed", "error", Some("no fake"), 1.5),
            ]
        );
        // The symptom a reproduced run showed is kept, and the whole
        // message of a failure (on several lines) as its text.
        let report = Report::deserialize_from_str(&xml).unwrap();
        let reproduced = &report.test_suites[0].test_cases[1];
        assert_eq!(
            reproduced.system_out.as_ref().map(|s| s.as_str()),
            Some("the symptom")
        );
        let TestCaseStatus::NonSuccess { description, .. } =
            &report.test_suites[0].test_cases[2].status
        else {
            panic!("b's fixed run is a failure");
        };
        assert_eq!(
            description.as_ref().map(|d| d.as_str()),
            Some("it broke:\n  here")
        );
        assert_eq!(
            (report.tests, report.failures, report.errors, report.skipped),
            (6, 2, 1, 1)
        );
    }

    #[test]
    fn an_audit_has_a_case_per_row_failing_for_present_and_harness_errors() {
        let invariant = Invariant::ALL[0].id();
        let rows = [
            row("console-group-signal", Audit::Present, "the symptom <&>"),
            row("bracketed-home-path", Audit::Absent, ""),
            row(
                "disk-lock-leak",
                Audit::CannotRun,
                "needs a fault of the fakes",
            ),
            row(
                "keygen-unbounded",
                Audit::HarnessError,
                "the target's get hung",
            ),
            AuditRow {
                duration_ms: 0,
                ..row(invariant, Audit::Absent, "")
            },
        ];
        let suites = parse(&audit("ctl", &rows));
        assert_eq!(suites.len(), 1);
        let (name, cases) = &suites[0];
        assert_eq!(name, "audit of ctl");
        assert_eq!(
            cases,
            &[
                expect(
                    "console-group-signal",
                    "fixed",
                    "failure",
                    Some("the symptom <&>"),
                    2.5
                ),
                expect("bracketed-home-path", "fixed", "success", None, 2.5),
                expect(
                    "disk-lock-leak",
                    "fixed",
                    "skipped",
                    Some("needs a fault of the fakes"),
                    2.5
                ),
                expect(
                    "keygen-unbounded",
                    "fixed",
                    "error",
                    Some("the target's get hung"),
                    2.5
                ),
                expect(invariant, "invariant", "success", None, 0.0),
            ]
        );
    }

    /// A case's properties, as (name, value).
    fn properties(case: &TestCase) -> Vec<(String, String)> {
        let text = |s: &quick_junit::XmlString| s.as_str().to_owned();
        case.properties
            .iter()
            .map(|p| (text(&p.name), text(&p.value)))
            .collect()
    }

    #[test]
    fn a_baseline_audit_has_both_suites_and_the_change_on_the_targets_cases() {
        const GROUP: &str = "console-group-signal";
        const HOME: &str = "bracketed-home-path";
        let base = [
            row(GROUP, Audit::Present, "old symptom"),
            row(HOME, Audit::Absent, ""),
        ];
        let target = [
            row(GROUP, Audit::Absent, ""),
            row(HOME, Audit::Present, "new symptom"),
        ];
        let diffs = crate::audit::diff(&base, &target);
        let xml = baseline("old", &base, "new", &target, &diffs);
        let suites = parse(&xml);
        let names: Vec<&str> = suites.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["audit of old", "audit of new"]);
        let failed = |id, message| expect(id, "fixed", "failure", Some(message), 2.5);
        let passed = |id| expect(id, "fixed", "success", None, 2.5);
        assert_eq!(suites[0].1, [failed(GROUP, "old symptom"), passed(HOME)]);
        assert_eq!(suites[1].1, [passed(GROUP), failed(HOME, "new symptom")]);
        let report = Report::deserialize_from_str(&xml).unwrap();
        let cases = &report.test_suites[1].test_cases;
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            properties(&cases[0]),
            [
                pair("change", Change::WentAway.label()),
                pair("baseline", "PRESENT: old symptom")
            ]
        );
        assert_eq!(
            properties(&cases[1]),
            [
                pair("change", Change::Appeared.label()),
                pair("baseline", "absent")
            ]
        );
    }

    /// What the GitHub Action does: an audit's whole `--format json`
    /// report, read back and merged alone (to itself), rendered as JUnit.
    #[test]
    fn an_audit_report_merged_alone_gives_the_audits_cases() {
        const GROUP: &str = "console-group-signal";
        const HOME: &str = "bracketed-home-path";
        let selection = Selection {
            mode: Mode::Audit,
            target: "reference-ctl".into(),
            baseline: None,
            toolset: "fake".into(),
            findings: vec![GROUP.into(), HOME.into()],
            variants: vec![Variant::Fixed],
        };
        let runs = [(GROUP, Verdict::Passed), (HOME, Verdict::Unsupported)]
            .map(|(id, verdict)| outcome(id, Variant::Fixed, verdict, "why not"));
        let whole = Part {
            selection,
            shard: None,
            runs: runs
                .iter()
                .map(|o| Run::of_outcome(Of::Target, o))
                .collect(),
        };
        let mut json = serde_json::json!({});
        whole.add_to(&mut json);
        let read = Part::from_report(&json.to_string()).expect("the report reads back");
        let merged = shard::merge(&[("audit.json".into(), read)]).expect("a whole run merges");
        let rows = crate::audit::rows(&[GROUP, HOME], &merged.target);
        let suites = parse(&audit("reference-ctl", &rows));
        let (findings, invariants): (Vec<&Case>, Vec<&Case>) =
            suites[0].1.iter().partition(|c| c.name == "fixed");
        assert_eq!(
            findings,
            [
                &expect(GROUP, "fixed", "success", None, 1.5),
                &expect(HOME, "fixed", "skipped", Some("why not"), 1.5),
            ]
        );
        assert_eq!(invariants.len(), Invariant::ALL.len());
    }
}
