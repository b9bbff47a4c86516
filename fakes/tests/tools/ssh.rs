//! `ssh`: holding `-L` ports, failing on taken ones, and the interrupt.

use crate::sandbox::{
    Sandbox, assert_port_held, free_port, port_is_free, stderr_of, wait_port_free,
};
use fakes::journal::{Record, event};
use predicates::str::contains;
use std::net::TcpListener;
use std::time::Duration;

fn forward_args(ports: &[u16]) -> Vec<String> {
    let mut args = vec![
        "-N".to_owned(),
        "-o".into(),
        "ExitOnForwardFailure=yes".into(),
    ];
    for port in ports {
        args.push("-L".into());
        args.push(format!("127.0.0.1:{port}:localhost:80"));
    }
    args.extend(["-p", "60022", "lima@127.0.0.1"].map(str::to_owned));
    args
}

fn bound_ports(sandbox: &Sandbox) -> Vec<u16> {
    sandbox
        .events(event::PORT_BOUND)
        .iter()
        .filter_map(|e| match e.record {
            Record::PortBound { port } => Some(port),
            _ => None,
        })
        .collect()
}

#[test]
fn holds_every_forward_until_interrupted() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::CONSOLE_EVENTS) else {
        return;
    };
    let (joined, separate, bare) = (free_port(), free_port(), free_port());
    let mut cmd = sandbox.command("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-i",
        "/no/key",
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
    ])
    .arg(format!("-L127.0.0.1:{joined}:localhost:80"))
    .args(["-L", &format!("127.0.0.1:{separate}:localhost:81")])
    .args(["-L", &format!("{bare}:localhost:82")])
    .args(["-p2222", "-l", "lima", "127.0.0.1"]);
    let mut ssh = sandbox.spawn(cmd);
    crate::sandbox::eventually("three port_bound entries", || {
        let bound = bound_ports(&sandbox);
        (bound.len() == 3).then_some(()).ok_or(format!("{bound:?}"))
    });
    for port in [joined, separate, bare] {
        assert_port_held(port, "ssh");
    }
    ssh.interrupt();
    assert_eq!(ssh.wait_exit().code(), Some(0));
    for port in [joined, separate, bare] {
        assert!(
            port_is_free(port),
            "port {port} still bound after ssh exited"
        );
    }
    sandbox.wait_for_event("ssh", event::INTERRUPT_RECEIVED);
}

#[test]
fn exits_255_when_a_forwarded_port_is_taken() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let free = free_port();
    let mut cmd = sandbox.command("ssh");
    cmd.args(forward_args(&[free, taken_port]));
    let output = sandbox.assert(cmd).code(255);
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with(&format!(
            "bind [127.0.0.1]:{taken_port}: Address already in use\r\n"
        )),
        "{stderr}"
    );
    let failed = sandbox.events(event::PORT_BIND_FAILED);
    assert!(
        matches!(
            &failed[0].record,
            Record::PortBindFailed { port, error } if *port == taken_port && error.contains("in use")
        ),
        "{failed:?}"
    );
    assert!(
        port_is_free(free),
        "the port bound before the failure was kept"
    );
}

#[test]
fn without_exit_on_forward_failure_a_taken_port_is_reported_and_the_rest_held() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::CONSOLE_EVENTS) else {
        return;
    };
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let free = free_port();
    let mut cmd = sandbox.command("ssh");
    cmd.args([
        "-N",
        "-L",
        &format!("{taken_port}:h:1"),
        "-L",
        &format!("{free}:h:2"),
        "h",
    ]);
    let mut ssh = sandbox.spawn(cmd);
    sandbox.wait_for_event("ssh", event::PORT_BIND_FAILED);
    sandbox.wait_for_event("ssh", event::PORT_BOUND);
    assert_port_held(free, "ssh");
    assert!(
        !ssh.has_exited(),
        "ssh gave up without ExitOnForwardFailure"
    );
    ssh.interrupt();
    assert_eq!(ssh.wait_exit().code(), Some(0));
    wait_port_free(free);
}

