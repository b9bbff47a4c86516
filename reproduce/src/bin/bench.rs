//! `bench`: the harness's own speed, as medians over repeated runs.
//!
//! - sandbox: create a sandbox with the fakes installed, then drop it;
//! - hostagent: spawn the fake hostagent until its socket answers /v1/info;
//! - lifecycle: reference reconciler, apply until Running=True and
//!   running=false until Stopped;
//! - `--real-lima`: real Lima against the fakes, for the same blank-disk
//!   instance: `limactl start --foreground` until Lima's Running (ha.pid,
//!   /v1/info, qemu.pid), and the reference forced stop until every process
//!   is gone.
//! - `--findings`: every finding of the catalogue (or those of `--only`),
//!   fixed and regressed, one run at a time: per finding and variant the
//!   median total, split into waiting on configured timeouts (the floor),
//!   on margins, and on everything else (see `harness::waits`).
//! - `--real-guest`: real Lima booting the real guest
//!   (`scripts/build-real-guest`): `limactl start --foreground` until the
//!   hostagent's booting and running events (`ha.stdout.log`), then the
//!   reference forced stop. No warm-up run: each boot is a cold one.

use anyhow::Context;
use clap::Parser;
use harness::real_lima::lima_status;
use harness::{
    Binaries, DriverSettings, ReconcilerDriver, ReferenceDriver, Sandbox, Template, Toolset,
    VmSpec, WaitError, eventually_every,
};
use lima_layout::VmType;
use std::time::{Duration, Instant};

/// Waits polling every millisecond: a coarser poll would be what is
/// measured.
fn wait_for<T>(
    timeout: Duration,
    what: &str,
    probe: impl FnMut() -> Result<T, String>,
) -> Result<T, WaitError> {
    eventually_every(Duration::from_millis(1), timeout, what, probe)
}

#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Repetitions of each measurement (default 20; 3 with `--findings`).
    #[arg(long, short)]
    runs: Option<usize>,
    /// Only compare real Lima with the fakes (needs `just real-lima-install`).
    #[arg(long)]
    real_lima: bool,
    /// Only time the findings' scenarios, per finding and variant, split
    /// by what they waited on (`--runs` of each, at most 3 by default).
    #[arg(long, conflicts_with_all = ["real_lima", "real_guest"])]
    findings: bool,
    /// With `--findings`: only these findings (repeatable).
    #[arg(long = "only", value_name = "ID", requires = "findings")]
    only: Vec<String>,
    /// Only time the real guest's boot to the hostagent's running event
    /// (needs `just real-lima-install` and `just real-guest`).
    #[arg(long, conflicts_with = "real_lima")]
    real_guest: bool,
}

fn main() -> anyhow::Result<()> {
    if let Some(code) = multicall::dispatch() {
        std::process::exit(code);
    }
    let args = Args::parse();
    let runs = args.runs.unwrap_or(if args.findings { 3 } else { 20 });
    let exe = std::env::current_exe().context("locating this executable")?;
    let binaries = Binaries::multicall(&exe);
    if args.real_lima {
        return real_lima_against_fakes(&binaries, runs);
    }
    if args.real_guest {
        return real_guest_boot(&binaries, runs);
    }
    if args.findings {
        return findings::bench(binaries, &args.only, runs);
    }
    report(
        "sandbox set up + torn down",
        measure(runs, || {
            let started = Instant::now();
            drop(Sandbox::new(&binaries)?);
            Ok(vec![started.elapsed()])
        })?,
    );
    report(
        "fake hostagent spawn -> /v1/info",
        measure(runs, || hostagent_ready(&binaries))?,
    );
    let lifecycle = measure(runs.min(10), || lifecycle(&binaries))?;
    let (apply, stop): (Vec<_>, Vec<_>) = lifecycle.chunks(2).map(|c| (c[0], c[1])).unzip();
    report("reconciler apply -> Running=True", apply);
    report("reconciler running=false -> Stopped", stop);
    Ok(())
}

fn measure(
    runs: usize,
    mut once: impl FnMut() -> anyhow::Result<Vec<Duration>>,
) -> anyhow::Result<Vec<Duration>> {
    let _warm_up = once()?;
    let mut all = Vec::new();
    for _ in 0..runs {
        all.extend(once()?);
    }
    Ok(all)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:40} median {:8.2} ms  min {:8.2} ms  max {:8.2} ms  ({} runs)",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

fn hostagent_ready(binaries: &Binaries) -> anyhow::Result<Vec<Duration>> {
    let sandbox = Sandbox::new(binaries)?;
    let instance = sandbox.lima_home().instance("bench");
    std::fs::create_dir_all(&instance.dir)?;
    std::fs::write(instance.lima_yaml(), Template::new(VmType::Qemu).to_yaml())?;
    let started = Instant::now();
    let mut cmd = sandbox.command(sandbox.tool_path("limactl"));
    cmd.arg("hostagent")
        .arg("--pidfile")
        .arg(instance.ha_pid())
        .arg("--socket")
        .arg(instance.ha_sock())
        .arg("bench")
        .stdout(std::process::Stdio::null());
    let pid = sandbox.spawn(cmd)?;
    wait_for(Duration::from_secs(10), "/v1/info to answer", || {
        lima_layout::info::query_info(&instance.ha_sock(), Duration::from_secs(1))
            .map_err(|e| contract::error_chain::chain(&e))
    })?;
    let elapsed = started.elapsed();
    proctree::interrupt_group(pid)?;
    sandbox.wait_child(pid, Duration::from_secs(10))?;
    Ok(vec![elapsed])
}

