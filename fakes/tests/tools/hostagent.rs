//! `limactl hostagent`: bring-up, `/v1/info`, the driver and forwards, the
//! graceful shutdown, and each interrupt fault.

use crate::sandbox::{
    Running, Sandbox, assert_port_held, eventually, free_port, hostagent_events, port_is_free,
    stderr_of, wait_port_free,
};
use fakes::journal::{Record, event};
use lima_layout::paths::read_pid_file;
use lima_layout::{HostagentEvent, InstancePaths};
use predicates::str::contains;
use serde_json::json;
use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

struct Vm {
    paths: InstancePaths,
    ssh_port: u16,
    forwards: Vec<u16>,
}

fn qemu_vm(sandbox: &Sandbox, forwards: usize, disks: &[&str]) -> Vm {
    let ssh_port = free_port();
    let forwards: Vec<u16> = (0..forwards).map(|_| free_port()).collect();
    let mut yaml = format!(
        "vmType: qemu\nssh:\n  localPort: {ssh_port}\nadditionalDisks: {disks:?}\nportForwards:\n"
    );
    for (index, port) in forwards.iter().enumerate() {
        yaml += &format!("- guestPort: {}\n  hostPort: {port}\n", 8000 + index);
    }
    if forwards.is_empty() {
        yaml += "  []\n";
    }
    for disk in disks {
        std::fs::create_dir_all(sandbox.lima_home().disk_dir(disk)).unwrap();
    }
    Vm {
        paths: sandbox.instance("vm1", &yaml),
        ssh_port,
        forwards,
    }
}

fn wsl_vm(sandbox: &Sandbox) -> Vm {
    Vm {
        paths: sandbox.instance("w1", "vmType: wsl2\n"),
        ssh_port: 0,
        forwards: Vec::new(),
    }
}

fn hostagent_command(sandbox: &Sandbox, paths: &InstancePaths) -> Command {
    let mut cmd = sandbox.command("limactl");
    cmd.args(["hostagent", "--pidfile"])
        .arg(paths.ha_pid())
        .arg("--socket")
        .arg(paths.ha_sock())
        .arg(&paths.name)
        .stdout(File::create(paths.ha_stdout_log()).unwrap())
        .stderr(File::create(paths.ha_stderr_log()).unwrap());
    cmd
}

fn start(sandbox: &Sandbox, vm: &Vm) -> Running {
    let hostagent = sandbox.spawn(hostagent_command(sandbox, &vm.paths));
    wait_for_event(&vm.paths, "running", |e| e.status.running);
    hostagent
}

/// A sandbox with a QEMU VM of `forwards` port forwards and no disk, whose
/// plan makes `tool` suffer `fault`, and its hostagent started.
fn start_under_fault(tool: &str, fault: &str, forwards: usize) -> (Sandbox, Vm, Running) {
    let sandbox = Sandbox::with_fault(tool, fault);
    let vm = qemu_vm(&sandbox, forwards, &[]);
    let hostagent = start(&sandbox, &vm);
    (sandbox, vm, hostagent)
}

fn wait_for_event(
    paths: &InstancePaths,
    what: &str,
    wanted: impl Fn(&HostagentEvent) -> bool,
) -> HostagentEvent {
    eventually(&format!("the hostagent's {what} event"), || {
        let events = hostagent_events(&paths.ha_stdout_log());
        events.iter().find(|e| wanted(e)).cloned().ok_or_else(|| {
            let stderr = std::fs::read_to_string(paths.ha_stderr_log()).unwrap_or_default();
            format!("events {events:?}, stderr {stderr:?}")
        })
    })
}

fn children(sandbox: &Sandbox, tool: &str) -> Vec<u32> {
    sandbox
        .events(event::CHILD_STARTED)
        .iter()
        .filter(|e| e.tool == "limactl")
        .filter_map(|e| match &e.record {
            Record::ChildStarted { pid, tool: started } if started == tool => Some(*pid),
            _ => None,
        })
        .collect()
}

