//! Splitting one `reproduce` run over several machines and merging their
//! reports back: `reproduce --shard k/n` runs every n-th of the selected
//! (finding, variant) runs, and its `--format json` report carries what
//! `reproduce --merge` needs to check that the shards together made
//! exactly the whole run (the [`Part`]: the selection, the shard, the
//! runs), then to print the one report as if one run had done all.
//!
//! The shard spec is nextest's `--partition count:k/n`: k is 1-based. The
//! runs are dealt round-robin, each finding starting one shard further
//! than the one before, so that each shard gets a mix of findings and of
//! fixed and regressed runs (plain round-robin over two variants and two
//! shards would give one shard every fixed run).

use crate::catalogue;
use crate::report::WaitsMs;
use crate::runner::{Also, Outcome, Variant, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// The k-th (1-based) of n shards, written `k/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1 to `count`.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

/// Why a shard spec is not `k/n` with 1 <= k <= n; each names the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardSpecError {
    /// No `/` in it.
    #[error("{0:?} is not k/n (e.g. 1/3)")]
    NotKOverN(String),
    /// `k` or `n` is not a whole number.
    #[error("{spec:?}: {part:?} is not a whole number")]
    NotANumber {
        /// The spec.
        spec: String,
        /// The part that is not a number.
        part: String,
    },
    /// `n` is 0.
    #[error("{0:?}: n must be at least 1")]
    NoShards(String),
    /// `k` is 0 or more than `n`.
    #[error(
        "{0:?}: k must be 1 to n (shards are numbered from 1, as nextest's --partition count:k/n)"
    )]
    IndexOutOfRange(String),
}

impl std::str::FromStr for Shard {
    type Err = ShardSpecError;

    /// `k/n` with 1 <= k <= n, as nextest's `--partition count:k/n`.
    fn from_str(text: &str) -> Result<Self, ShardSpecError> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| ShardSpecError::NotKOverN(text.to_owned()))?;
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| ShardSpecError::NotANumber {
                    spec: text.to_owned(),
                    part: s.to_owned(),
                })
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 {
            return Err(ShardSpecError::NoShards(text.to_owned()));
        }
        if index == 0 || index > count {
            return Err(ShardSpecError::IndexOutOfRange(text.to_owned()));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's share of the runs `(finding, variant)` of `findings`
    /// and `variants`, in their order: run (f, v), both counted from 0,
    /// belongs to shard `(f + v) mod count + 1`.
    pub fn pick<F: Clone, V: Clone>(&self, findings: &[F], variants: &[V]) -> Vec<(F, V)> {
        findings
            .iter()
            .enumerate()
            .flat_map(|(f, finding)| {
                variants
                    .iter()
                    .enumerate()
                    .filter(move |(v, _)| (f + v) % self.count == self.index - 1)
                    .map(move |(_, variant)| (finding.clone(), variant.clone()))
            })
            .collect()
    }
}

/// How the runs are judged, which decides the report's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fixed and regressed runs of the reference's regression switches.
    Regressions,
    /// The audit verdicts of the target's fixed runs.
    Audit,
    /// The audit of the target and of `--baseline`, with what changed.
    Baseline,
}

/// Which reconciler a run was of: the target, or the `--baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Of {
    /// The reconciler `--target` names.
    Target,
    /// The reconciler `--baseline` names.
    Baseline,
}

/// What a run of `reproduce` was asked to do: the same for every shard of
/// one run, whatever `--shard` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// How the runs are judged.
    pub mode: Mode,
    /// `--target` as given (`reference` or a target file).
    pub target: String,
    /// `--baseline` as given.
    pub baseline: Option<String>,
    /// `--toolset`: `fake` or `real`.
    pub toolset: String,
    /// The findings' IDs, in run order.
    pub findings: Vec<String>,
    /// The variants run of each finding.
    pub variants: Vec<Variant>,
}

