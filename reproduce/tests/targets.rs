//! The target-file features that need no foreign reconciler, on every CI
//! build: `fixtures/targets/reference-foreign.toml` drives the reference
//! reconciler as a foreign one (document templates, patch templates, a
//! status map, status-change observation, a fixed graceful timeout, its own
//! Lima home, setup and kubeconfig commands, no regression switches). A
//! few findings, fixed runs only: the audit must say `absent` or `cannot
//! run here`, with the reason the catalogue gives.

use harness::{Binaries, ReconcilerDriver, Sandbox, Target, VmView};
use scenarios::Ctx;
use scenarios::audit::{self, Audit};
use scenarios::catalogue;
use scenarios::runner::{RunConfig, Variant, run_finding};
use scenarios::steps;

fn binaries() -> Binaries {
    Binaries::multicall(env!("CARGO_BIN_EXE_reproduce").as_ref())
}

/// A context on `sandbox` driving `target` with fast settings.
fn ctx_for(sandbox: &Sandbox, target: Target) -> Ctx<'_> {
    Ctx::for_target(sandbox, harness::DriverSettings::fast(), target)
}

/// Waits, bounded, until VM vm reports Stopped.
fn wait_stopped(svc: &mut dyn ReconcilerDriver) {
    steps::wait_for(svc, "vm", steps::SETTLE, "stopped", VmView::is_stopped).unwrap();
}

/// The target file `file` of `fixtures/targets/`, parsed.
fn target_file(file: &str) -> harness::TargetFile {
    let Target::External(parsed) = target(file) else {
        unreachable!("a target file")
    };
    harness::TargetFile::clone(&parsed)
}

fn target(file: &str) -> Target {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/targets/").to_owned() + file;
    Target::parse(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The fixture `file` as another build of its reconciler would be: with
/// the regression `id` built in (a switch on its start command).
fn with_defect(file: &str, id: &str) -> Target {
    let file = target_file(file);
    let mut defective = file.clone();
    defective.name = format!("{}-{id}", file.name);
    defective.service.start.push(format!("--regress={id}"));
    Target::External(defective.into())
}

fn audit_of(target: Target, id: &str) -> audit::AuditRow {
    let finding = catalogue::find(id).unwrap();
    audit::audit(&fixed_run(target, finding))
}

/// Every audit row of `id`'s fixed run: its own, and those of the other
/// defects it saw.
fn audit_rows_of(target: Target, id: &str) -> Vec<audit::AuditRow> {
    let finding = catalogue::find(id).unwrap();
    audit::rows(&[finding.id.id()], &[fixed_run(target, finding)])
}

fn fixed_run(target: Target, finding: &catalogue::Finding) -> scenarios::runner::Outcome {
    let mut config = RunConfig::new(binaries());
    config.target = target;
    run_finding(finding, Variant::Fixed, &config)
}

#[test]
fn the_foreign_schema_fixture_gives_absent_verdicts() {
    let foreign = target("reference-foreign.toml");
    assert!(!foreign.supports_regressions());
    for id in [
        "console-group-signal",
        "bracketed-home-path",
        "missing-public-key",
    ] {
        let row = audit_of(foreign.clone(), id);
        assert_eq!(row.audit, Audit::Absent, "{id}: {}", row.text());
    }
}

#[test]
fn a_fixed_timeout_longer_than_a_scenario_allows_means_cannot_run() {
    // SAFETY: no other thread of this test binary reads or writes the
    // environment (nextest runs each test in a process of its own).
    unsafe { std::env::set_var("RDD_BIN", env!("CARGO_BIN_EXE_reproduce")) };
    let rdd = target("rancher-desktop-daemon.toml");
    assert!(rdd.embeds_hostagent() && !rdd.supports_regressions());
    let settings = rdd.settings(harness::DriverSettings::fast());
    let need = scenarios::catalogue::TimeoutNeed {
        timeout: contract::Timing::GracefulTimeout,
        below: std::time::Duration::from_secs(20),
        why: "a test's bound",
    };
    let why = need.unmet(&settings);
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("needs graceful_timeout < 20s, target has 30s")),
        "{why:?}"
    );
    assert_eq!(rdd.spawn_attributes(), ["own_process_group"]);
    // The foreign fixture's 1 s graceful timeout fits.
    let foreign = target("reference-foreign.toml").settings(harness::DriverSettings::fast());
    assert!(need.unmet(&foreign).is_none());
}