fn lifecycle(binaries: &Binaries) -> anyhow::Result<Vec<Duration>> {
    let sandbox = Sandbox::new(binaries)?;
    let mut svc = ReferenceDriver::new(&sandbox, DriverSettings::fast());
    svc.start_service()?;
    let vm = VmSpec::new("bench", Template::new(VmType::Qemu));
    let started = Instant::now();
    svc.apply(&vm)?;
    wait(&mut svc, |v| v.is_running())?;
    let apply = started.elapsed();
    let started = Instant::now();
    svc.set_running("bench", false)?;
    wait(&mut svc, |v| v.is_stopped())?;
    Ok(vec![apply, started.elapsed()])
}

fn wait(
    svc: &mut ReferenceDriver<'_>,
    wanted: impl Fn(&harness::VmView) -> bool,
) -> anyhow::Result<()> {
    wait_for(
        Duration::from_secs(20),
        "the resource state",
        || match svc.get("bench") {
            Ok(Some(v)) if wanted(&v) => Ok(()),
            Ok(v) => Err(format!("{:?}", v.map(|v| v.running_summary()))),
            Err(e) => Err(contract::error_chain::chain(&e)),
        },
    )?;
    Ok(())
}

fn real_lima_against_fakes(binaries: &Binaries, runs: usize) -> anyhow::Result<()> {
    if let Err(why) = harness::real_lima::availability() {
        anyhow::bail!("--real-lima: {why}");
    }
    for (label, toolset) in [("fake", Toolset::fakes()), ("real", Toolset::real_lima())] {
        let samples = measure(runs, || start_and_force(binaries, &toolset))?;
        let (start, stop): (Vec<_>, Vec<_>) = samples.chunks(2).map(|c| (c[0], c[1])).unzip();
        report(&format!("{label}: start --foreground -> Running"), start);
        report(&format!("{label}: forced stop -> all gone"), stop);
    }
    Ok(())
}

/// Writes instance `bench` of `template` and starts it as the reconciler's
/// `start-foreground` entry does (the logs as stdout and stderr); returns
/// its paths and when it was started.
fn start_foreground(
    sandbox: &Sandbox,
    template: &Template,
) -> anyhow::Result<(lima_layout::InstancePaths, Instant)> {
    let instance = sandbox.lima_home().instance("bench");
    std::fs::create_dir_all(&instance.dir)?;
    std::fs::write(instance.lima_yaml(), template.to_yaml())?;
    let started = Instant::now();
    let mut cmd = sandbox.command(sandbox.tool_path("limactl"));
    cmd.args(["start", "--foreground", "--tty=false", "bench"])
        .stdout(std::fs::File::create(instance.ha_stdout_log())?)
        .stderr(std::fs::File::create(instance.ha_stderr_log())?);
    sandbox.spawn(cmd)?;
    Ok((instance, started))
}

/// One blank-disk instance: started as the reconciler's `start-foreground`
/// entry does, then forced down by the reference routine.
fn start_and_force(binaries: &Binaries, toolset: &Toolset) -> anyhow::Result<Vec<Duration>> {
    let sandbox = Sandbox::with_toolset(binaries, toolset.clone())?;
    let disk = harness::real_lima::blank_disk(&sandbox.root().join("images"))?;
    let template = Template::blank_disk(&disk).ssh_port(harness::ports::pick_free_port());
    let (instance, started) = start_foreground(&sandbox, &template)?;
    wait_for(
        Duration::from_secs(30),
        "Lima's Running",
        || match lima_status(&instance, VmType::Qemu) {
            status if status.is_running() => Ok(()),
            status => Err(format!("{status:?}")),
        },
    )?;
    let start = started.elapsed();
    let started = Instant::now();
    let settings = reconciler::Settings::new(sandbox.lima_home().path(), sandbox.state_dir());
    let found = reconciler::instance::inspect(&sandbox.lima_home(), "bench", VmType::Qemu);
    reconciler::forced_stop::forced_stop(&settings, &found);
    wait_for(Duration::from_secs(10), "every process gone", || {
        let left = sandbox.live_processes().len();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} alive"))
        }
    })?;
    Ok(vec![start, started.elapsed()])
}

fn real_guest_boot(binaries: &Binaries, runs: usize) -> anyhow::Result<()> {
    if let Err(why) = harness::real_lima::availability() {
        anyhow::bail!("--real-guest: {why}");
    }
    let guest = harness::real_lima::RealGuest::built()
        .context("--real-guest: the real guest is not built (run scripts/build-real-guest)")?;
    let accel = if guest.tcg_wrapper.is_some() {
        "TCG"
    } else {
        "KVM"
    };
    let (mut start, mut boot) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let [to_running, booting_to_running] = boot_once(binaries, &guest)?;
        eprintln!(
            "run {run}/{runs}: start -> running {:.1} s, booting -> running {:.1} s",
            to_running.as_secs_f64(),
            booting_to_running.as_secs_f64()
        );
        start.push(to_running);
        boot.push(booting_to_running);
    }
    report(&format!("real guest ({accel}): start -> running"), start);
    report(&format!("real guest ({accel}): booting -> running"), boot);
    Ok(())
}

