//! Invariants checked in every scenario, whatever the scenario asserts and
//! whatever the reconciler under test: the harness watches what each driver
//! call asks and what each read reports (a [`Witness`] per sandbox), and the
//! end-of-scenario leak report lists every invariant broken on the way
//! ([`crate::leaks::LeakReport::broken`]), so a fixed run, a cross-path case or a
//! property case fails with the invariant's message.
//!
//! - **Kept files**: the files of an instance that once ran (a read
//!   reported it Running) that are not tmp files (its `lima.yaml`, disk
//!   images, logs: [`is_kept_file`]) survive every stop; only a delete of
//!   the VM may remove them. (An instance that never ran may be cleared
//!   away by a reconciler that could not prepare it.)
//! - **Running is true**: a resource does not go on reporting Running=True
//!   for longer than [`NOTICE_BOUND`] after the hostagent that `ha.pid`
//!   names, or its QEMU driver, died.
//! - **Stopped is true**: when the resource reports Running=False
//!   reason=Stopped, no process of its instance (its hostagent, the driver,
//!   the forwarders, anything they started, as the fakes' journal names
//!   them) is alive.
//! - **Graceful first**: a hostagent that was alive when the harness asked
//!   for the stop and that was then killed (it never journaled its exit)
//!   must not be reported Stopped sooner than the graceful timeout after
//!   the request: nothing is forced before the graceful timeout.
//! - **Failures reflected**: a VM whose last `wsl.exe --unregister` failed
//!   (and whose retry budget is not spent) is not deleted while its WSL2
//!   distro is still registered: the failure keeps the resource. And a
//!   success is not reported as a failure: a resource with a False
//!   condition, or a line of the service's log (read at the scenario's
//!   end), that blames `wsl.exe --unregister` or `--terminate` of a distro
//!   (a failed delete, an incomplete forced stop) had at least one such
//!   call of that distro fail.
//! - **Retry budgets end, loudly**: a delete whose backend command keeps
//!   failing (`wsl.exe --unregister`, failed or killed) is tried at most
//!   the retry budget's number of times; a delete that gave up (its budget
//!   spent on failures, its distro still registered: a call killed at its
//!   timeout may have unregistered it all the same) says so, in the
//!   resource (`Cleanup` reason=`DeleteRetryBudgetSpent`) or in the
//!   service's log (a line naming the VM and its budget).
//!
//! - **Statuses settle**: once the harness has stopped asking, a VM's
//!   `Running` condition does not keep changing while no process of the
//!   sandbox starts or ends (an endless reconcile loop that flips it
//!   between two values): [`Witness::settle_reads`].
//!
//! The checks use what the fakes journal; with real tools (nothing
//! journaled) those that need the journal hold vacuously.

use crate::driver::VmView;
use crate::journal::Journal;
use contract::Tool;
use contract::condition::{kind, reason, status};
use contract::journal::{JournalEntry, Record, event};
use lima_layout::{LimaHome, is_tmp_file_name};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a reconciler may go on reporting Running=True after the
/// hostagent or its driver died (it notices by polling; generous for a
/// loaded machine).
pub const NOTICE_BOUND: Duration = Duration::from_secs(10);

/// True for a file of an instance directory that only a delete may
/// remove: `lima.yaml`, the disk images `basedisk` and `diffdisk`, the
/// cloud-init `cidata.iso`, and the hostagent's logs (`ha.stdout.log`,
/// `ha.stderr.log`): the names of Lima's `pkg/limayaml/filenames`. Tmp
/// files (`*.pid`, `*.sock`, `*.tmp`) are not, nor are the serial console
/// logs (`serial*.log`), which real Lima (v2.2.0, observed here) removes
/// itself when it starts the VM again.
pub fn is_kept_file(name: &str) -> bool {
    !is_tmp_file_name(name)
        && !name.starts_with('.')
        && (matches!(name, "lima.yaml" | "basedisk" | "diffdisk" | "cidata.iso")
            || (name.ends_with(".log") && !name.starts_with("serial")))
}

/// One invariant of the list above: its stable ID names it in reports (an
/// audit gives each a row of its own, beside the findings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    KeptFiles,
    RunningIsTrue,
    StoppedIsTrue,
    GracefulFirst,
    FailuresReflected,
    RetryBudgetsEndLoudly,
    StatusesSettle,
}

impl Invariant {
    /// Every invariant, in the order of the list above.
    pub const ALL: &'static [Invariant] = &[
        Invariant::KeptFiles,
        Invariant::RunningIsTrue,
        Invariant::StoppedIsTrue,
        Invariant::GracefulFirst,
        Invariant::FailuresReflected,
        Invariant::RetryBudgetsEndLoudly,
        Invariant::StatusesSettle,
    ];

    /// The stable ID (`stopped-is-true`), as reports name it.
    pub const fn id(self) -> &'static str {
        match self {
            Invariant::KeptFiles => "kept-files",
            Invariant::RunningIsTrue => "running-is-true",
            Invariant::StoppedIsTrue => "stopped-is-true",
            Invariant::GracefulFirst => "graceful-first",
            Invariant::FailuresReflected => "failures-reflected",
            Invariant::RetryBudgetsEndLoudly => "retry-budgets-end-loudly",
            Invariant::StatusesSettle => "statuses-settle",
        }
    }

    /// The invariant whose ID is `id`.
    pub fn find(id: &str) -> Option<Invariant> {
        Self::ALL.iter().copied().find(|i| i.id() == id)
    }
}

