//! Properties over generated inputs, against the reference reconciler with
//! the fakes: hostile path names (`scenarios::hostile::names`), timings
//! around every timeout (`scenarios::hostile::timings`) and templates at
//! the limits of Lima's checks (`lima_layout::checks`). Every case runs in
//! a sandbox of its own, which kills what is left when it is dropped.
//!
//! Each property is also run with the regression switches it covers: with
//! the CI case budget, proptest must find a counterexample and shrink it
//! (printed to stderr: run with `--nocapture` to see it).
//!
//! Case budgets are small, for CI; `PROPTEST_CASES` overrides them (`just
//! fuzz`). Failing seeds are saved in `properties.proptest-regressions`
//! beside this file, and replayed first on every run: commit that file.

use contract::FindingId;
use contract::condition::{kind, reason, status};
use contract::journal::event;
use contract::plan::{Fault, Tool};
use harness::{
    Binaries, DriverSettings, FaultPlanBuilder, Sandbox, Template, Toolset, VmSpec, VmView,
};
use lima_layout::VmType;
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, TestCaseError, TestError, TestRng, TestRunner,
};
use scenarios::context::{Ctx, ScenarioResult, ensure};
use scenarios::hostile::{
    DeletionEnd, HostagentExit, HostileDir, InstanceName, ThenUnregister, UnregisterScript,
    UnusableName, WslCall, hostagent_exit, instance_name, keygen_delay_ms, path_component,
    racing_services, unregister_script, unusable_name, wsl_call,
};
use scenarios::steps::{self, SETTLE};
use scenarios::{checks, key_pair, qemu_vm, symptom, wsl_vm};
use std::fmt::Debug;
use std::path::Path;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- budgets

/// Cases per property in CI, where the whole file must stay near half a minute
/// of wall time on two cores.
const CI_CASES_FORCED_STOP: u32 = 10;
const CI_CASES_TIMINGS: u32 = 6;
const CI_CASES_KEYGEN: u32 = 8;
const CI_CASES_UNREGISTER: u32 = 8;
const CI_CASES_UNUSABLE_NAMES: u32 = 24;
const CI_CASES_HOSTAGENT_ENDINGS: u32 = 6;
const CI_CASES_TEMPLATE_LIMITS: u32 = 12;

/// Shrinking runs whole cases (up to seconds each): bounded, so that a
/// property's failure is reported within a minute or so.
const SHRINK_ITERS_PROPERTY: u32 = 24;
/// In the regression tests: a failing case that waits out a deadline (a
/// port that stays held, a stop that never ends) costs seconds, one that
/// fails on sight a fraction of one.
const SHRINK_ITERS_SLOW_FAILURES: u32 = 5;
/// The timing regressions' failing cases wait out a stop or a delete
/// bound each (about 2.5 s), and nothing is asserted of their shrunk form
/// but what every failing case has: two steps show the shrinking.
const SHRINK_ITERS_TIMING_FAILURES: u32 = 2;
const SHRINK_ITERS_FAST_FAILURES: u32 = 32;

/// The property's configuration: `ci_cases` and bounded shrinking unless
/// `PROPTEST_CASES` or `PROPTEST_MAX_SHRINK_ITERS` say otherwise; failures
/// saved beside this file.
fn config(ci_cases: u32) -> Config {
    let mut config = Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = ci_cases;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = SHRINK_ITERS_PROPERTY;
    }
    config
}

// ------------------------------------------------------------ shared bits

fn binaries() -> Binaries {
    Binaries::multicall(env!("CARGO_BIN_EXE_reproduce").as_ref())
}

/// A sandbox root inside a hostile directory is named plainly, so that
/// every hostile character of its path is one the strategy generated (and
/// shrinks).
const PLAIN_ROOT_PREFIX: &str = "lv-";

/// Margin over a bound made of timeouts: scheduling on a loaded 2-core
/// machine, status polling, process start-up.
const MARGIN: Duration = Duration::from_millis(1500);

/// How long a process of a passing case gets to go before it is a leak.
const LEAK_SETTLE: Duration = Duration::from_secs(3);

fn sandbox_in(dir: &Path) -> Result<Sandbox, TestCaseError> {
    Sandbox::under_with_prefix(dir, PLAIN_ROOT_PREFIX, &binaries(), Toolset::fakes())
        .map_err(|e| TestCaseError::fail(format!("harness error: {e}")))
}

fn plain_sandbox() -> Result<Sandbox, TestCaseError> {
    Sandbox::new(&binaries()).map_err(|e| TestCaseError::fail(format!("harness error: {e}")))
}