/// One cold boot: the time from `limactl start --foreground` to the running
/// event, and from the booting event (QEMU started) to the running event,
/// both as this process first sees them in `ha.stdout.log`.
fn boot_once(
    binaries: &Binaries,
    guest: &harness::real_lima::RealGuest,
) -> anyhow::Result<[Duration; 2]> {
    let sandbox = Sandbox::with_toolset(binaries, Toolset::real_lima())?;
    let template = Template::real_guest(guest).ssh_port(harness::ports::pick_free_port());
    let (instance, started) = start_foreground(&sandbox, &template)?;
    let mut booting = None;
    let running = eventually_every(
        Duration::from_millis(10),
        scenarios::steps::GUEST_BOOT,
        "the running event",
        || {
            let events: Vec<_> = std::fs::read_to_string(instance.ha_stdout_log())
                .unwrap_or_default()
                .lines()
                .filter_map(lima_layout::HostagentEvent::parse_line)
                .collect();
            if booting.is_none() && !events.is_empty() {
                booting = Some(started.elapsed());
            }
            if events.iter().any(|e| e.status.running) {
                Ok(started.elapsed())
            } else {
                Err(format!("{} event(s)", events.len()))
            }
        },
    )?;
    let booting = booting.unwrap_or(running);
    let settings = reconciler::Settings::new(sandbox.lima_home().path(), sandbox.state_dir());
    let found = reconciler::instance::inspect(&sandbox.lima_home(), "bench", VmType::Qemu);
    reconciler::forced_stop::forced_stop(&settings, &found);
    Ok([running, running - booting])
}

/// The findings' scenarios, timed and split by what they waited on.
mod findings {
    use anyhow::Context;
    use harness::{Binaries, WaitSplit};
    use scenarios::catalogue::{self, CATALOGUE, Finding};
    use scenarios::runner::{RunConfig, Variant, run_finding};
    use std::time::Duration;

    /// Runs each finding (of `only`, or all) fixed and regressed `runs`
    /// times, one run at a time, and prints per finding and variant the
    /// median run's total and its split, then the sums of the medians.
    pub(super) fn bench(binaries: Binaries, only: &[String], runs: usize) -> anyhow::Result<()> {
        let findings: Vec<&Finding> = if only.is_empty() {
            CATALOGUE.iter().collect()
        } else {
            only.iter()
                .map(|id| catalogue::find(id).with_context(|| format!("unknown finding {id:?}")))
                .collect::<anyhow::Result<_>>()?
        };
        let config = RunConfig::new(binaries);
        let ms = |d: Duration| d.as_millis();
        println!(
            "{:32} {:9} {:>8} {:>9} {:>8} {:>8} {:>9}  verdicts",
            "finding", "variant", "total", "timeouts", "margins", "other", "overhead"
        );
        let mut sums = [WaitSplit::default(), WaitSplit::default()];
        for finding in findings {
            for (slot, variant) in [Variant::Fixed, Variant::Regressed].into_iter().enumerate() {
                let mut samples: Vec<WaitSplit> = Vec::new();
                let mut verdicts: Vec<&str> = Vec::new();
                for _ in 0..runs.max(1) {
                    let outcome = run_finding(finding, variant, &config);
                    if !verdicts.contains(&outcome.verdict.label()) {
                        verdicts.push(outcome.verdict.label());
                    }
                    samples.push(outcome.waits);
                }
                let median = median(samples);
                let sum = &mut sums[slot];
                sum.timeouts += median.timeouts;
                sum.margins += median.margins;
                sum.other += median.other;
                println!(
                    "{:32} {:9} {:>6}ms {:>7}ms {:>6}ms {:>6}ms {:>7}ms  {}",
                    finding.id.id(),
                    format!("{variant:?}").to_lowercase(),
                    ms(median.total()),
                    ms(median.timeouts),
                    ms(median.margins),
                    ms(median.other),
                    ms(median.total() - median.timeouts),
                    verdicts.join(", ")
                );
            }
        }
        for (sum, variant) in sums.iter().zip(["fixed", "regressed"]) {
            println!(
                "{:32} {:9} {:>6}ms {:>7}ms {:>6}ms {:>6}ms {:>7}ms",
                "sum of the medians",
                variant,
                ms(sum.total()),
                ms(sum.timeouts),
                ms(sum.margins),
                ms(sum.other),
                ms(sum.total() - sum.timeouts)
            );
        }
        Ok(())
    }

    /// The run of median total time.
    fn median(mut samples: Vec<WaitSplit>) -> WaitSplit {
        samples.sort_by_key(WaitSplit::total);
        samples[samples.len() / 2]
    }
}
