//! One temporary root per scenario, holding HOME, LIMA_HOME, the reconciler's
//! state, a shim `bin/` with the tools, the fault plan and the journal.
//!
//! The root's path contains `[1]` and a space on purpose: every scenario
//! runs under a path that breaks code treating paths as patterns or words.
//! Dropping the sandbox, also on panic, kills everything started inside it
//! and reports what was still alive.

use crate::binaries::Binaries;
use crate::error::HarnessError;
use crate::eventually::eventually;
use crate::faults::FaultPlanBuilder;
use crate::journal::Journal;
use crate::leaks::{LeakReport, LeakedPort, LeakedProcess};
use crate::toolset::ToolChoice;
use crate::toolset::Toolset;
use contract::Tool;
use lima_layout::LimaHome;
use proctree::{ProcessTable, SpawnAttributes};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

mod builder;
pub use builder::SandboxBuilder;

/// Environment variable carrying the sandbox id into every process started
/// inside it: the mark by which the harness recognises its own processes.
pub const SANDBOX_ENV: &str = contract::env::SANDBOX;

/// The start of a sandbox root's name: a bracket pair and a space, so that
/// code treating paths as patterns or words fails under every scenario.
pub const DEFAULT_ROOT_PREFIX: &str = "limavm [1] ";

/// The variables of the harness's own environment that sandbox processes
/// inherit: what the platform's tools need to run at all. Everything else
/// they get is the sandbox's (see [`Sandbox::env`]).
pub const INHERITED_ENV: &[&str] = &[
    "TMPDIR",
    "TMP",
    "TEMP",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "RUST_BACKTRACE",
    "SystemRoot",
    "SYSTEMROOT",
    "SystemDrive",
    "windir",
    "ComSpec",
    "PATHEXT",
    "USERNAME",
    "COMPUTERNAME",
    "LOCALAPPDATA",
    "APPDATA",
    "ProgramData",
];

/// The instance-name length a sandbox in the temporary directory must leave
/// room for under Lima's socket rule for `create` (the catalogue's names
/// are shorter).
const SOCKET_ROOM_NAME_LEN: usize = 24;

/// How long cleanup waits for killed processes to die and ports to free.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(10);

/// A temporary world for one scenario or test; see the module docs.
/// Made by [`Sandbox::new`] and its siblings, or by [`Sandbox::builder`]
/// for a sandbox with only some executables (a test of the fakes has no
/// reconciler, a black-box test of the reconciler no fakes).
pub struct Sandbox {
    root: tempfile::TempDir,
    /// Where the tool shims live when `<root>/bin` cannot be a PATH entry.
    shims: Option<tempfile::TempDir>,
    id: String,
    /// The multicall fake, when this sandbox has one.
    fake: Option<PathBuf>,
    toolset: Toolset,
    /// Whether PATH goes on, after the shim directory, with the harness's.
    host_path: bool,
    children: Mutex<Vec<Child>>,
    /// Exit codes of reaped children, so that every later question about
    /// them gets the same answer.
    exited: Mutex<std::collections::HashMap<u32, Option<i32>>>,
    /// What the drivers asked and read, for the invariants.
    witness: crate::witness::Witness,
    /// The target's instance slot this sandbox holds, if its target has
    /// slots ([`crate::slots`]). Last, so that it is released only once
    /// the drop has killed what ran in it.
    slot: Mutex<Option<crate::slots::SlotLease>>,
}

impl Sandbox {
    /// A sandbox with every tool faked.
    pub fn new(binaries: &Binaries) -> Result<Self, HarnessError> {
        Self::with_toolset(binaries, Toolset::fakes())
    }

    /// A sandbox in the temporary directory, refused when that directory
    /// leaves no room for the sockets of an instance with an ordinary name.
    pub fn with_toolset(binaries: &Binaries, toolset: Toolset) -> Result<Self, HarnessError> {
        Self::builder().binaries(binaries).toolset(toolset).build()
    }

    /// A sandbox whose root is created inside `parent` (for hostile or long
    /// parent paths).
    pub fn under(
        parent: &Path,
        binaries: &Binaries,
        toolset: Toolset,
    ) -> Result<Self, HarnessError> {
        Self::under_with_prefix(parent, DEFAULT_ROOT_PREFIX, binaries, toolset)
    }