fn hostile_dir(component: &str) -> Result<HostileDir, TestCaseError> {
    HostileDir::create(component)
        .map_err(|e| TestCaseError::fail(format!("harness error: creating {component:?}: {e}")))
}

/// The case's verdict: the scenario's symptom; else, what it leaked. A
/// failed case is cleaned up here, its leftovers named in the failure
/// (rather than printed by the sandbox's drop, once per shrinking step).
fn judge(sandbox: &Sandbox, result: ScenarioResult) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        let leftovers = sandbox.cleanup();
        return Err(TestCaseError::fail(if leftovers.is_clean() {
            e.to_string()
        } else {
            format!("{e} (cleaned up after it: {leftovers})")
        }));
    }
    let leaks = sandbox.settled_leak_report(LEAK_SETTLE);
    if leaks.is_clean() {
        Ok(())
    } else {
        sandbox.cleanup();
        Err(TestCaseError::fail(format!("leaked: {leaks}")))
    }
}

/// Runs `scenario` with a context on `sandbox` and `settings`, then judges
/// the case ([`judge`]).
fn run_case(
    sandbox: &Sandbox,
    settings: &DriverSettings,
    scenario: impl FnOnce(&Ctx) -> ScenarioResult,
) -> Result<(), TestCaseError> {
    let result = scenario(&Ctx::new(sandbox, settings.clone()));
    judge(sandbox, result)
}

/// The settings of a run with `regression` switched on. A regressed
/// service may be stuck for good: it gets one graceful wait to go.
fn regressed(settings: DriverSettings, regression: FindingId) -> DriverSettings {
    let mut settings = settings.with_regression(regression);
    settings.drop_shutdown_timeout = settings.graceful_timeout;
    settings
}

// ------------------------------------------- 1. forced stop, hostile names

/// Fields shrink in order: the forwards first, then the names.
#[derive(Debug, Clone)]
struct ForcedStopCase {
    forwards: usize,
    /// The directory HOME (and LIMA_HOME) is under.
    home_parent: String,
    name: InstanceName,
}

fn forced_stop_case() -> impl Strategy<Value = ForcedStopCase> {
    (1..=3usize, path_component(), instance_name()).prop_map(|(forwards, home_parent, name)| {
        ForcedStopCase {
            forwards,
            home_parent,
            name,
        }
    })
}

/// The hostagent ignores the interrupt: the graceful wait is dead time.
fn forced_stop_settings() -> DriverSettings {
    let mut settings = DriverSettings::fast();
    settings.graceful_timeout = Duration::from_millis(200);
    settings
}

/// A forced stop leaves no tmp file, no process of the instance, and every
/// forwarded port free.
fn forced_stop_leaves_nothing(
    case: &ForcedStopCase,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let parent = hostile_dir(&case.home_parent)?;
    let sandbox = sandbox_in(parent.path())?;
    let Some(name) = case.name.resolve(&sandbox.lima_home()) else {
        return Err(TestCaseError::reject("no room for an instance name"));
    };
    run_case(&sandbox, settings, |ctx| {
        sandbox.set_faults(&FaultPlanBuilder::new().hostagent(Fault::IgnoreInterrupt))?;
        let mut svc = ctx.started_service()?;
        let vm = qemu_vm(&name, case.forwards);
        let ports = vm.template.host_ports();
        steps::start_vm(svc.as_mut(), &vm)?;
        steps::stop_vm(svc.as_mut(), &name, settings.graceful_timeout + SETTLE)?;
        checks::no_tmp_files(&sandbox.lima_home().instance(&name))?;
        checks::ports_free(&sandbox, &ports)?;
        checks::only_alive(&sandbox, &[svc.service_pid().unwrap_or_default()])
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_FORCED_STOP))]
    #[test]
    fn a_forced_stop_under_hostile_names_leaves_nothing(case in forced_stop_case()) {
        forced_stop_leaves_nothing(&case, &forced_stop_settings())?;
    }
}

// ------------------------------------------------- 2. bounded stop, delete

#[derive(Debug, Clone)]
struct TimingCase {
    hostagent: HostagentExit,
    terminate: WslCall,
    /// The first `--unregister` only; later ones work.
    unregister: WslCall,
}

