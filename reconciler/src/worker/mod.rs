//! One worker thread per LimaVM. It receives the latest version of its
//! resource from the service loop and drives its instance toward it; a
//! worker stuck on its VM (a hung `wsl.exe`, a long graceful wait) delays
//! no other VM and not the service loop.
//!
//! The folder owns the per-VM loop: the pure decisions (`decision`), which
//! resource names can be instance names (`names`) and the operator event
//! log (`event_log`).

use crate::lifecycle::deletion::{DeleteFailure, backoff_delay, budget_spent, delete_instance};
use crate::lifecycle::disk_locks::release_stale_marks;
use crate::lifecycle::forced_stop::force;
use crate::lifecycle::hostagent::{self, EventTail, Hostagent, StartError};
use crate::lifecycle::identity::{Identity, driver_identity};
use crate::lifecycle::instance::inspect;
use crate::lifecycle::orphan;
use crate::lifecycle::stop::{StopPath, Target, stop_instance};
use crate::lifecycle::stop_settings::StopSettings;
use crate::logging::{Shown, ShownPath};
use crate::regression::Regression;
use crate::settings::{Settings, format_duration};
use crate::store::Store;
use crate::store::resource::{
    CLEANUP_FINALIZER, CONDITION_CLEANUP, CONDITION_RUNNING, LimaVm, Status, reason,
    rfc3339_millis, time_until,
};
use crate::template::{TemplateError, render_lima_yaml};
use event_log::RecordedEvent;
use lima_layout::paths::read_pid_file;
use lima_layout::{InstancePaths, VmType};
use names::{InvalidName, validate_instance_name};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

mod decision;
pub(crate) mod event_log;
pub(crate) mod names;

use decision::{
    Action, AfterExit, Observation, Progress, Reported, Template, after_exit, decide, running_news,
};

/// The longest wait between retries of a start that keeps failing.
const MAX_START_BACKOFF: Duration = Duration::from_secs(60);
/// How long a force-killed hostagent gets to be reaped during deletion.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often, at most, a WSL2 distro's state is asked for: ten polls,
/// within 100 ms to 2 s (each ask is a `wsl.exe` process).
fn distro_watch_interval(poll_interval: Duration) -> Duration {
    (poll_interval * 10).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

/// What every worker shares with the service loop.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    /// The stop steps' part of `settings`, built once.
    stop: StopSettings,
    pub(crate) store: Store,
    shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn new(settings: Settings, store: Store) -> Self {
        Self {
            stop: StopSettings::new(&settings),
            settings,
            store,
            shutting_down: AtomicBool::new(false),
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutting_down
    }
}

pub(crate) enum Message {
    Update(Box<LimaVm>),
    /// The document is no longer in the store.
    Gone,
}

pub(crate) struct WorkerHandle {
    pub(crate) inbox: Sender<Message>,
    pub(crate) thread: JoinHandle<()>,
}

pub(crate) fn spawn(shared: Arc<Shared>, name: String) -> std::io::Result<WorkerHandle> {
    let (inbox, messages) = channel();
    let thread_name = format!("vm {name}");
    let worker = Worker::new(shared, name, messages);
    let thread = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || worker.run())?;
    Ok(WorkerHandle { inbox, thread })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Finished,
}

struct Worker {
    name: String,
    shared: Arc<Shared>,
    messages: Receiver<Message>,
    tick: Duration,
    latest: Option<LimaVm>,
    gone: bool,
    first_sight_done: bool,
    hostagent: Option<Hostagent>,
    progress: Progress,
}

impl Worker {
    fn new(shared: Arc<Shared>, name: String, messages: Receiver<Message>) -> Self {
        let tick = shared
            .settings
            .poll_interval
            .clamp(Duration::from_millis(5), Duration::from_millis(100));
        Self {
            name,
            shared,
            messages,
            tick,
            latest: None,
            gone: false,
            first_sight_done: false,
            hostagent: None,
            progress: Progress::default(),
        }
    }

    fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    fn run(mut self) {
        // Everything this thread logs is about this VM.
        let _vm = crate::logging::enter_instance(&self.name);
        loop {
            let inbox_open = self.receive();
            if self.shared.is_shutting_down() || !inbox_open {
                self.shut_down();
                return;
            }
            if self.gone {
                self.resource_removed();
                return;
            }
            let Some(vm) = self.latest.clone() else {
                continue;
            };
            if self.reconcile(&vm) == Flow::Finished {
                return;
            }
        }
    }

    /// Waits up to one tick for news and keeps only the latest; `false`
    /// when the service loop is gone.
    fn receive(&mut self) -> bool {
        let first = match self.messages.recv_timeout(self.tick) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return false,
        };
        for message in first.into_iter().chain(self.messages.try_iter()) {
            match message {
                Message::Update(vm) => {
                    self.latest = Some(*vm);
                    self.gone = false;
                }
                Message::Gone => self.gone = true,
            }
        }
        true
    }

    /// One pass: observe, decide, act.
    fn reconcile(&mut self, vm: &LimaVm) -> Flow {
        let home = &self.settings().lima_home;
        let strict = !self.settings().is_on(Regression::InvalidLimaName);
        let name_valid = validate_instance_name(home, &self.name, strict);
        // Cleaning up needs only a path that stays in LIMA_HOME: an
        // instance a less strict version left under a name Lima refuses
        // is still recovered and deleted.
        let path_in_home =
            name_valid.is_ok() || validate_instance_name(home, &self.name, false).is_ok();
        if !self.first_sight_done {
            self.first_sight_done = true;
            self.first_sight(vm, path_in_home);
        }
        if !vm.is_being_deleted() && name_valid.is_ok() {
            // News of the hostagent and its driver comes first: an exit
            // changes the phase this pass decides in.
            self.watch_hostagent(vm);
        }
        let rendered = (vm.spec.running && !vm.is_being_deleted() && name_valid.is_ok())
            .then(|| render_lima_yaml(&vm.spec, strict));
        let template = rendered.as_ref().map(|rendered| match rendered {
            Err(_) => Template::Invalid,
            Ok(text) => Template::Valid {
                as_running: self.hostagent.as_ref().is_some_and(|agent| {
                    agent.config_text == *text
                        && agent.restart_request.as_deref() == vm.restart_request()
                }),
            },
        });
        let seen = Observation {
            now: Instant::now(),
            generation: vm.metadata.generation,
            being_deleted: vm.is_being_deleted(),
            has_cleanup_finalizer: vm.has_finalizer(CLEANUP_FINALIZER),
            name_valid: name_valid.is_ok(),
            path_in_home,
            wants_running: vm.spec.running,
            template,
        };
        let phase = self.progress.phase(self.hostagent.is_some());
        let action = decide(phase, &self.progress, &seen);
        self.act(action, vm, name_valid.err(), rendered)
    }

    /// Carries out `action` for `vm`; `invalid_name` and `rendered` are
    /// what the pass observed.
    fn act(
        &mut self,
        action: Action,
        vm: &LimaVm,
        invalid_name: Option<InvalidName>,
        rendered: Option<Result<String, TemplateError>>,
    ) -> Flow {
        let generation = vm.metadata.generation;
        // Nothing is to start while the VM is deleted or is to stay stopped.
        if vm.is_being_deleted() {
            self.progress.start_not_before = None;
        } else if !vm.spec.running && invalid_name.is_none() {
            self.progress.start_not_before = None;
            self.progress.start_failures = 0;
        }
        match action {
            Action::Wait | Action::AwaitDeleteRetry => {}
            Action::ReleaseFinalizer { force_down } => {
                if force_down {
                    self.force_down_for_deletion(vm);
                }
                return self.release_finalizer();
            }
            Action::Delete => return self.delete(vm),
            Action::ReportInvalidName => {
                if let Some(invalid) = invalid_name {
                    self.report_invalid_name(generation, &invalid);
                }
            }
            Action::ReportInvalidTemplate => {
                self.progress.acted_generation = Some(generation);
                if let Some(Err(e)) = rendered {
                    let message = contract::error_chain::chain(&e);
                    self.report_running(generation, false, reason::START_FAILED, &message);
                }
            }
            Action::Start { retrying } => {
                if let Some(Ok(config_text)) = rendered {
                    self.start(vm, config_text, retrying);
                }
            }
            Action::Restart => {
                if let Some(Ok(config_text)) = rendered {
                    self.restart(vm, config_text);
                }
            }
            Action::RecordGeneration => {
                self.progress.acted_generation = Some(generation);
                self.write_status(|status| status.observed_generation = generation);
            }
            Action::Stop => self.stop(vm),
            Action::ReportStopped => {
                self.progress.acted_generation = Some(generation);
                self.report_running(generation, false, reason::STOPPED, "not running");
            }
        }
        Flow::Continue
    }

    /// Orphan recovery, and picking up a deletion backoff where a previous
    /// service left it.
    fn first_sight(&mut self, vm: &LimaVm, name_ok: bool) {
        if vm.is_being_deleted() {
            let wait = vm
                .status
                .deletion
                .next_retry
                .as_deref()
                .and_then(time_until);
            self.progress.delete_not_before = wait.map(|w| Instant::now() + w);
            return;
        }
        if name_ok {
            orphan::recover(&self.shared.stop, &self.name, vm.spec.vm_type);
        }
    }

    fn report_invalid_name(&mut self, generation: u64, invalid: &InvalidName) {
        let message = contract::error_chain::chain(invalid);
        tracing::error!(error = message.as_str(), "invalid instance name");
        self.report_running(generation, false, reason::INVALID_NAME, &message);
        self.progress.acted_generation = Some(generation);
    }

    /// Follows the hostagent's events and notices an exit nobody asked for.
    fn watch_hostagent(&mut self, vm: &LimaVm) {
        let report_degraded = !self.shared.settings.is_on(Regression::DegradedNotReported);
        let Some(agent) = self.hostagent.as_mut() else {
            return;
        };
        let news = read_running_news(agent, report_degraded);
        let (exit, pid, ran) = (agent.exited(), agent.pid(), agent.running_reported);
        if let Some(news) = news {
            self.report_running_news(pid, &news);
        }
        match exit {
            Some(exit) => self.after_unexpected_exit(vm, pid, exit, ran),
            None => self.watch_driver(vm),
        }
    }

    /// Writes what the hostagent's events said about the VM running.
    fn report_running_news(&mut self, pid: u32, news: &RunningNews) {
        if news.first {
            self.progress.start_failures = 0;
        }
        if news.reason == reason::DEGRADED {
            tracing::warn!(
                pid,
                message = news.message.as_str(),
                "the VM is running degraded"
            );
        } else {
            tracing::info!(pid, "the VM is running");
        }
        self.write_status(|status| {
            status.set_condition(CONDITION_RUNNING, true, news.reason, &news.message)
        });
    }

    /// Cleans up after a hostagent that exited on its own, then reports the
    /// VM stopped, the start failed, or a restart after the backoff.
    fn after_unexpected_exit(&mut self, vm: &LimaVm, pid: u32, exit: ExitStatus, ran: bool) {
        self.hostagent = None;
        tracing::warn!(
            pid,
            status = %exit,
            "the hostagent exited unexpectedly; cleaning up after it"
        );
        let instance = inspect(&self.settings().lima_home, &self.name, vm.spec.vm_type);
        force(&self.shared.stop.forced, &instance);
        let fixed_backoff = self.settings().is_on(Regression::CrashLoopFixedBackoff);
        match after_exit(vm.spec.running, ran, fixed_backoff) {
            AfterExit::ReportStopped => {
                let message = format!("the hostagent (pid {pid}) exited ({exit})");
                self.write_status(|status| {
                    status.set_condition(CONDITION_RUNNING, false, reason::STOPPED, &message)
                });
            }
            AfterExit::StartFailed => {
                let last_line = hostagent::last_stderr_line(&instance.paths);
                self.start_failed(&StartError::DiedBeforeRunning {
                    pid,
                    status: exit.to_string(),
                    last_line,
                });
                self.write_status(|status| status.restart_count += 1);
            }
            AfterExit::Restart { with_last_line } => {
                let last_line = hostagent::last_stderr_line(&instance.paths);
                let said = match &last_line {
                    Some(line) if with_last_line => format!("; last stderr line: {line}"),
                    _ => String::new(),
                };
                self.schedule_restart(pid, exit, &said);
            }
        }
    }

    /// Reports a restart of the hostagent after the restart backoff; `said`
    /// ends the message (the last stderr line, or nothing).
    fn schedule_restart(&mut self, pid: u32, exit: ExitStatus, said: &str) {
        let delay = self.settings().restart_backoff;
        self.progress.start_not_before = Some(Instant::now() + delay);
        let message = format!(
            "the hostagent (pid {pid}) exited unexpectedly ({exit}){said}; restarting in {}",
            format_duration(delay)
        );
        self.write_status(|status| {
            status.restart_count += 1;
            status.set_condition(CONDITION_RUNNING, false, reason::STARTING, &message);
        });
    }

    /// A driver that ended while its hostagent runs (QEMU killed, the
    /// guest powered off) leaves a VM that is not running whatever the
    /// hostagent says: Lima calls it Broken. It is stopped and restarted.
    fn watch_driver(&mut self, vm: &LimaVm) {
        if vm.spec.vm_type == VmType::Wsl2 {
            return self.watch_distro(vm);
        }
        if self.settings().is_on(Regression::DriverDeathUnnoticed) {
            return;
        }
        let Some(agent) = self.hostagent.as_mut() else {
            return;
        };
        if !agent.running_reported {
            return;
        }
        let driver = match agent.driver {
            Some(driver) if proctree::is_alive(driver) => return,
            Some(driver) => driver,
            None => {
                // Read once the VM ran; a driver with no pid file (an
                // in-process one) cannot be watched this way.
                let instance =
                    inspect(&self.shared.settings.lima_home, &self.name, vm.spec.vm_type);
                let Some(pid) = instance.driver_pid else {
                    return;
                };
                match driver_identity(pid, &instance.paths.dir, false) {
                    Identity::Ours => {
                        agent.driver = Some(pid);
                        return;
                    }
                    // It ended before it was first looked at.
                    Identity::Gone => pid,
                    Identity::Foreign { .. } => return,
                }
            }
        };
        let message = format!(
            "the driver (pid {driver}) exited while the hostagent (pid {}) runs",
            agent.pid()
        );
        self.driver_ended(vm, message);
    }

    /// A WSL2 distro has no driver pid: `wsl.exe --list --quiet --running`
    /// (bounded, every [`distro_watch_interval`]) says whether it still
    /// runs. Lima's own keep-alive reports only a `wsl.exe -d` that exits
    /// with an error, so a distro stopped from outside (`wsl.exe
    /// --shutdown`, `--terminate`) may leave its hostagent up.
    fn watch_distro(&mut self, vm: &LimaVm) {
        if self.settings().is_on(Regression::DistroStopUnnoticed) {
            return;
        }
        let interval = distro_watch_interval(self.settings().poll_interval);
        let Some(agent) = self.hostagent.as_mut() else {
            return;
        };
        if !agent.running_reported
            || agent
                .driver_checked
                .is_some_and(|at| at.elapsed() < interval)
        {
            return;
        }
        agent.driver_checked = Some(Instant::now());
        let pid = agent.pid();
        let settings = &self.shared.settings;
        let distro = settings.lima_home.instance(&self.name).wsl_distro();
        let timeout = settings.wsl_bound(settings.wsl_timeout);
        match crate::lifecycle::wsl::is_running(&settings.tools.wsl, &distro, timeout) {
            Ok(true) => {}
            Ok(false) => {
                let message = format!(
                    "the WSL2 distro {distro} stopped while the hostagent (pid {pid}) runs"
                );
                self.driver_ended(vm, message);
            }
            // Not knowing is no reason to restart a VM.
            Err(e) => tracing::warn!(
                error = contract::error_chain::chain(&e).as_str(),
                "cannot tell whether the WSL2 distro still runs"
            ),
        }
    }

    /// The VM's driver ended under a live hostagent (`message` says
    /// which): the VM is broken, so it is stopped and restarted.
    fn driver_ended(&mut self, vm: &LimaVm, message: String) {
        let Some(agent) = self.hostagent.as_ref() else {
            return;
        };
        let pid = agent.pid();
        tracing::warn!(
            pid,
            cause = message.as_str(),
            "the driver ended while the hostagent runs; the VM is broken: restarting it"
        );
        self.write_status(|status| {
            status.set_condition(CONDITION_RUNNING, false, reason::BROKEN, &message)
        });
        if !self.stop_own_hostagent(vm, StopPath::Restart) {
            return;
        }
        let delay = self.settings().restart_backoff;
        self.progress.start_not_before = Some(Instant::now() + delay);
        let message = format!("{message}; restarting in {}", format_duration(delay));
        self.write_status(|status| {
            status.restart_count += 1;
            status.set_condition(CONDITION_RUNNING, false, reason::BROKEN, &message);
        });
    }

    /// Stops the hostagent whose template changed, or whose restart was
    /// requested, and starts one with `config_text`; a hostagent that
    /// survives the stop is kept, and the restart tried again on the next
    /// pass.
    fn restart(&mut self, vm: &LimaVm, config_text: String) {
        let generation = vm.metadata.generation;
        let why = match self.hostagent.as_ref() {
            Some(agent) if agent.config_text == config_text => "a restart was requested",
            _ => "the template changed",
        };
        tracing::info!(why, "restarting the VM");
        self.report_running(
            generation,
            false,
            reason::STOPPING,
            &format!("{why}; restarting"),
        );
        if !self.stop_own_hostagent(vm, StopPath::Restart) {
            return;
        }
        let retrying = self.progress.is_retry(generation);
        self.start(vm, config_text, retrying);
    }

    /// Starts a hostagent with `config_text`; `retrying` after failed
    /// starts of this generation (the failure then stays the status).
    fn start(&mut self, vm: &LimaVm, config_text: String, retrying: bool) {
        let generation = vm.metadata.generation;
        self.progress.acted_generation = Some(generation);
        self.progress.start_not_before = None;
        if !retrying {
            self.report_running(
                generation,
                false,
                reason::STARTING,
                "starting the hostagent",
            );
        }
        match self.try_start(vm, config_text) {
            Ok(agent) => {
                let message = format!(
                    "hostagent pid {} started; waiting for the VM to boot",
                    agent.pid()
                );
                tracing::info!(pid = agent.pid(), "hostagent started");
                self.hostagent = Some(agent);
                if retrying && !self.settings().is_on(Regression::CrashLoopFixedBackoff) {
                    // The last failure stays the status until the VM runs.
                    return;
                }
                self.write_status(|status| {
                    status.set_condition(CONDITION_RUNNING, false, reason::STARTING, &message)
                });
            }
            Err(StartError::ShuttingDown | StartError::ResourceGone) => {}
            Err(e) => self.start_failed(&e),
        }
    }

    fn try_start(&mut self, vm: &LimaVm, config_text: String) -> Result<Hostagent, StartError> {
        let settings = self.shared.settings.clone();
        let paths = settings.lima_home.instance(&self.name);
        self.prepare_start(&settings, &paths, vm.spec.vm_type, &config_text)?;
        let previous_pid = read_pid_file(&paths.ha_pid());
        let mut child = hostagent::spawn(&settings, &paths)?;
        let shutting_down = match hostagent::wait_for_pid_file(
            &mut child,
            &paths,
            previous_pid,
            settings.start_timeout,
            self.shared.shutdown_flag(),
        ) {
            Ok(_) => false,
            Err(StartError::ShuttingDown) => true,
            Err(e) => {
                self.abandon_start(vm.spec.vm_type, &mut child);
                return Err(e);
            }
        };
        let agent = Hostagent {
            child,
            config_text,
            restart_request: vm.restart_request().map(str::to_owned),
            events: EventTail::new(paths.ha_stdout_log()),
            running_reported: false,
            degraded: false,
            driver: None,
            driver_checked: None,
        };
        if shutting_down {
            // The shutdown stops it like any other running hostagent.
            self.hostagent = Some(agent);
            return Err(StartError::ShuttingDown);
        }
        Ok(agent)
    }

    /// Everything before the hostagent is spawned: the cleanup finalizer,
    /// the instance directory, the private key's mode, `lima.yaml` and the
    /// in-use marks a crash left on the instance's disks.
    fn prepare_start(
        &self,
        settings: &Settings,
        paths: &InstancePaths,
        vm_type: VmType,
        config_text: &str,
    ) -> Result<(), StartError> {
        let prepare = |path: std::path::PathBuf| move |source| StartError::Prepare { path, source };
        match self.store().add_finalizer(&self.name, CLEANUP_FINALIZER) {
            Ok(true) => {}
            Ok(false) => return Err(StartError::ResourceGone),
            Err(e) => {
                return Err(StartError::Prepare {
                    path: self.store().path_of(&self.name),
                    source: std::io::Error::other(contract::error_chain::chain(&e)),
                });
            }
        }
        std::fs::create_dir_all(&paths.dir).map_err(prepare(paths.dir.clone()))?;
        if !settings.is_on(Regression::KeyModeUnrepaired) {
            // The key may have been loosened since the service checked it.
            let key = settings.lima_home.user_private_key();
            crate::lifecycle::keys::repair_private_key_mode(&key).map_err(|e| {
                prepare(key.clone())(std::io::Error::other(contract::error_chain::chain(&e)))
            })?;
        }
        crate::store::atomic_file::write(&paths.lima_yaml(), config_text.as_bytes())
            .map_err(prepare(paths.lima_yaml()))?;
        if !settings.is_on(Regression::ForeignDiskLock) {
            let disks = inspect(&settings.lima_home, &self.name, vm_type).disks;
            for mark in release_stale_marks(&settings.lima_home, paths, &disks)? {
                tracing::warn!(
                    disk = %Shown(&mark.disk),
                    holder = %ShownPath(&mark.holder),
                    "removed the in-use mark of an instance that no longer runs (left by a crash)"
                );
            }
        }
        Ok(())
    }

    /// Stops what a start that failed after the spawn left running: the
    /// child through the stop path if it still runs, else whatever its pid
    /// files name.
    fn abandon_start(&self, vm_type: VmType, child: &mut std::process::Child) {
        if matches!(child.try_wait(), Ok(None)) {
            stop_instance(
                &self.shared.stop,
                &self.name,
                vm_type,
                Target::Child(child),
                StopPath::StartFailed,
            );
        } else {
            let instance = inspect(self.shared.stop.lima_home(), &self.name, vm_type);
            force(&self.shared.stop.forced, &instance);
        }
    }

    fn start_failed(&mut self, error: &StartError) {
        self.progress.start_failures += 1;
        let delay = backoff_delay(
            self.settings().restart_backoff,
            MAX_START_BACKOFF,
            self.progress.start_failures,
        );
        self.progress.start_not_before = Some(Instant::now() + delay);
        let message = format!(
            "{} (retrying in {})",
            contract::error_chain::ErrorChain(error),
            format_duration(delay)
        );
        tracing::error!(
            error = contract::error_chain::chain(error).as_str(),
            retry_in = %format_duration(delay),
            "the VM did not start"
        );
        self.write_status(|status| {
            status.set_condition(CONDITION_RUNNING, false, reason::START_FAILED, &message)
        });
    }

    /// Stops our hostagent because the spec asks for no running VM.
    fn stop(&mut self, vm: &LimaVm) {
        let generation = vm.metadata.generation;
        self.progress.acted_generation = Some(generation);
        self.report_running(
            generation,
            false,
            reason::STOPPING,
            "stopping the hostagent",
        );
        if self.stop_own_hostagent(vm, StopPath::RunningFalse) {
            self.write_status(|status| {
                status.set_condition(CONDITION_RUNNING, false, reason::STOPPED, "stopped")
            });
        }
    }

    /// Stops the hostagent this worker started; `false` when it survived
    /// (it is kept, and the stop is tried again on the next pass).
    fn stop_own_hostagent(&mut self, vm: &LimaVm, path: StopPath) -> bool {
        let Some(mut agent) = self.hostagent.take() else {
            return true;
        };
        let outcome = stop_instance(
            &self.shared.stop,
            &self.name,
            vm.spec.vm_type,
            Target::Child(&mut agent.child),
            path,
        );
        if !outcome.exited {
            self.hostagent = Some(agent);
            return false;
        }
        true
    }

    /// Forces the instance down, deletes it, and drops the finalizer (or
    /// records the failure and backs off).
    fn delete(&mut self, vm: &LimaVm) -> Flow {
        tracing::info!(
            attempt = vm.status.deletion.attempts + 1,
            "deleting the instance"
        );
        let (instance, report) = self.force_down_for_deletion(vm);
        match delete_instance(self.settings(), &instance, &report) {
            Ok(()) => {
                tracing::info!("deleted the instance");
                self.release_finalizer()
            }
            Err(failure) => self.delete_failed(failure),
        }
    }

    /// Deletion forces the instance down directly, after reading it again.
    fn force_down_for_deletion(
        &mut self,
        vm: &LimaVm,
    ) -> (
        crate::lifecycle::instance::Instance,
        crate::lifecycle::forced_stop::ForcedStopReport,
    ) {
        let mut instance = inspect(&self.settings().lima_home, &self.name, vm.spec.vm_type);
        if let Some(agent) = &self.hostagent {
            instance.hostagent_pid = Some(agent.pid());
        }
        let report = force(&self.shared.stop.forced, &instance);
        if let Some(mut agent) = self.hostagent.take() {
            let deadline = Instant::now() + REAP_TIMEOUT;
            while matches!(agent.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(agent.child.try_wait(), Ok(None)) {
                self.hostagent = Some(agent);
            }
        }
        (instance, report)
    }

    fn delete_failed(&mut self, failure: DeleteFailure) -> Flow {
        if self
            .settings()
            .is_on(Regression::FinalizerAfterFailedDelete)
        {
            tracing::error!(
                error = failure.error.as_str(),
                "failed to delete the instance (proceeding with finalizer removal)"
            );
            return self.release_finalizer();
        }
        let settings = self.shared.settings.clone();
        let mut retry = DeleteRetry::default();
        self.write_status(|status| retry = record_delete_failure(status, &settings, &failure));
        if !retry.spent {
            tracing::warn!(
                attempt = retry.attempts,
                error = failure.error.as_str(),
                retry_in = %format_duration(retry.delay),
                "deleting the instance failed; keeping the finalizer and retrying"
            );
            self.progress.delete_not_before = Some(Instant::now() + retry.delay);
            return Flow::Continue;
        }
        self.give_up_deletion(&settings, retry.attempts, failure)
    }

    /// The delete retry budget is spent: records the abandoned deletion in
    /// the event log and lets the resource go with what is left behind.
    fn give_up_deletion(
        &mut self,
        settings: &Settings,
        attempts: u32,
        failure: DeleteFailure,
    ) -> Flow {
        tracing::error!(
            attempts,
            error = failure.error.as_str(),
            left_behind = failure.left_behind.join(", ").as_str(),
            "the delete retry budget is spent; removing the finalizer and leaving resources behind"
        );
        let event = RecordedEvent::delete_retry_budget_spent(
            &self.name,
            attempts,
            &failure.error,
            failure.left_behind,
        );
        if let Err(e) = event_log::append(&settings.events_file(), &event) {
            tracing::error!(
                file = %ShownPath(&settings.events_file()),
                error = contract::error_chain::chain(&e).as_str(),
                "cannot record the abandoned deletion"
            );
        }
        self.release_finalizer()
    }

    fn release_finalizer(&mut self) -> Flow {
        match self.store().remove_finalizer(&self.name, CLEANUP_FINALIZER) {
            Ok(true) => Flow::Finished,
            // Other finalizers still hold the document; nothing left for us.
            Ok(false) => Flow::Continue,
            Err(e) => {
                tracing::error!(
                    error = contract::error_chain::chain(&e).as_str(),
                    "cannot remove the finalizer"
                );
                Flow::Continue
            }
        }
    }

    fn shut_down(&mut self) {
        let Some(vm) = self.latest.clone() else {
            return;
        };
        if self.hostagent.is_none() {
            return;
        }
        if self.stop_own_hostagent(&vm, StopPath::ServiceShutdown) {
            self.write_status(|status| {
                status.set_condition(
                    CONDITION_RUNNING,
                    false,
                    reason::STOPPED,
                    "stopped because the reconciler service shut down",
                )
            });
        }
    }

    fn resource_removed(&mut self) {
        if let Some(vm) = self.latest.clone() {
            tracing::warn!("the resource was removed while its VM ran; stopping it");
            self.stop_own_hostagent(&vm, StopPath::ResourceRemoved);
        }
    }

    /// Records the Running condition and that `generation` was acted on.
    fn report_running(&self, generation: u64, running: bool, reason: &str, message: &str) {
        self.write_status(|status| {
            status.observed_generation = generation;
            status.set_condition(CONDITION_RUNNING, running, reason, message);
        });
    }

    fn write_status(&self, change: impl FnOnce(&mut Status)) {
        if let Err(e) = self.store().update_status(&self.name, change) {
            tracing::error!(
                error = contract::error_chain::chain(&e).as_str(),
                "cannot write the status"
            );
        }
    }
}

