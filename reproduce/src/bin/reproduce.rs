//! `reproduce`: runs the findings catalogue against the reconciler under
//! test and reports, per finding, the fixed and the regressed verdict.
//! Like every binary of this package it is also multicall (see this
//! package's `multicall` library).

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use harness::{Binaries, Target, Toolset};
use indicatif::{ProgressBar, ProgressStyle};
use scenarios::catalogue::{self, CATALOGUE, Finding};
use scenarios::runner::{Outcome, RunConfig, Variant, run_finding};
use scenarios::shard::{self, Mode, Of, Part, Run, Selection, Shard};
use scenarios::{junit, report};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ToolsetArg {
    /// Every tool is a fault-injecting fake.
    Fake,
    /// Real Lima: the real limactl (installed by `just real-lima-install`),
    /// QEMU, ssh and ssh-keygen; wsl.exe stays fake. Findings that need a
    /// fault only the fakes inject report unsupported, with the reason.
    Real,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Markdown,
    /// JUnit XML: one test case per finding and variant run (per audit row
    /// in an audit), the symptom as the failure message.
    Junit,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Variants {
    Both,
    Fixed,
    Regressed,
}

/// Reproduce every finding of the review: each scenario must fail with its
/// regression switched on and pass without it.
#[derive(Debug, Parser)]
#[command(name = "reproduce", version)]
struct Args {
    /// Run only these findings (repeatable).
    #[arg(long = "only", value_name = "ID")]
    only: Vec<String>,
    /// `reference` (built in), or a target file (`fixtures/targets/*.toml`)
    /// describing another reconciler's kubectl-style CLI.
    #[arg(long, default_value = "reference")]
    target: String,
    #[arg(long, value_enum, default_value = "fake")]
    toolset: ToolsetArg,
    /// The report's format: `json` also carries what `--merge` needs;
    /// `markdown` suits a CI job summary, `junit` a CI's test view.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Which runs of each finding.
    #[arg(long, value_enum, default_value = "both")]
    variants: Variants,
    /// Scenarios run at once, at least 1 (default: twice the number of
    /// cores: a scenario spends most of its time waiting).
    #[arg(long, short, value_parser = at_least_one)]
    jobs: Option<std::num::NonZeroUsize>,
    /// List the findings (with how each runs on real Lima and against a
    /// target that embeds its hostagent) and exit. Plain text only.
    #[arg(long, conflicts_with = "format")]
    list: bool,
    /// The bound of every command run for the target (CLI verbs, ready and
    /// stop commands): at it the command's process group is killed and the
    /// run ends as a harness error naming the command (one that hangs
    /// while the service comes up is tried again). Default: the target
    /// file's `[harness] command_timeout`, else 120s.
    #[arg(long, value_parser = parse_command_timeout)]
    command_timeout: Option<std::time::Duration>,
    /// Kill the processes and remove the sandbox directories that an earlier,
    /// killed run left (found by their sandbox mark and run name), then go on.
    #[arg(long)]
    clean_leftovers: bool,
    /// Give the audit verdict (absent / PRESENT / cannot run here / harness
    /// error) from the fixed runs only. The default for a target without
    /// regression switches.
    #[arg(long)]
    audit: bool,
    /// A second target file (another build of the same reconciler): audit
    /// both and report per finding what appeared or went away.
    #[arg(long, value_name = "FILE")]
    baseline: Option<String>,
    /// Run only the k-th of n shares of the selected (finding, variant)
    /// runs, dealt round-robin; k counts from 1, as nextest's `--partition
    /// count:k/n`. The `--format json` reports of the n shards merge into
    /// the whole run's report with `--merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Merge the `--format json` reports of every shard of one run and
    /// print the report (in `--format`) and exit as that run would have.
    /// A whole run's report alone merges to itself: that renders a run
    /// (an audit too) again in another format.
    /// Refuses shards of different runs, a shard given twice or past its
    /// count, runs that two reports both made (naming them) and missing
    /// shards (naming the findings no report ran).
    #[arg(
        long,
        value_name = "FILE",
        num_args = 1..,
        conflicts_with_all = [
            "only", "target", "toolset", "variants", "jobs", "list",
            "command_timeout", "clean_leftovers", "audit", "baseline", "shard",
        ]
    )]
    merge: Vec<PathBuf>,
}

impl Args {
    /// `--jobs`, or twice the number of cores.
    fn jobs(&self) -> usize {
        self.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            std::num::NonZeroUsize::get,
        )
    }
}

/// `target`, its commands bounded by `timeout` when one was given.
fn with_command_timeout(target: Target, timeout: Option<std::time::Duration>) -> Target {
    match timeout {
        Some(timeout) => target.with_command_timeout(timeout),
        None => target,
    }
}

