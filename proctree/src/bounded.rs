//! Running a command to its end within a deadline: started contained (a
//! process group of its own; on Windows also a job object of its own),
//! stdin fed (or closed), stdout and stderr captured by threads, and at the
//! deadline the whole tree killed (Windows: the job terminated). A process
//! the command leaves behind holding its output pipes cannot keep the
//! caller waiting either: the output is read for at most [`OUTPUT_GRACE`]
//! after the exit, then the group (Windows: the job) is killed and what was
//! read is returned, marked as held.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

/// How long captured output may trail the command's exit (a grandchild
/// holding the pipe must not keep the caller waiting).
pub const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// A command that ran to its end.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (up to the end of the output, or until
    /// [`OUTPUT_GRACE`] after the exit when `output_held`).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr, as for `stdout`.
    pub stderr: Vec<u8>,
    /// True when a process the command started still held stdout or stderr
    /// [`OUTPUT_GRACE`] after it exited (its group was then killed, and the
    /// output is what was read until then).
    pub output_held: bool,
}

impl From<Finished> for Output {
    /// The standard library's shape, for assertions written against it
    /// (`output_held` is dropped).
    fn from(done: Finished) -> Self {
        Self {
            status: done.status,
            stdout: done.stdout,
            stderr: done.stderr,
        }
    }
}

/// Why a bounded run gave no [`Finished`]; the I/O error, when there is
/// one, is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    /// The program could not be started (`ErrorKind::NotFound`: not found).
    #[error("cannot start it")]
    Spawn(#[source] std::io::Error),
    /// The deadline passed; the tree was killed. Holds what it had written.
    #[error("it did not finish within {timeout:?}")]
    TimedOut {
        /// The bound that passed.
        timeout: Duration,
        /// What it wrote to stdout before it was killed.
        stdout: Vec<u8>,
        /// What it wrote to stderr before it was killed.
        stderr: Vec<u8>,
    },
    /// Waiting for it failed.
    #[error("lost track of it")]
    Wait(#[source] std::io::Error),
}

/// Runs `cmd` to its end, feeding it `stdin` (closed when `None`), killing
/// its whole tree when `timeout` passes (`None` waits for ever). The
/// command's stdio settings are replaced; it gets a process group of its
/// own (Windows: a console process group and a job object of its own).
/// Errors: see [`BoundedError`]; a non-zero exit is a [`Finished`].
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Finished, BoundedError> {
    run_bounded_observed(cmd, stdin, timeout, |_| {})
}

/// [`run_bounded`], calling `started` with the command's pid as soon as it
/// runs (to journal or log it) and before any wait.
pub fn run_bounded_observed(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
    started: impl FnOnce(u32),
) -> Result<Finished, BoundedError> {
    let mut child = spawn_piped(cmd, stdin.is_some())?;
    let pid = child.id();
    started(pid);
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A writer thread: a command that never reads cannot block us.
        let text = text.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&text);
        });
    }
    let stdout = Captured::start(child.stdout.take());
    let stderr = Captured::start(child.stderr.take());
    let (status, child) = wait_within(child, timeout, [&stdout, &stderr])?;
    let closed = stdout.wait(OUTPUT_GRACE) & stderr.wait(OUTPUT_GRACE);
    if !closed {
        // Whoever holds the pipes is in the group (Windows: the job) the
        // command led.
        crate::platform::kill_leftovers_of(pid);
    }
    drop(child);
    Ok(Finished {
        status,
        stdout: stdout.take(),
        stderr: stderr.take(),
        output_held: !closed,
    })
}

/// Starts `cmd` with piped stdout and stderr, stdin piped when `stdin` is
/// set and null otherwise, in a process group of its own.
fn spawn_piped(cmd: &mut Command, stdin: bool) -> Result<Child, BoundedError> {
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let attributes = crate::SpawnAttributes {
        own_process_group: true,
        background_priority: false,
    };
    crate::spawn_contained(cmd, attributes).map_err(BoundedError::Spawn)
}