impl TimingCase {
    /// True when the hostagent is still running when the graceful wait
    /// ends: it ignores the interrupt, exits slowly, or hangs in its own
    /// `wsl.exe --terminate` on the way out.
    fn hostagent_outlives(&self, graceful_timeout: Duration) -> bool {
        let own_terminate = match self.terminate {
            WslCall::Prompt => Some(0),
            WslCall::Slow { ms } => Some(ms),
            WslCall::Hangs => None,
        };
        let exit_after = match self.hostagent {
            HostagentExit::Prompt => own_terminate,
            HostagentExit::Slow { ms } => own_terminate.map(|t| t + ms),
            HostagentExit::IgnoresInterrupt => None,
        };
        exit_after.is_none_or(|ms| Duration::from_millis(ms) > graceful_timeout)
    }
}

/// Short timeouts: the slowest passing case (a stop, then two delete
/// attempts) stays under three seconds.
fn timing_settings() -> DriverSettings {
    let short = Duration::from_millis(300);
    let mut settings = DriverSettings::fast();
    settings.graceful_timeout = short;
    settings.wsl_timeout = short;
    settings.delete_timeout = short;
    settings
}

fn timing_case() -> impl Strategy<Value = TimingCase> {
    let s = timing_settings();
    (
        hostagent_exit(s.graceful_timeout),
        wsl_call(s.wsl_timeout),
        wsl_call(s.delete_timeout),
    )
        .prop_map(|(hostagent, terminate, unregister)| TimingCase {
            hostagent,
            terminate,
            unregister,
        })
}

/// Stopping a WSL2 VM takes at most the graceful wait and one bounded
/// `--terminate`; deleting it at most two attempts (the first unregister
/// may time out); meanwhile another VM is started and stopped.
fn stop_and_delete_are_bounded(
    case: &TimingCase,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let sandbox = plain_sandbox()?;
    run_case(&sandbox, settings, |ctx| {
        let mut plan = FaultPlanBuilder::new();
        if let Some(fault) = case.hostagent.fault() {
            plan = plan.always(Tool::Limactl, &["hostagent", "stuck"], fault);
        }
        if let Some(fault) = case.terminate.fault() {
            plan = plan.always(Tool::Wsl, &["--terminate", "lima-stuck"], fault);
        }
        if let Some(fault) = case.unregister.fault() {
            plan = plan.times(Tool::Wsl, &["--unregister", "lima-stuck"], 1, fault);
        }
        sandbox.set_faults(&plan)?;
        let mut svc = ctx.started_service()?;
        steps::start_vm(svc.as_mut(), &wsl_vm("stuck"))?;

        let stop_bound = settings.graceful_timeout + settings.wsl_timeout + MARGIN;
        let started = Instant::now();
        svc.set_running("stuck", false)?;
        steps::start_vm(svc.as_mut(), &qemu_vm("other", 0))
            .map_err(|e| symptom!("VM other was not started while stuck was stopping: {e}"))?;
        steps::wait_for(
            svc.as_mut(),
            "stuck",
            stop_bound.saturating_sub(started.elapsed()),
            "Running=False reason=Stopped",
            VmView::is_stopped,
        )
        .map_err(|e| {
            symptom!("the stop of stuck took longer than {stop_bound:?} (graceful + wsl timeouts + margin): {e}")
        })?;

        let delete_bound =
            2 * settings.wsl_timeout + settings.delete_timeout + settings.delete_backoff + MARGIN;
        let started = Instant::now();
        svc.delete("stuck")?;
        steps::stop_vm(svc.as_mut(), "other", SETTLE)
            .map_err(|e| symptom!("VM other was not stopped while stuck was deleted: {e}"))?;
        steps::wait_gone(
            svc.as_mut(),
            "stuck",
            delete_bound.saturating_sub(started.elapsed()),
        )
        .map_err(|e| {
            symptom!(
                "the delete of stuck took longer than {delete_bound:?} (two attempts + margin): {e}"
            )
        })
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_TIMINGS))]
    #[test]
    fn no_stop_or_delete_outlasts_its_timeouts(case in timing_case()) {
        stop_and_delete_are_bounded(&case, &timing_settings())?;
    }
}

// --------------------------------------------------- 3. racing key pairs

#[derive(Debug, Clone)]
struct KeygenCase {
    services: usize,
    keygen_delay_ms: u64,
}

fn keygen_case() -> impl Strategy<Value = KeygenCase> {
    (racing_services(), keygen_delay_ms()).prop_map(|(services, keygen_delay_ms)| KeygenCase {
        services,
        keygen_delay_ms,
    })
}

