//! The QEMU driver: disk lock, pid file, hostfwd port, interrupt.

use crate::sandbox::{Sandbox, assert_port_held, eventually, free_port, port_is_free, stderr_of};
use fakes::journal::{Record, event};
use lima_layout::paths::read_pid_file;
use predicates::str::contains;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Vm {
    pidfile: PathBuf,
    disk: PathBuf,
    port: u16,
}

fn vm(sandbox: &Sandbox) -> Vm {
    Vm {
        pidfile: sandbox.root().join("qemu.pid"),
        disk: sandbox.root().join("diffdisk"),
        port: free_port(),
    }
}

fn qemu_command(sandbox: &Sandbox, vm: &Vm, pidfile: &Path) -> std::process::Command {
    let mut cmd = sandbox.command("qemu-system-x86_64");
    cmd.args(["-name", "vm1", "-m", "1G", "-nographic", "-pidfile"])
        .arg(pidfile)
        .arg("-drive")
        .arg(format!("file={},format=raw", vm.disk.display()))
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:22",
            vm.port
        ));
    cmd
}

fn wait_pid_file(path: &Path, pid: u32) {
    eventually(&format!("{} to name pid {pid}", path.display()), || {
        let found = read_pid_file(path);
        (found == Some(pid))
            .then_some(())
            .ok_or(format!("{found:?}"))
    });
}

#[test]
fn locks_its_disk_holds_its_port_and_cleans_up_on_interrupt() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::CONSOLE_EVENTS) else {
        return;
    };
    let vm = vm(&sandbox);
    let mut qemu = sandbox.spawn(qemu_command(&sandbox, &vm, &vm.pidfile));
    wait_pid_file(&vm.pidfile, qemu.pid());
    assert!(vm.disk.exists(), "the missing disk image was not created");
    assert_port_held(vm.port, "qemu's hostfwd");
    let locked = sandbox.events(event::DISK_LOCKED);
    assert_eq!(
        locked[0].record,
        Record::DiskLocked {
            path: vm.disk.clone()
        }
    );
    assert_eq!(
        sandbox.events(event::PORT_BOUND)[0].record,
        Record::PortBound { port: vm.port }
    );
    qemu.interrupt();
    assert_eq!(qemu.wait_exit().code(), Some(0));
    assert!(
        !vm.pidfile.exists(),
        "the pid file outlived a graceful exit"
    );
    assert!(port_is_free(vm.port));
}

#[test]
fn a_second_qemu_on_the_same_disk_fails_to_get_the_write_lock() {
    let sandbox = Sandbox::new();
    let vm = vm(&sandbox);
    let first = sandbox.spawn(qemu_command(&sandbox, &vm, &vm.pidfile));
    wait_pid_file(&vm.pidfile, first.pid());
    let second_pidfile = sandbox.root().join("second.pid");
    let output = sandbox
        .assert(qemu_command(&sandbox, &vm, &second_pidfile))
        .code(1);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("qemu-system-x86_64: -drive file="),
        "{stderr}"
    );
    assert!(stderr.contains("Failed to get \"write\" lock"), "{stderr}");
    assert!(!second_pidfile.exists());
    assert_eq!(read_pid_file(&vm.pidfile), Some(first.pid()));
}

#[test]
fn a_taken_hostfwd_port_fails_before_the_pid_file() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let vm = Vm {
        port: taken.local_addr().unwrap().port(),
        ..vm(&sandbox)
    };
    let output = sandbox
        .assert(qemu_command(&sandbox, &vm, &vm.pidfile))
        .code(1);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("could not set up host forwarding rule"),
        "{stderr}"
    );
    assert!(
        matches!(
            sandbox.events(event::PORT_BIND_FAILED)[0].record,
            Record::PortBindFailed { port, .. } if port == vm.port
        ),
        "{:?}",
        sandbox.events(event::PORT_BIND_FAILED)
    );
    assert!(!vm.pidfile.exists());
}

#[test]
fn fault_ignore_interrupt_keeps_it_running() {
    if proctree::skip_under_wine(proctree::wine_lacks::CONSOLE_EVENTS) {
        return;
    }
    let sandbox = Sandbox::with_fault("qemu", "ignore_interrupt");
    let vm = vm(&sandbox);
    let mut qemu = sandbox.spawn(qemu_command(&sandbox, &vm, &vm.pidfile));
    wait_pid_file(&vm.pidfile, qemu.pid());
    qemu.interrupt();
    sandbox.wait_for_event("qemu", event::INTERRUPT_IGNORED);
    qemu.assert_keeps_running(Duration::from_millis(200), "ignore_interrupt");
    assert_eq!(read_pid_file(&vm.pidfile), Some(qemu.pid()));
}

#[test]
fn an_unknown_option_exits_2() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("qemu-system-x86_64");
    cmd.arg("-frobnicate");
    sandbox
        .assert(cmd)
        .code(2)
        .stderr(contains("-frobnicate: invalid option"));
}

#[test]
fn daemonize_returns_once_a_detached_daemon_holds_disk_and_port() {
    let sandbox = Sandbox::new();
    let vm = vm(&sandbox);
    let mut cmd = qemu_command(&sandbox, &vm, &vm.pidfile);
    cmd.arg("-daemonize");
    sandbox.assert(cmd).success();
    let daemon = read_pid_file(&vm.pidfile).expect("the daemon wrote its pid file");
    assert!(proctree::is_alive(daemon));
    assert_port_held(vm.port, "the daemon's hostfwd");
    proctree::kill(daemon).unwrap();
    eventually("the daemon to die", || {
        (!proctree::is_alive(daemon))
            .then_some(())
            .ok_or("alive".to_owned())
    });
}