/// What the hostagent's events said about the VM running: the condition's
/// reason and message, and whether this is the first report of this start.
struct RunningNews {
    first: bool,
    reason: &'static str,
    message: String,
}

/// Reads the hostagent's new events; returns the last change in running or
/// degraded they report (degraded is ignored when `report_degraded` is off)
/// and records it in `agent`.
fn read_running_news(agent: &mut Hostagent, report_degraded: bool) -> Option<RunningNews> {
    let mut news = None;
    for event in agent.events.poll() {
        let status = &event.status;
        let seen = Reported {
            running: status.running,
            degraded: status.degraded && report_degraded,
        };
        let before = Reported {
            running: agent.running_reported,
            degraded: agent.degraded,
        };
        if let Some(first) = running_news(before, seen) {
            agent.running_reported = true;
            agent.degraded = seen.degraded;
            news = Some(describe_running(first, seen.degraded, agent.pid(), status));
        }
        if status.exiting {
            tracing::info!("the hostagent announced it is exiting");
        }
    }
    news
}

/// The Running condition's reason and message for a hostagent status that
/// reports the VM running (degraded or not).
fn describe_running(
    first: bool,
    degraded: bool,
    pid: u32,
    status: &lima_layout::HostagentStatus,
) -> RunningNews {
    if degraded {
        let errors = if status.errors.is_empty() {
            "no error given".to_owned()
        } else {
            status.errors.join("; ")
        };
        let message = format!("the VM is running degraded (hostagent pid {pid}): {errors}");
        return RunningNews {
            first,
            reason: reason::DEGRADED,
            message,
        };
    }
    let message = format!(
        "the VM is running (hostagent pid {pid}, ssh port {})",
        status.ssh_local_port
    );
    RunningNews {
        first,
        reason: reason::STARTED,
        message,
    }
}

