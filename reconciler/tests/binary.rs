//! The `limavm-reconciler` binary as a black box in the harness's sandbox,
//! with nothing but the real `ssh-keygen` on PATH (the fake tools are
//! exercised by `scenarios/`).
#![cfg(unix)]

use assert_cmd::assert::{Assert, OutputAssertExt};
use contract::Tool;
use harness::{Sandbox, Toolset};
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The bound on a command that should end at once (`ctl`, a refused start).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// A sandbox with the reconciler and no tool at all on PATH.
fn sandbox() -> Sandbox {
    build(Sandbox::builder().only_tools([]))
}

/// A sandbox with the real `ssh-keygen` (found on this machine's PATH) as
/// the only tool on PATH; `None`, after saying that `test` is skipped,
/// when there is none.
fn sandbox_with_ssh_keygen(test: &str) -> Option<Sandbox> {
    if let Err(e) = Toolset::resolve_real(Tool::SshKeygen) {
        eprintln!("SKIPPED: {test}: {e}");
        return None;
    }
    Some(build(
        Sandbox::builder()
            .toolset(Toolset::fakes().with_real(Tool::SshKeygen))
            .only_tools([Tool::SshKeygen]),
    ))
}

fn build(builder: harness::sandbox::SandboxBuilder) -> Sandbox {
    builder
        .reconciler(env!("CARGO_BIN_EXE_limavm-reconciler"))
        .build()
        .unwrap_or_else(|e| panic!("setting up the sandbox: {e}"))
}

/// What these tests do with the reconciler in a sandbox.
trait Reconciler {
    fn lima_home_path(&self) -> PathBuf;
    /// The reconciler with the sandbox's environment, nothing else.
    fn reconciler(&self) -> Command;
    /// Runs the binary with `args` to its end (bounded) for assertions.
    fn run(&self, args: &[&str]) -> Assert;
    /// `limavm-reconciler serve` on the sandbox's LIMA_HOME and state, in
    /// a process group of its own, output captured.
    fn serve(&self, extra: &[&str]) -> Service;
    /// `limavm-reconciler ctl --state STATE ARGS`, fed `stdin`.
    fn ctl(&self, args: &[&str], stdin: &str) -> Assert;
    fn get(&self, name: &str) -> Value;
}

impl Reconciler for Sandbox {
    fn lima_home_path(&self) -> PathBuf {
        self.lima_home().path().to_owned()
    }

    fn reconciler(&self) -> Command {
        self.command(self.reconciler_exe())
    }

    fn run(&self, args: &[&str]) -> Assert {
        let mut cmd = self.reconciler();
        cmd.args(args);
        run_command(cmd, "")
    }

