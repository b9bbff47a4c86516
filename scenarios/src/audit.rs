//! The audit verdict, for a reconciler without regression switches: per
//! finding, and per invariant, is the defect there? Only the fixed run of
//! each scenario can run, and its outcome reads as `absent`, `PRESENT:
//! <symptom>`, `cannot run here: <why>` or `harness error: <what>`.
//!
//! Every defect a run shows is named under its own ID: the run's own
//! finding by its check; what the service's shutdown left running under
//! `shutdown-fallback-skips-cleanup`; what a stop path left running under
//! the run's own finding; a follow-on check of another finding's kind
//! under that finding; a broken invariant under the invariant. So a
//! leftover is a PRESENT, never a note, and one defect never makes another
//! finding "cannot run here". With a baseline (another build of the same
//! reconciler), per finding and invariant what appeared or went away.

use crate::catalogue;
use crate::report::shorten;
use crate::runner::{Outcome, Variant, Verdict};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use harness::defects::Defect;
use harness::invariants::Invariant;
use serde_json::json;

/// What one finding's fixed run says about a reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Audit {
    /// The scenario's check passed, and no run showed the defect.
    Absent,
    /// The scenario failed naming the finding's symptom, its path left
    /// processes or ports behind, or another run showed the defect.
    Present,
    /// The scenario cannot run against this target or toolset, or it
    /// failed before reaching its check (the message says where).
    CannotRun,
    /// The harness could not do its part.
    HarnessError,
}

impl Audit {
    /// The verdict as the reports print it: `absent`, `PRESENT`,
    /// `cannot run here` or `harness error`.
    pub fn label(self) -> &'static str {
        match self {
            Audit::Absent => "absent",
            Audit::Present => "PRESENT",
            Audit::CannotRun => "cannot run here",
            Audit::HarnessError => "harness error",
        }
    }
}

/// One finding's (or invariant's) audit verdict, with its message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    /// A finding's ID, or an invariant's ([`harness::defects::Defect::id`]).
    pub id: &'static str,
    /// The verdict.
    pub audit: Audit,
    /// The symptom (PRESENT), why it cannot run, or the harness's error;
    /// empty when absent.
    pub message: String,
    /// The time of the finding's own run; 0 for an invariant.
    pub duration_ms: u64,
}

impl AuditRow {
    /// `absent`, `PRESENT: <symptom>`...
    pub fn text(&self) -> String {
        if self.message.is_empty() {
            self.audit.label().to_owned()
        } else {
            format!("{}: {}", self.audit.label(), self.message)
        }
    }
}

/// Reads a fixed run's outcome as the audit verdict of its own finding
/// (what it saw of other defects is [`rows`]' part).
pub fn audit(outcome: &Outcome) -> AuditRow {
    let names_symptom =
        catalogue::find(outcome.id).is_some_and(|f| f.names_symptom(&outcome.message));
    let (audit, message) = match outcome.verdict {
        Verdict::Passed => (Audit::Absent, String::new()),
        Verdict::Unsupported => (Audit::CannotRun, outcome.message.clone()),
        Verdict::HarnessError => (Audit::HarnessError, outcome.message.clone()),
        // Its own check passed; the run failed for other defects only.
        Verdict::Failed if outcome.check_passed => (Audit::Absent, String::new()),
        Verdict::Failed if names_symptom => (Audit::Present, outcome.message.clone()),
        Verdict::Failed => (
            Audit::CannotRun,
            format!(
                "the scenario failed before its check, not with the finding's symptom: {}",
                outcome.message
            ),
        ),
        // Regressed runs are not audited.
        Verdict::Reproduced | Verdict::NotReproduced => (
            Audit::HarnessError,
            "a regressed run is not an audit".into(),
        ),
    };
    AuditRow {
        id: outcome.id,
        audit,
        message,
        duration_ms: outcome.duration.as_millis() as u64,
    }
}