/// What a failed delete attempt leads to: the attempt's number, whether the
/// retry budget is spent, and otherwise the backoff before the next one.
#[derive(Default)]
struct DeleteRetry {
    attempts: u32,
    spent: bool,
    delay: Duration,
}

/// Counts a failed delete attempt in `status` and sets its Cleanup and
/// Running conditions: a retry after the backoff, or giving up once the
/// budget is spent.
fn record_delete_failure(
    status: &mut Status,
    settings: &Settings,
    failure: &DeleteFailure,
) -> DeleteRetry {
    let deletion = &mut status.deletion;
    deletion.attempts += 1;
    deletion.last_error = Some(failure.error.clone());
    let attempts = deletion.attempts;
    let spent = budget_spent(settings.delete_retry_budget, attempts);
    let mut delay = Duration::ZERO;
    if spent {
        deletion.next_retry = None;
        let message = format!(
            "gave up after {attempts} failed delete attempts: {}; left behind: {}",
            failure.error,
            failure.left_behind.join(", ")
        );
        status.set_condition(
            CONDITION_CLEANUP,
            false,
            reason::DELETE_RETRY_BUDGET_SPENT,
            &message,
        );
    } else {
        delay = backoff_delay(
            settings.delete_backoff,
            settings.delete_backoff_max,
            attempts,
        );
        deletion.next_retry = Some(rfc3339_millis(SystemTime::now() + delay));
        let message = format!(
            "delete attempt {attempts} failed: {}; retrying in {}",
            failure.error,
            format_duration(delay)
        );
        status.set_condition(CONDITION_CLEANUP, false, reason::DELETE_FAILED, &message);
    }
    status.set_condition(
        CONDITION_RUNNING,
        false,
        reason::STOPPED,
        "stopped for deletion",
    );
    DeleteRetry {
        attempts,
        spent,
        delay,
    }
}
