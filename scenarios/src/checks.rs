//! End-state checks: what a clean stop leaves (and does not leave).

use crate::context::ScenarioResult;
use crate::symptom;
use harness::{Sandbox, VmView, eventually, waits};
use lima_layout::{InstancePaths, is_tmp_file_name};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// True when a condition of `view` says the VM runs degraded (its reason
/// or message names it, as Lima's `Degraded` status does).
pub(crate) fn says_degraded(view: &VmView) -> bool {
    view.conditions.iter().any(|c| {
        c.reason.to_ascii_lowercase().contains("degraded")
            || c.message.to_ascii_lowercase().contains("degraded")
    })
}

/// How long a process just killed, or a port just closed, may take to go.
/// These checks run once the reconciler has said that a stop, restart or
/// delete is over: what is left is the kernel's end of a kill already sent
/// (the process exits, its sockets close), which takes milliseconds, and
/// up to hundreds of them with eight tests at once on two cores (at 500 ms
/// one run of three had a port still closing). A process nobody killed
/// is still there at the bound: the symptom.
pub const VANISH: Duration = Duration::from_secs(1);

/// [`VANISH`], or more with real Lima: an `ssh -O exit` returns before
/// the ControlMaster it asked has gone.
fn vanish(sandbox: &Sandbox) -> Duration {
    if sandbox.toolset().has_real_lima() {
        VANISH * 4
    } else {
        VANISH
    }
}

/// No `*.pid`, `*.sock`, `*.tmp` entry left in the instance directory.
pub fn no_tmp_files(instance: &InstancePaths) -> ScenarioResult {
    let left = tmp_files(instance);
    if left.is_empty() {
        Ok(())
    } else {
        Err(symptom!(
            "tmp files left in {}: {}",
            instance.dir.display(),
            left.join(", ")
        ))
    }
}

/// The `*.pid`, `*.sock` and `*.tmp` entries of the instance directory,
/// sorted (none when it cannot be read).
pub fn tmp_files(instance: &InstancePaths) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&instance.dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_tmp_file_name(n))
        .collect();
    names.sort();
    names
}

/// The program name a command line starts with (`ssh: ...` is ssh).
fn tool_of(cmd: &str) -> &str {
    let first = cmd.split([' ', ':']).next().unwrap_or_default();
    first.rsplit('/').next().unwrap_or(first)
}

/// Every port of `ports` is free again within the sandbox's vanish bound;
/// the symptom names each port still held and who holds it (from the
/// fakes' journal, or the system's listeners for real tools).
pub fn ports_free(sandbox: &Sandbox, ports: &[u16]) -> ScenarioResult {
    let held = |sandbox: &Sandbox| -> Vec<String> {
        let bound = sandbox.journal().bound_ports();
        ports
            .iter()
            .filter(|p| !harness::ports::is_free(**p))
            .map(|p| {
                let mut holders: Vec<String> = bound
                    .iter()
                    .filter(|b| b.port == *p && proctree::is_alive(b.pid))
                    .map(|b| format!("{} pid {}", b.tool, b.pid))
                    .collect();
                if holders.is_empty() {
                    // Real tools journal nothing: ask the system. An ssh
                    // ControlMaster names itself "ssh: <ControlPath> [mux]".
                    holders = harness::ports::listeners(*p)
                        .into_iter()
                        .map(|(pid, cmd)| format!("{} pid {pid} ({cmd})", tool_of(&cmd)))
                        .collect();
                }
                if holders.is_empty() {
                    format!("port {p} still held")
                } else {
                    format!("port {p} still held by {}", holders.join(", "))
                }
            })
            .collect()
    };
    waits::timed(Duration::ZERO, || {
        eventually(vanish(sandbox), "forwarded ports to be free", || {
            let left = held(sandbox);
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join("; "))
            }
        })
    })
    .map_err(|e| symptom!("{}", e.last_seen))
}

/// No process of the sandbox alive except `keep` (the service).
pub fn only_alive(sandbox: &Sandbox, keep: &[u32]) -> ScenarioResult {
    waits::timed(Duration::ZERO, || {
        eventually(vanish(sandbox), "the VM's processes to be gone", || {
            let extra: Vec<String> = sandbox
                .live_processes()
                .into_iter()
                .filter(|p| !keep.contains(&p.pid))
                .map(|p| {
                    format!(
                        "{} (pid {}) still alive: {}",
                        p.name,
                        p.pid,
                        p.cmd.join(" ")
                    )
                })
                .collect();
            if extra.is_empty() {
                Ok(())
            } else {
                Err(extra.join("; "))
            }
        })
    })
    .map_err(|e| symptom!("{}", e.last_seen))
}

/// `pid` is dead within `VANISH`; `what` names it in the symptom.
pub fn dead(pid: u32, what: &str) -> ScenarioResult {
    waits::timed(Duration::ZERO, || {
        eventually(VANISH, what, || {
            if proctree::is_alive(pid) {
                let cmd = proctree::ProcessTable::snapshot_of(&[pid])
                    .get(pid)
                    .map(|p| p.cmd.join(" "))
                    .unwrap_or_default();
                Err(format!("{what} (pid {pid}) still alive: {cmd}"))
            } else {
                Ok(())
            }
        })
    })
    .map_err(|e| symptom!("{}", e.last_seen))
}

/// Registered and running WSL2 distros, as `wsl.exe --list` reports them.
pub fn wsl_distros(sandbox: &Sandbox, running_only: bool) -> Vec<String> {
    sandbox.wsl_distros(running_only)
}

/// The WSL2 distro is not running (and, with `registered: false`, gone).
pub fn distro_down(sandbox: &Sandbox, distro: &str, registered: bool) -> ScenarioResult {
    let running = wsl_distros(sandbox, true);
    if running.iter().any(|d| d == distro) {
        return Err(symptom!("WSL2 distro {distro} still running"));
    }
    if !registered && wsl_distros(sandbox, false).iter().any(|d| d == distro) {
        return Err(symptom!("WSL2 distro {distro} still registered"));
    }
    Ok(())
}

/// Every path below `root` (relative to it, links not followed), except
/// what lies below `skip`: a snapshot to tell what a step created.
pub fn file_tree(root: &Path, skip: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.starts_with(skip) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            if let Ok(relative) = path.strip_prefix(root) {
                found.insert(relative.to_owned());
            }
        }
    }
    found
}
