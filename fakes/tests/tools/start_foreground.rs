//! `limactl start --foreground NAME`: the instance is inspected, the logs
//! recreated, and the process becomes the hostagent (same pid) with Lima's
//! default pid file and socket in the instance directory. Unix only, as in
//! Lima (on Windows the fake refuses it; see `multicall`).

use crate::sandbox::{Running, Sandbox, eventually, hostagent_events};
use fakes::journal::event;
use lima_layout::InstancePaths;
use lima_layout::paths::{read_pid_file, write_pid_file};
use predicates::str::contains;
use serde_json::json;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

fn vm(sandbox: &Sandbox) -> InstancePaths {
    sandbox.instance("vm1", "vmType: qemu\n")
}

/// What the reconciler's `--hostagent-entry start-foreground` runs: logs
/// already opened (and truncated) by the caller, stdin not a terminal.
fn start_command(sandbox: &Sandbox, paths: &InstancePaths) -> Command {
    let mut cmd = sandbox.command("limactl");
    cmd.args(["start", "--foreground", "--tty=false"])
        .arg(&paths.name)
        .stdout(std::fs::File::create(paths.ha_stdout_log()).unwrap())
        .stderr(std::fs::File::create(paths.ha_stderr_log()).unwrap());
    cmd
}

fn wait_running(paths: &InstancePaths) {
    eventually("the running event in the new ha.stdout.log", || {
        let events = hostagent_events(&paths.ha_stdout_log());
        events
            .iter()
            .any(|e| e.status.running)
            .then_some(())
            .ok_or_else(|| format!("events {events:?}"))
    });
}

#[test]
fn the_start_becomes_the_hostagent_with_lima_s_default_paths() {
    let sandbox = Sandbox::new();
    let paths = vm(&sandbox);
    let mut start = sandbox.spawn(start_command(&sandbox, &paths));
    wait_running(&paths);
    assert_eq!(read_pid_file(&paths.ha_pid()), Some(start.pid()));
    lima_layout::info::query_info(&paths.ha_sock(), Duration::from_secs(2)).unwrap();
    let exec = sandbox.wait_for_event("limactl", event::HOSTAGENT_EXEC);
    assert_eq!(exec.pid, start.pid());
    let hostagent_args: Vec<String> = vec![
        "hostagent".into(),
        "--pidfile".into(),
        paths.ha_pid().display().to_string(),
        "--socket".into(),
        paths.ha_sock().display().to_string(),
        "vm1".into(),
    ];
    assert_eq!(exec.args(), hostagent_args);
    // The same pid was invoked twice: as `start`, then as the hostagent,
    // which is what a reconciler's identity check then sees.
    let invocations: Vec<Vec<String>> = sandbox
        .events(event::INVOKED)
        .into_iter()
        .filter(|e| e.tool == "limactl" && e.pid == start.pid())
        .map(|e| e.args().to_vec())
        .collect();
    let start_args = ["start", "--foreground", "--tty=false", "vm1"].map(String::from);
    assert_eq!(invocations, [start_args.to_vec(), hostagent_args]);
    let cmd = proctree::ProcessTable::snapshot_of(&[start.pid()])
        .get(start.pid())
        .map(|p| p.cmd.clone())
        .unwrap_or_default();
    assert!(cmd.iter().any(|a| a == "hostagent"), "{cmd:?}");

    start.interrupt();
    assert_eq!(start.wait_exit().code(), Some(0));
    for file in [paths.ha_pid(), paths.ha_sock()] {
        assert!(file.symlink_metadata().is_err(), "{} left", file.display());
    }
    sandbox.wait_no_live_processes();
}

#[test]
fn the_logs_are_new_files_so_a_reader_of_the_old_ones_sees_nothing() {
    let sandbox = Sandbox::new();
    let paths = vm(&sandbox);
    let cmd = start_command(&sandbox, &paths);
    let mut old_stdout = std::fs::File::open(paths.ha_stdout_log()).unwrap();
    let _start = sandbox.spawn(cmd);
    wait_running(&paths);
    let mut seen = String::new();
    old_stdout.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "", "the old ha.stdout.log received output");
}

#[test]
fn the_hostagent_s_faults_apply_after_the_exec() {
    let sandbox = Sandbox::new();
    let paths = vm(&sandbox);
    sandbox.set_plan(json!({"rules": [
        {"tool": "limactl", "args": ["hostagent"], "fault": {"kind": "ignore_interrupt"}}
    ]}));
    let mut start = sandbox.spawn(start_command(&sandbox, &paths));
    wait_running(&paths);
    start.interrupt();
    sandbox.wait_for_event("limactl", event::INTERRUPT_IGNORED);
    start.assert_keeps_running(Duration::from_millis(300), "the interrupt is ignored");
}

#[test]
fn a_stale_pid_file_is_removed_and_the_start_goes_on() {
    let sandbox = Sandbox::new();
    let paths = vm(&sandbox);
    let mut gone = Command::new(sandbox.tool_path("ssh-keygen"))
        .arg("--help")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    write_pid_file(&paths.ha_pid(), dead).unwrap();
    let start: Running = sandbox.spawn(start_command(&sandbox, &paths));
    wait_running(&paths);
    assert_eq!(read_pid_file(&paths.ha_pid()), Some(start.pid()));
}

#[test]
fn a_running_instance_is_left_alone_and_a_broken_one_refused() {
    let sandbox = Sandbox::new();
    let paths = vm(&sandbox);
    // Running: a hostagent (started the other way) answers, its driver runs.
    let mut hostagent = sandbox.command("limactl");
    hostagent
        .args(["hostagent", "--pidfile"])
        .arg(paths.ha_pid())
        .arg("--socket")
        .arg(paths.ha_sock())
        .arg("vm1")
        .stdout(std::process::Stdio::null());
    let _hostagent = sandbox.spawn(hostagent);
    // Running as Lima's inspection sees it: the hostagent answers and its
    // driver's pid file names a live process (written after the socket).
    eventually("the first hostagent to answer, its driver alive", || {
        lima_layout::info::query_info(&paths.ha_sock(), Duration::from_secs(1))
            .map_err(|e| e.to_string())?;
        let driver = paths.driver_pid(lima_layout::VmType::Qemu);
        read_pid_file(&driver)
            .filter(|&pid| proctree::is_alive(pid))
            .ok_or_else(|| format!("no live driver in {}", driver.display()))
    });
    let mut again = sandbox.command("limactl");
    again.args(["start", "--foreground", "vm1"]);
    sandbox
        .assert(again)
        .success()
        .stderr(contains("already running"));

    // Broken: ha.pid names a live process that is no hostagent.
    let other = sandbox.instance("vm2", "vmType: qemu\n");
    write_pid_file(&other.ha_pid(), std::process::id()).unwrap();
    let mut refused = sandbox.command("limactl");
    refused.args(["start", "--foreground", "vm2"]);
    sandbox
        .assert(refused)
        .code(1)
        .stderr(contains("seems running"));
}

#[test]
fn a_missing_instance_fails_naming_it() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("limactl");
    cmd.args(["start", "--foreground", "nowhere"]);
    sandbox.assert(cmd).code(1).stderr(contains("nowhere"));
}