/// Services started at once on one fresh config directory all start, and
/// leave exactly one valid key pair.
fn racing_services_share_one_key_pair(
    case: &KeygenCase,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let sandbox = plain_sandbox()?;
    run_case(&sandbox, settings, |ctx| {
        sandbox.set_faults(&FaultPlanBuilder::new().always(
            Tool::SshKeygen,
            &["-t"],
            Fault::Delay {
                ms: case.keygen_delay_ms,
            },
        ))?;
        let mut services: Vec<_> = (0..case.services)
            .map(|i| ctx.service_with_state(sandbox.root().join(format!("state-{i}"))))
            .collect();
        for svc in &mut services {
            svc.spawn_service()?;
        }
        steps::all_ready(&mut services)?;
        Ok(key_pair::exactly_one_valid_pair(
            &sandbox.lima_home().config_dir(),
        )?)
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_KEYGEN))]
    #[test]
    fn racing_services_end_with_one_valid_key_pair(case in keygen_case()) {
        racing_services_share_one_key_pair(&case, &DriverSettings::fast())?;
    }
}

// -------------------------------------------- 4. unregister, finalizer

/// A small budget and short timeouts, so a give-up takes about a second.
fn unregister_settings() -> DriverSettings {
    let short = Duration::from_millis(300);
    let mut settings = DriverSettings::fast();
    settings.wsl_timeout = short;
    settings.delete_timeout = short;
    settings.delete_backoff = Duration::from_millis(20);
    settings.delete_backoff_max = Duration::from_millis(80);
    settings.delete_retry_budget = 3;
    settings
}

/// How close to the delete timeout a slow unregister may be before its
/// outcome is left open.
const TIMEOUT_NOISE: Duration = Duration::from_millis(150);

fn unregister_case() -> impl Strategy<Value = UnregisterScript> {
    unregister_script(unregister_settings().delete_timeout, 3)
}

/// The `delete_retry_budget_spent` records of `<state>/events.jsonl` for
/// instance `name`.
fn give_up_records(state_dir: &Path, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state_dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["event"] == "delete_retry_budget_spent" && e["instance"] == name)
        .collect()
}

/// The finalizer goes only once the distro is gone, or once the retry
/// budget is spent and that is recorded (events.jsonl and an error log
/// line, both naming the distro left behind).
fn finalizer_waits_for_the_distro(
    script: &UnregisterScript,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let sandbox = plain_sandbox()?;
    run_case(&sandbox, settings, |ctx| {
        sandbox.set_faults(&script.plan(FaultPlanBuilder::new(), "lima-vm"))?;
        let mut svc = ctx.started_service()?;
        steps::start_vm(svc.as_mut(), &wsl_vm("vm"))?;
        svc.delete("vm")?;
        let attempt = settings.wsl_timeout + settings.delete_timeout + settings.delete_backoff_max;
        let bound = attempt * settings.delete_retry_budget + SETTLE;
        steps::wait_gone(svc.as_mut(), "vm", bound)?;

        let registered = checks::wsl_distros(&sandbox, false)
            .iter()
            .any(|d| d == "lima-vm");
        let records = give_up_records(&sandbox.state_dir(), "vm");
        let end = if registered {
            DeletionEnd::GaveUp
        } else {
            DeletionEnd::Unregistered
        };
        if registered {
            ensure(!records.is_empty(), || {
                "the finalizer of vm was removed while WSL2 distro lima-vm is still registered, \
                 and no give-up was recorded in events.jsonl"
                    .into()
            })?;
            let record = &records[0];
            ensure(record.to_string().contains("lima-vm"), || {
                format!("the give-up record does not name lima-vm as left behind: {record}")
            })?;
            ensure(record["attempts"] == settings.delete_retry_budget, || {
                format!(
                    "gave up before the budget of {} attempts: {record}",
                    settings.delete_retry_budget
                )
            })?;
            let log = svc.log_text();
            ensure(
                log.lines()
                    .any(|l| l.contains("ERROR") && l.contains("lima-vm")),
                || "no error line in the log names lima-vm as left behind".into(),
            )?;
        } else {
            // A record must name only what is really left behind.
            ensure(records.is_empty(), || {
                format!(
                    "the give-up record names WSL2 distro lima-vm as left behind, \
                     but lima-vm is unregistered: {}",
                    records[0]
                )
            })?;
        }
        let budget = settings.delete_retry_budget as usize;
        match script.expected_end(settings.delete_timeout, budget, TIMEOUT_NOISE) {
            Some(expected) if expected != end => Err(symptom!(
                "the deletion ended {end:?}, but the attempts {script:?} with a budget of {budget} \
                 should end {expected:?}"
            )),
            _ => Ok(()),
        }
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_UNREGISTER))]
    #[test]
    fn the_finalizer_goes_only_with_the_distro_or_a_recorded_give_up(
        script in unregister_case()
    ) {
        finalizer_waits_for_the_distro(&script, &unregister_settings())?;
    }
}