    /// A sandbox whose root inside `parent` is named `prefix` plus a random
    /// suffix. Property tests pass a plain, short prefix so that every
    /// hostile character of the path is one they generated (and shrink).
    pub fn under_with_prefix(
        parent: &Path,
        prefix: &str,
        binaries: &Binaries,
        toolset: Toolset,
    ) -> Result<Self, HarnessError> {
        Self::builder()
            .binaries(binaries)
            .toolset(toolset)
            .under(parent)
            .prefix(prefix)
            .build()
    }

    /// A sandbox made to measure: which executables it has, which tools go
    /// on its PATH, and where its root is.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// Refuses a sandbox in the temporary directory that leaves no room
    /// for the sockets of an instance with an ordinary name.
    fn check_socket_room(&self) -> Result<(), HarnessError> {
        use lima_layout::checks::{Stage, check_instance_dir};
        let dir = self.lima_home_dir().join("x".repeat(SOCKET_ROOM_NAME_LEN));
        check_instance_dir(&dir, Stage::Create).map_err(|refusal| {
            HarnessError::Setup(format!(
                "the temporary directory {} is too long: an instance's socket would not fit \
                 under {}: {refusal} (set TMPDIR to a shorter directory)",
                std::env::temp_dir().display(),
                dir.display(),
            ))
        })
    }

    /// Creates the root in `spec.parent` and everything in it.
    fn create(spec: SandboxBuilder) -> Result<Self, HarnessError> {
        if crate::runs::stopping() {
            return Err(HarnessError::Interrupted);
        }
        let root = make_root(&spec)?;
        let shims = make_shim_dir(root.path())?;
        let id = root
            .path()
            .file_name()
            .map(|n| crate::runs::id_of(&n.to_string_lossy()))
            .unwrap_or_default();
        let witness = crate::witness::Witness::new(
            LimaHome::new(lima_home_under(root.path())),
            Journal::new(journal_under(root.path())),
        );
        let sandbox = Self {
            root,
            shims,
            id,
            fake: spec.fake.clone(),
            toolset: spec.toolset.clone(),
            host_path: spec.tools.is_none(),
            children: Mutex::new(Vec::new()),
            exited: Mutex::new(std::collections::HashMap::new()),
            witness,
            slot: Mutex::new(None),
        };
        crate::runs::register(
            &sandbox.id,
            std::iter::once(sandbox.root().to_owned())
                .chain(sandbox.shims.as_ref().map(|d| d.path().to_owned()))
                .collect(),
        );
        sandbox.populate(&spec)?;
        // Fakes refuse a plan file that is named but missing: start empty.
        sandbox.set_faults(&FaultPlanBuilder::new())?;
        Ok(sandbox)
    }