fn run_to_exit(sandbox: &Sandbox, paths: &InstancePaths) -> (Option<i32>, String) {
    let mut hostagent = sandbox.spawn(hostagent_command(sandbox, paths));
    let code = hostagent.wait_exit().code();
    (
        code,
        std::fs::read_to_string(paths.ha_stderr_log()).unwrap(),
    )
}

fn all_gone(pids: &[u32]) {
    eventually(&format!("pids {pids:?} to be gone"), || {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| proctree::is_alive(*p))
            .collect();
        alive
            .is_empty()
            .then_some(())
            .ok_or(format!("alive: {alive:?}"))
    });
}

#[test]
fn a_qemu_vm_comes_up_and_shuts_down_cleanly() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 2, &["data"]);
    let mut hostagent = start(&sandbox, &vm);
    let running = wait_for_event(&vm.paths, "running", |e| e.status.running);
    assert_eq!(running.status.ssh_local_port, vm.ssh_port);
    assert!(!running.status.degraded, "{running:?}");
    assert!(running.time.ends_with('Z'), "{running:?}");

    assert_eq!(read_pid_file(&vm.paths.ha_pid()), Some(hostagent.pid()));
    let info = lima_layout::info::query_info(&vm.paths.ha_sock(), Duration::from_secs(2)).unwrap();
    assert_eq!(info.ssh_local_port, vm.ssh_port);
    let qemu = children(&sandbox, "qemu-system-x86_64");
    assert_eq!(qemu.len(), 1);
    assert_eq!(
        read_pid_file(&vm.paths.driver_pid(lima_layout::VmType::Qemu)),
        Some(qemu[0])
    );
    let ssh = children(&sandbox, "ssh");
    assert_eq!(ssh.len(), 2);
    for port in vm.forwards.iter().chain([&vm.ssh_port]) {
        assert_port_held(*port, "the hostagent's children");
    }
    let marker = sandbox.lima_home().disk_in_use_by("data");
    assert!(marker.symlink_metadata().is_ok(), "in_use_by missing");
    #[cfg(unix)]
    assert_eq!(std::fs::read_link(&marker).unwrap(), vm.paths.dir);

    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    wait_for_event(&vm.paths, "exiting", |e| e.status.exiting);
    for file in [
        vm.paths.ha_pid(),
        vm.paths.ha_sock(),
        vm.paths.driver_pid(lima_layout::VmType::Qemu),
        marker,
    ] {
        assert!(
            file.symlink_metadata().is_err(),
            "{} left behind",
            file.display()
        );
    }
    for port in vm.forwards.iter().chain([&vm.ssh_port]) {
        assert!(port_is_free(*port), "port {port} still bound");
    }
    sandbox.wait_no_live_processes();
    sandbox.wait_for_event("limactl", event::SHUTDOWN_COMPLETE);
}

#[test]
fn spawn_attributes_report_what_the_parent_set() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::PRIORITY_CLASS) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 0, &[]);
    let mut cmd = hostagent_command(&sandbox, &vm.paths);
    proctree::SpawnAttributes {
        own_process_group: true,
        background_priority: true,
    }
    .apply(&mut cmd);
    let _hostagent = sandbox.spawn(cmd);
    let observed = sandbox.wait_for_event("limactl", event::SPAWN_ATTRIBUTES);
    assert_eq!(
        observed.record,
        Record::SpawnAttributes {
            own_process_group: true,
            background_priority: true
        }
    );
}

