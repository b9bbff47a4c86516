//! The audit verdict, for a reconciler without regression switches: per
//! finding, is the defect there? Only the fixed run of each scenario can
//! run, and its outcome reads as `absent`, `PRESENT: <symptom>`, `cannot
//! run here: <why>` or `harness error: <what>`. With a baseline (another
//! build of the same reconciler), per finding what appeared or went away.

use crate::catalogue;
use crate::report::shorten;
use crate::runner::{Outcome, Variant, Verdict};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;

/// What one finding's fixed run says about a reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Audit {
    /// The scenario passed and nothing was left behind.
    Absent,
    /// The scenario failed naming the finding's symptom, or left processes
    /// or ports behind.
    Present,
    /// The scenario cannot run against this target or toolset, or it
    /// failed before reaching its check (the message says where).
    CannotRun,
    /// The harness could not do its part.
    HarnessError,
}

impl Audit {
    pub fn label(self) -> &'static str {
        match self {
            Audit::Absent => "absent",
            Audit::Present => "PRESENT",
            Audit::CannotRun => "cannot run here",
            Audit::HarnessError => "harness error",
        }
    }
}

/// One finding's audit verdict, with its message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    pub id: &'static str,
    pub audit: Audit,
    pub message: String,
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

/// Reads a fixed run's outcome as an audit verdict.
pub fn audit(outcome: &Outcome) -> AuditRow {
    let names_symptom =
        catalogue::find(outcome.id).is_some_and(|f| f.names_symptom(&outcome.message));
    let (audit, message) = match outcome.verdict {
        Verdict::Passed => (Audit::Absent, String::new()),
        Verdict::Unsupported => (Audit::CannotRun, outcome.message.clone()),
        Verdict::HarnessError => (Audit::HarnessError, outcome.message.clone()),
        // The scenario passed, but something was left running when the
        // service was gone: another defect than this finding, said as is.
        Verdict::Failed if outcome.message.starts_with("leaked:") => (
            Audit::Absent,
            format!(
                "the finding's check passed, but {}",
                outcome
                    .message
                    .replacen("leaked:", "left running afterwards:", 1)
            ),
        ),
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

/// The audit rows of `ids`, in that order (fixed runs only).
pub fn rows(ids: &[&'static str], outcomes: &[Outcome]) -> Vec<AuditRow> {
    ids.iter()
        .filter_map(|id| {
            outcomes
                .iter()
                .find(|o| o.id == *id && o.variant == Variant::Fixed)
                .map(audit)
        })
        .collect()
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
    pub fn label(self) -> &'static str {
        match self {
            Change::Appeared => "APPEARED",
            Change::WentAway => "went away",
            Change::Unchanged => "unchanged",
            Change::Inconclusive => "inconclusive",
        }
    }

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
    pub id: &'static str,
    pub change: Change,
    pub baseline: AuditRow,
    pub target: AuditRow,
}

/// Pairs the rows of both builds by finding.
pub fn diff(baseline: &[AuditRow], target: &[AuditRow]) -> Vec<Diff> {
    target
        .iter()
        .filter_map(|t| {
            let b = baseline.iter().find(|b| b.id == t.id)?;
            Some(Diff {
                id: t.id,
                change: Change::between(b.audit, t.audit),
                baseline: b.clone(),
                target: t.clone(),
            })
        })
        .collect()
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

pub fn diff_json(diffs: &[Diff]) -> serde_json::Value {
    json!({ "changes": diffs, "summary": diff_summary(diffs) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(id: &'static str, verdict: Verdict, message: &str) -> Outcome {
        Outcome {
            id,
            variant: Variant::Fixed,
            verdict,
            message: message.into(),
            leaks: Default::default(),
            leaked: String::new(),
            duration: Duration::from_millis(1500),
            waits: harness::WaitSplit::default(),
        }
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
                outcome("recycled-pid-kill", Verdict::Failed, "leaked: pid 3 (ssh)"),
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