// --------------------------------------------------- 5. unusable names

#[derive(Debug, Clone)]
struct UnusableNameCase {
    home_parent: String,
    name: UnusableName,
}

fn unusable_name_case() -> impl Strategy<Value = UnusableNameCase> {
    (path_component(), unusable_name())
        .prop_map(|(home_parent, name)| UnusableNameCase { home_parent, name })
}

fn invalid_name(view: &VmView) -> bool {
    view.condition(kind::RUNNING)
        .is_some_and(|c| c.status == status::FALSE && c.reason == reason::INVALID_NAME)
}

/// A name that cannot be an instance is refused with reason InvalidName
/// and a message that says why, and nothing is created for it.
fn unusable_names_are_refused(
    case: &UnusableNameCase,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let parent = hostile_dir(&case.home_parent)?;
    let sandbox = sandbox_in(parent.path())?;
    let name = case.name.resolve(&sandbox.lima_home());
    run_case(&sandbox, settings, |ctx| {
        let mut svc = ctx.started_service()?;
        let state = sandbox.state_dir();
        let before = checks::file_tree(parent.outer(), &state);
        svc.apply(&qemu_vm(&name, 0))?;
        let view = steps::wait_for(
            svc.as_mut(),
            &name,
            SETTLE,
            "Running=False reason=InvalidName",
            invalid_name,
        )?;
        let message = view.condition(kind::RUNNING).map(|c| c.message.clone());
        let message = message.unwrap_or_default();
        let missing: Vec<String> = case
            .name
            .explained_by(&name)
            .into_iter()
            .filter(|word| !message.contains(word.as_str()))
            .collect();
        ensure(missing.is_empty(), || {
            format!("the refusal of {name:?} does not say why (no {missing:?}): {message:?}")
        })?;
        ensure(view.finalizers.is_empty(), || {
            format!(
                "the refused name {name:?} got finalizers {:?}",
                view.finalizers
            )
        })?;
        let created: Vec<_> = checks::file_tree(parent.outer(), &state)
            .difference(&before)
            .cloned()
            .collect();
        ensure(created.is_empty(), || {
            format!("refusing {name:?} created {created:?}")
        })?;
        let invoked = sandbox.journal().events(Some("limactl"), event::INVOKED);
        ensure(invoked.is_empty(), || {
            format!("a hostagent was started for the refused name {name:?}")
        })?;
        checks::only_alive(&sandbox, &[svc.service_pid().unwrap_or_default()])?;
        svc.delete(&name)?;
        steps::wait_gone(svc.as_mut(), &name, SETTLE)
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_UNUSABLE_NAMES))]
    #[test]
    fn unusable_names_are_refused_and_create_nothing(case in unusable_name_case()) {
        unusable_names_are_refused(&case, &DriverSettings::fast())?;
    }
}

// ------------------------------------ 6. however the hostagent ends

/// How the hostagent's life ends before the VM is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// It honours the interrupt but leaves its forwarders (`keep_children`).
    GracefulLeavingChildren,
    /// It is killed outright while its driver and forwarders run; the
    /// reconciler restarts the VM, which is then stopped.
    Killed,
}

#[derive(Debug, Clone)]
struct EndingCase {
    ending: Ending,
    forwards: usize,
    home_parent: String,
    name: InstanceName,
}

fn ending_case() -> impl Strategy<Value = EndingCase> {
    (
        prop_oneof![Just(Ending::Killed), Just(Ending::GracefulLeavingChildren)],
        1..=2usize,
        path_component(),
        instance_name(),
    )
        .prop_map(|(ending, forwards, home_parent, name)| EndingCase {
            ending,
            forwards,
            home_parent,
            name,
        })
}