/// One break of an invariant: which, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub invariant: Invariant,
    /// Starts with the invariant's name in words (`Stopped is true: VM vm
    /// was reported Stopped while ...`).
    pub message: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the harness asked and saw in one sandbox, and the invariants broken
/// so far. Shared by every driver of the sandbox.
#[derive(Debug)]
pub struct Witness {
    lima_home: LimaHome,
    journal: Journal,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per instance name, every kept file seen in its directory.
    kept: BTreeMap<String, BTreeSet<String>>,
    /// Instances whose VM the harness asked to delete.
    deleted: BTreeSet<String>,
    /// Stops asked and not yet seen through.
    stopping: BTreeMap<String, StopRequest>,
    /// Deleted instances whose disappearance was judged.
    gone: BTreeSet<String>,
    /// Instances whose last read said Stopped (checked once per report).
    reported_stopped: BTreeSet<String>,
    /// Per instance reported Running, the dead process it runs on (what,
    /// pid) and when a read first showed it so (ms).
    running_on_dead: BTreeMap<String, (&'static str, u32, u64)>,
    /// Instances a read showed Cleanup reason=DeleteRetryBudgetSpent.
    reported_gave_up: BTreeSet<String>,
    /// Retry budget of deletes (0: unlimited), as the run's settings say.
    delete_retry_budget: u32,
    /// Instances a read once reported Running=True: only their kept files
    /// are held to (a reconciler may clear away an instance it could not
    /// prepare).
    ever_running: BTreeSet<String>,
    /// Per instance, whether its last read reported it other than Stopped
    /// (gone instances are not here).
    not_stopped: BTreeSet<String>,
    /// The instances not reported Stopped when the service's last
    /// shutdown began: what that shutdown had to stop.
    owned_by_shutdown: Vec<String>,
    /// Defects that checks beyond a scenario's own found ([`Witness::found`]).
    found: Vec<crate::defects::Seen>,
    broken: Vec<Broken>,
}

#[derive(Debug, Clone, Copy)]
struct StopRequest {
    /// When it was asked (ms since the Unix epoch, before the call).
    asked_ms: u64,
    /// The hostagent alive then, a fake the journal knows.
    hostagent: u32,
    graceful: Duration,
}

/// Milliseconds since the Unix epoch, the journal's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl Witness {
    pub fn new(lima_home: LimaHome, journal: Journal) -> Self {
        Self {
            lima_home,
            journal,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn breaks(&self, invariant: Invariant, message: String) {
        let mut state = self.state();
        if !state.broken.iter().any(|b| b.message == message) {
            state.broken.push(Broken { invariant, message });
        }
    }

    /// A check beyond the scenario's own found `defect`: the run reports
    /// it under that defect's name, apart from its own verdict.
    pub fn found(&self, defect: crate::defects::Defect, message: String) {
        let mut state = self.state();
        if !state
            .found
            .iter()
            .any(|s| s.defect == defect && s.message == message)
        {
            state.found.push(crate::defects::Seen { defect, message });
        }
    }

    /// Every defect found by checks beyond the scenario's own, in order.
    pub fn found_defects(&self) -> Vec<crate::defects::Seen> {
        self.state().found.clone()
    }

    /// The service is about to be shut down: the instances its last reads
    /// did not report Stopped are that shutdown's to stop.
    pub fn shutdown_begins(&self) {
        let mut state = self.state();
        state.owned_by_shutdown = state.not_stopped.iter().cloned().collect();
    }

    /// The service was killed: no shutdown of its own stops anything, and
    /// what outlives it is the scenario's.
    pub fn service_crashed(&self) {
        self.state().owned_by_shutdown.clear();
    }

    /// Every VM the harness asked for or read, by name: the instances
    /// whose leftovers are the reconciler's (a scenario may plant others).
    pub fn instances_seen(&self) -> BTreeSet<String> {
        let state = self.state();
        state
            .not_stopped
            .iter()
            .chain(&state.reported_stopped)
            .chain(&state.deleted)
            .chain(&state.ever_running)
            .chain(state.stopping.keys())
            .cloned()
            .collect()
    }

    /// The VMs to watch settle: every one read at least once and not
    /// deleted, by name.
    pub fn settling_candidates(&self) -> Vec<String> {
        let state = self.state();
        state
            .not_stopped
            .iter()
            .chain(&state.reported_stopped)
            .filter(|name| !state.deleted.contains(*name))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// VM `name` was read as `reads` within `window`, nothing asked of it:
    /// a `Running` condition that changed [`QUIET_CHANGES`] times or more
    /// while no process of the sandbox started or ended never settles.
    pub fn settle_reads(&self, name: &str, reads: &[SettleRead], window: Duration) {
        let quiet = quiet_changes(reads);
        if quiet.len() < QUIET_CHANGES {
            return;
        }
        let path: Vec<String> = std::iter::once(quiet[0].0)
            .chain(quiet.iter().map(|(_, to)| *to))
            .map(condition_text)
            .collect();
        self.breaks(
            Invariant::StatusesSettle,
            format!(
                "statuses settle: VM {name}'s Running condition changed {} times in {} reads \
                 over {window:?} while the harness asked nothing and no process started or \
                 ended ({}): it never settles",
                quiet.len(),
                reads.len(),
                path.join(" -> ")
            ),
        );
    }

    /// The instances the service's last shutdown had to stop (reported
    /// other than Stopped when it began), by name.
    pub fn owned_by_shutdown(&self) -> Vec<String> {
        self.state().owned_by_shutdown.clone()
    }

    /// The retry budget of deletes for this run (0: unlimited).
    pub fn set_delete_retry_budget(&self, budget: u32) {
        self.state().delete_retry_budget = budget;
    }

    /// The harness is about to ask for VM `name` to stop, with this
    /// graceful timeout.
    pub fn stop_asked(&self, name: &str, graceful: Duration) {
        let asked_ms = now_ms();
        let instance = self.lima_home.instance(name);
        let hostagent = lima_layout::paths::read_pid_file(&instance.ha_pid())
            .filter(|pid| proctree::is_alive(*pid))
            .filter(|pid| is_fake_hostagent(&self.journal.entries(), *pid));
        let mut state = self.state();
        match hostagent {
            Some(hostagent) => {
                state.stopping.insert(
                    name.to_owned(),
                    StopRequest {
                        asked_ms,
                        hostagent,
                        graceful,
                    },
                );
            }
            None => {
                state.stopping.remove(name);
            }
        }
    }

    /// The harness is about to ask for VM `name` to run (or run anew).
    pub fn start_asked(&self, name: &str) {
        self.state().stopping.remove(name);
    }

    /// The harness is about to ask for VM `name` to be deleted.
    pub fn delete_asked(&self, name: &str) {
        let mut state = self.state();
        state.stopping.remove(name);
        state.deleted.insert(name.to_owned());
    }

    /// A read of VM `name` started at `read_ms` returned `view`; `live`
    /// gives the sandbox's live processes, `distros` the registered WSL2
    /// distros and `log` the service's log text (each called only when
    /// needed).
    pub fn observed(
        &self,
        name: &str,
        read_ms: u64,
        view: Option<&VmView>,
        live: impl FnOnce() -> Vec<proctree::ProcessInfo>,
        distros: impl FnOnce() -> Vec<String>,
        log: impl FnOnce() -> String,
    ) {
        self.scan_files();
        match view {
            None => self.check_gone(name, distros, log),
            Some(view) => self.check_failures_reported(name, read_ms, view),
        }
        let stopped = view.is_some_and(VmView::is_stopped);
        let newly_stopped = {
            let mut state = self.state();
            if view.is_some_and(VmView::is_running) {
                state.ever_running.insert(name.to_owned());
            }
            if view.is_some() && !stopped {
                state.not_stopped.insert(name.to_owned());
            } else {
                state.not_stopped.remove(name);
            }
            if stopped {
                state.reported_stopped.insert(name.to_owned())
            } else {
                state.reported_stopped.remove(name);
                false
            }
        };
        if newly_stopped {
            self.check_stopped(name, read_ms, now_ms(), live());
        }
        if view.is_some_and(VmView::is_running) {
            self.check_running(name, read_ms);
        } else {
            self.state().running_on_dead.remove(name);
        }
    }

    /// Every invariant broken so far, and those only the end can tell
    /// (kept files gone, retry budgets overrun). Empty when all hold.
    pub fn broken(&self) -> Vec<Broken> {
        self.scan_files();
        let entries = self.journal.entries();
        let state = self.state();
        let mut broken = state.broken.clone();
        for (name, files) in &state.kept {
            if state.deleted.contains(name) || !state.ever_running.contains(name) {
                continue;
            }
            let dir = self.lima_home.instance(name).dir;
            let gone: Vec<&str> = files
                .iter()
                .filter(|f| std::fs::symlink_metadata(dir.join(f)).is_err())
                .map(String::as_str)
                .collect();
            if !gone.is_empty() {
                broken.push(Broken {
                    invariant: Invariant::KeptFiles,
                    message: format!(
                        "kept files: {} of instance {name} removed although the VM was never \
                         deleted (only tmp files may go on a stop)",
                        gone.join(", ")
                    ),
                });
            }
        }
        broken.extend(
            budget_overruns(&entries, state.delete_retry_budget)
                .into_iter()
                .map(|message| Broken {
                    invariant: Invariant::RetryBudgetsEndLoudly,
                    message,
                }),
        );
        broken
    }

    /// Records the kept files of every instance directory.
    fn scan_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.lima_home.path()) else {
            return;
        };
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `_config`, `_disks`, `_networks`: Lima's, not instances.
            if name.starts_with(['_', '.']) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let files = std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| f.file_type().is_ok_and(|t| t.is_file()))
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .filter(|f| is_kept_file(f))
                .collect();
            found.push((name, files));
        }
        let mut state = self.state();
        for (name, files) in found {
            state.kept.entry(name).or_default().extend(files);
        }
    }

    /// VM `name` was reported Running by a read started at `read_ms`: its
    /// hostagent and driver must live, or have died less than
    /// [`NOTICE_BOUND`] before.
    fn check_running(&self, name: &str, read_ms: u64) {
        let instance = self.lima_home.instance(name);
        let entries = self.journal.entries();
        let hostagent = lima_layout::paths::read_pid_file(&instance.ha_pid())
            .filter(|pid| is_fake_hostagent(&entries, *pid));
        let Some(hostagent) = hostagent else {
            self.state().running_on_dead.remove(name);
            return;
        };
        let driver = entries
            .iter()
            .filter(|e| e.pid == hostagent)
            .filter_map(|e| match &e.record {
                Record::ChildStarted { pid, tool } if tool.contains("qemu") => Some(*pid),
                Record::DriverReplaced { new, .. } => Some(*new),
                _ => None,
            })
            .next_back();
        let dead = [("hostagent", Some(hostagent)), ("driver", driver)]
            .into_iter()
            .find_map(|(what, pid)| pid.filter(|p| !proctree::is_alive(*p)).map(|p| (what, p)));
        let mut state = self.state();
        let Some((what, pid)) = dead else {
            state.running_on_dead.remove(name);
            return;
        };
        let first = match state.running_on_dead.get(name) {
            Some((_, seen, since)) if *seen == pid => *since,
            _ => {
                state
                    .running_on_dead
                    .insert(name.to_owned(), (what, pid, read_ms));
                read_ms
            }
        };
        let for_ms = read_ms.saturating_sub(first);
        drop(state);
        if Duration::from_millis(for_ms) >= NOTICE_BOUND {
            self.breaks(
                Invariant::RunningIsTrue,
                format!(
                    "Running is true: VM {name} was still reported Running {for_ms} ms after its \
                 {what} (pid {pid}) was seen dead (bound: {NOTICE_BOUND:?})"
                ),
            );
        }
    }

    /// A read of VM `name` started at `read_ms` showed `view`: a condition
    /// that reports a failure of `wsl.exe --unregister` or `--terminate`
    /// needs a failed call of it; a spent budget is remembered (it was said
    /// loudly).
    fn check_failures_reported(&self, name: &str, read_ms: u64, view: &VmView) {
        if view.condition(kind::CLEANUP).is_some_and(|c| {
            c.status == status::FALSE && c.reason == reason::DELETE_RETRY_BUDGET_SPENT
        }) {
            self.state().reported_gave_up.insert(name.to_owned());
        }
        let distro = format!("lima-{name}");
        let mut entries = None;
        for condition in view.conditions.iter().filter(|c| c.status == status::FALSE) {
            for verb in DISTRO_VERBS {
                if !condition.message.contains(verb) {
                    continue;
                }
                let entries = entries.get_or_insert_with(|| self.journal.entries());
                if let Some(calls) = successes_only(entries, verb, &distro, read_ms) {
                    self.breaks(
                        Invariant::FailuresReflected,
                        format!(
                            "failures reflected: VM {name} reports {}={} reason={} ({:?}) although \
                         each of its {calls} `wsl.exe {verb} {distro}` calls exited 0 (a \
                         success is not reported as a failure)",
                            condition.kind, condition.status, condition.reason, condition.message
                        ),
                    );
                }
            }
        }
    }

    /// At the end of a scenario, with the service's whole log: a line that
    /// says a `wsl.exe VERB DISTRO` call failed, although every such call
    /// exited 0, reports a success as a failure. (A reconciler may keep
    /// such a failure out of its resources, as a forced stop's does; its
    /// log is where an operator reads it.)
    pub fn service_log_read(&self, log: &str) {
        let entries = self.journal.entries();
        for verb in DISTRO_VERBS {
            for (distro, calls) in wsl_outcomes(&entries, verb) {
                if calls.is_empty() || !calls.iter().all(|ok| *ok) {
                    continue;
                }
                if let Some(line) = log.lines().find(|l| blames(l, verb, &distro)) {
                    self.breaks(
                        Invariant::FailuresReflected,
                        format!(
                            "failures reflected: the service's log says `wsl.exe {verb} {distro}` \
                         failed although each of its {} calls exited 0 (a success is not \
                         reported as a failure): {:?}",
                            calls.len(),
                            line.trim()
                        ),
                    );
                }
            }
        }
    }

    /// VM `name` is gone: if it was deleted after its last unregister
    /// failed and its distro is still registered, that is a failure not
    /// honoured within the budget, or a give-up that must have been said
    /// (a read showed it, or the log names the VM and its budget).
    fn check_gone(
        &self,
        name: &str,
        distros: impl FnOnce() -> Vec<String>,
        log: impl FnOnce() -> String,
    ) {
        let (budget, reported_gave_up) = {
            let mut state = self.state();
            if !state.deleted.contains(name) || !state.gone.insert(name.to_owned()) {
                return;
            }
            (
                state.delete_retry_budget,
                state.reported_gave_up.contains(name),
            )
        };
        // Lima's WSL2 driver names the distro of instance NAME `lima-NAME`.
        let distro = format!("lima-{name}");
        let outcomes = wsl_outcomes(&self.journal.entries(), "--unregister");
        let Some(calls) = outcomes.get(&distro) else {
            return;
        };
        let failed = calls.iter().filter(|ok| !**ok).count();
        let last_failed = calls.last().is_some_and(|ok| !ok);
        if !last_failed {
            return;
        }
        // A call killed at its timeout may have unregistered the distro
        // all the same: only a distro still registered is left behind.
        if !distros().contains(&distro) {
            return;
        }
        let budget_spent = budget > 0 && failed >= budget as usize;
        if !budget_spent {
            self.breaks(
                Invariant::FailuresReflected,
                format!(
                    "failures reflected: VM {name} was deleted although its last \
                 `wsl.exe --unregister {distro}` failed ({failed} failed of {} calls, \
                 retry budget {budget}) and the distro is still registered",
                    calls.len()
                ),
            );
        }
        if budget_spent && !reported_gave_up && !log_says_gave_up(&log(), name) {
            self.breaks(
                Invariant::RetryBudgetsEndLoudly,
                format!(
                    "retry budgets end loudly: the delete of VM {name} gave up after {failed} \
                 failed `wsl.exe --unregister {distro}` calls (retry budget {budget}) without \
                 saying so: no read showed Cleanup reason={} and no log line names the VM and \
                 its budget",
                    reason::DELETE_RETRY_BUDGET_SPENT
                ),
            );
        }
    }

    fn check_stopped(
        &self,
        name: &str,
        read_ms: u64,
        answered_ms: u64,
        live: Vec<proctree::ProcessInfo>,
    ) {
        let entries = self.journal.entries();
        let dir = self.lima_home.instance(name).dir;
        let ours = instance_pids(&entries, name, &dir, read_ms);
        for process in live.iter().filter(|p| ours.contains(&p.pid)) {
            self.breaks(
                Invariant::StoppedIsTrue,
                format!(
                    "Stopped is true: VM {name} was reported Stopped while {} (pid {}) of its \
                 instance still ran: {}",
                    process.name,
                    process.pid,
                    process.cmd.join(" ")
                ),
            );
        }
        let request = self.state().stopping.remove(name);
        let Some(request) = request else { return };
        let exited = entries
            .iter()
            .any(|e| e.pid == request.hostagent && e.event() == event::EXIT);
        if exited || proctree::is_alive(request.hostagent) {
            return;
        }
        let waited = Duration::from_millis(answered_ms.saturating_sub(request.asked_ms));
        if waited < request.graceful {
            self.breaks(
                Invariant::GracefulFirst,
                format!(
                    "graceful first: the hostagent of VM {name} (pid {}) was killed and the VM \
                 reported Stopped {waited:?} after the stop was asked, before the graceful \
                 timeout of {:?}",
                    request.hostagent, request.graceful
                ),
            );
        }
    }
}

