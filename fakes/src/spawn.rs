//! Starting other tools from PATH the way the hostagent does: each child in
//! a process group of its own (so an interrupt aimed at the hostagent's group
//! reaches the hostagent only, and the hostagent decides what its children
//! get), journaled, and waited for with a bound.

use crate::journal::{JournalWriter, Record};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How often bounded waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(10);

fn command(exe: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null());
    proctree::SpawnAttributes {
        own_process_group: true,
        background_priority: false,
    }
    .apply(&mut cmd);
    cmd
}

/// Journals that `exe` started as `pid`.
fn journal_child(journal: &JournalWriter, exe: &str, pid: u32) {
    journal.record(Record::ChildStarted {
        pid,
        tool: exe.to_owned(),
    });
}

/// Starts a long-running child: stdout discarded, stderr shared with ours
/// (it lands in the hostagent's log).
pub(crate) fn spawn_tool(
    exe: &str,
    args: &[String],
    journal: &JournalWriter,
) -> Result<Child, String> {
    spawn_journaled(exe, args, Stdio::inherit(), journal)
}

/// Starts a daemon: every stdio stream closed, so that it holds no pipe of
/// whoever waits for its launcher to exit.
pub(crate) fn spawn_daemon(
    exe: &str,
    args: &[String],
    journal: &JournalWriter,
) -> Result<Child, String> {
    spawn_journaled(exe, args, Stdio::null(), journal)
}

/// Starts `exe` with stdin and stdout closed and `stderr` as given, and
/// journals its pid; the error says what could not start.
fn spawn_journaled(
    exe: &str,
    args: &[String],
    stderr: Stdio,
    journal: &JournalWriter,
) -> Result<Child, String> {
    let child = command(exe, args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {exe} from PATH: {e}"))?;
    journal_child(journal, exe, child.id());
    Ok(child)
}

/// Runs a short command to completion through [`proctree::run_bounded`],
/// capturing its output and journaling its start; past `timeout` its tree
/// is killed and the call fails, as it does when a process it started
/// still holds its output after it exited.
pub(crate) fn run_bounded(
    exe: &str,
    args: &[String],
    timeout: Duration,
    journal: &JournalWriter,
) -> Result<Output, String> {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    let shown = || format!("{exe} {}", args.join(" "));
    match proctree::run_bounded_observed(&mut cmd, None, Some(timeout), |pid| {
        journal_child(journal, exe, pid)
    }) {
        Ok(done) if done.output_held => Err(format!(
            "{} exited, but a process it started still held its output; killed it",
            shown()
        )),
        Ok(done) => Ok(done.into()),
        Err(proctree::BoundedError::Spawn(e)) => Err(format!("cannot start {exe} from PATH: {e}")),
        Err(proctree::BoundedError::TimedOut { .. }) => Err(format!(
            "{} did not finish within {timeout:?}; killed it",
            shown()
        )),
        Err(proctree::BoundedError::Wait(e)) => Err(format!("{}: {e}", shown())),
    }
}

/// Waits until `ready` says yes, failing early when `child` exits and late
/// at `timeout`.
pub(crate) fn wait_while_alive(
    child: &mut Child,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what}: the child exited ({status}) first"));
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not done within {timeout:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Kills a child outright and reaps it.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
