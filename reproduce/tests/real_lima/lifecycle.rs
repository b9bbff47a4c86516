//! The reference reconciler driving real Lima: with the real guest, start
//! to the running event and a graceful stop that completes when the guest
//! powers off; with the blank disk, a forced stop that takes the whole
//! tree (hostagent and QEMU) with the SSH port and the disk lock.
//! The sandbox's LIMA_HOME is under a path with `[1]` and a space.

use crate::support::{
    EXIT, blank_template, built_guest, real_lima_here, real_sandbox, tmp_files, wait_for_qmp,
    wait_running,
};
use harness::{
    DriverSettings, ReconcilerDriver, ReferenceDriver, Template, Toolset, VmSpec, eventually,
};
use lima_layout::VmType;
use lima_layout::paths::read_pid_file;
use scenarios::steps::GUEST_BOOT;
use std::process::Command;
use std::time::{Duration, Instant};

fn settings(graceful_timeout: Duration) -> DriverSettings {
    let mut settings = DriverSettings::fast().for_toolset(&Toolset::real_lima());
    settings.graceful_timeout = graceful_timeout;
    settings
}

fn wait_stopped(svc: &mut ReferenceDriver<'_>, timeout: Duration) {
    eventually(timeout, "Running=False reason=Stopped", || {
        match svc.get("vm") {
            Ok(Some(view)) if view.is_stopped() => Ok(()),
            Ok(view) => Err(format!("{:?}", view.map(|v| v.running_summary()))),
            Err(e) => Err(e.to_string()),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\nreconciler log:\n{}", svc.log_text()));
}

/// The instance Running under the service (the hostagent is the
/// service's child, so the service pid stands in for "still starting"),
/// with QEMU's QMP socket open: a stop asked for before it would have
/// Lima kill QEMU itself, and the tests here are about what the
/// reconciler does when the power button goes unanswered.
fn wait_running_under(
    sandbox: &harness::Sandbox,
    svc: &ReferenceDriver<'_>,
    instance: &lima_layout::InstancePaths,
) -> (u32, u32, u16) {
    let running = wait_running(
        sandbox,
        instance,
        svc.service_pid().expect("the service runs"),
    );
    wait_for_qmp(instance);
    running
}

/// `qemu-img info` opens the image with a shared lock, which QEMU's write
/// lock refuses; its error says why when it fails.
fn disk_unlocked(disk: &std::path::Path) -> Result<(), String> {
    let output = proctree::run_bounded(
        Command::new("qemu-img").arg("info").arg(disk),
        None,
        Some(harness::commands::TOOL_TIMEOUT),
    )
    .map_err(|e| format!("qemu-img info: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// With the real guest: the reconciler reports the hostagent's running
/// event, and a graceful stop completes because the guest powers off
/// (well within the graceful timeout), releasing the SSH port and the
/// forwarded one.
#[test]
fn a_graceful_stop_completes_when_the_guest_powers_off() {
    let Some(guest) = built_guest() else {
        return;
    };
    let sandbox = real_sandbox();
    let lima_home = sandbox.lima_home().path().to_string_lossy().into_owned();
    assert!(
        lima_home.contains("[1]") && lima_home.contains(' '),
        "{lima_home}"
    );
    let graceful = Duration::from_secs(30);
    let mut svc = ReferenceDriver::new(&sandbox, settings(graceful));
    svc.start_service().unwrap();
    let template = Template::real_guest(&guest)
        .ssh_port(harness::ports::pick_free_port())
        .forward(
            harness::template::GUEST_SERVED_PORTS.start,
            harness::ports::pick_free_port(),
        );
    let ports = template.host_ports();
    svc.apply(&VmSpec::new("vm", template)).unwrap();
    eventually(GUEST_BOOT, "Running=True", || match svc.get("vm") {
        Ok(Some(view)) if view.is_running() => Ok(()),
        Ok(view) => Err(format!("{:?}", view.map(|v| v.running_summary()))),
        Err(e) => Err(e.to_string()),
    })
    .unwrap_or_else(|e| panic!("{e}\nreconciler log:\n{}", svc.log_text()));
    let instance = sandbox.lima_home().instance("vm");
    let hostagent = read_pid_file(&instance.ha_pid()).expect("ha.pid");
    let qemu = read_pid_file(&instance.driver_pid(VmType::Qemu)).expect("qemu.pid");

    let asked = Instant::now();
    svc.set_running("vm", false).unwrap();
    wait_stopped(&mut svc, graceful);
    assert!(
        asked.elapsed() < graceful,
        "the stop took {:?}: it waited out the graceful timeout",
        asked.elapsed()
    );
    let stderr = std::fs::read_to_string(instance.ha_stderr_log()).unwrap_or_default();
    // Lima v2.2.0's QEMU driver logs these (`pkg/driver/qemu`).
    assert!(
        stderr.contains("QEMU has exited") && !stderr.contains("forcibly killing QEMU"),
        "the guest did not power off by itself: {stderr}"
    );
    for pid in [hostagent, qemu] {
        assert!(!proctree::is_alive(pid), "pid {pid} still alive");
    }
    for port in ports {
        assert!(harness::ports::is_free(port), "port {port} still held");
    }
    assert_eq!(tmp_files(&instance), Vec::<String>::new());
}

#[test]
fn a_forced_stop_takes_the_whole_tree_with_port_and_disk_lock() {
    if !real_lima_here() {
        return;
    }
    let sandbox = real_sandbox();
    let mut svc = ReferenceDriver::new(&sandbox, settings(Duration::from_millis(500)));
    svc.start_service().unwrap();
    let template = blank_template(&sandbox);
    let port = template.host_ports()[0];
    svc.apply(&VmSpec::new("vm", template)).unwrap();
    let instance = sandbox.lima_home().instance("vm");
    let (hostagent, qemu, _) = wait_running_under(&sandbox, &svc, &instance);

    // Nobody answers the power button: the graceful wait runs out.
    svc.set_running("vm", false).unwrap();
    wait_stopped(&mut svc, EXIT);
    let service = svc.service_pid().unwrap();
    eventually(Duration::from_secs(5), "the tree to be gone", || {
        let left: Vec<u32> = sandbox
            .live_processes()
            .iter()
            .map(|p| p.pid)
            .filter(|pid| *pid != service)
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("alive: {left:?}"))
        }
    })
    .unwrap();
    for pid in [hostagent, qemu] {
        assert!(!proctree::is_alive(pid), "pid {pid} still alive");
    }
    // A process just killed may take a moment to let go of its port and
    // its lock.
    eventually(Duration::from_secs(5), "the SSH port to be free", || {
        harness::ports::is_free(port)
            .then_some(())
            .ok_or_else(|| format!("port {port} still held"))
    })
    .unwrap();
    eventually(Duration::from_secs(5), "the disk to be unlocked", || {
        disk_unlocked(&instance.dir.join("disk"))
    })
    .unwrap();
    assert_eq!(tmp_files(&instance), Vec::<String>::new());
    let stderr = std::fs::read_to_string(instance.ha_stderr_log()).unwrap_or_default();
    assert!(
        stderr.contains("Received SIGINT"),
        "the real hostagent got the graceful interrupt first: {stderr}"
    );

    // Nothing of the first run stands in the way of the next start: it
    // gets the same SSH port and the disk again.
    svc.set_running("vm", true).unwrap();
    let (_, _, ssh_port) = wait_running_under(&sandbox, &svc, &instance);
    assert_eq!(ssh_port, port);
}

/// The restart request on real Lima: the real guest powers off on the
/// interrupt (the hostagent logs it), a new hostagent boots it again, and
/// nothing of the old run is left.
#[test]
fn a_requested_restart_stops_the_real_hostagent_gracefully() {
    if built_guest().is_none() {
        return;
    }
    let sandbox = real_sandbox();
    {
        // Long enough for the guest to power off.
        let ctx = scenarios::Ctx::new(&sandbox, settings(Duration::from_secs(30)));
        scenarios::restart::restart_requested(&ctx).unwrap_or_else(|e| panic!("{e}"));
    }
    let leaks = sandbox.settled_leak_report(Duration::from_secs(5));
    assert!(leaks.is_clean(), "{leaks}");
}