/// One read of a VM in the settle window: its `Running` condition
/// (status, reason; `None` when the VM or the condition is missing) and
/// the pids alive in the sandbox when the read began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleRead {
    pub running: Option<RunningCondition>,
    pub pids: BTreeSet<u32>,
}

/// A `Running` condition's status and reason.
pub type RunningCondition = (String, String);

impl SettleRead {
    pub fn of(view: Option<&VmView>, pids: BTreeSet<u32>) -> Self {
        Self {
            running: view
                .and_then(|v| v.condition(kind::RUNNING))
                .map(|c| (c.status.clone(), c.reason.clone())),
            pids,
        }
    }
}

/// The pids of `live`.
pub fn pid_set(live: &[proctree::ProcessInfo]) -> BTreeSet<u32> {
    live.iter().map(|p| p.pid).collect()
}

/// How many changes of a status with nothing happening make it unsettled:
/// one is a status catching up; two (there and back) is a loop.
const QUIET_CHANGES: usize = 2;

/// The changes of `reads` made while no process started or ended between
/// the two reads: `(from, to)`, in order.
fn quiet_changes(
    reads: &[SettleRead],
) -> Vec<(&Option<RunningCondition>, &Option<RunningCondition>)> {
    reads
        .windows(2)
        .filter(|w| w[0].running != w[1].running && w[0].pids == w[1].pids)
        .map(|w| (&w[0].running, &w[1].running))
        .collect()
}

