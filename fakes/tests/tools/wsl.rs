//! `wsl.exe`: the distro registry, `-d` sessions, and the output encoding.

use crate::sandbox::{Running, Sandbox, eventually, stderr_of};
use assert_cmd::assert::OutputAssertExt;
use fakes::decode_wsl_output;
use fakes::journal::{Record, event};
use predicates::str::{contains, starts_with};
use serde_json::json;
use std::process::Output;
use std::time::Duration;

fn wsl(sandbox: &Sandbox, args: &[&str]) -> Output {
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(args);
    sandbox.run(cmd)
}

fn import(sandbox: &Sandbox, distro: &str) {
    let location = sandbox.root().join(distro);
    let source = location.join("diffdisk");
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["--import", distro]).arg(&location).arg(&source);
    let output = sandbox.run(cmd);
    assert!(
        output.status.success(),
        "import {distro}: {}",
        decode_wsl_output(&output.stdout)
    );
}

fn listed(sandbox: &Sandbox, running: bool) -> Vec<String> {
    let mut args = vec!["--list", "--quiet"];
    if running {
        args.push("--running");
    }
    let output = wsl(sandbox, &args);
    assert!(output.status.success(), "{}", stderr_of(&output));
    decode_wsl_output(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn start_session(sandbox: &Sandbox, distro: &str) -> Running {
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["-d", distro]);
    let session = sandbox.spawn(cmd);
    eventually(&format!("{distro} to run"), || {
        let running = listed(sandbox, true);
        running
            .iter()
            .any(|name| name.eq_ignore_ascii_case(distro))
            .then_some(())
            .ok_or(format!("{running:?}"))
    });
    session
}

fn states(sandbox: &Sandbox, distro: &str) -> Vec<String> {
    sandbox
        .events(event::DISTRO_STATE)
        .iter()
        .filter_map(|e| match &e.record {
            Record::DistroState { distro: d, state } if d == distro => Some(state.clone()),
            _ => None,
        })
        .collect()
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[test]
fn lists_in_utf16_with_crlf_unless_wsl_utf8_is_set() {
    let sandbox = Sandbox::new();
    import(&sandbox, "lima-b");
    import(&sandbox, "lima-a");
    let output = wsl(&sandbox, &["-l", "-q"]);
    assert_eq!(output.stdout, utf16("lima-a\r\nlima-b\r\n"));
    let mut cmd = sandbox.command("wsl");
    cmd.args(["--list", "--quiet"]).env("WSL_UTF8", "1");
    assert_eq!(sandbox.run(cmd).stdout, b"lima-a\r\nlima-b\r\n");
    assert_eq!(states(&sandbox, "lima-a"), ["Stopped"]);
}

#[test]
fn a_session_runs_the_distro_until_terminate_kills_it() {
    let sandbox = Sandbox::new();
    import(&sandbox, "lima-a");
    import(&sandbox, "lima-b");
    let mut session = start_session(&sandbox, "lima-a");
    assert_eq!(listed(&sandbox, true), ["lima-a"]);
    let output = wsl(&sandbox, &["--terminate", "lima-a"]).assert().success();
    assert!(decode_wsl_output(&output.get_output().stdout).contains("completed successfully"));
    session.wait_exit();
    assert!(listed(&sandbox, true).is_empty());
    assert_eq!(listed(&sandbox, false), ["lima-a", "lima-b"]);
    assert_eq!(
        states(&sandbox, "lima-a"),
        ["Stopped", "Running", "Stopped"]
    );
}

#[test]
fn a_session_killed_outright_no_longer_counts_as_running() {
    let sandbox = Sandbox::new();
    import(&sandbox, "lima-a");
    let mut session = start_session(&sandbox, "lima-a");
    session.kill();
    assert!(listed(&sandbox, true).is_empty());
    assert_eq!(
        states(&sandbox, "lima-a").last().map(String::as_str),
        Some("Stopped")
    );
}

#[test]
fn an_interrupted_session_stops_the_distro_and_exits_0() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::CONSOLE_EVENTS) else {
        return;
    };
    import(&sandbox, "lima-a");
    let mut session = start_session(&sandbox, "lima-a");
    session.interrupt();
    assert_eq!(session.wait_exit().code(), Some(0));
    assert!(listed(&sandbox, true).is_empty());
    sandbox.wait_for_event("wsl.exe", event::INTERRUPT_RECEIVED);
}

