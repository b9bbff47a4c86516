//! `limactl start --foreground NAME` for an instance whose directory and
//! `lima.yaml` exist, as Lima 2.x does it: inspect the instance (a pid file
//! whose process is gone is removed; an instance already running is left
//! alone and the start succeeds; any other live hostagent pid refuses it),
//! recreate `ha.stdout.log` and `ha.stderr.log` and, when stdin is not a
//! terminal, make them this process's stdout and stderr, then become
//! `limactl hostagent --pidfile DIR/ha.pid --socket DIR/ha.sock NAME` by
//! exec. The pid stays the same, so whoever started `limactl start` is the
//! hostagent's parent, and the hostagent's faults and journal apply.
//!
//! Lima ignores `--foreground` on Windows (it starts the hostagent in the
//! background); the fake refuses it there instead of playing that.

use crate::error::FakeError;
use crate::home::lima_home;
use crate::instance::load_config;
use crate::invocation::Invocation;
use crate::journal::Record;
use crate::platform;
use contract::exit;
use lima_layout::info::query_info;
use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, LimaConfig, VmType};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The tool usage errors name, as `limactl.rs` does.
const TOOL: &str = "limactl";

/// How long the "already running?" check waits for `/v1/info`.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// What Lima writes into both logs when the hostagent keeps the terminal.
const TERMINAL_NOTE: &str = "This log file is not used because `limactl start` was launched \
                             in the terminal with the `--foreground` option.";

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StartArgs {
    pub(crate) name: String,
}

/// `[--foreground[=bool]] [--tty[=bool]] [-y|--yes] [--debug] [--progress]
/// [--timeout D] [--] NAME`, with `--foreground` required: a start that
/// daemonizes the hostagent is not faked.
pub(crate) fn parse(args: &[String]) -> Result<StartArgs, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, format!("start: {m}"));
    let (mut foreground, mut name) = (false, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let operand = match arg.as_str() {
            "--" => {
                let operands: Vec<&String> = rest.by_ref().collect();
                match operands.as_slice() {
                    [only] => only.as_str(),
                    _ => return Err(usage(format!("unexpected arguments {operands:?}"))),
                }
            }
            "--foreground" | "--foreground=true" => {
                foreground = true;
                continue;
            }
            "--foreground=false" => {
                foreground = false;
                continue;
            }
            "--tty" | "--tty=true" | "--tty=false" | "-y" | "--yes" | "--debug" | "--progress" => {
                continue;
            }
            "--timeout" => {
                rest.next()
                    .ok_or_else(|| usage("--timeout needs a value".into()))?;
                continue;
            }
            flag if flag.starts_with("--timeout=") => continue,
            flag if flag.starts_with('-') => return Err(usage(format!("unknown flag {flag}"))),
            operand => operand,
        };
        if name.replace(operand.to_owned()).is_some() {
            return Err(usage(format!("unexpected argument {operand:?}")));
        }
    }
    if !foreground {
        return Err(usage(
            "only `start --foreground` is faked (a background start daemonizes the hostagent)"
                .into(),
        ));
    }
    Ok(StartArgs {
        name: name.ok_or_else(|| usage("missing instance NAME".into()))?,
    })
}

pub(crate) fn run(invocation: &Invocation, args: &StartArgs) -> Result<i32, FakeError> {
    if cfg!(windows) {
        return Err(FakeError::usage(
            TOOL,
            "start --foreground: Lima ignores --foreground on Windows, and the fake does not play a background start",
        ));
    }
    let instance = lima_home()?.instance(&args.name);
    let config = load_config(&instance)?;
    if already_running(&instance, &config)? {
        eprintln!("The instance {:?} is already running", args.name);
        return Ok(exit::OK);
    }
    redirect_logs(&instance)?;
    Err(become_hostagent(invocation, &instance))
}

/// Lima's inspection before a start. `Ok(true)`: the instance runs
/// (hostagent alive and answering, driver alive), nothing to do. A stale
/// pid file is removed; a live hostagent of a broken instance refuses.
fn already_running(instance: &InstancePaths, config: &LimaConfig) -> Result<bool, FakeError> {
    let pid_file = instance.ha_pid();
    match read_pid_file(&pid_file) {
        Some(pid) if proctree::is_alive(pid) => {
            if query_info(&instance.ha_sock(), INFO_TIMEOUT).is_ok()
                && driver_alive(instance, config)
            {
                return Ok(true);
            }
            Err(seems_running(instance, &pid_file))
        }
        Some(_) => {
            let _ = std::fs::remove_file(&pid_file);
            Ok(false)
        }
        None if pid_file.symlink_metadata().is_ok() => Err(seems_running(instance, &pid_file)),
        None => Ok(false),
    }
}