fn condition_text(c: &Option<RunningCondition>) -> String {
    match c {
        Some((status, reason)) => format!("{status}/{reason}"),
        None => "none".to_owned(),
    }
}

/// Pids of the fakes that belong to instance `name` (directory `dir`):
/// its hostagent (`limactl hostagent|start ... NAME`), every fake invoked
/// with a path inside `dir`, and, transitively, every process these
/// started (`child_started`, or a journal entry whose parent is one of
/// them). Only invocations journaled by `before_ms` start the walk.
fn instance_pids(
    entries: &[JournalEntry],
    name: &str,
    dir: &Path,
    before_ms: u64,
) -> BTreeSet<u32> {
    let dir_text = dir.to_string_lossy().into_owned();
    let inside = |arg: &str| {
        arg.strip_prefix(dir_text.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '\\']))
            || arg.contains(&format!("{dir_text}/"))
            || arg.contains(&format!("{dir_text}\\"))
    };
    let mut pids: BTreeSet<u32> = entries
        .iter()
        .filter(|e| e.event() == event::INVOKED && e.time_ms <= before_ms)
        .filter(|e| {
            let args = e.args();
            let hostagent = e.tool == Tool::Limactl.as_str()
                && args.iter().any(|a| *a == "hostagent" || *a == "start")
                && args.iter().any(|a| a == name);
            hostagent || args.iter().any(|a| inside(a))
        })
        .map(|e| e.pid)
        .collect();
    loop {
        let more: Vec<u32> = entries
            .iter()
            .filter_map(|e| {
                if let Record::ChildStarted { pid, .. } = e.record
                    && pids.contains(&e.pid)
                {
                    Some(pid)
                } else if e.ppid.is_some_and(|p| pids.contains(&p)) {
                    Some(e.pid)
                } else {
                    None
                }
            })
            .filter(|p| !pids.contains(p))
            .collect();
        if more.is_empty() {
            return pids;
        }
        pids.extend(more);
    }
}