#[cfg(unix)]
#[test]
fn a_hostagent_sharing_its_parent_s_group_reports_it() {
    let sandbox = Sandbox::new();
    let vm = qemu_vm(&sandbox, 0, &[]);
    let mut cmd = Command::new(sandbox.tool_path("limactl"));
    cmd.env_clear()
        .envs(sandbox.env())
        .args(["hostagent", "--pidfile"])
        .arg(vm.paths.ha_pid())
        .arg("--socket")
        .arg(vm.paths.ha_sock())
        .arg("vm1")
        .stdout(std::process::Stdio::null());
    let _hostagent = sandbox.spawn(cmd);
    let observed = sandbox.wait_for_event("limactl", event::SPAWN_ATTRIBUTES);
    assert_eq!(
        observed.record,
        Record::SpawnAttributes {
            own_process_group: false,
            background_priority: false
        }
    );
}

#[test]
fn a_missing_additional_disk_fails_and_leaves_nothing_behind() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 0, &[]);
    std::fs::write(
        vm.paths.lima_yaml(),
        "vmType: qemu\nimages: [{location: /no-os.qcow2}]\nadditionalDisks: [nope]\n",
    )
    .unwrap();
    let (code, stderr) = run_to_exit(&sandbox, &vm.paths);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("\"nope\" not found"), "{stderr}");
    assert!(!vm.paths.ha_pid().exists() && !vm.paths.ha_sock().exists());
    assert!(
        children(&sandbox, "qemu-system-x86_64").is_empty(),
        "a driver started"
    );
}

#[test]
fn an_over_long_socket_path_is_a_clear_error() {
    let sandbox = Sandbox::new();
    let vm = qemu_vm(&sandbox, 0, &[]);
    let mut cmd = sandbox.command("limactl");
    let socket = vm.paths.dir.join(format!("{}.sock", "s".repeat(120)));
    cmd.args(["hostagent", "--pidfile"])
        .arg(vm.paths.ha_pid())
        .arg("--socket")
        .arg(&socket)
        .arg("vm1");
    sandbox
        .assert(cmd)
        .code(1)
        .stderr(contains("over the platform limit"));
    assert!(
        !vm.paths.ha_pid().exists(),
        "the pid file outlived a failed start"
    );
}

#[test]
fn a_pid_file_naming_a_live_process_is_refused() {
    let sandbox = Sandbox::new();
    let vm = qemu_vm(&sandbox, 0, &[]);
    std::fs::write(vm.paths.ha_pid(), format!("{}\n", std::process::id())).unwrap();
    let (code, stderr) = run_to_exit(&sandbox, &vm.paths);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(read_pid_file(&vm.paths.ha_pid()), Some(std::process::id()));
}

#[test]
fn a_missing_instance_is_named() {
    let sandbox = Sandbox::new();
    let paths = sandbox.lima_home().instance("ghost");
    std::fs::create_dir_all(&paths.dir).unwrap();
    let (code, stderr) = run_to_exit(&sandbox, &paths);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("lima.yaml"), "{stderr}");
}

#[test]
fn a_driver_that_cannot_start_fails_the_hostagent() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 1, &["data"]);
    // Another QEMU holds the instance's disk.
    let mut rival = sandbox.command("qemu-system-x86_64");
    rival.arg("-drive").arg(format!(
        "file={},format=raw",
        vm.paths.disk_image().display()
    ));
    let _rival = sandbox.spawn(rival);
    sandbox.wait_for_event("qemu", event::DISK_LOCKED);
    let (code, stderr) = run_to_exit(&sandbox, &vm.paths);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("Failed to get \"write\" lock"), "{stderr}");
    assert!(stderr.contains("qemu.pid"), "{stderr}");
    assert!(!vm.paths.ha_pid().exists());
    assert!(
        sandbox
            .lima_home()
            .disk_in_use_by("data")
            .symlink_metadata()
            .is_err()
    );
    assert!(
        children(&sandbox, "ssh").is_empty(),
        "forwards started without a driver"
    );
}