impl Selection {
    /// Every run of the selection, in order: each finding's variants, for
    /// the target, then (mode [`Mode::Baseline`]) for the baseline.
    pub fn runs(&self) -> Vec<(Of, String, Variant)> {
        let of: &[Of] = match self.mode {
            Mode::Baseline => &[Of::Target, Of::Baseline],
            Mode::Regressions | Mode::Audit => &[Of::Target],
        };
        of.iter()
            .flat_map(|of| {
                self.findings
                    .iter()
                    .flat_map(move |id| self.variants.iter().map(move |v| (*of, id.clone(), *v)))
            })
            .collect()
    }

    /// The first field in which `other` differs, or `None`.
    fn differs(&self, other: &Selection) -> Option<&'static str> {
        [
            ("mode", self.mode != other.mode),
            ("target", self.target != other.target),
            ("baseline", self.baseline != other.baseline),
            ("toolset", self.toolset != other.toolset),
            ("findings", self.findings != other.findings),
            ("variants", self.variants != other.variants),
        ]
        .into_iter()
        .find_map(|(name, differs)| differs.then_some(name))
    }
}

/// One run's outcome as a report carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Which reconciler it ran.
    pub of: Of,
    /// The finding's ID.
    pub id: String,
    /// Fixed or regressed.
    pub variant: Variant,
    /// The verdict ([`Outcome::verdict`]).
    pub verdict: Verdict,
    /// The symptom, the failure, or why it could not run
    /// ([`Outcome::message`]).
    pub message: String,
    /// The finding's own check passed ([`Outcome::check_passed`]).
    #[serde(default)]
    pub check_passed: bool,
    /// Other defects the run saw ([`Outcome::also`]).
    #[serde(default)]
    pub also: Vec<Also>,
    /// What the run left behind, as text ([`Outcome::leaked`]).
    pub leaked: String,
    /// The run's time, in milliseconds.
    pub duration_ms: u64,
    /// The run's time split ([`harness::WaitSplit`]).
    #[serde(default)]
    pub waits: WaitsMs,
}

impl Run {
    /// The report's form of `outcome`, a run of `of`.
    pub fn of_outcome(of: Of, outcome: &Outcome) -> Self {
        Self {
            of,
            id: outcome.id.to_owned(),
            variant: outcome.variant,
            verdict: outcome.verdict,
            message: outcome.message.clone(),
            check_passed: outcome.check_passed,
            also: outcome.also.clone(),
            leaked: outcome.leaked.clone(),
            duration_ms: outcome.duration.as_millis() as u64,
            waits: WaitsMs::from(&outcome.waits),
        }
    }

    /// The outcome again; `None` for an ID the catalogue lacks. What leaked
    /// is kept as its text only.
    fn outcome(&self) -> Option<Outcome> {
        Some(Outcome {
            id: catalogue::find(&self.id)?.id.id(),
            variant: self.variant,
            verdict: self.verdict,
            message: self.message.clone(),
            check_passed: self.check_passed,
            also: self.also.clone(),
            leaks: Default::default(),
            leaked: self.leaked.clone(),
            duration: Duration::from_millis(self.duration_ms),
            waits: self.waits.into(),
        })
    }

    fn key(&self) -> (Of, String, Variant) {
        (self.of, self.id.clone(), self.variant)
    }
}

/// What a `--format json` report adds for `--merge` (keys `selection`,
/// `shard`, `runs` beside the report's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// What the whole run was asked to do.
    pub selection: Selection,
    /// `None` for a whole run.
    pub shard: Option<Shard>,
    /// The runs this part ran, in the order they ran.
    pub runs: Vec<Run>,
}

impl Part {
    /// Adds this part's keys to a report's JSON object.
    pub fn add_to(&self, report: &mut serde_json::Value) {
        let serde_json::Value::Object(map) = report else {
            return;
        };
        let part = serde_json::to_value(self).expect("a part serialises");
        if let serde_json::Value::Object(part) = part {
            map.extend(part);
        }
    }

