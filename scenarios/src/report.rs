//! The final report: a terminal table, JSON, or Markdown (for a CI job
//! summary), and the one-line summary.

use crate::runner::{Outcome, Variant, Verdict};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// The fixed and regressed outcomes of one finding.
#[derive(Debug, Clone)]
pub struct Row {
    /// The finding's ID.
    pub id: &'static str,
    /// The run with its regression switched off (`None`: not selected).
    pub fixed: Option<Outcome>,
    /// The run with its regression switched on (`None`: not selected).
    pub regressed: Option<Outcome>,
}

/// Pairs outcomes by finding, in catalogue order.
pub fn rows(ids: &[&'static str], outcomes: &[Outcome]) -> Vec<Row> {
    let pick = |id: &str, variant| {
        outcomes
            .iter()
            .find(|o| o.id == id && o.variant == variant)
            .cloned()
    };
    ids.iter()
        .map(|id| Row {
            id,
            fixed: pick(id, Variant::Fixed),
            regressed: pick(id, Variant::Regressed),
        })
        .collect()
}

/// What a report's runs came to. A run "ran" unless it is unsupported
/// here; runs not selected (another shard, `--only`, `--variants`) are not
/// counted at all.
pub struct Summary {
    /// Findings in the report.
    pub total: usize,
    /// Regressed runs that ran.
    pub regressed_runs: usize,
    /// Regressed runs that reproduced their finding.
    pub reproduced: usize,
    /// Fixed runs that ran.
    pub fixed_runs: usize,
    /// Fixed runs that passed.
    pub fixed: usize,
    /// Findings whose runs are unsupported here.
    pub unsupported: usize,
}

impl Summary {
    /// Counts the runs of `rows`.
    pub fn of(rows: &[Row]) -> Self {
        let count = |pick: fn(&Row) -> &Option<Outcome>, wanted: fn(Verdict) -> bool| {
            rows.iter()
                .filter(|r| pick(r).as_ref().is_some_and(|o| wanted(o.verdict)))
                .count()
        };
        let ran = |verdict| verdict != Verdict::Unsupported;
        Self {
            total: rows.len(),
            regressed_runs: count(|r| &r.regressed, ran),
            reproduced: count(|r| &r.regressed, |v| v == Verdict::Reproduced),
            fixed_runs: count(|r| &r.fixed, ran),
            fixed: count(|r| &r.fixed, |v| v == Verdict::Passed),
            unsupported: rows
                .iter()
                .filter(|r| {
                    [&r.fixed, &r.regressed].iter().any(|o| {
                        o.as_ref()
                            .is_some_and(|o| o.verdict == Verdict::Unsupported)
                    })
                })
                .count(),
        }
    }

    /// True when every selected run of `rows` has the verdict its variant
    /// should have (see [`Verdict::as_expected`]).
    pub fn all_as_expected(rows: &[Row]) -> bool {
        rows.iter().all(|r| {
            [&r.fixed, &r.regressed]
                .iter()
                .all(|o| o.as_ref().is_none_or(|o| o.verdict.as_expected()))
        })
    }

    /// `R/N reproduced, P/M fixed[, U unsupported here]`, each part only
    /// when runs of its variant were selected.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if self.regressed_runs > 0 || self.fixed_runs == 0 {
            parts.push(format!(
                "{}/{} reproduced",
                self.reproduced, self.regressed_runs
            ));
        }
        if self.fixed_runs > 0 || self.regressed_runs == 0 {
            parts.push(format!("{}/{} fixed", self.fixed, self.fixed_runs));
        }
        if self.unsupported > 0 {
            parts.push(format!("{} unsupported here", self.unsupported));
        }
        parts.join(", ")
    }
}

fn cell(outcome: &Option<Outcome>, width: usize) -> String {
    match outcome {
        None => "-".to_owned(),
        Some(o) if o.message.is_empty() => o.verdict.label().to_owned(),
        Some(o) => format!("{}: {}", o.verdict.label(), shorten(&o.message, width)),
    }
}

/// `text` on one line: every run of whitespace (newlines too) one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` on one line, cut to `width` characters with an ellipsis.
pub(crate) fn shorten(text: &str, width: usize) -> String {
    let flat = one_line(text);
    if flat.chars().count() <= width {
        flat
    } else {
        format!("{}…", flat.chars().take(width).collect::<String>())
    }
}

fn seconds(row: &Row) -> String {
    let total: f64 = [&row.fixed, &row.regressed]
        .iter()
        .filter_map(|o| o.as_ref())
        .map(|o| o.duration.as_secs_f64())
        .sum();
    format!("{total:.1}s")
}

/// The report as a table for a terminal, one line per finding, followed by
/// the summary line ([`Summary::line`]).
pub fn table(rows: &[Row]) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["finding", "fixed", "regressed (symptom)", "time"]);
    for row in rows {
        table.add_row([
            row.id.to_owned(),
            cell(&row.fixed, 160),
            cell(&row.regressed, 160),
            seconds(row),
        ]);
    }
    format!("{table}\n{}", Summary::of(rows).line())
}