#[test]
fn command_line_errors_exit_2() {
    let sandbox = Sandbox::new();
    for (args, needle) in [
        (&["stop", "vm1"][..], "unsupported in the fake"),
        (&["start", "vm1"][..], "only `start --foreground`"),
        (&["hostagent", "--socket", "s", "vm1"][..], "--pidfile"),
    ] {
        let mut cmd = sandbox.command("limactl");
        cmd.args(args);
        sandbox.assert(cmd).code(2).stderr(contains(needle));
    }
}

#[test]
fn a_taken_forward_port_degrades_but_does_not_stop_the_vm() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 2, &[]);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", vm.forwards[0])).unwrap();
    let mut hostagent = start(&sandbox, &vm);
    let running = wait_for_event(&vm.paths, "running", |e| e.status.running);
    assert!(running.status.degraded, "{running:?}");
    let port = vm.forwards[0].to_string();
    assert!(
        running.status.errors.iter().any(|e| e.contains(&port)),
        "{running:?}"
    );
    assert_port_held(vm.forwards[1], "the working forward");
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    wait_port_free(vm.forwards[1]);
}

#[test]
fn killed_outright_it_leaves_its_children_running() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 1, &["data"]);
    let mut hostagent = start(&sandbox, &vm);
    hostagent.kill();
    let survivors: Vec<u32> = children(&sandbox, "ssh")
        .into_iter()
        .chain(children(&sandbox, "qemu-system-x86_64"))
        .collect();
    assert_eq!(survivors.len(), 2);
    for pid in &survivors {
        assert!(
            proctree::is_alive(*pid),
            "child {pid} died with the hostagent"
        );
    }
    assert_port_held(vm.forwards[0], "the orphaned ssh");
    assert!(
        vm.paths.ha_pid().exists(),
        "a killed hostagent removed its pid file"
    );
    assert!(
        sandbox
            .lima_home()
            .disk_in_use_by("data")
            .symlink_metadata()
            .is_ok()
    );
    for pid in &survivors {
        proctree::kill(*pid).unwrap();
    }
    wait_port_free(vm.forwards[0]);
}

#[test]
fn fault_ignore_interrupt_keeps_everything_running() {
    if proctree::skip_under_wine(proctree::wine_lacks::AF_UNIX) {
        return;
    }
    let (sandbox, vm, mut hostagent) = start_under_fault("limactl", "ignore_interrupt", 1);
    for round in 1..=2 {
        hostagent.interrupt();
        eventually(&format!("{round} ignored interrupts"), || {
            let ignored = sandbox.events(event::INTERRUPT_IGNORED).len();
            (ignored == round)
                .then_some(())
                .ok_or(format!("{ignored} ignored"))
        });
    }
    hostagent.assert_keeps_running(Duration::from_millis(200), "ignore_interrupt");
    assert_eq!(read_pid_file(&vm.paths.ha_pid()), Some(hostagent.pid()));
    assert_port_held(
        vm.forwards[0],
        "ssh under a hostagent that ignored the interrupt",
    );
    assert!(sandbox.events(event::SHUTDOWN_COMPLETE).is_empty());
}

#[test]
fn a_qemu_that_ignores_the_interrupt_holds_the_graceful_stop() {
    // What an embedded hostagent's forced stop is made of: the hostagent
    // honours the interrupt and asks QEMU to end, which does not.
    if proctree::skip_under_wine(proctree::wine_lacks::CONSOLE_EVENTS) {
        return;
    }
    let (sandbox, vm, mut hostagent) = start_under_fault("qemu", "ignore_interrupt", 0);
    hostagent.interrupt();
    let ignored = sandbox.wait_for_event("qemu", event::INTERRUPT_IGNORED);
    assert_eq!(
        read_pid_file(&vm.paths.driver_pid(lima_layout::VmType::Qemu)),
        Some(ignored.pid)
    );
    hostagent.assert_keeps_running(Duration::from_millis(200), "QEMU ignoring the interrupt");
    assert!(sandbox.events(event::SHUTDOWN_COMPLETE).is_empty());
    hostagent.kill();
    proctree::kill(ignored.pid).unwrap();
}