/// `jobs`, or fewer where a target limits how many of its scenarios run
/// at once (its slots, its `jobs`), saying so.
fn capped_jobs(jobs: usize, target: &Target, baseline: Option<&Target>) -> usize {
    let limit = std::iter::once(target)
        .chain(baseline)
        .filter_map(|t| t.max_jobs().map(|n| (n, t.name().to_owned())))
        .min();
    match limit {
        Some((max, name)) if max < jobs => {
            eprintln!("reproduce: {max} scenario(s) at once, as target {name} allows");
            max
        }
        _ => jobs,
    }
}

fn main() -> ExitCode {
    if let Some(code) = multicall::dispatch() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match reproduce(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("reproduce: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn selected(only: &[String]) -> anyhow::Result<Vec<&'static Finding>> {
    if only.is_empty() {
        return Ok(CATALOGUE.iter().collect());
    }
    let mut unique: Vec<&String> = Vec::new();
    for id in only {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    unique
        .into_iter()
        .map(|id| {
            catalogue::find(id).with_context(|| {
                let ids: Vec<&str> = CATALOGUE.iter().map(|f| f.id.id()).collect();
                format!(
                    "unknown finding {id:?}; the findings are: {}",
                    ids.join(", ")
                )
            })
        })
        .collect()
}

/// A duration of 1 ms to 1 hour.
fn parse_command_timeout(text: &str) -> Result<std::time::Duration, String> {
    let max = std::time::Duration::from_secs(3600);
    match contract::timings::parse_duration(text).map_err(|e| e.to_string())? {
        d if d.is_zero() => Err("must be more than 0s".to_owned()),
        d if d > max => Err("must be at most 1h".to_owned()),
        d => Ok(d),
    }
}

fn toolset(choice: ToolsetArg) -> anyhow::Result<Toolset> {
    Ok(match choice {
        ToolsetArg::Fake => Toolset::fakes(),
        ToolsetArg::Real => {
            if let Err(why) = harness::real_lima::availability() {
                bail!("--toolset real: {why}");
            }
            Toolset::real_lima()
        }
    })
}

/// The run `args` ask for: true when every verdict is as expected.
fn reproduce(args: Args) -> anyhow::Result<bool> {
    if !args.merge.is_empty() {
        return merge(&args.merge, args.format);
    }
    let findings = selected(&args.only)?;
    let target = Target::parse(&args.target)?;
    interrupts::install()?;
    leftovers(args.clean_leftovers);
    if args.list {
        let text: String = findings
            .iter()
            .map(|f| format!("{}\n", catalogue::describe(f)))
            .collect();
        print_stdout(&text)?;
        return Ok(true);
    }
    let (config, baseline) = run_configs(&args, target)?;
    let selection = selection(&args, &findings, &config, baseline.as_ref())?;
    let all = findings.len() * selection.variants.len();
    let tasks: Vec<(&Finding, Variant)> = args
        .shard
        .unwrap_or(Shard { index: 1, count: 1 })
        .pick(&findings, &selection.variants);
    if let Some(shard) = args.shard {
        eprintln!(
            "reproduce: shard {shard}: {} of the {all} runs",
            tasks.len()
        );
    }
    let jobs = capped_jobs(args.jobs(), &config.target, baseline.as_ref());
    let outcomes = run_all(&tasks, &config, jobs);
    let base_outcomes = match baseline {
        Some(baseline) => {
            let base_config = RunConfig {
                target: baseline,
                ..config
            };
            run_all(&tasks, &base_config, jobs)
        }
        None => Vec::new(),
    };
    print_report(
        &selection,
        args.shard,
        args.format,
        &outcomes,
        &base_outcomes,
    )
}

/// The configuration of the target's runs, and the `--baseline` target
/// (if any), both with `--command-timeout` applied.
fn run_configs(args: &Args, target: Target) -> anyhow::Result<(RunConfig, Option<Target>)> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut config = RunConfig::new(Binaries::multicall(&exe)).with_toolset(toolset(args.toolset)?);
    let timeout = args.command_timeout;
    config.target = with_command_timeout(target, timeout);
    if let Some(timeout) = timeout {
        config.settings.command_timeout = timeout;
    }
    let baseline = args
        .baseline
        .as_deref()
        .map(Target::parse)
        .transpose()?
        .map(|b| with_command_timeout(b, timeout));
    Ok((config, baseline))
}

/// What this run does: an audit (asked for, with a baseline, or for a
/// target without regression switches) runs the fixed variants only, and
/// refuses `--variants regressed`.
fn selection(
    args: &Args,
    findings: &[&Finding],
    config: &RunConfig,
    baseline: Option<&Target>,
) -> anyhow::Result<Selection> {
    let audited = args.audit || baseline.is_some() || !config.target.supports_regressions();
    if audited && args.variants == Variants::Regressed {
        anyhow::bail!(
            "--variants regressed: an audit ({}) runs the fixed variants only",
            if args.audit || baseline.is_some() {
                "--audit, --baseline"
            } else {
                "the target declares no regression_args"
            }
        );
    }
    Ok(Selection {
        mode: match (baseline, audited) {
            (Some(_), _) => Mode::Baseline,
            (None, true) => Mode::Audit,
            (None, false) => Mode::Regressions,
        },
        target: config.target.name().to_owned(),
        baseline: baseline.map(|b| b.name().to_owned()),
        toolset: format!("{:?}", args.toolset).to_lowercase(),
        findings: findings.iter().map(|f| f.id.id().to_owned()).collect(),
        variants: match (audited, args.variants) {
            (true, _) | (false, Variants::Fixed) => vec![Variant::Fixed],
            (false, Variants::Both) => vec![Variant::Fixed, Variant::Regressed],
            (false, Variants::Regressed) => vec![Variant::Regressed],
        },
    })
}

/// `reproduce --merge FILE...`: the shards' reports, checked and merged,
/// printed as the whole run's report.
fn merge(files: &[PathBuf], format: Format) -> anyhow::Result<bool> {
    let parts = files
        .iter()
        .map(|file| {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {name}"))?;
            let part = Part::from_report(&text).with_context(|| name.clone())?;
            Ok((name, part))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = shard::merge(&parts)?;
    print_report(
        &merged.selection,
        None,
        format,
        &merged.target,
        &merged.baseline,
    )
}

/// Prints the report of `selection`'s runs (of `shard`, if one) and tells
/// whether every verdict is as expected. The JSON report also carries the
/// selection, the shard and the runs for `--merge`.
fn print_report(
    selection: &Selection,
    shard: Option<Shard>,
    format: Format,
    target: &[Outcome],
    baseline: &[Outcome],
) -> anyhow::Result<bool> {
    // A shard's report shows the findings it ran.
    let ids: Vec<&'static str> = selection
        .findings
        .iter()
        .filter_map(|id| catalogue::find(id))
        .map(|f| f.id.id())
        .filter(|id| target.iter().chain(baseline).any(|o| o.id == *id))
        .collect();
    let (text, expected) = match selection.mode {
        Mode::Regressions => {
            let rows = report::rows(&ids, target);
            let text = match format {
                Format::Table => report::table(&rows),
                Format::Json => report::json(&rows),
                Format::Markdown => report::markdown(&rows),
                Format::Junit => junit::findings(&rows),
            };
            (text, report::Summary::all_as_expected(&rows))
        }
        Mode::Audit | Mode::Baseline => audit_report(selection, format, &ids, target, baseline),
    };
    let text = match format {
        Format::Json => {
            let mut json: serde_json::Value =
                serde_json::from_str(&text).context("the report is JSON")?;
            let runs = [(Of::Target, target), (Of::Baseline, baseline)]
                .into_iter()
                .flat_map(|(of, outcomes)| outcomes.iter().map(move |o| Run::of_outcome(of, o)))
                .collect();
            let part = Part {
                selection: selection.clone(),
                shard,
                runs,
            };
            part.add_to(&mut json);
            format!("{json:#}")
        }
        Format::Table | Format::Markdown | Format::Junit => text,
    };
    print_stdout(&format!("{text}\n"))?;
    Ok(expected)
}

/// Writes `text` to stdout; a failure (a full device, a closed pipe) is an
/// error naming stdout, not a panic.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the report to stdout")
}

/// Reports what earlier, killed runs left; removes it when asked.
fn leftovers(clean: bool) {
    let temp = std::env::temp_dir();
    if clean {
        let removed = harness::runs::remove_leftovers(&temp);
        if !removed.is_empty() {
            eprintln!("reproduce: removed what earlier runs left: {removed}");
        }
        return;
    }
    let found = harness::runs::leftovers(&temp);
    if !found.is_empty() {
        eprintln!(
            "reproduce: earlier runs that were killed left {found}\n\
             reproduce: run with --clean-leftovers to remove them"
        );
    }
}

/// `--jobs`: a whole number, at least 1.
fn at_least_one(text: &str) -> Result<std::num::NonZeroUsize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    std::num::NonZeroUsize::new(n).ok_or_else(|| "at least 1 scenario must run at once".to_owned())
}

/// Ctrl-C, SIGTERM and SIGHUP (Windows: CTRL_C, CTRL_BREAK, closing the
/// console) stop the run: every live sandbox is cleaned, what was cleaned
/// is said, and the process exits with 130.
mod interrupts {
    use anyhow::Context;

    /// The exit code of an interrupted run (128 + SIGINT, by convention).
    pub(super) const INTERRUPTED_EXIT: i32 = 130;

    /// How long the main thread waits for an interrupt's cleaning before
    /// it exits by itself: killing and removing a few sandboxes takes
    /// milliseconds; this only bounds a handler that never finishes.
    const CLEANING_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

    /// Once an interrupt has begun, the handler owns the end of the process:
    /// the scenarios it cut short must not be reported as verdicts, and the
    /// process must not end before the sandboxes are cleaned. Returns at
    /// once when no interrupt came; otherwise waits, bounded, for the
    /// handler's exit.
    pub(super) fn let_the_handler_finish() {
        if !harness::runs::stopping() {
            return;
        }
        let deadline = std::time::Instant::now() + CLEANING_BOUND;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            // The handler ends the process; nothing unparks this thread.
            std::thread::park_timeout(left);
        }
        eprintln!("reproduce: interrupted; the cleaning did not finish within {CLEANING_BOUND:?}");
        std::process::exit(INTERRUPTED_EXIT);
    }

    /// Installs the handler of Ctrl-C, SIGTERM and SIGHUP (see the module).
    pub(super) fn install() -> anyhow::Result<()> {
        ctrlc::set_handler(|| {
            eprintln!("reproduce: interrupted: stopping every scenario and cleaning its sandbox");
            let cleaned = harness::runs::stop_all();
            eprintln!("reproduce: interrupted; cleaned {cleaned}");
            std::process::exit(INTERRUPTED_EXIT);
        })
        .context("cannot install the interrupt handler")
    }
}

/// The audit of the target (and of the baseline, with the difference):
/// the text, and whether nothing is PRESENT and the harness did its part.
fn audit_report(
    selection: &Selection,
    format: Format,
    ids: &[&'static str],
    target: &[Outcome],
    baseline: &[Outcome],
) -> (String, bool) {
    use scenarios::audit;
    let name = &selection.target;
    let rows = audit::rows(ids, target);
    let clean = audit::clean(&rows);
    let Some(base_name) = &selection.baseline else {
        let text = match format {
            Format::Table => audit::table(name, &rows),
            Format::Json => format!("{:#}", audit::json(name, &rows)),
            Format::Markdown => audit::markdown(name, &rows),
            Format::Junit => junit::audit(name, &rows),
        };
        return (text, clean);
    };
    let base_rows = audit::rows(ids, baseline);
    let diffs = audit::diff(&base_rows, &rows);
    let text = match format {
        Format::Table => format!(
            "{}\n\n{}\n\n{}",
            audit::table(base_name, &base_rows),
            audit::table(name, &rows),
            audit::diff_table(base_name, name, &diffs)
        ),
        Format::Json => format!(
            "{:#}",
            serde_json::json!({
                "baseline": audit::json(base_name, &base_rows),
                "target": audit::json(name, &rows),
                "difference": audit::diff_json(&diffs),
            })
        ),
        Format::Markdown => format!(
            "{}\n{}\n{}",
            audit::markdown(base_name, &base_rows),
            audit::markdown(name, &rows),
            audit::diff_markdown(base_name, name, &diffs)
        ),
        Format::Junit => junit::baseline(base_name, &base_rows, name, &rows, &diffs),
    };
    (text, clean)
}

/// Runs the tasks on `jobs` threads, showing progress on stderr: a bar on a
/// terminal, one line per finished run elsewhere (CI logs).
fn run_all(tasks: &[(&Finding, Variant)], config: &RunConfig, jobs: usize) -> Vec<Outcome> {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(tasks.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    let queue = Mutex::new(tasks.iter());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(tasks.len()) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue lock").next();
                    let Some((finding, variant)) = next else {
                        break;
                    };
                    // An interrupt stops the run: nothing more starts, and
                    // what it cut short is no verdict to print.
                    if harness::runs::stopping() {
                        break;
                    }
                    bar.set_message(finding.id.id());
                    let outcome = run_finding(finding, *variant, config);
                    if harness::runs::stopping() {
                        break;
                    }
                    let line = format!(
                        "{:32} {:9} {:14} {:5.1}s",
                        outcome.id,
                        format!("{:?}", outcome.variant).to_lowercase(),
                        outcome.verdict.label(),
                        outcome.duration.as_secs_f64()
                    );
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                    bar.inc(1);
                    outcomes.lock().expect("outcomes lock").push(outcome);
                }
            });
        }
    });
    bar.finish_and_clear();
    interrupts::let_the_handler_finish();
    outcomes.into_inner().expect("outcomes lock")
}