    /// Reads the part out of a `--format json` report.
    ///
    /// # Errors
    ///
    /// [`NotAReport`] when `text` is not JSON, or lacks the part's keys.
    pub fn from_report(text: &str) -> Result<Self, NotAReport> {
        serde_json::from_str(text).map_err(NotAReport)
    }
}

/// A text that is not a `reproduce --format json` report with its part.
#[derive(Debug, thiserror::Error)]
#[error("not a `reproduce --format json` report with its selection, shard and runs")]
pub struct NotAReport(#[source] serde_json::Error);

/// The runs of the whole selection, put back together.
#[derive(Debug)]
pub struct Merged {
    /// What the whole run was asked to do.
    pub selection: Selection,
    /// The outcomes of the target's runs.
    pub target: Vec<Outcome>,
    /// The outcomes of the baseline's runs (empty but in
    /// [`Mode::Baseline`]).
    pub baseline: Vec<Outcome>,
}

/// Why reports cannot be merged into one run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
///
/// Each names the report files involved (`file` the one at fault, `first`
/// the first one given) as the caller gave them.
pub enum MergeError {
    /// No report was given.
    #[error("no report to merge")]
    Nothing,
    /// Two reports were asked to do different things.
    #[error("{file} and {first} are not shards of one run: they differ in {field}")]
    OtherRun {
        /// The first report.
        first: String,
        /// The report that differs from it.
        file: String,
        /// The first [`Selection`] field that differs.
        field: &'static str,
    },
    /// A whole run was given among others.
    #[error("{file} is a whole run, not a shard: merge it alone or merge shards only")]
    WholeRun {
        /// The whole run's report.
        file: String,
    },
    /// Two shards of different counts.
    #[error("{first} is shard {first_shard} but {file} is shard {shard}")]
    Counts {
        /// The first report.
        first: String,
        /// Its shard.
        first_shard: Shard,
        /// The report with another count.
        file: String,
        /// Its shard.
        shard: Shard,
    },
    /// One shard given twice.
    #[error("{file} and {first} are both shard {shard}: give each shard once")]
    ShardTwice {
        /// The first report of that shard.
        first: String,
        /// The second.
        file: String,
        /// The shard.
        shard: Shard,
    },
    /// A shard whose index is 0 or past its count.
    #[error("{file} says it is shard {shard}, past its count")]
    ShardOutOfRange {
        /// The report.
        file: String,
        /// The shard it claims.
        shard: Shard,
    },
    /// Runs run by more than one report: `<run> in <file> and <file>` each.
    #[error("the shards overlap: {}", .0.join("; "))]
    Overlap(Vec<String>),
    /// Runs of the selection no report ran.
    #[error("the shards are incomplete: {shards}no report ran {}", .runs.join(", "))]
    Missing {
        /// The shards not given (`shard 2/3 not given; `), or empty.
        shards: String,
        /// The runs missing.
        runs: Vec<String>,
    },
    /// A report ran what its selection (or the catalogue) lacks.
    #[error("{file} ran what its selection lacks: {}", .runs.join(", "))]
    Unselected {
        /// The report.
        file: String,
        /// The runs it should not have run.
        runs: Vec<String>,
    },
}

fn describe(of: Of, id: &str, variant: Variant, baseline: bool) -> String {
    let variant = format!("{variant:?}").to_lowercase();
    match (of, baseline) {
        (Of::Baseline, _) => format!("{id} ({variant}, baseline)"),
        (Of::Target, true) => format!("{id} ({variant}, target)"),
        (Of::Target, false) => format!("{id} ({variant})"),
    }
}

/// Merges the parts read from `(file, part)`: they must be the shards of
/// one selection, each once, together running every run of it exactly
/// once (a lone whole run merges to itself).
///
/// # Errors
///
/// The first [`MergeError`] met, in the order: no part, parts of other
/// runs, a shard given twice or out of range, a run not selected, runs
/// overlapping, runs missing.
pub fn merge(parts: &[(String, Part)]) -> Result<Merged, MergeError> {
    let Some((_, head)) = parts.first() else {
        return Err(MergeError::Nothing);
    };
    let selection = &head.selection;
    let baseline = selection.mode == Mode::Baseline;
    one_run(parts)?;
    each_shard_once(parts)?;
    let seen = runs_by_key(parts, selection, baseline)?;
    no_overlap(&seen, baseline)?;
    none_missing(parts, selection, &seen, baseline)?;
    let outcomes = |of: Of| -> Vec<Outcome> {
        parts
            .iter()
            .flat_map(|(_, p)| &p.runs)
            .filter(|r| r.of == of)
            .filter_map(Run::outcome)
            .collect()
    };
    Ok(Merged {
        selection: selection.clone(),
        target: outcomes(Of::Target),
        baseline: outcomes(Of::Baseline),
    })
}

/// A run's key: which reconciler, which finding, which variant.
type RunKey = (Of, String, Variant);

/// Every part has the first one's selection and shard count, and a whole
/// run comes alone.
fn one_run(parts: &[(String, Part)]) -> Result<(), MergeError> {
    let Some((first, head)) = parts.first() else {
        return Ok(());
    };
    for (file, part) in parts {
        if let Some(field) = head.selection.differs(&part.selection) {
            return Err(MergeError::OtherRun {
                first: first.clone(),
                file: file.clone(),
                field,
            });
        }
        match (head.shard, part.shard) {
            (Some(a), Some(b)) if a.count != b.count => {
                return Err(MergeError::Counts {
                    first: first.clone(),
                    first_shard: a,
                    file: file.clone(),
                    shard: b,
                });
            }
            (None, _) | (_, None) if parts.len() > 1 => {
                let whole = if part.shard.is_none() { file } else { first };
                return Err(MergeError::WholeRun {
                    file: whole.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every shard is within its count and given once.
fn each_shard_once(parts: &[(String, Part)]) -> Result<(), MergeError> {
    let mut shards_seen: BTreeMap<(usize, usize), &str> = BTreeMap::new();
    for (file, part) in parts {
        let Some(shard) = part.shard else { continue };
        if shard.index == 0 || shard.index > shard.count {
            return Err(MergeError::ShardOutOfRange {
                file: file.clone(),
                shard,
            });
        }
        if let Some(first) = shards_seen.insert((shard.index, shard.count), file) {
            return Err(MergeError::ShardTwice {
                first: first.to_owned(),
                file: file.clone(),
                shard,
            });
        }
    }
    Ok(())
}

/// The files that ran each run, once every run of every part is one of
/// `selection` (and of the catalogue).
fn runs_by_key<'p>(
    parts: &'p [(String, Part)],
    selection: &Selection,
    baseline: bool,
) -> Result<BTreeMap<RunKey, Vec<&'p str>>, MergeError> {
    let expected: BTreeSet<RunKey> = selection.runs().into_iter().collect();
    let mut seen: BTreeMap<RunKey, Vec<&str>> = BTreeMap::new();
    for (file, part) in parts {
        let unselected: Vec<String> = part
            .runs
            .iter()
            .filter(|r| !expected.contains(&r.key()) || catalogue::find(&r.id).is_none())
            .map(|r| describe(r.of, &r.id, r.variant, baseline))
            .collect();
        if !unselected.is_empty() {
            return Err(MergeError::Unselected {
                file: file.clone(),
                runs: unselected,
            });
        }
        for run in &part.runs {
            seen.entry(run.key()).or_default().push(file);
        }
    }
    Ok(seen)
}

/// No run was run by two files.
fn no_overlap(seen: &BTreeMap<RunKey, Vec<&str>>, baseline: bool) -> Result<(), MergeError> {
    let overlap: Vec<String> = seen
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|((of, id, v), files)| {
            format!(
                "{} in {}",
                describe(*of, id, *v, baseline),
                files.join(" and ")
            )
        })
        .collect();
    match overlap.is_empty() {
        true => Ok(()),
        false => Err(MergeError::Overlap(overlap)),
    }
}

/// Every run of `selection` was run by some file.
fn none_missing(
    parts: &[(String, Part)],
    selection: &Selection,
    seen: &BTreeMap<RunKey, Vec<&str>>,
    baseline: bool,
) -> Result<(), MergeError> {
    let missing: Vec<String> = selection
        .runs()
        .into_iter()
        .filter(|key| !seen.contains_key(key))
        .map(|(of, id, v)| describe(of, &id, v, baseline))
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(MergeError::Missing {
            shards: missing_shards(parts),
            runs: missing,
        }),
    }
}

/// `shard 2/3 and 3/3 not given; ` (empty when every shard is there).
fn missing_shards(parts: &[(String, Part)]) -> String {
    let Some(count) = parts.iter().find_map(|(_, p)| p.shard).map(|s| s.count) else {
        return String::new();
    };
    let given: BTreeSet<usize> = parts
        .iter()
        .filter_map(|(_, p)| p.shard)
        .map(|s| s.index)
        .collect();
    let absent: Vec<String> = (1..=count)
        .filter(|k| !given.contains(k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    match absent.len() {
        0 => String::new(),
        1 => format!("shard {} not given; ", absent[0]),
        _ => format!("shards {} not given; ", absent.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(findings: &[&str]) -> Selection {
        Selection {
            mode: Mode::Regressions,
            target: "reference".into(),
            baseline: None,
            toolset: "fake".into(),
            findings: findings.iter().map(|s| (*s).to_owned()).collect(),
            variants: vec![Variant::Fixed, Variant::Regressed],
        }
    }

    fn run(id: &str, variant: Variant) -> Run {
        Run {
            of: Of::Target,
            id: id.into(),
            variant,
            verdict: match variant {
                Variant::Fixed => Verdict::Passed,
                Variant::Regressed => Verdict::Reproduced,
            },
            message: String::new(),
            check_passed: variant == Variant::Fixed,
            also: Vec::new(),
            leaked: String::new(),
            duration_ms: 5,
            waits: WaitsMs {
                timeouts_ms: 2,
                margins_ms: 1,
                other_ms: 2,
            },
        }
    }

    /// The parts `n` shards of `selection` would report.
    fn shards(selection: &Selection, n: usize) -> Vec<(String, Part)> {
        (1..=n)
            .map(|k| {
                let shard = Shard { index: k, count: n };
                let runs = shard
                    .pick(&selection.findings, &selection.variants)
                    .into_iter()
                    .map(|(id, v)| run(&id, v))
                    .collect();
                let part = Part {
                    selection: selection.clone(),
                    shard: Some(shard),
                    runs,
                };
                (format!("{k}.json"), part)
            })
            .collect()
    }

    const TWO: &[&str] = &["console-group-signal", "bracketed-home-path"];

    #[test]
    fn a_shard_is_k_of_n_from_one() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "1/-2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 2, count: 3 }.to_string(), "2/3");
    }

    #[test]
    fn the_shards_deal_every_run_once_mixing_findings_and_variants() {
        let findings: Vec<u32> = (0..5).collect();
        let variants = ['f', 'r'];
        let mut all: Vec<(u32, char)> = Shard { index: 1, count: 1 }.pick(&findings, &variants);
        let mut dealt: Vec<(u32, char)> = (1..=3)
            .flat_map(|k| Shard { index: k, count: 3 }.pick(&findings, &variants))
            .collect();
        assert_eq!(
            Shard { index: 2, count: 3 }.pick(&findings, &variants),
            [(0, 'r'), (1, 'f'), (3, 'r'), (4, 'f')]
        );
        assert_eq!(
            Shard { index: 1, count: 2 }.pick(&findings[..2], &variants),
            [(0, 'f'), (1, 'r')]
        );
        dealt.sort();
        all.sort();
        assert_eq!(dealt, all);
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn the_shards_of_one_run_merge_back_into_it() {
        let selection = selection(TWO);
        let merged = merge(&shards(&selection, 3)).unwrap();
        let mut runs: Vec<(&str, Variant)> =
            merged.target.iter().map(|o| (o.id, o.variant)).collect();
        runs.sort_by_key(|(id, v)| (*id, format!("{v:?}")));
        assert_eq!(
            runs,
            [
                ("bracketed-home-path", Variant::Fixed),
                ("bracketed-home-path", Variant::Regressed),
                ("console-group-signal", Variant::Fixed),
                ("console-group-signal", Variant::Regressed),
            ]
        );
        assert!(merged.baseline.is_empty());
    }

    #[test]
    fn a_missing_shard_is_named_with_the_runs_nobody_made() {
        let selection = selection(TWO);
        let mut parts = shards(&selection, 2);
        parts.remove(1);
        let error = merge(&parts).unwrap_err().to_string();
        assert_eq!(
            error,
            "the shards are incomplete: shard 2/2 not given; no report ran \
             console-group-signal (regressed), bracketed-home-path (fixed)"
        );
    }

    #[test]
    fn a_shard_given_twice_or_past_its_count_is_named() {
        let selection = selection(TWO);
        let mut parts = shards(&selection, 2);
        let again = ("again.json".to_owned(), parts[0].1.clone());
        parts.push(again);
        let error = merge(&parts).unwrap_err();
        assert_eq!(
            error.to_string(),
            "again.json and 1.json are both shard 1/2: give each shard once"
        );
        let mut parts = shards(&selection, 2);
        parts[1].1.shard = Some(Shard { index: 5, count: 2 });
        let error = merge(&parts).unwrap_err();
        assert_eq!(
            error.to_string(),
            "2.json says it is shard 5/2, past its count"
        );
    }

    #[test]
    fn runs_in_two_shards_are_an_overlap_naming_them() {
        let selection = selection(TWO);
        let mut parts = shards(&selection, 2);
        let first_run = parts[0].1.runs[0].clone();
        parts[1].1.runs.push(first_run);
        let error = merge(&parts).unwrap_err();
        assert!(
            matches!(&error, MergeError::Overlap(runs) if runs.len() == 1 && runs[0].ends_with("in 1.json and 2.json")),
            "{error}"
        );
    }

    #[test]
    fn shards_of_other_runs_or_counts_do_not_merge() {
        let parts = shards(&selection(TWO), 2);
        let other = shards(&selection(&TWO[..1]), 2);
        let error = merge(&[parts[0].clone(), other[1].clone()]).unwrap_err();
        assert!(
            matches!(
                error,
                MergeError::OtherRun {
                    field: "findings",
                    ..
                }
            ),
            "{error}"
        );
        let three = shards(&selection(TWO), 3);
        let error = merge(&[parts[0].clone(), three[1].clone()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1.json is shard 1/2 but 2.json is shard 2/3"
        );
    }

    #[test]
    fn a_run_outside_the_selection_is_refused() {
        let mut parts = shards(&selection(TWO), 1);
        parts[0].1.runs.push(run("disk-lock-leak", Variant::Fixed));
        let error = merge(&parts).unwrap_err().to_string();
        assert_eq!(
            error,
            "1.json ran what its selection lacks: disk-lock-leak (fixed)"
        );
    }

    #[test]
    fn a_part_reads_back_from_a_report() {
        let (_, part) = &shards(&selection(TWO), 2)[0];
        let mut report = serde_json::json!({ "findings": [] });
        part.add_to(&mut report);
        let back = Part::from_report(&report.to_string()).unwrap();
        assert_eq!(back.selection, part.selection);
        assert_eq!(back.shard, part.shard);
        assert_eq!(back.runs.len(), part.runs.len());
    }
}