    fn serve(&self, extra: &[&str]) -> Service {
        let mut cmd = self.reconciler();
        cmd.arg("serve")
            .arg("--lima-home")
            .arg(self.lima_home_path())
            .arg("--state")
            .arg(self.state_dir())
            .args(["--poll-interval", "20ms", "--keygen-timeout", "10s"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: nothing it signals can reach the test runner.
            .process_group(0);
        Service(Some(cmd.spawn().unwrap()))
    }

    fn ctl(&self, args: &[&str], stdin: &str) -> Assert {
        let mut cmd = self.reconciler();
        cmd.arg("ctl")
            .arg("--state")
            .arg(self.state_dir())
            .args(args);
        run_command(cmd, stdin)
    }

    fn get(&self, name: &str) -> Value {
        let out = self.ctl(&["get", name, "-o", "json"], "").success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    }
}

/// Runs `cmd` to its end through [`proctree::run_bounded`], fed `stdin`,
/// its tree killed at [`COMMAND_TIMEOUT`] (failing the test).
fn run_command(mut cmd: Command, stdin: &str) -> Assert {
    match proctree::run_bounded(&mut cmd, Some(stdin.as_bytes()), Some(COMMAND_TIMEOUT)) {
        Ok(done) => Output::from(done).assert(),
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// The service process; killed when dropped (also on panic), and by the
/// sandbox with whatever else it left.
struct Service(Option<Child>);

impl Service {
    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn wait_exit(&mut self, timeout: Duration) -> Assert {
        let child = self.0.as_mut().unwrap();
        eventually("the service to exit", timeout, || {
            child.try_wait().unwrap().map(|_| ())
        });
        self.0.take().unwrap().wait_with_output().unwrap().assert()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = proctree::kill_tree(child.id());
            let _ = child.wait();
        }
    }
}

/// [`harness::eventually`] on an `Option`, failing the test on timeout.
fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    harness::eventually(timeout, what, || {
        probe().ok_or_else(|| "not yet".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn running_condition(doc: &Value) -> Option<(String, String, String)> {
    doc["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Running")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

fn vm(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "limavm.dev/v1alpha1", "kind": "LimaVM",
        "metadata": {"name": name},
        "spec": {"running": true, "vmType": "qemu", "template": "images: [{location: /no-os.qcow2}]\n"}
    })
    .to_string()
}

#[test]
fn regressions_lists_every_switch() {
    let out = sandbox().run(&["regressions"]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        text.lines().count(),
        contract::FindingId::ALL.len(),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("wsl-hang-unbounded ")));
}

#[test]
fn an_unknown_regression_exits_2_naming_the_valid_ones() {
    let sandbox = sandbox();
    let lima_home = sandbox.lima_home_path();
    let state = sandbox.state_dir();
    let common = [
        "serve",
        "--lima-home",
        lima_home.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ];
    let mut args = common.to_vec();
    args.extend(["--regress", "bogus"]);
    sandbox
        .run(&args)
        .code(2)
        .stderr(contains("disk-lock-leak"));

    let mut cmd = sandbox.reconciler();
    cmd.args(common)
        .env("LIMAVM_REGRESS", "disk-lock-leak,bogus");
    run_command(cmd, "")
        .code(2)
        .stderr(contains("LIMAVM_REGRESS").and(contains("\"bogus\"")));
}

#[test]
fn a_missing_ssh_keygen_fails_the_start_with_its_name() {
    let sandbox = sandbox();
    let mut service = sandbox.serve(&[]);
    service
        .wait_exit(COMMAND_TIMEOUT)
        .code(1)
        .stderr(contains("ssh-keygen not found on PATH"));
    assert!(!sandbox.state_dir().join("service.json").exists());
    let log = std::fs::read_to_string(sandbox.state_dir().join("reconciler.log")).unwrap();
    assert!(log.contains("ssh-keygen not found on PATH"), "{log}");
}

#[test]
fn serve_reports_start_failures_and_bad_names_and_stops_on_sigterm() {
    let Some(sandbox) = sandbox_with_ssh_keygen("serve_reports_start_failures") else {
        return;
    };
    let mut service = sandbox.serve(&["--restart-backoff", "50ms"]);
    let service_json = sandbox.state_dir().join("service.json");
    let ready: Value = eventually("service.json", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&service_json).ok()?;
        serde_json::from_str(&text).ok()
    });
    assert_eq!(ready["pid"], service.pid());
    assert_eq!(ready["ready"], true);
    assert!(sandbox.lima_home_path().join("_config/user.pub").exists());

    sandbox.ctl(&["apply", "-f", "-"], &vm("vm1")).success();
    sandbox.ctl(&["apply", "-f", "-"], &vm("_disks")).success();
    assert_start_failure_reported(&sandbox, "vm1");
    assert_invalid_name_refused(&sandbox, "_disks");
    assert_corrupt_document_skipped(&sandbox, "_disks");

    // Deleting a VM whose instance never ran drops the finalizer.
    sandbox
        .ctl(&["delete", "vm1", "--wait", "--timeout", "10s"], "")
        .success();
    assert!(!sandbox.lima_home_path().join("vm1").exists());

    proctree::request_shutdown(service.pid()).unwrap();
    service.wait_exit(Duration::from_secs(20)).code(0);
    assert!(!service_json.exists());
    let log = std::fs::read_to_string(sandbox.state_dir().join("reconciler.log")).unwrap();
    assert!(log.contains("the reconciler service stopped"), "{log}");
}

/// `name`'s start failed (no `limactl` on PATH), its generation was
/// observed and it holds the cleanup finalizer.
fn assert_start_failure_reported(sandbox: &Sandbox, name: &str) {
    let (_, _, message) = eventually("StartFailed", Duration::from_secs(10), || {
        running_condition(&sandbox.get(name)).filter(|c| c.1 == "StartFailed")
    });
    assert!(message.contains("limactl not found on PATH"), "{message}");
    let doc = sandbox.get(name);
    assert_eq!(doc["status"]["observedGeneration"], 1);
    assert_eq!(doc["metadata"]["finalizers"][0], "limavm.dev/cleanup");
}

/// `name` cannot be an instance name: refused without creating anything
/// and without a finalizer.
fn assert_invalid_name_refused(sandbox: &Sandbox, name: &str) {
    let condition = eventually("InvalidName", Duration::from_secs(10), || {
        running_condition(&sandbox.get(name)).filter(|c| c.1 == "InvalidName")
    });
    assert_eq!(condition.0, "False");
    assert!(
        !sandbox.lima_home_path().join(name).exists(),
        "nothing created"
    );
    assert_eq!(
        sandbox.get(name)["metadata"]["finalizers"],
        serde_json::json!([])
    );
}

/// A corrupt document is skipped, logged by name, and harms nobody: a
/// patch of `name` is still observed.
fn assert_corrupt_document_skipped(sandbox: &Sandbox, name: &str) {
    std::fs::write(sandbox.state_dir().join("resources/broken.json"), "{").unwrap();
    let log_path = sandbox.state_dir().join("reconciler.log");
    eventually(
        "the corrupt document's log line",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log_path)
                .ok()
                .filter(|log| log.contains("broken.json"))
        },
    );
    sandbox
        .ctl(
            &[
                "patch",
                name,
                "--type=merge",
                "-p",
                r#"{"spec":{"running":false}}"#,
            ],
            "",
        )
        .success();
    eventually("generation 2 observed", Duration::from_secs(10), || {
        (sandbox.get(name)["status"]["observedGeneration"] == 2).then_some(())
    });
}