#[test]
fn fault_ignore_interrupt_keeps_the_ports() {
    if proctree::skip_under_wine(proctree::wine_lacks::CONSOLE_EVENTS) {
        return;
    }
    let sandbox = Sandbox::with_fault("ssh", "ignore_interrupt");
    let port = free_port();
    let mut cmd = sandbox.command("ssh");
    cmd.args(forward_args(&[port]));
    let mut ssh = sandbox.spawn(cmd);
    sandbox.wait_for_event("ssh", event::PORT_BOUND);
    ssh.interrupt();
    sandbox.wait_for_event("ssh", event::INTERRUPT_IGNORED);
    ssh.assert_keeps_running(Duration::from_millis(200), "ignore_interrupt");
    assert_port_held(port, "ssh ignoring the interrupt");
    ssh.kill();
    wait_port_free(port);
}

#[test]
fn bad_command_lines_exit_2() {
    let sandbox = Sandbox::new();
    for (args, needle) in [
        (&["-N", "-L", "8080:h:80"][..], "destination"),
        (&["-L", "eighty", "h"][..], "'eighty'"),
        (&["-Z", "h"][..], "-- Z"),
    ] {
        let mut cmd = sandbox.command("ssh");
        cmd.args(args);
        sandbox.assert(cmd).code(2).stderr(contains(needle));
    }
}

/// OpenSSH ignores a private key others may read; with no other key the
/// login fails (`sshkey_perm_ok` in OpenSSH's authfile.c).
#[cfg(unix)]
#[test]
fn refuses_a_private_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let key = sandbox.root().join("user");
    std::fs::write(&key, "not read before the mode check\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let mut cmd = sandbox.command("ssh");
    cmd.arg("-i").arg(&key).args(forward_args(&[port]));
    let output = sandbox.assert(cmd).code(255);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("WARNING: UNPROTECTED PRIVATE KEY FILE!"),
        "{stderr}"
    );
    assert!(stderr.contains("Permissions 0644 for"), "{stderr}");
    assert!(
        stderr.contains("lima@127.0.0.1: Permission denied (publickey)."),
        "{stderr}"
    );
    assert!(port_is_free(port), "a refused ssh took its port");
    let refused = sandbox.events(event::KEY_REFUSED);
    assert_eq!(refused.len(), 1, "{refused:?}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = sandbox.command("ssh");
    cmd.arg("-i").arg(&key).args(forward_args(&[port]));
    let mut ssh = sandbox.spawn(cmd);
    crate::sandbox::eventually("the port bound with an owner-only key", || {
        (!port_is_free(port)).then_some(()).ok_or("free".to_owned())
    });
    ssh.interrupt();
    assert_eq!(ssh.wait_exit().code(), Some(0));
}

/// Real Lima v2.2.0's shape: a ControlMaster started with `-f` detaches
/// (its launcher exits 0, it lives on in a session of its own, titled
/// `ssh: PATH [mux]`), takes forwards with `-O forward` and ends on `-O
/// exit`.
#[cfg(unix)]
#[test]
fn a_control_master_detaches_forwards_on_request_and_exits_on_o_exit() {
    let sandbox = Sandbox::new();
    let socket = sandbox.root().join("ssh.sock");
    let control_path = format!("ControlPath={}", socket.display());
    let port = free_port();
    let mut master = sandbox.command("ssh");
    master.args([
        "-o",
        "ControlMaster=auto",
        "-o",
        &control_path,
        "-o",
        "ControlPersist=yes",
        "-f",
        "-N",
        "-p",
        "60022",
        "lima@127.0.0.1",
    ]);
    sandbox.assert(master).success();
    let title = format!("ssh: {} [mux]", socket.display());
    let daemon = crate::sandbox::eventually("the master's process", || {
        sandbox
            .live_processes()
            .into_iter()
            .find(|p| p.cmd.join(" ").trim_end() == title)
            .ok_or_else(|| format!("{:?}", sandbox.live_processes()))
    });
    let client = |command: &str, extra: &[&str]| {
        let mut cmd = sandbox.command("ssh");
        cmd.args(["-O", command, "-S"])
            .arg(&socket)
            .args(extra)
            .arg("lima@127.0.0.1");
        sandbox.assert(cmd)
    };
    client("check", &[]).stderr(contains(format!("Master running (pid={})", daemon.pid)));
    let spec = format!("127.0.0.1:{port}:localhost:80");
    client("forward", &["-L", &spec]).success();
    assert_port_held(port, "the ssh ControlMaster");
    client("exit", &[]).success();
    wait_port_free(port);
    sandbox.wait_no_live_processes();
    client("check", &[])
        .code(255)
        .stderr(contains("Control socket connect("));
}