    /// Makes the sandbox's directories and installs its tools and the
    /// reconciler.
    fn populate(&self, spec: &SandboxBuilder) -> Result<(), HarnessError> {
        for dir in [
            self.home(),
            self.lima_home_dir(),
            self.state_dir(),
            self.bin_dir(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
        }
        if spec.parent.is_none() {
            self.check_socket_room()?;
        }
        self.install_tools(spec.tools.as_deref().unwrap_or(&Tool::ALL))?;
        if let Some(reconciler) = &spec.reconciler {
            self.install_reconciler(reconciler)?;
        }
        Ok(())
    }

    /// The sandbox id: the mark [`SANDBOX_ENV`] carries into its processes.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The sandbox's root directory (removed at drop).
    pub fn root(&self) -> &Path {
        self.root.path()
    }
    /// The `HOME` (and `USERPROFILE`) of its processes: `<root>/home`.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    fn lima_home_dir(&self) -> PathBuf {
        lima_home_under(self.root())
    }
    /// The `LIMA_HOME` of its processes.
    pub fn lima_home(&self) -> LimaHome {
        LimaHome::new(self.lima_home_dir())
    }
    /// The reference service's default state directory: `<root>/state`.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state")
    }
    /// The shim directory, first on PATH.
    pub fn bin_dir(&self) -> PathBuf {
        match &self.shims {
            Some(dir) => dir.path().to_owned(),
            None => self.root().join("bin"),
        }
    }
    /// The fault plan the fakes read: `<root>/faults.json`.
    pub fn plan_path(&self) -> PathBuf {
        self.root().join("faults.json")
    }
    /// The fakes' journal file.
    pub fn journal_path(&self) -> PathBuf {
        journal_under(self.root())
    }
    /// The fakes' journal, to query.
    pub fn journal(&self) -> Journal {
        Journal::new(self.journal_path())
    }
    /// The state file of the fake `wsl.exe` (its distributions).
    pub fn wsl_state_path(&self) -> PathBuf {
        self.root().join("wsl-state.json")
    }
    /// Which tools are real here.
    pub fn toolset(&self) -> &Toolset {
        &self.toolset
    }

    /// Where the shim for executable `name` (`wsl.exe`, `ssh`...) lives;
    /// on Windows every shim ends in `.exe`.
    pub fn tool_path(&self, name: &str) -> PathBuf {
        if cfg!(windows) {
            let stem = name.trim_end_matches(".exe");
            self.bin_dir().join(format!("{stem}.exe"))
        } else {
            self.bin_dir().join(name)
        }
    }

    /// The fake playing `name`, whatever the toolset: installed on first use
    /// in a directory off PATH (for helpers such as a bystander process).
    /// Fails when the sandbox was built without a fake.
    pub fn fake_tool_path(&self, name: &str) -> Result<PathBuf, HarnessError> {
        let fake = self.fake()?;
        let dir = self.root().join("fakes");
        let stem = name.trim_end_matches(".exe");
        let path = dir.join(format!("{stem}{}", std::env::consts::EXE_SUFFIX));
        if !path.exists() {
            std::fs::create_dir_all(&dir)
                .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
            link_executable(fake, &path)?;
        }
        Ok(path)
    }

    /// Takes a tool off the sandbox's PATH.
    pub fn remove_tool(&self, tool: Tool) -> Result<(), HarnessError> {
        for name in tool.executable_names() {
            let path = self.tool_path(name);
            if path.exists() {
                std::fs::remove_file(&path)
                    .map_err(HarnessError::io(format!("removing {}", path.display())))?;
            }
        }
        Ok(())
    }

    /// The reference reconciler, linked into the sandbox under its own name
    /// (a multicall binary picks its role by that name); nothing is there
    /// in a sandbox built without one.
    pub fn reconciler_exe(&self) -> PathBuf {
        self.root()
            .join("sut")
            .join(format!("limavm-reconciler{}", std::env::consts::EXE_SUFFIX))
    }

    /// Writes `plan` as the sandbox's fault plan; the fakes read it at every
    /// call. Fails when the file cannot be written.
    pub fn set_faults(&self, plan: &FaultPlanBuilder) -> Result<(), HarnessError> {
        plan.write_to(&self.plan_path())
            .map_err(HarnessError::io("writing the fault plan"))
    }

    fn fake(&self) -> Result<&Path, HarnessError> {
        self.fake.as_deref().ok_or_else(|| {
            HarnessError::Setup("this sandbox was built without the fake tools".into())
        })
    }

    /// Puts `tools` on PATH, each fake or real as the toolset says.
    fn install_tools(&self, tools: &[Tool]) -> Result<(), HarnessError> {
        for &tool in tools {
            let target = match self.toolset.choice(tool) {
                ToolChoice::Fake => self.fake()?.to_owned(),
                ToolChoice::Real if tool == Tool::Limactl => {
                    // Real limactl may need a shim that drops root.
                    let link = self.tool_path("limactl");
                    if let Some(limactl) = crate::real_lima::install_limactl(&link)? {
                        link_executable(&limactl, &link)?;
                    }
                    continue;
                }
                ToolChoice::Real => Toolset::resolve_real(tool)?,
            };
            for name in tool.executable_names() {
                let link = self.tool_path(name);
                if !link.exists() {
                    link_executable(&target, &link)?;
                }
            }
        }
        Ok(())
    }

    fn install_reconciler(&self, reconciler: &Path) -> Result<(), HarnessError> {
        let sut = self.reconciler_exe();
        std::fs::create_dir_all(sut.parent().expect("sut has a parent"))
            .map_err(HarnessError::io("creating the sut directory"))?;
        link_executable(reconciler, &sut)
    }

    /// The environment every process of the sandbox gets, whole: the
    /// harness's own environment contributes only [`INHERITED_ENV`] and,
    /// unless the sandbox holds only some tools
    /// ([`SandboxBuilder::only_tools`]), PATH after the shim directory.
    pub fn env(&self) -> Vec<(String, OsString)> {
        let mut path = vec![self.bin_dir()];
        if self.host_path {
            path.extend(
                std::env::var_os("PATH")
                    .iter()
                    .flat_map(std::env::split_paths),
            );
        }
        // The shim directory was checked when the sandbox was made, and the
        // other entries come from splitting PATH.
        let path = std::env::join_paths(path).expect("sandbox PATH entries hold no separator");
        let inherited = INHERITED_ENV
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| ((*k).to_owned(), v)));
        let mut env: Vec<(String, std::ffi::OsString)> = inherited
            .chain([
                ("HOME".into(), self.home().into()),
                ("USERPROFILE".into(), self.home().into()),
                ("LIMA_HOME".into(), self.lima_home_dir().into()),
                ("PATH".into(), path),
                (contract::env::FAULT_PLAN.into(), self.plan_path().into()),
                (contract::env::JOURNAL.into(), self.journal_path().into()),
                (
                    contract::env::FAKE_WSL_STATE.into(),
                    self.wsl_state_path().into(),
                ),
                (SANDBOX_ENV.into(), self.id.clone().into()),
                (
                    crate::runs::OWNER_ENV.into(),
                    crate::runs::this_run().into(),
                ),
            ])
            .collect();
        if self.toolset.has_real_lima() {
            // Where this host's KVM cannot run the real guest's kernel.
            env.extend(
                crate::real_lima::RealGuest::built()
                    .map(|g| g.env())
                    .unwrap_or_default(),
            );
        }
        env
    }

    /// A command with the sandbox's environment and nothing else of the
    /// harness's (a `LIMAVM_REGRESS` in the user's shell must not reach the
    /// service).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.env())
            .current_dir(self.root())
            .stdin(Stdio::null());
        cmd
    }

    /// [`Sandbox::command`] for a whole command line: `args[0]` with the
    /// rest as its arguments. `args` must not be empty.
    pub(crate) fn command_line(&self, args: &[String]) -> Command {
        let mut cmd = self.command(&args[0]);
        cmd.args(&args[1..]);
        cmd
    }

    /// Starts `cmd` in a process group of its own (so that nothing it sends
    /// to "its own group" reaches the test runner) and keeps the child to
    /// reap it. Returns the pid.
    pub fn spawn(&self, mut cmd: Command) -> Result<u32, HarnessError> {
        SpawnAttributes {
            own_process_group: true,
            background_priority: false,
        }
        .apply(&mut cmd);
        let child = crate::runs::start_process(|| {
            cmd.spawn().map_err(HarnessError::io(format!(
                "starting {:?}",
                cmd.get_program()
            )))
        })?;
        let pid = child.id();
        self.children.lock().expect("children lock").push(child);
        Ok(pid)
    }

    /// Reaps a child the sandbox started, if it has exited; returns its exit
    /// code (`None` for a signal) once it has.
    pub fn try_reap(&self, pid: u32) -> Option<Option<i32>> {
        self.reap_exited();
        self.exited.lock().expect("exited lock").get(&pid).copied()
    }

    /// Waits (bounded) for a child the sandbox started to exit.
    pub fn wait_child(&self, pid: u32, timeout: Duration) -> Result<Option<i32>, HarnessError> {
        Ok(eventually(timeout, &format!("pid {pid} to exit"), || {
            self.try_reap(pid)
                .ok_or_else(|| format!("pid {pid} still running"))
        })?)
    }

    /// Registered WSL2 distros (with `running_only`, the running ones), as
    /// the sandbox's `wsl.exe --list --quiet` reports them; none when it
    /// cannot be asked.
    pub fn wsl_distros(&self, running_only: bool) -> Vec<String> {
        let mut cmd = self.command(self.tool_path("wsl.exe"));
        cmd.args(["--list", "--quiet"]).env("WSL_UTF8", "1");
        if running_only {
            cmd.arg("--running");
        }
        let Ok(out) = proctree::run_bounded(&mut cmd, None, Some(crate::commands::TOOL_TIMEOUT))
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Live processes carrying this sandbox's mark.
    pub fn live_processes(&self) -> Vec<proctree::ProcessInfo> {
        ProcessTable::snapshot()
            .with_env(SANDBOX_ENV, &self.id)
            .into_iter()
            .cloned()
            .collect()
    }

    /// What is alive or held right now, without changing anything.
    pub fn leak_report(&self) -> LeakReport {
        self.reap_exited();
        let processes = self
            .live_processes()
            .into_iter()
            .map(|p| LeakedProcess {
                pid: p.pid,
                name: p.name.clone(),
                cmd: p.cmd.join(" "),
            })
            .collect();
        let ports = self
            .journal()
            .bound_ports()
            .into_iter()
            .filter(|b| !crate::ports::is_free(b.port))
            .map(|b| LeakedPort {
                port: b.port,
                pid: b.pid,
                tool: b.tool,
            })
            .collect();
        LeakReport {
            processes,
            ports,
            broken: self.witness.broken(),
        }
    }

    /// What the drivers of this sandbox asked and read: the invariants
    /// every scenario is held to (see [`crate::invariants`]).
    pub fn witness(&self) -> &crate::witness::Witness {
        &self.witness
    }

    /// The number of the instance slot this sandbox holds for `target`,
    /// taken from `slots` at the first call (waiting up to
    /// [`crate::slots::SLOT_WAIT`] for one to be free) and held until the
    /// sandbox is dropped.
    pub fn instance_slot(
        &self,
        target: &str,
        slots: &crate::slots::Slots,
    ) -> Result<u32, HarnessError> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lease) = slot.as_ref() {
            return Ok(lease.number);
        }
        let lease = slots
            .take(target, crate::slots::SLOT_WAIT)
            .map_err(HarnessError::Driver)?;
        let number = lease.number;
        *slot = Some(lease);
        Ok(number)
    }

    /// The number of the instance slot this sandbox holds, if any.
    pub fn held_slot(&self) -> Option<u32> {
        self.slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|lease| lease.number)
    }

    /// The leak report once it is clean, or as it stands after `timeout`:
    /// a process killed a moment ago may take that moment to go.
    pub fn settled_leak_report(&self, timeout: Duration) -> LeakReport {
        let mut last = LeakReport::default();
        let _ = eventually(timeout, "the sandbox to be clean", || {
            last = self.leak_report();
            if last.is_clean() {
                Ok(())
            } else {
                Err(last.to_string())
            }
        });
        last
    }

    /// Makes `dir/held` unremovable for anyone (see [`crate::unremovable`])
    /// until [`Sandbox::release_unremovable`] or the sandbox's drop; returns
    /// its path.
    pub fn make_unremovable(&self, dir: &Path) -> Result<PathBuf, HarnessError> {
        let what = format!("making an entry of {} unremovable", dir.display());
        let held = crate::unremovable::make(dir).map_err(HarnessError::io(what.clone()))?;
        let recorded = crate::unremovable::record(self.root(), &held);
        if let Err(e) = recorded {
            let _ = crate::unremovable::undo(&held);
            return Err(HarnessError::io(what)(e));
        }
        Ok(held)
    }

    /// Lets every entry made unremovable here be removed again.
    pub fn release_unremovable(&self) -> Result<(), HarnessError> {
        match crate::unremovable::undo_recorded(self.root())
            .into_iter()
            .next()
        {
            None => Ok(()),
            Some((held, e)) => Err(HarnessError::io(format!(
                "letting {} be removed again",
                held.display()
            ))(e)),
        }
    }

    /// Kills every process of the sandbox and waits for their ports to be
    /// released. Returns what was found still running beforehand.
    pub fn cleanup(&self) -> LeakReport {
        let found = self.leak_report();
        for process in &found.processes {
            // The sandbox mark proves the process is ours to kill.
            let _ = proctree::kill_tree(process.pid);
        }
        self.reap_all();
        let _ = eventually(CLEANUP_DEADLINE, "sandbox processes to die", || {
            let left = self.live_processes();
            if left.is_empty() {
                Ok(())
            } else {
                for p in &left {
                    let _ = proctree::kill(p.pid);
                }
                self.reap_exited();
                Err(format!("{} alive", left.len()))
            }
        });
        let _ = eventually(CLEANUP_DEADLINE, "sandbox ports to be free", || {
            let held: Vec<u16> = found
                .ports
                .iter()
                .map(|p| p.port)
                .filter(|p| !crate::ports::is_free(*p))
                .collect();
            if held.is_empty() {
                Ok(())
            } else {
                Err(format!("{held:?} held"))
            }
        });
        found
    }

    fn reap_exited(&self) {
        let mut children = self.children.lock().expect("children lock");
        let mut exited = self.exited.lock().expect("exited lock");
        children.retain_mut(|c| match c.try_wait() {
            Ok(Some(status)) => {
                exited.insert(c.id(), status.code());
                false
            }
            _ => true,
        });
    }

    fn reap_all(&self) {
        let mut children = self.children.lock().expect("children lock");
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        children.clear();
    }
}