/// The audit rows of `ids`, in that order (fixed runs only), then one row
/// per invariant. A defect that a run saw beyond its own check makes its
/// finding's or invariant's row PRESENT (naming the run), unless that row
/// is PRESENT already; a finding outside `ids` seen so gets a row too.
pub fn rows(ids: &[&'static str], outcomes: &[Outcome]) -> Vec<AuditRow> {
    let fixed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.variant == Variant::Fixed)
        .collect();
    let mut rows: Vec<AuditRow> = ids
        .iter()
        .filter_map(|id| fixed.iter().find(|o| o.id == *id).map(|o| audit(o)))
        .collect();
    // An invariant is checked by the scenarios that ran: with none run to
    // an end (each cannot run, or the harness failed), it says nothing.
    let checked = fixed
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Passed | Verdict::Failed));
    let (audit, message) = match checked {
        true => (Audit::Absent, String::new()),
        false => (
            Audit::CannotRun,
            "no scenario of this audit ran to its end".to_owned(),
        ),
    };
    rows.extend(
        Invariant::ALL
            .iter()
            .filter(|_| !fixed.is_empty())
            .map(|i| AuditRow {
                id: i.id(),
                audit,
                message: message.clone(),
                duration_ms: 0,
            }),
    );
    for outcome in &fixed {
        for also in &outcome.also {
            let Some(defect) = Defect::find(&also.id) else {
                continue;
            };
            let seen = match defect.id() == outcome.id {
                true => format!("seen in its own run: {}", also.message),
                false => format!("seen in {}'s run: {}", outcome.id, also.message),
            };
            match rows.iter_mut().find(|r| r.id == defect.id()) {
                Some(row) if row.audit == Audit::Present => {}
                Some(row) => {
                    row.audit = Audit::Present;
                    row.message = seen;
                }
                None => rows.push(AuditRow {
                    id: defect.id(),
                    audit: Audit::Present,
                    message: seen,
                    duration_ms: 0,
                }),
            }
        }
    }
    rows
}

/// `2 PRESENT, 10 absent, 4 cannot run here, 1 harness error`.
pub fn summary(rows: &[AuditRow]) -> String {
    [
        Audit::Present,
        Audit::Absent,
        Audit::CannotRun,
        Audit::HarnessError,
    ]
    .iter()
    .map(|a| {
        let n = rows.iter().filter(|r| r.audit == *a).count();
        format!("{n} {}", a.label())
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// True when nothing is PRESENT and the harness did its part everywhere.
pub fn clean(rows: &[AuditRow]) -> bool {
    rows.iter()
        .all(|r| matches!(r.audit, Audit::Absent | Audit::CannotRun))
}

/// The rows grouped by verdict: PRESENT first, then absent, cannot run,
/// harness error.
fn grouped(rows: &[AuditRow]) -> Vec<&AuditRow> {
    let order = [
        Audit::Present,
        Audit::Absent,
        Audit::CannotRun,
        Audit::HarnessError,
    ];
    order
        .iter()
        .flat_map(|a| rows.iter().filter(move |r| r.audit == *a))
        .collect()
}

/// The audit as a table for a terminal, grouped by verdict (PRESENT
/// first), headed `audit of <target>` and followed by the [`summary`].
pub fn table(target: &str, rows: &[AuditRow]) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["finding", "verdict", "symptom / why", "time"]);
    for row in grouped(rows) {
        table.add_row([
            row.id.to_owned(),
            row.audit.label().to_owned(),
            shorten(&row.message, 200),
            format!("{:.1}s", row.duration_ms as f64 / 1000.0),
        ]);
    }
    format!("audit of {target}\n{table}\n{}", summary(rows))
}

/// The audit as a Markdown table (for a CI job summary), grouped like
/// [`table`], messages cut to 300 characters and `|` escaped.
pub fn markdown(target: &str, rows: &[AuditRow]) -> String {
    let mut out = format!(
        "### limavm-harness: audit of {target}\n\n| finding | verdict | symptom / why | time |\n|---|---|---|---|\n"
    );
    for row in grouped(rows) {
        out.push_str(&format!(
            "| `{}` | {} | {} | {:.1}s |\n",
            row.id,
            row.audit.label(),
            shorten(&row.message, 300).replace('|', "\\|"),
            row.duration_ms as f64 / 1000.0
        ));
    }
    out.push_str(&format!("\n**{}**\n", summary(rows)));
    out
}

/// The JSON report: the verdicts kept apart by kind.
pub fn json(target: &str, rows: &[AuditRow]) -> serde_json::Value {
    let of = |a: Audit| -> Vec<&AuditRow> { rows.iter().filter(|r| r.audit == a).collect() };
    json!({
        "target": target,
        "present": of(Audit::Present),
        "absent": of(Audit::Absent),
        "cannot_run": of(Audit::CannotRun),
        "harness_error": of(Audit::HarnessError),
        "summary": summary(rows),
    })
}

/// How one finding differs between a baseline and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// PRESENT in the target, absent in the baseline.
    Appeared,
    /// PRESENT in the baseline, absent in the target.
    WentAway,
    /// The same verdict in both.
    Unchanged,
    /// Any other difference (one of them could not run, or failed).
    Inconclusive,
}