#[test]
fn fault_keep_children_leaves_the_forwards_behind_after_a_graceful_exit() {
    if proctree::skip_under_wine(proctree::wine_lacks::AF_UNIX) {
        return;
    }
    let (sandbox, vm, mut hostagent) = start_under_fault("limactl", "keep_children", 2);
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    let ssh = children(&sandbox, "ssh");
    for pid in &ssh {
        assert!(
            proctree::is_alive(*pid),
            "ssh {pid} was stopped despite keep_children"
        );
    }
    for port in &vm.forwards {
        assert_port_held(*port, "a kept ssh child");
    }
    all_gone(&children(&sandbox, "qemu-system-x86_64"));
    assert!(!vm.paths.ha_pid().exists());
    for pid in &ssh {
        proctree::kill(*pid).unwrap();
    }
    for port in &vm.forwards {
        wait_port_free(*port);
    }
}

/// Real Lima v2.2.0's shape: one detached ControlMaster on
/// `INSTANCE_DIR/ssh.sock` holds every forward, outside the hostagent's
/// tree, and the graceful stop ends it with `ssh -O exit`.
#[cfg(unix)]
#[test]
fn fault_control_master_forwards_through_a_detached_master_ended_on_stop() {
    let (sandbox, vm, mut hostagent) = start_under_fault("limactl", "control_master", 2);
    let title = format!("ssh: {} [mux]", vm.paths.dir.join("ssh.sock").display());
    let master = eventually("the ControlMaster", || {
        sandbox
            .live_processes()
            .into_iter()
            .find(|p| p.cmd.join(" ").trim_end() == title)
            .ok_or_else(|| "no process titled like a master".to_owned())
    });
    assert_ne!(
        master.parent,
        Some(hostagent.pid()),
        "the master must not be the hostagent's child"
    );
    for port in &vm.forwards {
        assert_port_held(*port, "the ssh ControlMaster");
    }
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    for port in &vm.forwards {
        wait_port_free(*port);
    }
    sandbox.wait_no_live_processes();
}

#[test]
fn fault_slow_exit_delays_the_shutdown() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    sandbox.set_plan(
        json!({"rules": [{"tool": "limactl", "fault": {"kind": "slow_exit", "ms": 400}}]}),
    );
    let vm = qemu_vm(&sandbox, 0, &[]);
    let mut hostagent = start(&sandbox, &vm);
    let interrupted = Instant::now();
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    assert!(
        interrupted.elapsed() >= Duration::from_millis(400),
        "exited after {:?}",
        interrupted.elapsed()
    );
    sandbox.wait_for_event("limactl", event::SHUTDOWN_COMPLETE);
}

#[test]
fn fault_replace_driver_swaps_the_driver_before_ignoring_the_interrupt() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    sandbox.set_plan(json!({"rules": [
        {"tool": "limactl", "fault": {"kind": "replace_driver"}},
        {"tool": "limactl", "fault": {"kind": "ignore_interrupt"}}
    ]}));
    let vm = qemu_vm(&sandbox, 0, &[]);
    let mut hostagent = start(&sandbox, &vm);
    let old = children(&sandbox, "qemu-system-x86_64")[0];
    hostagent.interrupt();
    let replaced = sandbox.wait_for_event("limactl", event::DRIVER_REPLACED);
    let Record::DriverReplaced {
        old: replaced_old,
        new,
    } = replaced.record
    else {
        panic!("not a driver replacement: {replaced:?}");
    };
    assert_eq!(replaced_old, old);
    assert_ne!(new, old);
    assert_eq!(
        read_pid_file(&vm.paths.driver_pid(lima_layout::VmType::Qemu)),
        Some(new)
    );
    all_gone(&[old]);
    assert!(proctree::is_alive(new));
    assert!(
        !proctree::ProcessTable::snapshot()
            .descendants(hostagent.pid())
            .contains(&new),
        "the replacement driver {new} still descends from the hostagent"
    );
    assert_port_held(vm.ssh_port, "the new driver");
    sandbox.wait_for_event("limactl", event::INTERRUPT_IGNORED);
    assert!(!hostagent.has_exited());
}

