//! [`Witness`]: what the harness asked and saw in one sandbox, judged
//! against the invariants of [`crate::invariants`] as it happens. A
//! sandbox holds one; [`crate::witnessed::Witnessed`] tells it every driver
//! call and read.

use crate::defects::{Defect, Seen};
use crate::driver::VmView;
use crate::invariants::*;
use crate::journal::Journal;
use contract::condition::{kind, reason, status};
use contract::journal::{Record, event};
use lima_layout::LimaHome;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    found: Vec<Seen>,
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
    /// A witness of nothing yet, reading instances under `lima_home` and the
    /// fakes' `journal`.
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
    pub fn found(&self, defect: Defect, message: String) {
        let mut state = self.state();
        if !state
            .found
            .iter()
            .any(|s| s.defect == defect && s.message == message)
        {
            state.found.push(Seen { defect, message });
        }
    }

    /// Every defect found by checks beyond the scenario's own, in order.
    pub fn found_defects(&self) -> Vec<Seen> {
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