impl Change {
    /// The change as the reports print it: `APPEARED`, `went away`,
    /// `unchanged` or `inconclusive`.
    pub fn label(self) -> &'static str {
        match self {
            Change::Appeared => "APPEARED",
            Change::WentAway => "went away",
            Change::Unchanged => "unchanged",
            Change::Inconclusive => "inconclusive",
        }
    }

    /// How a finding's verdict changed from `baseline` to `target`.
    pub fn between(baseline: Audit, target: Audit) -> Self {
        match (baseline, target) {
            (a, b) if a == b => Change::Unchanged,
            (Audit::Absent, Audit::Present) => Change::Appeared,
            (Audit::Present, Audit::Absent) => Change::WentAway,
            _ => Change::Inconclusive,
        }
    }
}

/// One finding in both builds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diff {
    /// The finding's or invariant's ID.
    pub id: &'static str,
    /// What changed from the baseline to the target.
    pub change: Change,
    /// Its row in the baseline build (absent when only the target has it).
    pub baseline: AuditRow,
    /// Its row in the target build (absent when only the baseline has it).
    pub target: AuditRow,
}

/// Pairs the rows of both builds by ID; a row only one build has (a
/// finding only its runs saw) pairs with an absent one.
pub fn diff(baseline: &[AuditRow], target: &[AuditRow]) -> Vec<Diff> {
    let absent = |row: &AuditRow| AuditRow {
        audit: Audit::Absent,
        message: String::new(),
        duration_ms: 0,
        ..row.clone()
    };
    let mut diffs: Vec<Diff> = target
        .iter()
        .map(|t| {
            let b = baseline
                .iter()
                .find(|b| b.id == t.id)
                .cloned()
                .unwrap_or_else(|| absent(t));
            Diff {
                id: t.id,
                change: Change::between(b.audit, t.audit),
                baseline: b,
                target: t.clone(),
            }
        })
        .collect();
    diffs.extend(
        baseline
            .iter()
            .filter(|b| !target.iter().any(|t| t.id == b.id))
            .map(|b| Diff {
                id: b.id,
                change: Change::between(b.audit, Audit::Absent),
                baseline: b.clone(),
                target: absent(b),
            }),
    );
    diffs
}

fn diff_summary(diffs: &[Diff]) -> String {
    [
        Change::Appeared,
        Change::WentAway,
        Change::Unchanged,
        Change::Inconclusive,
    ]
    .iter()
    .map(|c| {
        let n = diffs.iter().filter(|d| d.change == *c).count();
        format!("{n} {}", c.label())
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// The differences as a table for a terminal, headed `<baseline> ->
/// <target>` and followed by the count of each change.
pub fn diff_table(baseline: &str, target: &str, diffs: &[Diff]) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "finding".to_owned(),
            "change".to_owned(),
            format!("baseline: {baseline}"),
            format!("target: {target}"),
        ]);
    for d in diffs {
        table.add_row([
            d.id.to_owned(),
            d.change.label().to_owned(),
            shorten(&d.baseline.text(), 100),
            shorten(&d.target.text(), 100),
        ]);
    }
    format!("{baseline} -> {target}\n{table}\n{}", diff_summary(diffs))
}