/// Waits for `child` on a thread of its own, at most `timeout`; when that
/// passes, kills its tree and fails with what `output` captured. Returns
/// the status with the child, still held: while it is, a Windows pid
/// cannot be reused (its handle is open).
fn wait_within(
    mut child: Child,
    timeout: Option<Duration>,
    output: [&Captured; 2],
) -> Result<(ExitStatus, Child), BoundedError> {
    let pid = child.id();
    let (exit_tx, exit_rx) = mpsc::channel();
    thread::spawn(move || {
        let result = child.wait();
        let _ = exit_tx.send((result, child));
    });
    let waited = match timeout {
        None => exit_rx.recv().ok(),
        Some(timeout) => match exit_rx.recv_timeout(timeout) {
            Ok(result) => Some(result),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The waiter thread has not reaped it, so the pid is still ours.
                let _ = crate::kill_tree(pid);
                match exit_rx.recv_timeout(OUTPUT_GRACE) {
                    // It finished on its own just as the bound ran out (the
                    // kill found it gone): that result is the real one.
                    Ok((Ok(status), child)) if status.success() => Some((Ok(status), child)),
                    _ => return Err(timed_out(timeout, output)),
                }
            }
        },
    };
    match waited {
        Some((Ok(status), child)) => Ok((status, child)),
        Some((Err(source), _)) => Err(BoundedError::Wait(source)),
        None => Err(BoundedError::Wait(std::io::Error::other(
            "the waiting thread stopped",
        ))),
    }
}

/// [`BoundedError::TimedOut`] with what `[stdout, stderr]` captured, after
/// a short grace for the pipes to drain.
fn timed_out(timeout: Duration, [stdout, stderr]: [&Captured; 2]) -> BoundedError {
    stdout.wait(OUTPUT_GRACE);
    stderr.wait(OUTPUT_GRACE);
    BoundedError::TimedOut {
        timeout,
        stdout: stdout.take(),
        stderr: stderr.take(),
    }
}

/// One output pipe, read by a thread into a shared buffer.
struct Captured {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Captured {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        match pipe {
            Some(mut pipe) => {
                let buffer = Arc::clone(&buffer);
                thread::spawn(move || {
                    let mut chunk = [0u8; 8192];
                    while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                        buffer
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend_from_slice(&chunk[..n]);
                    }
                    let _ = tx.send(());
                });
            }
            None => {
                let _ = tx.send(());
            }
        }
        Self { buffer, done }
    }

    /// Waits up to `grace` for the end of the output; true when it came.
    fn wait(&self, grace: Duration) -> bool {
        !matches!(
            self.done.recv_timeout(grace),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[test]
    fn output_status_and_stdin_are_passed() {
        let done = run_bounded(
            &mut sh("cat; echo err >&2; exit 3"),
            Some(b"in"),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"in");
        assert_eq!(done.stderr, b"err\n");
        assert!(!done.output_held);
    }

    #[test]
    fn the_observer_is_told_the_pid_of_the_command() {
        let mut reported = None;
        let done = run_bounded_observed(
            &mut sh("echo $$"),
            None,
            Some(Duration::from_secs(10)),
            |pid| reported = Some(pid),
        )
        .unwrap();
        let printed: u32 = String::from_utf8(done.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(reported, Some(printed));
    }

    #[test]
    fn a_hung_command_is_killed_at_the_deadline_with_what_it_wrote() {
        let started = Instant::now();
        let err = run_bounded(
            &mut sh("echo partial; exec sleep 600"),
            None,
            Some(Duration::from_millis(200)),
        )
        .unwrap_err();
        match err {
            BoundedError::TimedOut { stdout, .. } => assert_eq!(stdout, b"partial\n"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_grandchild_holding_stdout_is_killed_and_the_output_kept() {
        let dir = tempfile_dir();
        let pid_file = dir.join("grandchild.pid");
        let script = format!(
            "echo '{{}}'; sleep 600 & echo $! > '{}'; exit 0",
            pid_file.display()
        );
        let done = run_bounded(&mut sh(&script), None, Some(Duration::from_secs(20))).unwrap();
        assert!(done.output_held);
        assert_eq!(done.stdout, b"{}\n");
        let grandchild: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::is_alive(grandchild) {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            thread::yield_now();
        }
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "proctree-bounded-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