/// True when the journal has fake `limactl` `pid` started: a hostagent
/// the harness can judge (a reconciler's embedded one is not).
fn is_fake_hostagent(entries: &[JournalEntry], pid: u32) -> bool {
    entries
        .iter()
        .any(|e| e.pid == pid && e.tool == Tool::Limactl.as_str() && e.event() == event::INVOKED)
}

/// The `wsl.exe` verbs that act on one distro (`wsl.exe VERB DISTRO`) and
/// whose failure a reconciler reports: a delete's and a forced stop's.
const DISTRO_VERBS: [&str; 2] = ["--unregister", "--terminate"];

/// Per WSL2 distro, the outcome of each `wsl.exe VERB DISTRO` call in
/// journal order: true when it exited 0 (a call with no exit journaled
/// was killed at its bound: failed).
fn wsl_outcomes(entries: &[JournalEntry], verb: &str) -> BTreeMap<String, Vec<bool>> {
    let mut outcomes: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for call in entries
        .iter()
        .filter(|e| e.tool == Tool::Wsl.as_str() && e.event() == event::INVOKED)
    {
        let args = call.args();
        let Some(at) = args.iter().position(|a| *a == verb) else {
            continue;
        };
        let Some(distro) = args.get(at + 1) else {
            continue;
        };
        let code = entries
            .iter()
            .find(|e| e.pid == call.pid && e.event() == event::EXIT && e.time_ms >= call.time_ms)
            .and_then(|e| match e.record {
                Record::Exit { code } => Some(code),
                _ => None,
            });
        outcomes
            .entry((*distro).to_owned())
            .or_default()
            .push(code == Some(0));
    }
    outcomes
}

