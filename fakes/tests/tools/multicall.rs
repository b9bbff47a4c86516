//! What every personality shares: dispatch by name, the fault plan, the
//! generic faults, and the journal's invoked/fault/exit entries.

use crate::sandbox::{Sandbox, stderr_of};
use fakes::journal::{Record, event};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn an_unknown_personality_exits_2_naming_it() {
    let sandbox = Sandbox::new();
    let scp = sandbox
        .bin_dir()
        .join(format!("scp{}", std::env::consts::EXE_SUFFIX));
    std::fs::copy(env!("CARGO_BIN_EXE_limavm-fake"), &scp).unwrap();
    let mut cmd = std::process::Command::new(&scp);
    cmd.env_clear().envs(sandbox.env());
    let output = sandbox.assert(cmd).code(2);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("\"scp"), "{stderr}");
    assert!(
        stderr.contains("limactl"),
        "should list the known names: {stderr}"
    );
}

#[test]
fn a_malformed_plan_exits_2_naming_the_file_and_the_field() {
    let sandbox = Sandbox::new();
    sandbox.set_plan(json!({"rules": [{"tool": "wsl.exe", "fault": {"kind": "hang"}, "tims": 2}]}));
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["--list", "--quiet"]);
    let output = sandbox.assert(cmd).code(2);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("tims"), "{stderr}");
    let plan = sandbox.plan_path().display().to_string();
    assert!(stderr.contains(&plan), "{stderr}");
    let exits = sandbox.events(event::EXIT);
    assert_eq!(
        exits[0].record,
        Record::Exit {
            code: contract::exit::USAGE
        },
        "{exits:?}"
    );
}

#[test]
fn every_run_journals_its_arguments_and_exit_code() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("wsl");
    cmd.args(["--list", "--quiet"]);
    sandbox.assert(cmd).success();
    let journal = sandbox.journal().entries();
    let records: Vec<_> = journal.iter().map(|e| e.record.clone()).collect();
    assert_eq!(
        records,
        [
            Record::Invoked {
                args: vec!["--list".into(), "--quiet".into()]
            },
            Record::Exit {
                code: contract::exit::OK
            }
        ]
    );
    assert_eq!(journal[0].tool, "wsl.exe");
}

#[test]
fn without_journal_and_plan_variables_nothing_is_written_and_nothing_fails() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("wsl.exe");
    cmd.env_remove(fakes::journal::JOURNAL_ENV)
        .env_remove(fakes::plan::FAULT_PLAN_ENV)
        .args(["--list", "--quiet"]);
    sandbox.assert(cmd).success();
    assert!(!sandbox.journal_path().exists());
}

#[test]
fn fault_fail_prints_its_stderr_and_exits_with_its_code_doing_nothing_else() {
    let sandbox = Sandbox::new();
    sandbox.set_plan(json!({"rules": [{"tool": "wsl.exe", "args": ["--import"],
        "fault": {"kind": "fail", "code": 7, "stderr": "WSL is degraded"}}]}));
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["--import", "lima-a", "dir", "disk"]);
    let output = sandbox.assert(cmd).code(7);
    assert_eq!(stderr_of(&output), "WSL is degraded\n");
    assert!(
        !sandbox.wsl_state_path().exists(),
        "a failed call must not register"
    );
    let faults = sandbox.events(event::FAULT);
    assert_eq!(
        faults[0].record,
        Record::Fault {
            kind: "fail".into()
        }
    );
    assert_eq!(
        sandbox.events(event::EXIT)[0].record,
        Record::Exit { code: 7 }
    );
}

#[test]
fn fault_hang_blocks_until_killed() {
    let sandbox = Sandbox::with_fault("ssh-keygen", "hang");
    let key = sandbox.home().join("id");
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "ed25519", "-q", "-N", "", "-C", "c", "-f"])
        .arg(&key);
    let mut hung = sandbox.spawn(cmd);
    sandbox.wait_for_entry(
        "the hang fault",
        |e| matches!(&e.record, Record::Fault { kind } if kind == "hang"),
    );
    hung.assert_keeps_running(Duration::from_millis(300), "fault hang");
    hung.kill();
    assert!(!key.exists(), "a hung ssh-keygen wrote a key");
    assert!(
        sandbox.events(event::EXIT).is_empty(),
        "a killed fake journaled an exit"
    );
}

#[test]
fn fault_delay_waits_then_acts_normally() {
    let sandbox = Sandbox::new();
    sandbox.set_plan(
        json!({"rules": [{"tool": "ssh-keygen", "fault": {"kind": "delay", "ms": 300}}]}),
    );
    let key = sandbox.home().join("id");
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "ed25519", "-q", "-N", "", "-C", "c", "-f"])
        .arg(&key);
    let started = Instant::now();
    sandbox.assert(cmd).success();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    assert!(key.exists() && key.with_extension("pub").exists());
}

#[test]
fn counted_faults_apply_the_given_number_of_times() {
    let sandbox = Sandbox::new();
    sandbox.set_plan(
        json!({"rules": [{"tool": "wsl.exe", "args": ["--list"], "times": 1,
        "fault": {"kind": "fail", "code": 3}}]}),
    );
    let list = || {
        let mut cmd = sandbox.command("wsl.exe");
        cmd.args(["--list", "--quiet"]);
        sandbox.run(cmd).status.code()
    };
    assert_eq!(list(), Some(3));
    assert_eq!(list(), Some(0));
    assert_eq!(sandbox.events(event::FAULT).len(), 1);
}

#[test]
fn faults_that_do_not_apply_are_journaled_and_ignored() {
    let sandbox = Sandbox::with_fault("wsl.exe", "crash_half_way");
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["--list", "--quiet"]);
    sandbox.assert(cmd).success();
    assert_eq!(
        sandbox.events(event::FAULT)[0].record,
        Record::Fault {
            kind: "crash_half_way".into()
        }
    );
}

/// Lima ignores `--foreground` on Windows; the fake refuses it there.
#[cfg(windows)]
#[test]
fn start_foreground_is_refused_on_windows() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("limactl");
    cmd.args(["start", "--foreground", "vm1"]);
    sandbox
        .assert(cmd)
        .code(2)
        .stderr(predicates::str::contains("Windows"));
}