#[test]
fn fault_replace_driver_then_a_graceful_exit_stops_the_new_driver() {
    if proctree::skip_under_wine(proctree::wine_lacks::AF_UNIX) {
        return;
    }
    let (sandbox, vm, mut hostagent) = start_under_fault("limactl", "replace_driver", 0);
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    let replaced = sandbox.events(event::DRIVER_REPLACED);
    assert_eq!(replaced.len(), 1);
    all_gone(&children(&sandbox, "qemu-system-x86_64"));
    assert!(!vm.paths.driver_pid(lima_layout::VmType::Qemu).exists());
    assert!(port_is_free(vm.ssh_port));
}

fn distro_running(sandbox: &Sandbox, distro: &str) -> bool {
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(["--list", "--quiet", "--running"]);
    let output = sandbox.run(cmd);
    fakes::decode_wsl_output(&output.stdout)
        .lines()
        .any(|l| l == distro)
}

fn wsl_invocations(sandbox: &Sandbox, first_arg: &str) -> usize {
    sandbox
        .events(event::INVOKED)
        .iter()
        .filter(|e| e.tool == "wsl.exe" && e.args().first().is_some_and(|a| a == first_arg))
        .count()
}

#[test]
fn a_wsl2_vm_imports_runs_and_terminates_its_distro() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = wsl_vm(&sandbox);
    let mut hostagent = start(&sandbox, &vm);
    assert!(distro_running(&sandbox, "lima-w1"));
    assert_eq!(wsl_invocations(&sandbox, "--import"), 1);
    assert!(children(&sandbox, "qemu-system-x86_64").is_empty());
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    assert!(!distro_running(&sandbox, "lima-w1"));
    assert_eq!(wsl_invocations(&sandbox, "--terminate"), 1);
    assert!(!vm.paths.ha_pid().exists() && !vm.paths.ha_sock().exists());
    sandbox.wait_no_live_processes();
}

#[test]
fn a_wsl2_vm_with_a_registered_distro_skips_the_import() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = wsl_vm(&sandbox);
    let mut import = sandbox.command("wsl.exe");
    import
        .args(["--import", "lima-w1"])
        .arg(&vm.paths.dir)
        .arg(vm.paths.disk_image());
    sandbox.assert(import).success();
    let _hostagent = start(&sandbox, &vm);
    assert_eq!(wsl_invocations(&sandbox, "--import"), 1, "imported twice");
    assert!(distro_running(&sandbox, "lima-w1"));
}

#[test]
fn a_wsl2_driver_replacement_keeps_the_distro_running() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    sandbox.set_plan(json!({"rules": [
        {"tool": "limactl", "fault": {"kind": "replace_driver"}},
        {"tool": "limactl", "fault": {"kind": "ignore_interrupt"}}
    ]}));
    let vm = wsl_vm(&sandbox);
    let hostagent = start(&sandbox, &vm);
    hostagent.interrupt();
    let replaced = sandbox.wait_for_event("limactl", event::DRIVER_REPLACED);
    let Record::DriverReplaced { old, new } = replaced.record else {
        panic!("not a driver replacement: {replaced:?}");
    };
    all_gone(&[old]);
    assert!(proctree::is_alive(new));
    assert!(distro_running(&sandbox, "lima-w1"));
}