/// The Lima home of the sandbox whose root is `root`.
fn lima_home_under(root: &Path) -> PathBuf {
    root.join("home").join(".lima")
}

/// The fakes' journal of the sandbox whose root is `root`.
fn journal_under(root: &Path) -> PathBuf {
    root.join("journal.jsonl")
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let leaks = self.cleanup();
        for (held, e) in crate::unremovable::undo_recorded(self.root()) {
            eprintln!(
                "sandbox {}: cannot let {} be removed again: {e}",
                self.id,
                held.display()
            );
        }
        crate::runs::unregister(&self.id);
        if !leaks.is_clean() {
            eprintln!(
                "sandbox {}: cleaned up after the scenario: {leaks}",
                self.id
            );
        }
    }
}

/// A new root directory in `spec.parent` (default: the temporary
/// directory), marked with this run.
fn make_root(spec: &SandboxBuilder) -> Result<tempfile::TempDir, HarnessError> {
    let parent = spec.parent.clone().unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix(&spec.prefix)
        .tempdir_in(&parent)
        .map_err(HarnessError::io(format!(
            "creating the sandbox root in {}",
            parent.display()
        )))?;
    crate::runs::mark_dir(root.path())
        .map_err(HarnessError::io("marking the sandbox root with its run"))?;
    Ok(root)
}

