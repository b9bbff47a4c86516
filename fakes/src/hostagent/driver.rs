//! The VM driver the hostagent runs: a `qemu-system-x86_64` child that
//! writes `<vmType>.pid` (qemu, vz, krunkit), or for wsl2 the distro
//! `lima-<name>` driven through `wsl.exe`.

use crate::journal::JournalWriter;
use crate::spawn::{POLL, kill_and_reap, run_bounded, spawn_tool, wait_while_alive};
use crate::wsl::decode_output as decode_wsl_output;
use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, LimaConfig, VmType};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const QEMU_EXE: &str = "qemu-system-x86_64";
const WSL_EXE: &str = "wsl.exe";
/// How long a new driver gets to show it runs.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on every short `wsl.exe` call.
const WSL_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QEMU gets to end after the interrupt before it is killed: far
/// beyond any graceful timeout the scenarios give a reconciler.
const QEMU_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a terminated `wsl.exe -d` child gets to be gone.
const EXIT_WAIT: Duration = Duration::from_secs(5);

pub(crate) enum Driver {
    Qemu {
        process: QemuProcess,
        args: Vec<String>,
        pid_file: PathBuf,
    },
    Wsl {
        child: Child,
        distro: String,
    },
}

/// The QEMU process: the hostagent's own child, or after a replacement a
/// `-daemonize`d one that only its pid file leads to.
pub(crate) enum QemuProcess {
    Child(Child),
    Daemon(u32),
}

impl QemuProcess {
    fn pid(&self) -> u32 {
        match self {
            QemuProcess::Child(child) => child.id(),
            QemuProcess::Daemon(pid) => *pid,
        }
    }

    fn alive(&mut self) -> bool {
        match self {
            QemuProcess::Child(child) => matches!(child.try_wait(), Ok(None)),
            QemuProcess::Daemon(pid) => proctree::is_alive(*pid),
        }
    }