#[test]
fn fault_ignore_interrupt_keeps_the_session_running() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::CONSOLE_EVENTS) else {
        return;
    };
    sandbox.set_plan(json!({"rules": [{"tool": "wsl.exe", "args": ["-d"], "fault": {"kind": "ignore_interrupt"}}]}));
    import(&sandbox, "lima-a");
    let mut session = start_session(&sandbox, "lima-a");
    session.interrupt();
    sandbox.wait_for_event("wsl.exe", event::INTERRUPT_IGNORED);
    session.assert_keeps_running(Duration::from_millis(200), "ignore_interrupt");
    assert_eq!(listed(&sandbox, true), ["lima-a"]);
}

#[test]
fn names_are_matched_without_regard_to_case() {
    let sandbox = Sandbox::new();
    import(&sandbox, "lima-a");
    let mut session = start_session(&sandbox, "LIMA-A");
    wsl(&sandbox, &["-t", "Lima-A"]).assert().success();
    session.wait_exit();
}

#[test]
fn unknown_distros_are_reported_in_the_output_encoding_with_exit_1() {
    let sandbox = Sandbox::new();
    for command in ["--terminate", "--unregister"] {
        wsl(&sandbox, &[command, "lima-none"])
            .assert()
            .code(1)
            .stdout(utf16(
                "There is no distribution with the supplied name.\r\nError code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND\r\n",
            ));
    }
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["-d", "lima-none"]).env("WSL_UTF8", "1");
    sandbox.assert(cmd).code(1).stdout(starts_with(
        "There is no distribution with the supplied name.\r\n",
    ));
}

#[test]
fn importing_an_existing_distro_fails() {
    let sandbox = Sandbox::new();
    import(&sandbox, "lima-a");
    let output = wsl(&sandbox, &["--import", "lima-a", "x", "y"])
        .assert()
        .code(1);
    assert!(decode_wsl_output(&output.get_output().stdout).contains("already exists"));
}

#[test]
fn unregister_ends_the_sessions_and_forgets_the_distro() {
    let sandbox = Sandbox::new();
    import(&sandbox, "lima-a");
    let mut session = start_session(&sandbox, "lima-a");
    wsl(&sandbox, &["--unregister", "lima-a"])
        .assert()
        .success();
    session.wait_exit();
    assert!(listed(&sandbox, false).is_empty());
    assert_eq!(
        states(&sandbox, "lima-a").last().map(String::as_str),
        Some("Unregistered")
    );
}

#[test]
fn a_hang_on_terminate_applies_the_counted_times_then_terminate_works() {
    let sandbox = Sandbox::new();
    sandbox.set_plan(
        json!({"rules": [{"tool": "wsl.exe", "args": ["--terminate"], "times": 1,
        "fault": {"kind": "hang"}}]}),
    );
    import(&sandbox, "lima-a");
    let mut session = start_session(&sandbox, "lima-a");
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["--terminate", "lima-a"]);
    let mut hung = sandbox.spawn(cmd);
    hung.assert_keeps_running(Duration::from_millis(300), "the first --terminate hangs");
    assert_eq!(
        listed(&sandbox, true),
        ["lima-a"],
        "a hung terminate stopped the distro"
    );
    hung.kill();
    wsl(&sandbox, &["--terminate", "lima-a"]).assert().success();
    session.wait_exit();
}

#[test]
fn a_malformed_state_file_exits_2_naming_it() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.wsl_state_path(), "{\"distros\": 3}").unwrap();
    wsl(&sandbox, &["--list", "--quiet"])
        .assert()
        .code(2)
        .stderr(contains("wsl-state.json"));
}

#[test]
fn bad_command_lines_exit_2() {
    let sandbox = Sandbox::new();
    wsl(&sandbox, &["--frobnicate"])
        .assert()
        .code(2)
        .stderr(contains("--frobnicate"));
}