/// Lima's hostagent ends when its driver does ("Driver stopped due to
/// error"), stopping its forwards and removing its files on the way.
#[test]
fn a_killed_driver_ends_the_hostagent_like_lima_s() {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    let vm = qemu_vm(&sandbox, 1, &[]);
    let mut hostagent = start(&sandbox, &vm);
    let qemu = children(&sandbox, "qemu-system-x86_64");
    let ssh = children(&sandbox, "ssh");
    proctree::kill(qemu[0]).unwrap();
    assert_eq!(hostagent.wait_exit().code(), Some(1));
    let stderr = std::fs::read_to_string(vm.paths.ha_stderr_log()).unwrap();
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("Driver stopped due to error"),
        "{stderr}"
    );
    wait_for_event(&vm.paths, "exiting", |e| e.status.exiting);
    all_gone(&ssh);
    for port in &vm.forwards {
        wait_port_free(*port);
    }
    assert!(!vm.paths.ha_pid().exists());
    assert_eq!(sandbox.events(event::DRIVER_STOPPED).len(), 1);
}

#[test]
fn fault_ignore_driver_exit_keeps_the_hostagent_up() {
    if proctree::skip_under_wine(proctree::wine_lacks::AF_UNIX) {
        return;
    }
    let (sandbox, _vm, mut hostagent) = start_under_fault("limactl", "ignore_driver_exit", 0);
    let qemu = children(&sandbox, "qemu-system-x86_64");
    proctree::kill(qemu[0]).unwrap();
    all_gone(&qemu);
    assert!(
        !hostagent.has_exited(),
        "the hostagent noticed its driver's end"
    );
    hostagent.interrupt();
    assert_eq!(hostagent.wait_exit().code(), Some(0));
    assert!(sandbox.events(event::DRIVER_STOPPED).is_empty());
}

/// A distro stopped from outside (`wsl.exe --shutdown` or `--terminate`,
/// by anyone) ends the session the WSL2 driver keeps, so WSL lists it as
/// stopped; the hostagent then ends as for any driver's end, unless fault
/// `ignore_driver_exit` keeps it up over a distro that no longer runs.
fn distro_stopped_from_outside(stop: &[&str], ignore_driver_exit: bool) {
    let Some(sandbox) = Sandbox::unless_wine_lacks(proctree::wine_lacks::AF_UNIX) else {
        return;
    };
    if ignore_driver_exit {
        sandbox.set_plan(
            json!({"rules": [{"tool": "limactl", "fault": {"kind": "ignore_driver_exit"}}]}),
        );
    }
    let vm = wsl_vm(&sandbox);
    let mut hostagent = start(&sandbox, &vm);
    assert!(distro_running(&sandbox, "lima-w1"));
    let mut cmd = sandbox.command("wsl.exe");
    cmd.args(stop);
    assert!(sandbox.run(cmd).status.success(), "wsl.exe {stop:?}");
    assert!(
        !distro_running(&sandbox, "lima-w1"),
        "still running after {stop:?}"
    );
    if ignore_driver_exit {
        assert!(
            !hostagent.has_exited(),
            "the hostagent noticed its distro's end"
        );
        assert!(sandbox.events(event::DRIVER_STOPPED).is_empty());
        hostagent.interrupt();
        assert_eq!(hostagent.wait_exit().code(), Some(0));
    } else {
        assert_eq!(hostagent.wait_exit().code(), Some(1));
        assert_eq!(sandbox.events(event::DRIVER_STOPPED).len(), 1);
    }
    sandbox.wait_no_live_processes();
}

#[test]
fn wsl_shutdown_from_outside_ends_the_hostagent() {
    distro_stopped_from_outside(&["--shutdown"], false);
}

#[test]
fn wsl_terminate_from_outside_ends_the_hostagent() {
    distro_stopped_from_outside(&["--terminate", "lima-w1"], false);
}

#[test]
fn wsl_shutdown_under_fault_ignore_driver_exit_leaves_the_hostagent_up() {
    distro_stopped_from_outside(&["--shutdown"], true);
}

