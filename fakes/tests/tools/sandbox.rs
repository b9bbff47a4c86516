//! The harness's sandbox with every tool played by this package's fake, and
//! what the fakes' tests add to it: commands that run the fake under a
//! tool's name, bounded runs for assertions, started fakes that die when
//! dropped, and waits on the journal. The harness's sandbox kills whatever
//! is left when it is dropped, also when a test panics.

use assert_cmd::assert::{Assert, OutputAssertExt};
use fakes::journal::{Event, JournalEntry};
use lima_layout::{HostagentEvent, InstancePaths};
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub(crate) use harness::ports::{is_free as port_is_free, pick_free_port as free_port};

/// The longest any wait in these tests may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// [`harness::eventually`] within [`TIMEOUT`], failing the test with what
/// `probe` last saw.
pub(crate) fn eventually<T>(what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
    harness::eventually(TIMEOUT, what, probe).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn wait_port_free(port: u16) {
    eventually(&format!("port {port} to be free"), || {
        port_is_free(port)
            .then_some(())
            .ok_or_else(|| "still bound".to_owned())
    });
}

pub(crate) fn assert_port_held(port: u16, by: &str) {
    assert!(!port_is_free(port), "port {port} should be held by {by}");
}

/// A [`harness::Sandbox`] with `limavm-fake` under every tool's name and
/// no reconciler. Its `command` and `spawn` take the place of the
/// harness's: a tool's name instead of a program, and a [`Running`] handle
/// instead of a pid.
pub(crate) struct Sandbox(harness::Sandbox);

impl Deref for Sandbox {
    type Target = harness::Sandbox;
    fn deref(&self) -> &harness::Sandbox {
        &self.0
    }
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let sandbox = harness::Sandbox::builder()
            .fake(env!("CARGO_BIN_EXE_limavm-fake"))
            .build()
            .unwrap_or_else(|e| panic!("setting up the sandbox: {e}"));
        Self(sandbox)
    }

    /// A new sandbox, or `None` (the test is skipped, saying so) under
    /// Wine when it lacks `needs`, one of [`proctree::wine_lacks`].
    pub(crate) fn unless_wine_lacks(needs: &str) -> Option<Self> {
        (!proctree::skip_under_wine(needs)).then(Self::new)
    }

    /// A sandbox whose plan has one rule: every call of `tool` suffers the
    /// fault `kind` (a fault without parameters).
    pub(crate) fn with_fault(tool: &str, kind: &str) -> Self {
        let sandbox = Self::new();
        sandbox.set_plan(serde_json::json!({"rules": [{"tool": tool, "fault": {"kind": kind}}]}));
        sandbox
    }

    /// Replaces the fault plan with `plan`, as written (malformed included).
    pub(crate) fn set_plan(&self, plan: serde_json::Value) {
        std::fs::write(self.plan_path(), plan.to_string()).unwrap();
    }

    /// Creates `LIMA_HOME/<name>/lima.yaml`: `lima_yaml` and, when it has
    /// no `images`, the image entry Lima requires (rule `images-required`;
    /// the fakes never read it).
    pub(crate) fn instance(&self, name: &str, lima_yaml: &str) -> InstancePaths {
        let instance = self.lima_home().instance(name);
        std::fs::create_dir_all(&instance.dir).unwrap();
        let image = if lima_yaml.lines().any(|l| l.starts_with("images:")) {
            ""
        } else {
            "images: [{location: /nonexistent/no-os.qcow2}]\n"
        };
        std::fs::write(instance.lima_yaml(), format!("{lima_yaml}{image}")).unwrap();
        instance
    }

    /// A command running the fake as `name` (`ssh`, `wsl.exe`, ...) with
    /// the sandbox's environment, in a process group of its own (so that
    /// an interrupt can be aimed at it alone).
    pub(crate) fn command(&self, name: &str) -> Command {
        let mut cmd = self.0.command(self.tool_path(name));
        proctree::SpawnAttributes {
            own_process_group: true,
            background_priority: false,
        }
        .apply(&mut cmd);
        cmd
    }

    /// Starts `cmd`, killed with its tree when the handle is dropped.
    pub(crate) fn spawn(&self, mut cmd: Command) -> Running {
        let child = cmd.spawn().expect("the fake starts");
        Running { child }
    }

    /// Runs to completion with captured output through
    /// [`proctree::run_bounded`]; a command still running after [`TIMEOUT`]
    /// fails the test (its whole tree is killed).
    pub(crate) fn run(&self, cmd: Command) -> Output {
        run_bounded(cmd, None)
    }

    /// [`Sandbox::run`], for assertions on its exit, stdout and stderr.
    pub(crate) fn assert(&self, cmd: Command) -> Assert {
        self.run(cmd).assert()
    }

    /// [`Sandbox::assert`] with `stdin` fed to the command.
    pub(crate) fn assert_with_stdin(&self, cmd: Command, stdin: &str) -> Assert {
        run_bounded(cmd, Some(stdin.as_bytes())).assert()
    }

    /// The journal's entries of `event`, from every tool.
    pub(crate) fn events(&self, event: Event) -> Vec<JournalEntry> {
        self.journal().events(None, event)
    }

    /// Waits for a journal entry that `wanted` accepts.
    pub(crate) fn wait_for_entry(
        &self,
        what: &str,
        wanted: impl Fn(&JournalEntry) -> bool,
    ) -> JournalEntry {
        eventually(what, || {
            let journal = self.journal().entries();
            journal.iter().find(|e| wanted(e)).cloned().ok_or_else(|| {
                let tail: Vec<String> = journal
                    .iter()
                    .rev()
                    .take(6)
                    .map(|e| format!("{} {:?}", e.tool, e.record))
                    .collect();
                format!("journal ends with {tail:?}")
            })
        })
    }

    pub(crate) fn wait_for_event(&self, tool: &str, event: Event) -> JournalEntry {
        self.wait_for_entry(&format!("{tool} to journal {event}"), |e| {
            e.tool == tool && e.event() == event
        })
    }

    pub(crate) fn wait_no_live_processes(&self) {
        eventually("every sandbox process to be gone", || {
            let live = self.live_processes();
            if live.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    live.iter().map(|p| (p.pid, &p.cmd)).collect::<Vec<_>>()
                ))
            }
        });
    }
}