/// The number of `wsl.exe VERB DISTRO` calls invoked by `before_ms` when
/// there is at least one and each had exited 0 by then; `None` otherwise.
fn successes_only(
    entries: &[JournalEntry],
    verb: &str,
    distro: &str,
    before_ms: u64,
) -> Option<usize> {
    let before: Vec<JournalEntry> = entries
        .iter()
        .filter(|e| e.time_ms <= before_ms)
        .cloned()
        .collect();
    let calls = wsl_outcomes(&before, verb).remove(distro)?;
    (!calls.is_empty() && calls.iter().all(|ok| *ok)).then_some(calls.len())
}

/// True when `line` names the call `wsl.exe VERB DISTRO` (the distro as a
/// whole word: `lima-vm` is not named by `lima-vm2`) and says it failed.
fn blames(line: &str, verb: &str, distro: &str) -> bool {
    let lower = line.to_lowercase();
    let names_distro = lower
        .match_indices(&distro.to_lowercase())
        .any(|(at, found)| {
            let word = |c: char| c.is_alphanumeric() || c == '-' || c == '_' || c == '.';
            let before = lower[..at].chars().next_back();
            let after = lower[at + found.len()..].chars().next();
            !before.is_some_and(word) && !after.is_some_and(word)
        });
    names_distro
        && lower.contains(verb)
        && ["fail", "error", "cannot", "could not", "exited with"]
            .iter()
            .any(|word| lower.contains(word))
}

