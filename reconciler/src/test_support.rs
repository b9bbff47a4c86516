//! Helpers for unit tests: processes that die with the test, and waiting
//! for a condition with a deadline instead of sleeping.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process a test started; it, its descendants and its process group are
/// killed when the guard drops, also when the test panics.
pub(crate) struct Spawned {
    child: Option<Child>,
    pid: u32,
}

impl Spawned {
    /// `sh -c <script> <args...>` (the first arg becomes `$0`), in a process
    /// group of its own so that nothing it leaves behind escapes the kill.
    pub(crate) fn sh(script: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        proctree::SpawnAttributes {
            own_process_group: true,
            background_priority: false,
        }
        .apply(&mut cmd);
        Self::from_child(cmd.spawn().expect("sh starts"))
    }

    pub(crate) fn from_child(child: Child) -> Self {
        Self {
            pid: child.id(),
            child: Some(child),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("not yet reaped")
    }

    /// Waits for the process to exit and reaps it.
    pub(crate) fn wait(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = proctree::kill_tree(self.pid);
            let _ = child.kill();
            let _ = child.wait();
        }
        // The group outlives a leader that was already reaped (a test may
        // have stopped it gracefully, leaving members behind); it was
        // created for this process alone, so its id is still ours.
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(self.pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Polls `done` until it holds, panicking with `what` after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A log destination tests can read back.
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    pub(crate) fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `f` with a text logger (as the service's, without colours or
/// targets) writing into a buffer; returns `f`'s result and the log.
pub(crate) fn with_captured_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_target(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    (result, buffer.contents())
}