/// The differences as a Markdown table (for a CI job summary), messages
/// cut to 200 characters and `|` escaped.
pub fn diff_markdown(baseline: &str, target: &str, diffs: &[Diff]) -> String {
    let mut out = format!(
        "### limavm-harness: {baseline} -> {target}\n\n| finding | change | baseline: {baseline} | target: {target} |\n|---|---|---|---|\n"
    );
    for d in diffs {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            d.id,
            d.change.label(),
            shorten(&d.baseline.text(), 200).replace('|', "\\|"),
            shorten(&d.target.text(), 200).replace('|', "\\|"),
        ));
    }
    out.push_str(&format!("\n**{}**\n", diff_summary(diffs)));
    out
}

/// The differences as JSON: `{"changes": [Diff...], "summary": "..."}`.
pub fn diff_json(diffs: &[Diff]) -> serde_json::Value {
    json!({ "changes": diffs, "summary": diff_summary(diffs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &'static str, verdict: Verdict, message: &str) -> Outcome {
        Outcome::for_test(id, Variant::Fixed, verdict, message)
    }

    /// A fixed run whose own check passed, failed for `also`.
    fn passed_but(id: &'static str, also: &[(&str, &str)]) -> Outcome {
        Outcome {
            check_passed: true,
            also: also
                .iter()
                .map(|(id, message)| crate::runner::Also {
                    id: (*id).to_owned(),
                    message: (*message).to_owned(),
                })
                .collect(),
            ..outcome(id, Verdict::Failed, "the finding's check passed, but ...")
        }
    }

    /// The findings of the audit in [`rows_that_saw_other_defects`].
    const SEEING_IDS: [&str; 3] = [
        "ignored-signal-fallback",
        "bracketed-home-path",
        "shutdown-fallback-skips-cleanup",
    ];

    /// An audit of [`SEEING_IDS`] whose runs saw each other's defects: one
    /// left tmp files and a live QEMU, another left QEMU running after the
    /// service's shutdown.
    fn rows_that_saw_other_defects() -> Vec<AuditRow> {
        rows(
            &SEEING_IDS,
            &[
                passed_but(
                    "ignored-signal-fallback",
                    &[
                        ("bracketed-home-path", "tmp files left in /l/vm: ha.sock"),
                        (
                            "stopped-is-true",
                            "Stopped is true: qemu (pid 9) still alive",
                        ),
                    ],
                ),
                outcome("bracketed-home-path", Verdict::Passed, ""),
                outcome(
                    "shutdown-fallback-skips-cleanup",
                    Verdict::Unsupported,
                    "needs WSL",
                ),
                passed_but(
                    "disk-lock-leak",
                    &[(
                        "shutdown-fallback-skips-cleanup",
                        "still running after the service's shutdown: qemu",
                    )],
                ),
            ],
        )
    }

    #[test]
    fn every_defect_a_run_saw_is_a_present_under_its_own_name() {
        let rows = rows_that_saw_other_defects();
        let row = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
        // Its own check passed: the other defects do not make it unknown.
        assert_eq!(row("ignored-signal-fallback").audit, Audit::Absent);
        let tmp = row("bracketed-home-path");
        assert_eq!(tmp.audit, Audit::Present);
        assert!(
            tmp.message
                .starts_with("seen in ignored-signal-fallback's run: tmp files left in"),
            "{}",
            tmp.text()
        );
        // A leftover is a verdict, also where the finding's own scenario
        // cannot run.
        let shutdown = row("shutdown-fallback-skips-cleanup");
        assert_eq!(shutdown.audit, Audit::Present, "{}", shutdown.text());
        assert_eq!(row("stopped-is-true").audit, Audit::Present);
        // What a run's own path left running is its own finding's PRESENT.
        let own = super::rows(
            &["disk-lock-leak"],
            &[passed_but(
                "disk-lock-leak",
                &[("disk-lock-leak", "left running after its scenario: qemu")],
            )],
        );
        assert_eq!(own[0].audit, Audit::Present, "{}", own[0].text());
        assert!(
            own[0]
                .message
                .starts_with("seen in its own run: left running")
        );
        assert_eq!(row("statuses-settle").audit, Audit::Absent);
        assert!(!clean(&rows));
    }

    #[test]
    fn against_a_build_without_the_leftovers_the_difference_names_them() {
        let rows = rows_that_saw_other_defects();
        let fixed = super::rows(
            &SEEING_IDS,
            &[
                outcome("ignored-signal-fallback", Verdict::Passed, ""),
                outcome("bracketed-home-path", Verdict::Passed, ""),
                outcome(
                    "shutdown-fallback-skips-cleanup",
                    Verdict::Unsupported,
                    "needs WSL",
                ),
            ],
        );
        let diffs = diff(&rows, &fixed);
        let change = |id: &str| diffs.iter().find(|d| d.id == id).unwrap().change;
        assert_eq!(
            change("shutdown-fallback-skips-cleanup"),
            Change::Inconclusive
        );
        assert_eq!(change("bracketed-home-path"), Change::WentAway);
        assert_eq!(change("stopped-is-true"), Change::WentAway);
    }

    #[test]
    fn fixed_outcomes_read_as_audit_verdicts() {
        let cases = [
            (
                outcome("keygen-unbounded", Verdict::Passed, ""),
                Audit::Absent,
            ),
            (
                outcome(
                    "disk-lock-leak",
                    Verdict::Failed,
                    "_disks/data/in_use_by still present",
                ),
                Audit::Present,
            ),
            (
                outcome("disk-lock-leak", Verdict::Failed, "VM vm: never came up"),
                Audit::CannotRun,
            ),
            (
                passed_but("recycled-pid-kill", &[("stopped-is-true", "pid 3 (ssh)")]),
                Audit::Absent,
            ),
            (
                outcome("x", Verdict::Unsupported, "needs fakes"),
                Audit::CannotRun,
            ),
            (
                outcome("x", Verdict::HarnessError, "no kubectl"),
                Audit::HarnessError,
            ),
        ];
        for (o, want) in cases {
            assert_eq!(audit(&o).audit, want, "{o:?}");
        }
        let row = audit(&outcome(
            "disk-lock-leak",
            Verdict::Failed,
            "VM vm: never came up",
        ));
        assert!(
            row.text()
                .starts_with("cannot run here: the scenario failed before"),
            "{}",
            row.text()
        );
    }

    #[test]
    fn the_report_keeps_the_kinds_apart_and_the_diff_names_changes() {
        let target = rows(
            &["disk-lock-leak", "keygen-unbounded", "x"],
            &[
                outcome("disk-lock-leak", Verdict::Passed, ""),
                outcome("keygen-unbounded", Verdict::Passed, ""),
                outcome("x", Verdict::Unsupported, "needs fakes"),
            ],
        );
        let baseline = rows(
            &["disk-lock-leak", "keygen-unbounded", "x"],
            &[
                outcome("disk-lock-leak", Verdict::Failed, "in_use_by still present"),
                outcome("keygen-unbounded", Verdict::Passed, ""),
                outcome("x", Verdict::Unsupported, "needs fakes"),
            ],
        );
        let j = json("t", &baseline);
        assert_eq!(j["present"][0]["id"], "disk-lock-leak");
        assert_eq!(j["cannot_run"][0]["id"], "x");
        assert!(!clean(&baseline) && clean(&target));
        let diffs = diff(&baseline, &target);
        assert_eq!(diffs[0].change, Change::WentAway);
        assert_eq!(diffs[1].change, Change::Unchanged);
        let text = diff_table("reviewed", "fixed", &diffs);
        assert!(
            text.contains("went away") && text.contains("1 went away"),
            "{text}"
        );
        assert!(markdown("t", &baseline).contains("| `disk-lock-leak` | PRESENT |"));
    }
}