fn driver_alive(instance: &InstancePaths, config: &LimaConfig) -> bool {
    // WSL2 has no driver pid file: the hostagent answering is all there is.
    config.vm_type == VmType::Wsl2
        || read_pid_file(&instance.driver_pid(config.vm_type)).is_some_and(proctree::is_alive)
}

fn seems_running(instance: &InstancePaths, pid_file: &Path) -> FakeError {
    FakeError::failed(format!(
        "instance {:?} seems running (hint: remove {:?} if the instance is not actually running)",
        instance.name,
        pid_file.display().to_string()
    ))
}

/// New log files (not truncated ones: a reader holding the old file sees
/// nothing more), then stdout and stderr into them unless on a terminal.
fn redirect_logs(instance: &InstancePaths) -> Result<(), FakeError> {
    let recreate = |path: &Path| -> Result<File, FakeError> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(FakeError::failed(format!(
                    "cannot remove {}: {e}",
                    path.display()
                )));
            }
            _ => {}
        }
        File::create(path)
            .map_err(|e| FakeError::failed(format!("cannot create {}: {e}", path.display())))
    };
    let mut stdout = recreate(&instance.ha_stdout_log())?;
    let mut stderr = recreate(&instance.ha_stderr_log())?;
    if std::io::stdin().is_terminal() {
        for file in [&mut stdout, &mut stderr] {
            let _ = file.write_all(TERMINAL_NOTE.as_bytes());
        }
        return Ok(());
    }
    platform::redirect_stdio(&stdout, &stderr)
        .map_err(|e| FakeError::failed(format!("cannot redirect to the hostagent logs: {e}")))
}

/// Execs this binary as `limactl hostagent ...` with Lima's default pid
/// file and socket; returns only the failure.
fn become_hostagent(invocation: &Invocation, instance: &InstancePaths) -> FakeError {
    let mut args = vec![
        "hostagent".to_owned(),
        "--pidfile".to_owned(),
        instance.ha_pid().to_string_lossy().into_owned(),
        "--socket".to_owned(),
        instance.ha_sock().to_string_lossy().into_owned(),
    ];
    if instance.name.starts_with('-') {
        args.push("--".to_owned());
    }
    args.push(instance.name.clone());
    invocation.journal.record(Record::HostagentExec {
        args: args.to_vec(),
    });
    // The personality comes from argv[0], so the new image keeps it.
    let arg0 = std::env::args_os().next().unwrap_or_else(|| TOOL.into());
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => return FakeError::failed(format!("cannot find this executable: {e}")),
    };
    let mut cmd = Command::new(program);
    cmd.args(&args);
    let error = platform::exec(cmd, &arg0);
    FakeError::failed(format!("cannot exec the hostagent: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(list: &[&str]) -> Result<StartArgs, FakeError> {
        parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_reconciler_s_command_lines_parse() {
        for args in [
            &["--foreground", "vm1"][..],
            &["--foreground", "--tty=false", "vm1"][..],
            &["--tty=false", "--foreground=true", "--timeout", "5m", "vm1"][..],
            &["--foreground", "--", "vm1"][..],
        ] {
            assert_eq!(parsed(args).unwrap().name, "vm1", "{args:?}");
        }
    }

    #[test]
    fn a_background_start_and_bad_arguments_are_refused_by_name() {
        for (args, needle) in [
            (&["vm1"][..], "only `start --foreground`"),
            (
                &["--foreground=false", "vm1"][..],
                "only `start --foreground`",
            ),
            (&["--foreground"][..], "missing instance NAME"),
            (&["--foreground", "vm1", "vm2"][..], "\"vm2\""),
            (&["--foreground", "--cpus=2", "vm1"][..], "--cpus"),
            (
                &["--foreground", "--timeout"][..],
                "--timeout needs a value",
            ),
        ] {
            let err = parsed(args).unwrap_err();
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
