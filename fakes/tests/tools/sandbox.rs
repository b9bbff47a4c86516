//! A temporary world per test: the fake installed under every tool name in
//! `bin/`, HOME, LIMA_HOME, a fault plan, a journal and a WSL state file;
//! and guards that leave no process behind, also when a test panics.

use assert_cmd::assert::{Assert, OutputAssertExt};
use fakes::journal::{Event, JournalEntry, read_journal};
use fakes::plan::Tool;
use lima_layout::{HostagentEvent, InstancePaths, LimaHome};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any wait in these tests may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `probe` until it returns `Ok`, failing after [`TIMEOUT`] with what
/// it last saw.
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {TIMEOUT:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

pub fn free_port() -> u16 {
    portpicker::pick_unused_port().expect("a free port")
}

pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

pub fn wait_port_free(port: u16) {
    eventually(&format!("port {port} to be free"), || {
        port_is_free(port)
            .then_some(())
            .ok_or_else(|| "still bound".to_owned())
    });
}

pub fn assert_port_held(port: u16, by: &str) {
    assert!(!port_is_free(port), "port {port} should be held by {by}");
}

pub struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        // Brackets and a space, as the harness's sandboxes have.
        let root = tempfile::Builder::new()
            .prefix("fake [t] ")
            .tempdir()
            .expect("a temporary directory");
        let sandbox = Self { root };
        for dir in [sandbox.bin(), sandbox.home(), sandbox.lima_home_dir()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        sandbox.set_plan(serde_json::json!({ "rules": [] }));
        let fake = PathBuf::from(env!("CARGO_BIN_EXE_limavm-fake"));
        for tool in Tool::ALL {
            for name in tool.executable_names() {
                install(&fake, &sandbox.tool_path(name));
            }
        }
        sandbox
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }
    pub fn bin(&self) -> PathBuf {
        self.root().join("bin")
    }
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    fn lima_home_dir(&self) -> PathBuf {
        self.root().join("lima")
    }
    pub fn lima_home(&self) -> LimaHome {
        LimaHome::new(self.lima_home_dir())
    }
    pub fn journal_path(&self) -> PathBuf {
        self.root().join("journal.jsonl")
    }
    pub fn plan_path(&self) -> PathBuf {
        self.root().join("plan.json")
    }
    pub fn wsl_state_path(&self) -> PathBuf {
        self.root().join("wsl-state.json")
    }

    /// The installed fake for `name` (`ssh`, `wsl.exe`, ...).
    pub fn tool_path(&self, name: &str) -> PathBuf {
        let file = if name.ends_with(".exe") {
            name.to_owned()
        } else {
            format!("{name}{}", std::env::consts::EXE_SUFFIX)
        };
        self.bin().join(file)
    }

    pub fn set_plan(&self, plan: serde_json::Value) {
        std::fs::write(self.plan_path(), plan.to_string()).unwrap();
    }

    /// Creates `LIMA_HOME/<name>/lima.yaml`.
    pub fn instance(&self, name: &str, lima_yaml: &str) -> InstancePaths {
        let instance = self.lima_home().instance(name);
        std::fs::create_dir_all(&instance.dir).unwrap();
        std::fs::write(instance.lima_yaml(), lima_yaml).unwrap();
        instance
    }

    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut path = vec![self.bin()];
        path.extend(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        );
        let mut env = vec![
            ("PATH", std::env::join_paths(path).unwrap()),
            ("HOME", self.home().into()),
            ("USERPROFILE", self.home().into()),
            ("LIMA_HOME", self.lima_home_dir().into()),
            (fakes::journal::JOURNAL_ENV, self.journal_path().into()),
            (fakes::plan::FAULT_PLAN_ENV, self.plan_path().into()),
            (fakes::WSL_STATE_ENV, self.wsl_state_path().into()),
        ];
        env.extend(
            ["SystemRoot", "TEMP", "TMP"]
                .into_iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        );
        env
    }

    /// A command running the fake as `name`, with only the sandbox's
    /// environment, in a process group of its own (so that an interrupt can
    /// be aimed at it alone).
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.tool_path(name));
        cmd.env_clear()
            .envs(self.env())
            .current_dir(self.root())
            .stdin(Stdio::null());
        proctree::SpawnAttributes {
            own_process_group: true,
            background_priority: false,
        }
        .apply(&mut cmd);
        cmd
    }

    pub fn spawn(&self, mut cmd: Command) -> Running {
        let child = cmd.spawn().expect("the fake starts");
        Running { child }
    }

    /// Runs to completion with captured output through
    /// [`proctree::run_bounded`]; a command still running after [`TIMEOUT`]
    /// fails the test (its whole tree is killed).
    pub fn run(&self, cmd: Command) -> Output {
        run_bounded(cmd, None)
    }

    /// [`Sandbox::run`], for assertions on its exit, stdout and stderr.
    pub fn assert(&self, cmd: Command) -> Assert {
        self.run(cmd).assert()
    }

    /// [`Sandbox::assert`] with `stdin` fed to the command.
    pub fn assert_with_stdin(&self, cmd: Command, stdin: &str) -> Assert {
        run_bounded(cmd, Some(stdin.as_bytes())).assert()
    }

    pub fn journal(&self) -> Vec<JournalEntry> {
        read_journal(&self.journal_path()).unwrap()
    }

    pub fn events(&self, event: Event) -> Vec<JournalEntry> {
        self.journal()
            .into_iter()
            .filter(|e| e.event == event)
            .collect()
    }

    /// Waits for a journal entry that `wanted` accepts.
    pub fn wait_for_entry(
        &self,
        what: &str,
        wanted: impl Fn(&JournalEntry) -> bool,
    ) -> JournalEntry {
        eventually(what, || {
            let journal = self.journal();
            journal.iter().find(|e| wanted(e)).cloned().ok_or_else(|| {
                let tail: Vec<String> = journal
                    .iter()
                    .rev()
                    .take(6)
                    .map(|e| format!("{} {} {}", e.tool, e.event, e.details))
                    .collect();
                format!("journal ends with {tail:?}")
            })
        })
    }

    pub fn wait_for_event(&self, tool: &str, event: Event) -> JournalEntry {
        self.wait_for_entry(&format!("{tool} to journal {event}"), |e| {
            e.tool == tool && e.event == event
        })
    }

    /// Processes started in this sandbox that are still alive.
    pub fn live_processes(&self) -> Vec<proctree::ProcessInfo> {
        let journal = self.journal_path().to_string_lossy().into_owned();
        proctree::ProcessTable::snapshot()
            .with_env(fakes::journal::JOURNAL_ENV, &journal)
            .into_iter()
            .cloned()
            .collect()
    }

    pub fn wait_no_live_processes(&self) {
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

impl Drop for Sandbox {
    /// Whatever a test left running in the sandbox (children that outlived
    /// their parent included) dies here, and is gone before the directory
    /// is removed: Windows cannot delete an executable that still runs.
    fn drop(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let live = self.live_processes();
            if live.is_empty() || Instant::now() >= deadline {
                break;
            }
            for process in live {
                let _ = proctree::kill(process.pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs `cmd` to completion within [`TIMEOUT`], or fails the test.
fn run_bounded(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    match proctree::run_bounded(&mut cmd, stdin, Some(TIMEOUT)) {
        Ok(done) => done.into(),
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// Installs the fake as `link`, once: on Windows `wsl` and `wsl.exe` are
/// both `wsl.exe`.
fn install(fake: &Path, link: &Path) {
    if !link.exists() {
        fakes::install::install_executable(fake, link).unwrap();
    }
}

/// A started fake, killed with its whole tree when dropped unless it has
/// already exited (then its pid may belong to someone else by now).
pub struct Running {
    child: Child,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The graceful interrupt, aimed at the fake's own process group.
    pub fn interrupt(&self) {
        proctree::interrupt_group(self.pid()).expect("the interrupt is delivered");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
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
    pub fn assert_keeps_running(&mut self, period: Duration, why: &str) {
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
pub fn hostagent_events(log: &Path) -> Vec<HostagentEvent> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(HostagentEvent::parse_line)
        .collect()
}

/// A finished run, held as a plain [`Output`] or as an assert_cmd
/// [`Assert`] on one.
pub trait Ran {
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

pub fn stderr_of(ran: &impl Ran) -> String {
    String::from_utf8_lossy(&ran.output().stderr).into_owned()
}

pub fn stdout_of(ran: &impl Ran) -> String {
    String::from_utf8_lossy(&ran.output().stdout).into_owned()
}