/// Whatever way the hostagent ended, once the VM is stopped nothing of the
/// instance is left: no process, no held port, no tmp file.
fn hostagent_endings_leave_nothing(
    case: &EndingCase,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let parent = hostile_dir(&case.home_parent)?;
    let sandbox = sandbox_in(parent.path())?;
    let Some(name) = case.name.resolve(&sandbox.lima_home()) else {
        return Err(TestCaseError::reject("no room for an instance name"));
    };
    run_case(&sandbox, settings, |ctx| {
        if case.ending == Ending::GracefulLeavingChildren {
            sandbox.set_faults(&FaultPlanBuilder::new().hostagent(Fault::KeepChildren))?;
        }
        let mut svc = ctx.started_service()?;
        let vm = qemu_vm(&name, case.forwards);
        let ports = vm.template.host_ports();
        steps::start_vm(svc.as_mut(), &vm)?;
        let instance = sandbox.lima_home().instance(&name);
        if case.ending == Ending::Killed {
            let hostagent = steps::kill_hostagent(&instance)?;
            steps::wait_restarted(svc.as_mut(), &instance, hostagent, SETTLE, "the restart")?;
        }
        steps::stop_vm(svc.as_mut(), &name, settings.graceful_timeout + SETTLE)?;
        checks::no_tmp_files(&instance)?;
        checks::ports_free(&sandbox, &ports)?;
        checks::only_alive(&sandbox, &[svc.service_pid().unwrap_or_default()])
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_HOSTAGENT_ENDINGS))]
    #[test]
    fn however_the_hostagent_ends_nothing_is_left(case in ending_case()) {
        hostagent_endings_leave_nothing(&case, &DriverSettings::fast())?;
    }
}

// ---------------------------------------------- 7. Lima's template limits

/// A `lima.yaml` field at one of the limits Lima's checks draw
/// (`lima_layout::checks`).
#[derive(Debug, Clone)]
enum LimitCase {
    /// `ssh.localPort` (0 means "pick one").
    SshLocalPort(i64),
    /// One port of a `portForwards` rule, the other side ordinary.
    Forward { side: ForwardSide, port: i64 },
    /// A `networks` interface name of this many bytes.
    Interface(usize),
}

/// Which port of a forward a [`LimitCase::Forward`] sets.
#[derive(Debug, Clone, Copy)]
enum ForwardSide {
    GuestPort,
    HostPort,
    GuestPortRange,
    HostPortRange,
}

/// Ports at the limits of Lima's `validatePort`: negative, 0, 1, 22,
/// 65535 and 65536.
fn limit_port() -> impl Strategy<Value = i64> {
    prop::sample::select(vec![-1i64, 0, 1, 22, 65535, 65536])
}

fn limit_case() -> impl Strategy<Value = LimitCase> {
    let side = prop::sample::select(vec![
        ForwardSide::GuestPort,
        ForwardSide::HostPort,
        ForwardSide::GuestPortRange,
        ForwardSide::HostPortRange,
    ]);
    prop_oneof![
        limit_port().prop_map(LimitCase::SshLocalPort),
        // A port of 0 is an absent one, whose defaults other rules judge.
        (
            side,
            limit_port().prop_filter("a port that is set", |p| *p != 0)
        )
            .prop_map(|(side, port)| LimitCase::Forward { side, port }),
        (15usize..=16).prop_map(LimitCase::Interface),
    ]
}

impl LimitCase {
    /// The template's key and value.
    fn key_and_value(&self) -> (&'static str, String) {
        match *self {
            LimitCase::SshLocalPort(port) => ("ssh", format!("{{localPort: {port}}}")),
            LimitCase::Forward { side, port } => {
                let rule = match side {
                    ForwardSide::GuestPort => format!("{{guestPort: {port}, hostPort: 8080}}"),
                    ForwardSide::HostPort => format!("{{guestPort: 80, hostPort: {port}}}"),
                    ForwardSide::GuestPortRange => {
                        format!("{{guestPortRange: [{port}, {port}], hostPortRange: [8080, 8080]}}")
                    }
                    ForwardSide::HostPortRange => {
                        format!("{{guestPortRange: [80, 80], hostPortRange: [{port}, {port}]}}")
                    }
                };
                ("portForwards", format!("[{rule}]"))
            }
            LimitCase::Interface(len) => (
                "networks",
                format!(
                    "[{{socket: /nonexistent.sock, interface: {}}}]",
                    "i".repeat(len)
                ),
            ),
        }
    }

    /// The field Lima names when it refuses the case, or `None` when Lima
    /// takes it (Lima v2.2.0 `limayaml/validate.go`: a port is 1 to 65535
    /// and not 22; an interface name is under 16 bytes).
    fn refused_field(&self) -> Option<&'static str> {
        let bad_port = |port: i64| !(1..=65535).contains(&port) || port == 22;
        match *self {
            LimitCase::SshLocalPort(port) => {
                (port != 0 && bad_port(port)).then_some("ssh.localPort")
            }
            LimitCase::Forward { side, port } => bad_port(port).then_some(match side {
                ForwardSide::GuestPort => "portForwards[0].guestPort",
                ForwardSide::HostPort => "portForwards[0].hostPort",
                ForwardSide::GuestPortRange => "portForwards[0].guestPortRange[0]",
                ForwardSide::HostPortRange => "portForwards[0].hostPortRange[0]",
            }),
            LimitCase::Interface(len) => (len >= 16).then_some("networks[0].interface"),
        }
    }

    fn template(&self) -> Template {
        let (key, value) = self.key_and_value();
        let value = serde_norway::from_str(&value).expect("the case is YAML");
        Template::new(VmType::Qemu).set(key, value)
    }
}

