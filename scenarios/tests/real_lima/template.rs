//! `fixtures/lima/blank-disk.yaml` on real Lima: `limactl start
//! --foreground` gets to a hostagent whose pid file and socket answer, and
//! QEMU really holds the SSH port and the disk's write lock.

use crate::support::{
    blank_template, instance, real_lima_here, real_sandbox, run, start_foreground, wait_running,
};
use harness::eventually;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_blank_disk_template_runs_a_hostagent_that_holds_port_and_disk() {
    if !real_lima_here() {
        return;
    }
    let sandbox = real_sandbox();
    let template = blank_template(&sandbox);
    let port = template.host_ports()[0];
    let vm = instance(&sandbox, "vm", &template);
    let started = Instant::now();
    let pid = start_foreground(&sandbox, &vm);
    let (hostagent, qemu, ssh_port) = wait_running(&sandbox, &vm, pid);
    eprintln!(
        "start -> Running (ha.pid + /v1/info + qemu.pid): {:?}",
        started.elapsed()
    );
    assert_eq!(hostagent, pid, "the start became the hostagent (same pid)");
    assert_eq!(ssh_port, port, "/v1/info reports the template's SSH port");
    // QEMU writes its pid file before its network is up.
    eventually(Duration::from_secs(10), "QEMU to hold the SSH port", || {
        if harness::ports::is_free(port) {
            Err(format!("port {port} free"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    // The sandbox's mark survives the privilege drop and reaches QEMU, so
    // the sandbox can find and kill what a test leaves.
    let marked: Vec<u32> = sandbox.live_processes().iter().map(|p| p.pid).collect();
    assert!(
        marked.contains(&hostagent) && marked.contains(&qemu),
        "hostagent {hostagent} and QEMU {qemu} carry LIMAVM_SANDBOX: {marked:?}"
    );

    // A second QEMU on the same disk is refused, as a user would see it.
    let stderr = sandbox.root().join("second-qemu.stderr");
    let mut second = sandbox.command("qemu-system-x86_64");
    second
        .args(["-S", "-display", "none", "-nodefaults", "-drive"])
        .arg(format!("file={},if=virtio", vm.dir.join("disk").display()))
        .stderr(std::fs::File::create(&stderr).unwrap());
    let second = sandbox.spawn(second).unwrap();
    let code = sandbox
        .wait_child(second, Duration::from_secs(10))
        .expect("the second QEMU gives up at once");
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert_ne!(code, Some(0));
    assert!(said.contains("Failed to get \"write\" lock"), "{said}");
}

#[test]
fn the_real_limactl_refuses_root_so_the_shim_drops_it() {
    if !real_lima_here() {
        return;
    }
    let sandbox = real_sandbox();
    let output = run(sandbox
        .command(sandbox.tool_path("limactl"))
        .arg("--version"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(text.contains("2.2.0"), "{text}");
    let uid = run(Command::new("id").arg("-u"));
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        let direct =
            run(Command::new(harness::real_lima::limactl_path().unwrap()).arg("--version"));
        assert!(
            String::from_utf8_lossy(&direct.stderr).contains("must not run as the root user"),
            "{direct:?}"
        );
    }
}
