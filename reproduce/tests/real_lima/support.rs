//! What the real-Lima tests share: the skip rule, sandboxes with real Lima,
//! starting a hostagent as the reconciler does, and playing the guest.

use harness::real_lima::{LimaStatus, availability, lima_status, required};
use harness::{Binaries, Sandbox, Template, Toolset, eventually};
use lima_layout::{InstancePaths, VmType};
use std::fs::File;
use std::time::Duration;

/// Bound for a real start: Lima prepares the disks and cidata first.
pub(crate) const START: Duration = Duration::from_secs(30);
/// Bound for a hostagent to go once told to.
pub(crate) const EXIT: Duration = Duration::from_secs(20);

/// Runs `cmd` to its end through [`proctree::run_bounded`] (its tree killed
/// after [`harness::commands::TOOL_TIMEOUT`]), or fails the test naming it.
pub(crate) fn run(cmd: &mut std::process::Command) -> std::process::Output {
    let timeout = harness::commands::TOOL_TIMEOUT;
    match proctree::run_bounded(cmd, None, Some(timeout)) {
        Ok(done) => done.into(),
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// `true` when real Lima can run; otherwise prints why and returns `false`
/// (the test then passes as skipped), or panics when `CI=true`.
pub(crate) fn real_lima_here() -> bool {
    match availability() {
        Ok(()) => true,
        Err(why) if required() => panic!("CI=true requires real Lima: {why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// The built guest, or `None` (the test then skips; with `CI=true` it
/// fails).
pub(crate) fn built_guest() -> Option<harness::real_lima::RealGuest> {
    if !real_lima_here() {
        return None;
    }
    let guest = harness::real_lima::RealGuest::built();
    if guest.is_none() {
        assert!(
            !harness::real_lima::required(),
            "CI=true requires the real guest: run scripts/build-real-guest"
        );
        eprintln!("skipped: the real guest is not built (scripts/build-real-guest)");
    }
    guest
}

pub(crate) fn binaries() -> Binaries {
    Binaries::multicall(env!("CARGO_BIN_EXE_reproduce").as_ref())
}

pub(crate) fn real_sandbox() -> Sandbox {
    Sandbox::with_toolset(&binaries(), Toolset::real_lima()).expect("a real-Lima sandbox")
}

/// The blank-disk template with a picked SSH port, its image in the
/// sandbox.
pub(crate) fn blank_template(sandbox: &Sandbox) -> Template {
    let disk = harness::real_lima::blank_disk(&sandbox.root().join("images")).expect("qemu-img");
    Template::blank_disk(&disk).ssh_port(harness::ports::pick_free_port())
}

/// The instance directory and lima.yaml, as a reconciler writes them.
pub(crate) fn instance(sandbox: &Sandbox, name: &str, template: &Template) -> InstancePaths {
    let instance = sandbox.lima_home().instance(name);
    std::fs::create_dir_all(&instance.dir).unwrap();
    std::fs::write(instance.lima_yaml(), template.to_yaml()).unwrap();
    instance
}

/// `limactl start --foreground --tty=false NAME` as the reconciler's
/// `start-foreground` entry runs it: logs as stdout and stderr, a process
/// group of its own. Returns the pid (the hostagent's, after the exec).
pub(crate) fn start_foreground(sandbox: &Sandbox, instance: &InstancePaths) -> u32 {
    let mut cmd = sandbox.command(sandbox.tool_path("limactl"));
    cmd.args(["start", "--foreground", "--tty=false"])
        .arg(&instance.name)
        .stdout(File::create(instance.ha_stdout_log()).unwrap())
        .stderr(File::create(instance.ha_stderr_log()).unwrap());
    sandbox.spawn(cmd).expect("limactl starts")
}

/// Waits until Lima would list the instance as Running; fails at once if
/// `started` (the process that should become the hostagent) exits.
/// Returns the hostagent's pid, QEMU's pid and the SSH port.
pub(crate) fn wait_running(
    sandbox: &Sandbox,
    instance: &InstancePaths,
    started: u32,
) -> (u32, u32, u16) {
    let status = eventually(START, "the instance to be Running", || {
        if let Some(code) = sandbox.try_reap(started) {
            return Err(format!(
                "pid {started} exited ({code:?}); stderr log ends {:?}",
                log_tail(&instance.ha_stderr_log())
            ));
        }
        match lima_status(instance, VmType::Qemu) {
            LimaStatus::Running {
                hostagent,
                driver,
                ssh_port,
            } => Ok((hostagent, driver, ssh_port)),
            other => Err(format!(
                "{other:?}; stderr log ends {:?}",
                log_tail(&instance.ha_stderr_log())
            )),
        }
    });
    status.unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(4).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Waits until QEMU answers on its QMP socket
/// ([`harness::real_lima::qmp_answers`]). Real Lima presses the power
/// button through it; a stop asked for before that makes Lima kill QEMU
/// instead.
pub(crate) fn wait_for_qmp(instance: &InstancePaths) {
    let qmp = instance.qmp_sock();
    eventually(EXIT, "QEMU to answer on its QMP socket", || {
        harness::real_lima::qmp_answers(instance)
            .then_some(())
            .ok_or_else(|| format!("no greeting on {}", qmp.display()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// What the real hostagent logs when it presses the power button.
const POWER_BUTTON_LOGGED: &str = "system_powerdown";

/// A guest OS answers the power button by powering off, and QEMU exits 0.
/// The blank disk has no OS, so the test plays that part: once the
/// hostagent has pressed the button (its log says so), QEMU gets SIGTERM,
/// which it also answers with a clean exit. QEMU is signalled only if it
/// carries this sandbox's mark.
pub(crate) fn power_off_when_asked(sandbox: &Sandbox, instance: &InstancePaths, qemu: u32) {
    eventually(EXIT, "the hostagent to press the power button", || {
        let log = std::fs::read_to_string(instance.ha_stderr_log()).unwrap_or_default();
        if log.contains(POWER_BUTTON_LOGGED) {
            Ok(())
        } else {
            Err(log_tail(&instance.ha_stderr_log()))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        sandbox.live_processes().iter().any(|p| p.pid == qemu),
        "QEMU pid {qemu} is not a live process of this sandbox"
    );
    proctree::request_shutdown(qemu).expect("QEMU gets SIGTERM");
}

/// The tmp files (`*.pid`, `*.sock`, `*.tmp`) left in the instance.
pub(crate) fn tmp_files(instance: &InstancePaths) -> Vec<String> {
    scenarios::checks::tmp_files(instance)
}

/// Every entry of the instance directory, by name.
pub(crate) fn entries(instance: &InstancePaths) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&instance.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
