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
    pub id: &'static str,
    pub fixed: Option<Outcome>,
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

pub struct Summary {
    pub total: usize,
    pub reproduced: usize,
    pub fixed: usize,
    pub unsupported: usize,
}

impl Summary {
    pub fn of(rows: &[Row]) -> Self {
        let count = |pick: fn(&Row) -> &Option<Outcome>, verdict| {
            rows.iter()
                .filter(|r| pick(r).as_ref().is_some_and(|o| o.verdict == verdict))
                .count()
        };
        Self {
            total: rows.len(),
            reproduced: count(|r| &r.regressed, Verdict::Reproduced),
            fixed: count(|r| &r.fixed, Verdict::Passed),
            unsupported: count(|r| &r.fixed, Verdict::Unsupported),
        }
    }

    pub fn all_as_expected(rows: &[Row]) -> bool {
        rows.iter().all(|r| {
            [&r.fixed, &r.regressed]
                .iter()
                .all(|o| o.as_ref().is_none_or(|o| o.verdict.as_expected()))
        })
    }

    pub fn line(&self) -> String {
        let runnable = self.total - self.unsupported;
        let mut line = format!(
            "{}/{runnable} reproduced, {}/{runnable} fixed",
            self.reproduced, self.fixed
        );
        if self.unsupported > 0 {
            line.push_str(&format!(", {} unsupported here", self.unsupported));
        }
        line
    }
}

fn cell(outcome: &Option<Outcome>, width: usize) -> String {
    match outcome {
        None => "-".to_owned(),
        Some(o) if o.message.is_empty() => o.verdict.label().to_owned(),
        Some(o) => format!("{}: {}", o.verdict.label(), shorten(&o.message, width)),
    }
}

/// `text` on one line, cut to `width` characters with an ellipsis.
pub(crate) fn shorten(text: &str, width: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
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
    pub timeouts_ms: u64,
    pub margins_ms: u64,
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
            "reproduced": summary.reproduced,
            "fixed": summary.fixed,
            "unsupported": summary.unsupported,
            "line": summary.line(),
        }
    }))
    .expect("the report serialises")
}