#[test]
fn the_foreign_schema_fixture_sees_a_defect_and_the_baseline_names_it() {
    // The same reconciler with one defect built in (a regression switch on
    // its start command, as another build would have it).
    let present = audit_of(
        with_defect("reference-foreign.toml", "bracketed-home-path"),
        "bracketed-home-path",
    );
    assert_eq!(present.audit, Audit::Present, "{}", present.text());
    assert!(
        present.message.contains("tmp files left in"),
        "{}",
        present.text()
    );
    let absent = audit_of(target("reference-foreign.toml"), "bracketed-home-path");
    let diffs = audit::diff(
        std::slice::from_ref(&present),
        std::slice::from_ref(&absent),
    );
    assert_eq!(diffs[0].change, audit::Change::WentAway);
}

#[test]
fn the_configmap_schema_fixture_gives_absent_verdicts() {
    let configmap = target("reference-configmap.toml");
    for id in ["spawn-attributes-overwritten", "ignored-signal-fallback"] {
        let row = audit_of(configmap.clone(), id);
        assert_eq!(row.audit, Audit::Absent, "{id}: {}", row.text());
    }
}

#[test]
fn a_template_change_by_reapplied_configmap_reaches_the_vm() {
    use harness::Template;
    use lima_layout::VmType;
    let sandbox = Sandbox::new(&binaries()).unwrap();
    let ctx = ctx_for(&sandbox, target("reference-configmap.toml"));
    let mut svc = ctx.started_service().unwrap();
    let mut vm = scenarios::qemu_vm("vm", 0);
    vm.running = false;
    svc.apply(&vm).unwrap();
    wait_stopped(svc.as_mut());
    let changed = Template::new(VmType::Qemu).disk("data");
    svc.set_template("vm", &changed).unwrap();
    let view = svc.get("vm").unwrap().unwrap();
    assert_eq!(view.raw["spec"]["template"], changed.to_yaml().as_str());
    assert_eq!(view.raw["spec"]["templateRef"]["name"], "vm-source");
    assert_eq!(view.raw["metadata"]["namespace"], "harness");
    assert!(view.raw["status"].get("observedGeneration").is_none());
}

/// `reference-embedded.toml`: the reference re-executes itself as the
/// hostagent, so no `limactl` runs, and the faults go one layer lower
/// (QEMU, `wsl.exe`) or the check looks from outside.
const EMBEDDED_FIXED: [&str; 4] = [
    "ignored-signal-fallback",
    "shutdown-fallback-skips-cleanup",
    "spawn-attributes-overwritten",
    "orphan-recovery-skips-graceful",
];

#[test]
fn the_embedded_hostagent_fixture_gives_absent_verdicts() {
    let embedded = target("reference-embedded.toml");
    assert!(embedded.embeds_hostagent());
    for id in EMBEDDED_FIXED {
        let row = audit_of(embedded.clone(), id);
        assert_eq!(row.audit, Audit::Absent, "{id}: {}", row.text());
    }
    // A fault of the fake hostagent's own code has nothing to go to.
    let row = audit_of(embedded, "divergent-shutdown-paths");
    assert_eq!(row.audit, Audit::CannotRun, "{}", row.text());
    assert!(row.message.contains("replace_driver"), "{}", row.text());
}

/// Each with the defect built in, as another build would have it: a
/// forced stop held by QEMU, one held by `wsl.exe --terminate`, and
/// attributes and an interrupt seen from outside.
#[rstest::rstest]
#[case::ignored_signal_fallback("ignored-signal-fallback", "did not complete within")]
#[case::shutdown_fallback_skips_cleanup(
    "shutdown-fallback-skips-cleanup",
    "after the service shut down"
)]
#[case::spawn_attributes_overwritten("spawn-attributes-overwritten", "background_priority")]
#[case::orphan_recovery_skips_graceful(
    "orphan-recovery-skips-graceful",
    "without the graceful interrupt"
)]
fn the_embedded_hostagent_fixture_sees_defects_one_layer_lower(
    #[case] id: &str,
    #[case] symptom: &str,
) {
    let row = audit_of(with_defect("reference-embedded.toml", id), id);
    assert_eq!(row.audit, Audit::Present, "{id}: {}", row.text());
    assert!(row.message.contains(symptom), "{id}: {}", row.text());
}

#[test]
fn an_embedded_hostagent_is_the_service_re_executed_and_calls_no_limactl() {
    let sandbox = Sandbox::new(&binaries()).unwrap();
    let ctx = ctx_for(&sandbox, target("reference-embedded.toml"));
    let mut svc = ctx.started_service().unwrap();
    scenarios::steps::start_vm(svc.as_mut(), &scenarios::qemu_vm("vm", 1)).unwrap();
    let instance = sandbox.lima_home().instance("vm");
    let hostagent = lima_layout::paths::read_pid_file(&instance.ha_pid()).unwrap();
    let process = sandbox
        .live_processes()
        .into_iter()
        .find(|p| p.pid == hostagent)
        .unwrap_or_else(|| panic!("hostagent pid {hostagent} is not in the sandbox"));
    let program = std::path::Path::new(&process.cmd[0]).file_stem();
    assert!(
        program.is_some_and(|p| p == "limavm-reconciler") && process.cmd[1] == "hostagent",
        "{:?}",
        process.cmd
    );
    let entries = sandbox.journal().entries();
    let tools: Vec<&str> = entries.iter().map(|e| e.tool.as_str()).collect();
    assert!(!tools.contains(&"limactl"), "{tools:?}");
    assert!(
        tools.contains(&"qemu") && tools.contains(&"ssh"),
        "{tools:?}"
    );
    svc.set_running("vm", false).unwrap();
    wait_stopped(svc.as_mut());
    assert!(!proctree::is_alive(hostagent));
}