/// A template at a limit is judged as Lima judges it: refused ones are
/// reported StartFailed naming the field, and no `limactl` runs for them;
/// accepted ones pass Lima's checks as the reference applies them.
fn template_limits_are_judged_as_lima_does(
    case: &LimitCase,
    settings: &DriverSettings,
) -> Result<(), TestCaseError> {
    let template = case.template();
    let drivers = lima_layout::checks::Drivers::of_this_host_with_faked_wsl2();
    let judged = lima_layout::checks::check_lima_yaml(&template.to_yaml(), drivers);
    let Some(field) = case.refused_field() else {
        // Taken: starting it would bind ports such as 1; the rule suffices.
        return ensure(judged.is_ok(), || {
            format!("Lima takes {case:?}, the checks refuse it: {judged:?}")
        })
        .map_err(|e| TestCaseError::fail(e.to_string()));
    };
    let sandbox = plain_sandbox()?;
    run_case(&sandbox, settings, |ctx| {
        let mut svc = ctx.started_service()?;
        svc.apply(&VmSpec::new("vm", template))?;
        let view = steps::wait_for(
            svc.as_mut(),
            "vm",
            SETTLE,
            "Running=False reason=StartFailed",
            |v| {
                v.condition(kind::RUNNING)
                    .is_some_and(|c| c.status == status::FALSE && c.reason == reason::START_FAILED)
            },
        )?;
        let message = view
            .condition(kind::RUNNING)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure(message.contains(field), || {
            format!("the refusal of {case:?} does not name {field}: {message:?}")
        })?;
        let invoked = sandbox.journal().events(Some("limactl"), event::INVOKED);
        ensure(invoked.is_empty(), || {
            format!("limactl ran for {case:?}, which Lima refuses")
        })?;
        svc.delete("vm")?;
        steps::wait_gone(svc.as_mut(), "vm", SETTLE)
    })
}

proptest! {
    #![proptest_config(config(CI_CASES_TEMPLATE_LIMITS))]
    #[test]
    fn templates_at_lima_s_limits_are_judged_as_lima_does(case in limit_case()) {
        template_limits_are_judged_as_lima_does(&case, &DriverSettings::fast())?;
    }
}

// ------------------------------------------ regressions: found and shrunk