/// Names Lima refuses (`lima_layout::identifiers`): the hostagent exits 1
/// with Lima's words before it writes its pid file or starts anything.
#[test]
fn names_lima_refuses_are_refused_before_anything_is_written() {
    let sandbox = Sandbox::new();
    let long = "a".repeat(77);
    for name in [
        "we[1]rd",
        "with space",
        "-dash",
        "ünï",
        long.as_str(),
        "vm.yaml",
    ] {
        let paths = sandbox.instance(name, "vmType: qemu\n");
        let mut cmd = sandbox.command("limactl");
        cmd.args(["hostagent", "--pidfile"])
            .arg(paths.ha_pid())
            .arg("--socket")
            .arg(paths.ha_sock())
            .arg("--")
            .arg(name);
        let output = sandbox.run(cmd);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        let words = if name.ends_with(".yaml") {
            "must not end with .yml or .yaml suffix"
        } else {
            "is not a valid identifier"
        };
        assert!(stderr.contains(words), "{name}: {stderr}");
        assert!(!paths.ha_pid().exists(), "{name}: a pid file was written");
        assert!(
            sandbox.events(event::CHILD_STARTED).is_empty(),
            "{name}: something was started"
        );
    }
    let mut cmd = sandbox.command("limactl");
    cmd.args(["start", "--foreground", "--tty=false", "--", "we[1]rd"]);
    let output = sandbox.run(cmd);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("is not a valid identifier"));
}

/// A disk name Lima refuses fails the start, naming the field, before the
/// pid file is written.
#[test]
fn a_disk_name_lima_refuses_fails_the_start() {
    let sandbox = Sandbox::new();
    let paths = sandbox.instance("vm1", "vmType: qemu\nadditionalDisks: [\"we[1]rd\"]\n");
    let (code, stderr) = run_to_exit(&sandbox, &paths);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("additionalDisks[0].name"), "{stderr}");
    assert!(!paths.ha_pid().exists());
}

/// A `lima.yaml` Lima's checks refuse fails the start as `limactl start`
/// does ("has configuration errors", the field and the check), before the
/// pid file is written.
#[test]
fn a_lima_yaml_lima_refuses_fails_before_anything_is_written() {
    let sandbox = Sandbox::new();
    for (yaml, field) in [
        ("vmType: qemu\nssh: {localPort: 22}\n", "ssh.localPort"),
        (
            "vmType: qemu\nportForwards: [{guestPort: 22, hostPort: 2222}]\n",
            "portForwards[0].guestPort",
        ),
        ("vmType: qemu\nmemory: lots\n", "memory"),
    ] {
        let paths = sandbox.instance("vm1", yaml);
        let (code, stderr) = run_to_exit(&sandbox, &paths);
        assert_eq!(code, Some(1), "{yaml}: {stderr}");
        assert!(
            stderr.contains("has configuration errors") && stderr.contains(field),
            "{yaml}: {stderr}"
        );
        assert!(!paths.ha_pid().exists() && !paths.ha_sock().exists());
        assert!(sandbox.events(event::CHILD_STARTED).is_empty(), "{yaml}");
    }
}

/// Lima's hostagent needs room for `ssh.sock` in the instance directory:
/// one byte over (rule `socket-path-start`) fails it before it starts.
#[test]
fn an_instance_directory_without_room_for_ssh_sock_fails_the_hostagent() {
    use lima_layout::checks::{Stage, max_instance_dir_len};
    let sandbox = Sandbox::new();
    let home_len = sandbox.lima_home().path().as_os_str().len();
    let Some(name_len) = (max_instance_dir_len(Stage::Start) + 1).checked_sub(home_len + 1) else {
        return;
    };
    if name_len == 0 || name_len > lima_layout::identifiers::MAX_LENGTH {
        return;
    }
    let paths = sandbox.instance(&"n".repeat(name_len), "vmType: qemu\n");
    let (code, stderr) = run_to_exit(&sandbox, &paths);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("socket-path-start"), "{stderr}");
    assert!(!paths.ha_pid().exists());
}