/// The report as a Markdown table (for a CI job summary), messages cut to
/// 300 characters and `|` escaped, followed by the summary line in bold.
pub fn markdown(rows: &[Row]) -> String {
    let escape = |s: String| s.replace('|', "\\|");
    let mut out = String::from(
        "### limavm-harness: findings reproduced\n\n| finding | fixed | regressed (symptom) | time |\n|---|---|---|---|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.id,
            escape(cell(&row.fixed, 300)),
            escape(cell(&row.regressed, 300)),
            seconds(row)
        ));
    }
    out.push_str(&format!("\n**{}**\n", Summary::of(rows).line()));
    out
}

/// A run's time split (see [`harness::waits`]), in whole milliseconds,
/// as the JSON report and the shards' reports carry it:
/// `{"timeouts_ms", "margins_ms", "other_ms"}`, adding up to its
/// `duration_ms` (give or take the rounding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitsMs {
    /// [`harness::WaitSplit::timeouts`], in milliseconds.
    pub timeouts_ms: u64,
    /// [`harness::WaitSplit::margins`], in milliseconds.
    pub margins_ms: u64,
    /// [`harness::WaitSplit::other`], in milliseconds.
    pub other_ms: u64,
}

impl From<&harness::WaitSplit> for WaitsMs {
    fn from(split: &harness::WaitSplit) -> Self {
        let ms = |d: Duration| d.as_millis() as u64;
        Self {
            timeouts_ms: ms(split.timeouts),
            margins_ms: ms(split.margins),
            other_ms: ms(split.other),
        }
    }
}

impl From<WaitsMs> for harness::WaitSplit {
    fn from(ms: WaitsMs) -> Self {
        Self {
            timeouts: Duration::from_millis(ms.timeouts_ms),
            margins: Duration::from_millis(ms.margins_ms),
            other: Duration::from_millis(ms.other_ms),
        }
    }
}

/// The report as pretty-printed JSON: per finding its `fixed` and
/// `regressed` run (`verdict`, `message`, `leaked`, `duration_ms`,
/// `waits`), then the summary.
pub fn json(rows: &[Row]) -> String {
    let outcome = |o: &Option<Outcome>| {
        o.as_ref().map(|o| {
            json!({
                "verdict": o.verdict,
                "message": o.message,
                "leaked": o.leaked,
                "duration_ms": o.duration.as_millis() as u64,
                "waits": WaitsMs::from(&o.waits),
            })
        })
    };
    let summary = Summary::of(rows);
    serde_json::to_string_pretty(&json!({
        "findings": rows.iter().map(|r| json!({
            "id": r.id,
            "fixed": outcome(&r.fixed),
            "regressed": outcome(&r.regressed),
        })).collect::<Vec<_>>(),
        "summary": {
            "total": summary.total,
            "regressed_runs": summary.regressed_runs,
            "reproduced": summary.reproduced,
            "fixed_runs": summary.fixed_runs,
            "fixed": summary.fixed,
            "unsupported": summary.unsupported,
            "line": summary.line(),
        }
    }))
    .expect("the report serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(variant: Variant, verdict: Verdict) -> Outcome {
        Outcome {
            id: "f",
            variant,
            verdict,
            message: String::new(),
            check_passed: false,
            also: Vec::new(),
            leaks: Default::default(),
            leaked: String::new(),
            duration: Duration::ZERO,
            waits: Default::default(),
        }
    }

    fn row(fixed: Option<Verdict>, regressed: Option<Verdict>) -> Row {
        Row {
            id: "f",
            fixed: fixed.map(|v| outcome(Variant::Fixed, v)),
            regressed: regressed.map(|v| outcome(Variant::Regressed, v)),
        }
    }

    #[test]
    fn the_summary_counts_only_the_runs_that_ran() {
        use Verdict::*;
        let whole = [
            row(Some(Passed), Some(Reproduced)),
            row(Some(Failed), Some(NotReproduced)),
            row(Some(Unsupported), Some(Unsupported)),
        ];
        assert_eq!(
            Summary::of(&whole).line(),
            "1/2 reproduced, 1/2 fixed, 1 unsupported here"
        );
        // A shard or `--variants`: runs of the other variant, or of other
        // findings, were not selected.
        let fixed_only = [row(Some(Passed), None), row(Some(Passed), None)];
        assert_eq!(Summary::of(&fixed_only).line(), "2/2 fixed");
        let shard = [row(Some(Passed), None), row(None, Some(Reproduced))];
        assert_eq!(Summary::of(&shard).line(), "1/1 reproduced, 1/1 fixed");
        assert_eq!(Summary::of(&[]).line(), "0/0 reproduced, 0/0 fixed");
    }
}