/// Runs `cmd` to completion within [`TIMEOUT`], or fails the test.
fn run_bounded(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    match proctree::run_bounded(&mut cmd, stdin, Some(TIMEOUT)) {
        Ok(done) => done.into(),
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// A started fake, killed with its whole tree when dropped unless it has
/// already exited (then its pid may belong to someone else by now).
pub(crate) struct Running {
    child: Child,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The graceful interrupt, aimed at the fake's own process group.
    pub(crate) fn interrupt(&self) {
        proctree::interrupt_group(self.pid()).expect("the interrupt is delivered");
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let pid = self.pid();
        eventually(&format!("pid {pid} to exit"), || {
            match self.child.try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err("still running".into()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Asserts the process keeps running for `period`: the bounded way to
    /// check that something does not happen.
    pub(crate) fn assert_keeps_running(&mut self, period: Duration, why: &str) {
        let until = Instant::now() + period;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "pid {} exited ({status}) but should keep running: {why}",
                    self.pid()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = proctree::kill_tree(self.child.id());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hostagent events in a stdout log.
pub(crate) fn hostagent_events(log: &Path) -> Vec<HostagentEvent> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(HostagentEvent::parse_line)
        .collect()
}

/// A finished run, held as a plain [`Output`] or as an assert_cmd
/// [`Assert`] on one.
pub(crate) trait Ran {
    fn output(&self) -> &Output;
}

impl Ran for Output {
    fn output(&self) -> &Output {
        self
    }
}

impl Ran for Assert {
    fn output(&self) -> &Output {
        self.get_output()
    }
}

pub(crate) fn stderr_of(ran: &impl Ran) -> String {
    String::from_utf8_lossy(&ran.output().stderr).into_owned()
}

pub(crate) fn stdout_of(ran: &impl Ran) -> String {
    String::from_utf8_lossy(&ran.output().stdout).into_owned()
}