#[test]
fn json_logs_carry_fields_at_the_top_level() {
    let sandbox = sandbox();
    let mut service = sandbox.serve(&["--log-format", "json"]);
    service.wait_exit(Duration::from_secs(20));
    let log = std::fs::read_to_string(sandbox.state_dir().join("reconciler.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let starting = lines
        .iter()
        .find(|l| l["message"] == "starting the reconciler service")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(starting["level"], "INFO");
    assert!(starting["state"].as_str().unwrap().contains("state"));
}

#[test]
fn a_second_service_on_one_state_refuses_naming_the_first_which_keeps_working() {
    let Some(sandbox) = sandbox_with_ssh_keygen("a_second_service_on_one_state") else {
        return;
    };
    let mut first = sandbox.serve(&[]);
    let service_json = sandbox.state_dir().join("service.json");
    eventually(
        "the first service to be ready",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&service_json).ok()?;
            let doc: Value = serde_json::from_str(&text).ok()?;
            (doc["ready"] == true).then_some(())
        },
    );
    sandbox
        .serve(&[])
        .wait_exit(Duration::from_secs(20))
        .code(1)
        .stderr(
            contains("already serves the state directory")
                .and(contains(format!("(pid {})", first.pid()))),
        );
    // The first still serves: a new resource gets its finalizer.
    sandbox.ctl(&["apply", "-f", "-"], &vm("after")).success();
    eventually(
        "the first service to take the new VM",
        Duration::from_secs(20),
        || running_condition(&sandbox.get("after")).map(|_| ()),
    );
    assert!(first.0.as_mut().unwrap().try_wait().unwrap().is_none());
}

#[test]
fn durations_a_deadline_cannot_hold_are_refused_at_parse_time() {
    let sandbox = sandbox();
    let (lima_home, state) = (sandbox.lima_home_path(), sandbox.state_dir());
    for (option, value) in [
        ("--keygen-timeout", "18446744073709551615s"),
        ("--graceful-timeout", "18446744073709551615s"),
        ("--start-timeout", "18446744073709551615s"),
        ("--poll-interval", "0s"),
    ] {
        sandbox
            .run(&[
                "serve",
                "--lima-home",
                lima_home.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
                option,
                value,
            ])
            .code(2)
            .stderr(contains(option).and(contains("panicked").not()));
    }
}