/// Runs `property` on `strategy` with `settings` and the `regression`
/// switched on ([`regressed`]), with the CI case budget and bounded
/// shrinking, as proptest would; returns the shrunk counterexample and its
/// failure, after printing both.
fn shrunk_counterexample<S>(
    regression: FindingId,
    settings: DriverSettings,
    (ci_cases, max_shrink_iters): (u32, u32),
    strategy: S,
    property: impl Fn(&S::Value, &DriverSettings) -> Result<(), TestCaseError>,
) -> (S::Value, String)
where
    S: Strategy,
    S::Value: Debug,
{
    let settings = regressed(settings, regression);
    let regression = regression.id();
    // A fixed seed: these tests show that the property finds and shrinks
    // the regression within the CI budget, so the same cases every run
    // (the properties themselves draw new ones each run). The regressed
    // cases wait out bounds, so the same cases also cost the same time.
    let config = Config {
        cases: ci_cases,
        max_shrink_iters,
        // A counterexample of a regressed run is no seed for the property.
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let started = Instant::now();
    match runner.run(&strategy, |value| property(&value, &settings)) {
        Err(TestError::Fail(reason, value)) => {
            eprintln!(
                "{regression}: shrunk counterexample after {:.1?}:\n{value:#?}\nfailure: {reason}",
                started.elapsed()
            );
            let reason = reason.to_string();
            assert!(
                !reason.contains("harness error"),
                "{regression}: the counterexample is the harness's fault: {reason}"
            );
            (value, reason)
        }
        Err(TestError::Abort(reason)) => panic!("{regression}: proptest gave up: {reason}"),
        Ok(()) => panic!("{regression}: no counterexample within {ci_cases} cases"),
    }
}

#[test]
fn orphaned_port_holders_are_found_and_shrunk() {
    let (case, reason) = shrunk_counterexample(
        FindingId::OrphanedPortHolders,
        forced_stop_settings(),
        (CI_CASES_FORCED_STOP, SHRINK_ITERS_SLOW_FAILURES),
        forced_stop_case(),
        forced_stop_leaves_nothing,
    );
    assert!(reason.contains("still held"), "{reason}");
    assert_eq!(case.forwards, 1, "one forwarded port is enough: {case:?}");
}

#[test]
fn bracketed_home_paths_are_found_and_shrunk() {
    let (case, reason) = shrunk_counterexample(
        FindingId::BracketedHomePath,
        forced_stop_settings(),
        (CI_CASES_FORCED_STOP, SHRINK_ITERS_FAST_FAILURES),
        forced_stop_case(),
        forced_stop_leaves_nothing,
    );
    assert!(reason.contains("tmp files left"), "{reason}");
    assert!(
        case.home_parent.contains('[') || case.name.base.contains('['),
        "a '[' in the path is what breaks a glob: {case:?}"
    );
    assert_eq!(case.forwards, 1, "{case:?}");
}

#[test]
fn ignored_interrupts_without_fallback_are_found_and_shrunk() {
    let (case, reason) = shrunk_counterexample(
        FindingId::IgnoredSignalFallback,
        timing_settings(),
        (CI_CASES_TIMINGS, SHRINK_ITERS_TIMING_FAILURES),
        timing_case(),
        stop_and_delete_are_bounded,
    );
    assert!(reason.contains("the stop of stuck took longer"), "{reason}");
    assert!(
        case.hostagent_outlives(timing_settings().graceful_timeout),
        "only a hostagent still running after the graceful wait needs the fallback: {case:?}"
    );
}

#[test]
fn unbounded_wsl_calls_are_found_and_shrunk() {
    let (case, reason) = shrunk_counterexample(
        FindingId::WslHangUnbounded,
        timing_settings(),
        (CI_CASES_TIMINGS, SHRINK_ITERS_TIMING_FAILURES),
        timing_case(),
        stop_and_delete_are_bounded,
    );
    assert!(reason.contains("took longer"), "{reason}");
    let timeouts = timing_settings();
    assert!(
        case.terminate.outlasts(timeouts.wsl_timeout)
            || case.unregister.outlasts(timeouts.delete_timeout),
        "only a wsl.exe call that runs past its timeout needs the bound: {case:?}"
    );
}

#[test]
fn keygen_races_are_found_and_shrunk() {
    let (case, reason) = shrunk_counterexample(
        FindingId::ConcurrentKeygenRace,
        DriverSettings::fast(),
        (CI_CASES_KEYGEN, SHRINK_ITERS_FAST_FAILURES),
        keygen_case(),
        racing_services_share_one_key_pair,
    );
    assert!(
        reason.contains("failed to start") || reason.contains("key pair"),
        "{reason}"
    );
    assert!(
        (2..=3).contains(&case.services),
        "two services are enough to race: {case:?}"
    );
}

#[test]
fn finalizers_dropped_after_a_failed_delete_are_found_and_shrunk() {
    let (script, reason) = shrunk_counterexample(
        FindingId::FinalizerAfterFailedDelete,
        unregister_settings(),
        (CI_CASES_UNREGISTER, SHRINK_ITERS_FAST_FAILURES),
        unregister_case(),
        finalizer_waits_for_the_distro,
    );
    assert!(
        reason.contains("still registered") && reason.contains("no give-up was recorded"),
        "{reason}"
    );
    let timeout = unregister_settings().delete_timeout;
    let last_may_fail = match script.then {
        ThenUnregister::Succeeds { ms } => Duration::from_millis(ms) + TIMEOUT_NOISE >= timeout,
        ThenUnregister::KeepsFailing(_) => true,
    };
    let failures = script.failures.len() + usize::from(last_may_fail);
    assert_eq!(
        failures, 1,
        "one failed attempt is enough to lose the finalizer: {script:?}"
    );
}

#[test]
fn leftovers_of_a_hostagent_are_found_and_shrunk() {
    let (case, reason) = shrunk_counterexample(
        FindingId::HostagentDeathLeftovers,
        DriverSettings::fast(),
        (CI_CASES_HOSTAGENT_ENDINGS, SHRINK_ITERS_SLOW_FAILURES),
        ending_case(),
        hostagent_endings_leave_nothing,
    );
    assert!(
        reason.contains("still alive") || reason.contains("still held"),
        "{reason}"
    );
    assert_eq!(case.forwards, 1, "one forwarded port is enough: {case:?}");
}