/// True when `log` has a line that names VM `name` and says its retry
/// budget is spent (or that it gave up).
fn log_says_gave_up(log: &str, name: &str) -> bool {
    log.lines().any(|line| {
        let line = line.to_lowercase();
        line.contains(&name.to_lowercase())
            && ["budget", "gave up", "giving up"]
                .iter()
                .any(|word| line.contains(word))
    })
}

/// Deletes tried past their retry budget: per WSL2 distro, the failed
/// `wsl.exe --unregister` calls, when more than `budget` (0: unlimited).
fn budget_overruns(entries: &[JournalEntry], budget: u32) -> Vec<String> {
    if budget == 0 {
        return Vec::new();
    }
    wsl_outcomes(entries, "--unregister")
        .into_iter()
        .map(|(distro, calls)| (distro, calls.iter().filter(|ok| !**ok).count()))
        .filter(|(_, failed)| *failed > budget as usize)
        .map(|(distro, failed)| {
            format!(
                "retry budgets end: the delete of WSL2 distro {distro} failed {failed} times, \
                 past its retry budget of {budget}"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::journal::Event;
    use serde_json::json;

    fn entry(
        pid: u32,
        ppid: u32,
        tool: &str,
        name: Event,
        details: serde_json::Value,
    ) -> JournalEntry {
        // Through the wire format, as the fakes write it.
        serde_json::from_value(json!({
            "time_ms": 10,
            "tool": tool,
            "pid": pid,
            "ppid": ppid,
            "event": name,
            "details": details,
        }))
        .expect("a journal entry")
    }

    #[test]
    fn kept_files_are_lima_yaml_disks_and_logs_only() {
        for kept in [
            "lima.yaml",
            "basedisk",
            "diffdisk",
            "cidata.iso",
            "ha.stderr.log",
        ] {
            assert!(is_kept_file(kept), "{kept}");
        }
        for other in [
            "serial.log",
            "serialv.log",
            "ha.pid",
            "ha.sock",
            "lima.yaml.tmp",
            ".lima.yaml.x1",
            "ssh.config",
        ] {
            assert!(!is_kept_file(other), "{other}");
        }
    }

    #[test]
    fn an_instance_is_its_hostagent_and_what_descends_from_it() {
        let dir = Path::new("/home/.lima/vm");
        let entries = vec![
            entry(
                10,
                1,
                "limactl",
                event::INVOKED,
                json!({"args": ["hostagent", "--pidfile", "/home/.lima/vm/ha.pid", "vm"]}),
            ),
            entry(
                10,
                1,
                "limactl",
                event::CHILD_STARTED,
                json!({"pid": 11, "tool": "qemu"}),
            ),
            entry(12, 11, "ssh", event::INVOKED, json!({"args": ["-N"]})),
            entry(
                20,
                1,
                "limactl",
                event::INVOKED,
                json!({"args": ["hostagent", "vm2"]}),
            ),
            entry(
                21,
                1,
                "ssh",
                event::INVOKED,
                json!({"args": ["-o", "ControlPath=/home/.lima/vm/ssh.sock"]}),
            ),
            entry(
                22,
                1,
                "ssh",
                event::INVOKED,
                json!({"args": ["-o", "ControlPath=/home/.lima/vm2/ssh.sock"]}),
            ),
        ];
        let pids = instance_pids(&entries, "vm", dir, 10);
        assert_eq!(pids, BTreeSet::from([10, 11, 12, 21]));
        assert!(
            instance_pids(&entries, "vm", dir, 9).is_empty(),
            "invoked after the read"
        );
    }

    #[test]
    fn only_calls_that_all_exited_0_make_a_reported_failure_a_false_one() {
        let call = |pid, time_ms| {
            let mut e = entry(
                pid,
                1,
                "wsl.exe",
                event::INVOKED,
                json!({"args": ["--unregister", "lima-vm"]}),
            );
            e.time_ms = time_ms;
            e
        };
        let exit = |pid, code, time_ms| {
            let mut e = entry(pid, 1, "wsl.exe", event::EXIT, json!({"code": code}));
            e.time_ms = time_ms;
            e
        };
        let mut entries = vec![call(1, 10), exit(1, 0, 20)];
        let unregister = |entries: &[JournalEntry], distro, read_ms| {
            successes_only(entries, "--unregister", distro, read_ms)
        };
        assert_eq!(unregister(&entries, "lima-vm", 30), Some(1));
        assert_eq!(unregister(&entries, "lima-other", 30), None);
        assert_eq!(
            successes_only(&entries, "--terminate", "lima-vm", 30),
            None,
            "another verb"
        );
        // Still running at the read: not (yet) a success.
        assert_eq!(unregister(&entries, "lima-vm", 15), None);
        entries.extend([call(2, 40), exit(2, 1, 50)]);
        assert_eq!(unregister(&entries, "lima-vm", 30), Some(1), "later");
        assert_eq!(unregister(&entries, "lima-vm", 60), None, "one failed");
    }

    #[test]
    fn a_log_line_blames_a_call_when_it_names_the_verb_the_whole_distro_and_a_failure() {
        let line = "WARN forced stop step failed instance=\"vm\" step=wsl-terminate \
                    error=wsl.exe --terminate lima-vm exited with exit status: 0: no output";
        assert!(blames(line, "--terminate", "lima-vm"));
        assert!(!blames(line, "--unregister", "lima-vm"), "another verb");
        assert!(
            !blames(line, "--terminate", "lima-v"),
            "a prefix of the distro"
        );
        let other = line.replace("lima-vm ", "lima-vm2 ");
        assert!(
            !blames(&other, "--terminate", "lima-vm"),
            "a longer distro name"
        );
        assert!(!blames(
            "INFO ran wsl.exe --terminate lima-vm",
            "--terminate",
            "lima-vm"
        ));
    }

    #[test]
    fn a_give_up_is_loud_when_a_log_line_names_the_vm_and_its_budget() {
        let log = "2026-01-01T00:00:00Z ERROR instance=\"vm\" attempts=3 \
                   the delete retry budget is spent; removing the finalizer\n";
        assert!(log_says_gave_up(log, "vm"));
        assert!(!log_says_gave_up(log, "vm2"));
        assert!(!log_says_gave_up("instance=\"vm\" deleted\n", "vm"));
        assert!(log_says_gave_up("Gave up deleting VM\n", "vm"));
    }

    #[test]
    fn a_budget_is_overrun_only_past_its_count_of_failures() {
        let call = |pid| {
            entry(
                pid,
                1,
                "wsl.exe",
                event::INVOKED,
                json!({"args": ["--unregister", "lima-vm"]}),
            )
        };
        let exit = |pid, code| entry(pid, 1, "wsl.exe", event::EXIT, json!({"code": code}));
        let mut entries = vec![call(1), exit(1, 1), call(2), call(3), exit(3, 0)];
        assert!(
            budget_overruns(&entries, 2).is_empty(),
            "two failures, one success"
        );
        entries.extend([call(4), exit(4, 5)]);
        let overrun = budget_overruns(&entries, 2);
        assert_eq!(overrun.len(), 1);
        assert!(overrun[0].contains("failed 3 times"), "{overrun:?}");
        assert!(budget_overruns(&entries, 0).is_empty(), "0: unlimited");
    }

    /// A witness of a sandbox with nothing on disk.
    fn witness_of_nothing() -> Witness {
        Witness::new(
            LimaHome::new("/nonexistent/lima"),
            Journal::new("/nonexistent/journal.jsonl".into()),
        )
    }

    fn read(status: &str, reason: &str, pids: &[u32]) -> SettleRead {
        SettleRead {
            running: Some((status.to_owned(), reason.to_owned())),
            pids: pids.iter().copied().collect(),
        }
    }

    #[test]
    fn a_status_that_flips_while_nothing_happens_never_settles() {
        let witness = witness_of_nothing();
        // Caught up once: settled.
        witness.settle_reads(
            "a",
            &[
                read("Unknown", "Reconciling", &[1]),
                read("False", "Stopped", &[1]),
                read("False", "Stopped", &[1]),
            ],
            Duration::from_millis(400),
        );
        // Changes that come with processes starting or ending: a crash
        // loop is not a status that fails to settle.
        witness.settle_reads(
            "b",
            &[
                read("False", "StartFailed", &[1]),
                read("Unknown", "Starting", &[1, 7]),
                read("False", "StartFailed", &[1]),
                read("Unknown", "Starting", &[1, 8]),
            ],
            Duration::from_millis(400),
        );
        assert!(witness.broken().is_empty(), "{:?}", witness.broken());
        witness.settle_reads(
            "c",
            &[
                read("False", "Stopped", &[1]),
                read("Unknown", "Reconciling", &[1]),
                read("False", "Stopped", &[1]),
            ],
            Duration::from_millis(400),
        );
        let broken = witness.broken();
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert_eq!(broken[0].invariant, Invariant::StatusesSettle);
        assert!(
            broken[0]
                .message
                .contains("False/Stopped -> Unknown/Reconciling -> False/Stopped"),
            "{}",
            broken[0]
        );
    }

    #[test]
    fn the_shutdown_owns_what_was_not_reported_stopped_when_it_began() {
        let witness = witness_of_nothing();
        let view = |reason: &str, status: &str| {
            VmView::from_document_with(
                &json!({"status": {"conditions": [
                    {"type": "Running", "status": status, "reason": reason, "message": ""}
                ]}}),
                &["status", "conditions"],
            )
        };
        let observe = |name: &str, v: &VmView| {
            witness.observed(name, now_ms(), Some(v), Vec::new, Vec::new, String::new)
        };
        observe("up", &view("Started", "True"));
        observe("down", &view("Stopped", "False"));
        witness.shutdown_begins();
        assert_eq!(witness.owned_by_shutdown(), ["up"]);
        let seen = witness.instances_seen();
        assert!(seen.contains("up") && seen.contains("down"), "{seen:?}");
        // A crashed service stops nothing.
        witness.service_crashed();
        assert!(witness.owned_by_shutdown().is_empty());
    }
}