    /// Asks QEMU to end (the interrupt, to its own process group: the
    /// fake's stand-in for Lima's power-down request), waits up to
    /// [`QEMU_STOP_TIMEOUT`], then kills it. A QEMU that ignores the
    /// interrupt (fault `ignore_interrupt` on qemu) so holds the
    /// hostagent's graceful stop past any reconciler's graceful timeout:
    /// the way to a forced stop one layer below an embedded hostagent.
    fn stop(&mut self) {
        let pid = self.pid();
        if proctree::interrupt_group(pid).is_ok() {
            let deadline = Instant::now() + QEMU_STOP_TIMEOUT;
            while self.alive() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        match self {
            QemuProcess::Child(child) => kill_and_reap(child),
            QemuProcess::Daemon(pid) => {
                // Not our child, so nothing to reap: wait until it is gone,
                // so that its disk lock and ports are free on return.
                let _ = proctree::kill(*pid);
                let deadline = Instant::now() + EXIT_WAIT;
                while proctree::is_alive(*pid) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

impl Driver {
    pub(crate) fn start(
        instance: &InstancePaths,
        config: &LimaConfig,
        journal: &JournalWriter,
    ) -> Result<Self, String> {
        match config.vm_type {
            VmType::Wsl2 => start_wsl(instance, journal),
            vm_type => {
                let pid_file = instance.driver_pid(vm_type);
                let args = qemu_args(instance, &pid_file, config.ssh.local_port);
                let child = start_qemu(&args, &pid_file, journal)?;
                Ok(Driver::Qemu {
                    process: QemuProcess::Child(child),
                    args,
                    pid_file,
                })
            }
        }
    }

    /// The driver's pid file, which the hostagent removes on shutdown.
    pub(crate) fn pid_file(&self) -> Option<&Path> {
        match self {
            Driver::Qemu { pid_file, .. } => Some(pid_file),
            Driver::Wsl { .. } => None,
        }
    }

    /// Fault `replace_driver`: a new driver process takes over. QEMU's disk
    /// lock admits one holder only, so the old one goes first, then the new
    /// one starts `-daemonize`d (so it does not descend from the hostagent)
    /// and rewrites the pid file; WSL does the same so that, once this
    /// returns, what runs is the new session. Returns the old and the new
    /// pid.
    pub(crate) fn replace(&mut self, journal: &JournalWriter) -> Result<(u32, u32), String> {
        match self {
            Driver::Qemu {
                process,
                args,
                pid_file,
            } => {
                let old = process.pid();
                process.stop();
                let new = start_qemu_daemon(args, pid_file, journal)?;
                *process = QemuProcess::Daemon(new);
                Ok((old, new))
            }
            Driver::Wsl { child, distro } => {
                let old = child.id();
                let _ = proctree::kill_tree(old);
                let _ = child.wait();
                *child = start_session(distro, journal)?;
                Ok((old, child.id()))
            }
        }
    }

    /// How the driver ended, when it has ended on its own (QEMU killed,
    /// the guest powered off, the WSL session gone).
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        match self {
            Driver::Qemu {
                process: QemuProcess::Child(child),
                ..
            }
            | Driver::Wsl { child, .. } => child.try_wait().ok().flatten().map(|s| s.to_string()),
            Driver::Qemu {
                process: QemuProcess::Daemon(pid),
                ..
            } => (!proctree::is_alive(*pid)).then(|| format!("pid {pid} is gone")),
        }
    }

    /// Stops the driver; returns the steps that failed.
    pub(crate) fn stop(&mut self, journal: &JournalWriter) -> Vec<String> {
        match self {
            Driver::Qemu { process, .. } => {
                process.stop();
                Vec::new()
            }
            Driver::Wsl { child, distro } => {
                let mut errors = Vec::new();
                let args = ["--terminate".to_owned(), distro.clone()];
                match run_bounded(WSL_EXE, &args, WSL_CALL_TIMEOUT, journal) {
                    Ok(output) if output.status.success() => {}
                    Ok(output) => errors.push(format!(
                        "{WSL_EXE} --terminate {distro} failed ({}): {}",
                        output.status,
                        decode_wsl_output(&output.stdout).trim()
                    )),
                    Err(e) => errors.push(e),
                }
                let deadline = Instant::now() + EXIT_WAIT;
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                kill_and_reap(child);
                errors
            }
        }
    }
}

/// QEMU's own spelling: in an option list a comma is written twice.
fn qemu_path(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

fn qemu_args(instance: &InstancePaths, pid_file: &Path, ssh_port: u16) -> Vec<String> {
    let mut args = vec![
        "-name".to_owned(),
        instance.name.clone(),
        "-pidfile".to_owned(),
        pid_file.to_string_lossy().into_owned(),
        "-drive".to_owned(),
        format!("file={},format=raw", qemu_path(&instance.disk_image())),
    ];
    if ssh_port != 0 {
        args.push("-netdev".to_owned());
        args.push(format!("user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"));
    }
    args
}

/// Starts QEMU and waits until its pid file names it.
fn start_qemu(args: &[String], pid_file: &Path, journal: &JournalWriter) -> Result<Child, String> {
    let mut child = spawn_tool(QEMU_EXE, args, journal)?;
    let pid = child.id();
    let what = format!("{QEMU_EXE} (pid {pid}) writing {}", pid_file.display());
    if let Err(e) = wait_while_alive(&mut child, &what, START_TIMEOUT, || {
        read_pid_file(pid_file) == Some(pid)
    }) {
        kill_and_reap(&mut child);
        return Err(e);
    }
    Ok(child)
}

/// Starts QEMU with `-daemonize`: returns once the launcher has exited
/// and the daemon's pid file names it.
fn start_qemu_daemon(
    args: &[String],
    pid_file: &Path,
    journal: &JournalWriter,
) -> Result<u32, String> {
    let mut args = args.to_vec();
    args.push("-daemonize".to_owned());
    let output = run_bounded(QEMU_EXE, &args, START_TIMEOUT, journal)?;
    if !output.status.success() {
        return Err(format!(
            "{QEMU_EXE} -daemonize failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    read_pid_file(pid_file).ok_or_else(|| {
        format!(
            "{QEMU_EXE} -daemonize left no pid in {}",
            pid_file.display()
        )
    })
}

fn run_args(distro: &str) -> Vec<String> {
    vec!["-d".to_owned(), distro.to_owned()]
}

/// Imports `lima-<name>` when WSL does not know it, then runs a `-d`
/// session and waits until WSL lists the distro as running.
fn start_wsl(instance: &InstancePaths, journal: &JournalWriter) -> Result<Driver, String> {
    let distro = instance.wsl_distro();
    if !wsl_lists(&distro, false, journal)? {
        let args = vec![
            "--import".to_owned(),
            distro.clone(),
            instance.dir.to_string_lossy().into_owned(),
            instance.disk_image().to_string_lossy().into_owned(),
        ];
        let output = run_bounded(WSL_EXE, &args, WSL_CALL_TIMEOUT, journal)?;
        if !output.status.success() {
            return Err(format!(
                "{WSL_EXE} --import {distro} failed ({}): {}",
                output.status,
                decode_wsl_output(&output.stdout).trim()
            ));
        }
    }
    let child = start_session(&distro, journal)?;
    Ok(Driver::Wsl { child, distro })
}

/// Runs `wsl.exe -d DISTRO` and waits until WSL lists the distro as running.
fn start_session(distro: &str, journal: &JournalWriter) -> Result<Child, String> {
    let mut child = spawn_tool(WSL_EXE, &run_args(distro), journal)?;
    let what = format!(
        "{WSL_EXE} -d {distro} (pid {}) starting the distro",
        child.id()
    );
    let mut last_error = None;
    let waited = wait_while_alive(&mut child, &what, START_TIMEOUT, || {
        wsl_lists(distro, true, journal).unwrap_or_else(|e| {
            last_error = Some(e);
            false
        })
    });
    if let Err(e) = waited {
        kill_and_reap(&mut child);
        return Err(match last_error {
            Some(cause) => format!("{e} (last listing: {cause})"),
            None => e,
        });
    }
    Ok(child)
}

/// Whether `wsl.exe --list --quiet [--running]` names `distro`.
fn wsl_lists(distro: &str, running: bool, journal: &JournalWriter) -> Result<bool, String> {
    let mut args = vec!["--list".to_owned(), "--quiet".to_owned()];
    if running {
        args.push("--running".to_owned());
    }
    let output = run_bounded(WSL_EXE, &args, WSL_CALL_TIMEOUT, journal)?;
    if !output.status.success() {
        return Err(format!(
            "{WSL_EXE} {} failed ({}): {}",
            args.join(" "),
            output.status,
            decode_wsl_output(&output.stdout).trim()
        ));
    }
    Ok(decode_wsl_output(&output.stdout)
        .lines()
        .any(|line| line.trim().eq_ignore_ascii_case(distro)))
}