#[test]
fn a_requested_restart_through_each_fixture_stops_gracefully_and_leaves_nothing() {
    for file in [
        "reference-ctl.toml",
        "reference-foreign.toml",
        "reference-configmap.toml",
    ] {
        let sandbox = Sandbox::new(&binaries()).unwrap();
        {
            let ctx = ctx_for(&sandbox, target(file));
            scenarios::restart::restart_requested(&ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let leaks = sandbox.settled_leak_report(std::time::Duration::from_secs(3));
        assert!(leaks.is_clean(), "{file}: {leaks}");
    }
}

/// `reference-ctl.toml` with `[service] unprivileged = true`: when the
/// harness is root, the reference service runs through the harness's
/// privilege drop (`setpriv` to the `limavm` user, as the real-Lima shim
/// and `rancher-desktop-daemon.toml` do). `None`, with the reason printed,
/// where the drop cannot be exercised.
#[cfg(target_os = "linux")]
fn unprivileged_reference() -> Option<Target> {
    match harness::real_lima::drop_privileges_prefix() {
        Ok(Some(_)) => {}
        Ok(None) => {
            eprintln!("skipped: the harness is not root, so there is no privilege to drop");
            return None;
        }
        Err(why) => {
            eprintln!("skipped: the privilege drop is not possible here: {why}");
            return None;
        }
    }
    let mut unprivileged = target_file("reference-ctl.toml");
    unprivileged.name = "reference-ctl-unprivileged".into();
    unprivileged.service.unprivileged = true;
    Some(Target::External(unprivileged.into()))
}

#[cfg(target_os = "linux")]
#[test]
fn an_unprivileged_service_runs_through_the_drop_and_its_kills_reach_the_bystander() {
    let Some(unprivileged) = unprivileged_reference() else {
        return;
    };
    {
        let sandbox = Sandbox::new(&binaries()).unwrap();
        let ctx = ctx_for(&sandbox, unprivileged.clone());
        let svc = ctx.started_service().unwrap();
        let pid = svc.service_pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .unwrap();
        assert_ne!(uid, "0", "the service (pid {pid}) runs as root");
    }
    let mut config = RunConfig::new(binaries());
    config.target = unprivileged;
    for id in ["console-group-signal", "recycled-pid-kill"] {
        let finding = catalogue::find(id).unwrap();
        let fixed = run_finding(finding, Variant::Fixed, &config);
        assert_eq!(
            fixed.verdict,
            scenarios::runner::Verdict::Passed,
            "{id} fixed: {}",
            fixed.message
        );
    }
    // The bystander runs as the service's user: the regressed service's
    // kill reaches it (a root bystander would survive an unprivileged kill
    // whether the identity was checked or not).
    let finding = catalogue::find("recycled-pid-kill").unwrap();
    let regressed = run_finding(finding, Variant::Regressed, &config);
    assert_eq!(
        regressed.verdict,
        scenarios::runner::Verdict::Reproduced,
        "{}",
        regressed.message
    );
}

/// A reconciler that drops the finalizer after a failed delete (the
/// reference with that regression built in, as another build would have
/// it) takes the VM away while the blocked instance directory is left: the
/// delete-blocker scenario files that under the finalizer's finding, and
/// its own check (which entry the failure names) cannot be read.
#[test]
fn a_finalizer_dropped_after_a_blocked_delete_is_named() {
    let rows = audit_rows_of(
        with_defect("reference-ctl.toml", "finalizer-after-failed-delete"),
        "delete-blocker-unnamed",
    );
    let row = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
    let own = row("delete-blocker-unnamed");
    assert_eq!(own.audit, Audit::CannotRun, "{}", own.text());
    let dropped = row("finalizer-after-failed-delete");
    assert_eq!(dropped.audit, Audit::Present, "{}", dropped.text());
    assert!(
        dropped
            .message
            .starts_with("seen in delete-blocker-unnamed's run:")
            && dropped.message.contains("the finalizer was dropped")
            && dropped.message.contains("instance directory"),
        "{}",
        dropped.text()
    );
}
