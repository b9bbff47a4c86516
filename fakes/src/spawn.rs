//! Starting other tools from PATH the way the hostagent does: each child in
//! a process group of its own (so an interrupt aimed at the hostagent's group
//! reaches the hostagent only, and the hostagent decides what its children
//! get), journaled, and waited for with a bound.

use crate::journal::{JournalWriter, Record};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// How often bounded waits look again.
pub const POLL: Duration = Duration::from_millis(10);

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

fn journal_child(journal: &JournalWriter, exe: &str, pid: u32) {
    journal.record(Record::ChildStarted {
        pid,
        tool: exe.to_owned(),
    });
}

/// Starts a long-running child: stdout discarded, stderr shared with ours
/// (it lands in the hostagent's log).
pub fn spawn_tool(exe: &str, args: &[String], journal: &JournalWriter) -> Result<Child, String> {
    let child = command(exe, args)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {exe} from PATH: {e}"))?;
    journal_child(journal, exe, child.id());
    Ok(child)
}

/// Starts a daemon: every stdio stream closed, so that it holds no pipe of
/// whoever waits for its launcher to exit.
pub fn spawn_daemon(exe: &str, args: &[String], journal: &JournalWriter) -> Result<Child, String> {
    let child = command(exe, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {exe} from PATH: {e}"))?;
    journal_child(journal, exe, child.id());
    Ok(child)
}

/// Runs a short command to completion, capturing its output; past `timeout`
/// its tree is killed and the call fails.
pub fn run_bounded(
    exe: &str,
    args: &[String],
    timeout: Duration,
    journal: &JournalWriter,
) -> Result<Output, String> {
    let child = command(exe, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {exe} from PATH: {e}"))?;
    let pid = child.id();
    journal_child(journal, exe, pid);
    let (sender, finished) = channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match finished.recv_timeout(timeout) {
        Ok(result) => result.map_err(|e| format!("{exe} {}: {e}", args.join(" "))),
        Err(_) => {
            let _ = proctree::kill_tree(pid);
            Err(format!(
                "{exe} {} did not finish within {timeout:?}; killed it",
                args.join(" ")
            ))
        }
    }
}

/// Waits until `ready` says yes, failing early when `child` exits and late
/// at `timeout`.
pub fn wait_while_alive(
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
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