/// A directory of its own for the tool shims when `root/bin` cannot go on
/// PATH; `None` when it can.
fn make_shim_dir(root: &Path) -> Result<Option<tempfile::TempDir>, HarnessError> {
    // A PATH entry cannot hold the list separator (`:` on Unix, `;` on
    // Windows): under such a root, the shims go to a plain directory.
    // (Windows can quote such an entry, but not every program that
    // reads PATH unquotes it.)
    let separator = if cfg!(windows) { ';' } else { ':' };
    let bin = root.join("bin");
    if std::env::join_paths([&bin]).is_ok() && !bin.to_string_lossy().contains(separator) {
        return Ok(None);
    }
    let shims = tempfile::Builder::new()
        .prefix("limavm-bin-")
        .tempdir()
        .map_err(HarnessError::io("creating the shim directory"))?;
    if std::env::join_paths([shims.path()]).is_err()
        || shims.path().to_string_lossy().contains(separator)
    {
        return Err(HarnessError::Setup(format!(
            "the temporary directory {} holds the PATH list separator {:?}: \
             the tool shims cannot go on PATH (set TMPDIR to a directory without it)",
            std::env::temp_dir().display(),
            separator
        )));
    }
    crate::runs::mark_dir(shims.path())
        .map_err(HarnessError::io("marking the shim directory with its run"))?;
    Ok(Some(shims))
}

/// Installs `target` under `link`: a symlink on Unix (argv[0] keeps the
/// link's name), a hard link to the target or to one staged copy per
/// directory on Windows (see [`fakes::install`]).
fn link_executable(target: &Path, link: &Path) -> Result<(), HarnessError> {
    let what = format!("installing {} as {}", target.display(), link.display());
    contract::install::install_executable(target, link).map_err(HarnessError::io(what))
}
