//! Invariants checked in every scenario, whatever the scenario asserts and
//! whatever the reconciler under test: the harness watches what each driver
//! call asks and what each read reports (a [`crate::witness::Witness`] per sandbox), and the
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
//!   between two values): [`crate::witness::Witness::settle_reads`].
//!
//! The checks use what the fakes journal; with real tools (nothing
//! journaled) those that need the journal hold vacuously.

use crate::driver::VmView;
use contract::Tool;
use contract::condition::kind;
use contract::journal::{JournalEntry, Record, event};
use lima_layout::is_tmp_file_name;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

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
    /// An instance's kept files survive every stop.
    KeptFiles,
    /// `Running=True` ends within [`NOTICE_BOUND`] of its hostagent's death.
    RunningIsTrue,
    /// `Stopped` means no process of the instance is alive.
    StoppedIsTrue,
    /// Nothing is forced before the graceful timeout.
    GracefulFirst,
    /// A failed backend call keeps the resource, and a success is not blamed.
    FailuresReflected,
    /// A delete stops after its retry budget and says it gave up.
    RetryBudgetsEndLoudly,
    /// `Running` does not keep changing while nothing happens.
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
    /// The invariant broken.
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

/// One read of a VM in the settle window: its `Running` condition
/// (status, reason; `None` when the VM or the condition is missing) and
/// the pids alive in the sandbox when the read began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleRead {
    /// `Running`'s status and reason; `None` when the VM or its condition is
    /// missing.
    pub running: Option<RunningCondition>,
    /// The pids alive in the sandbox as the read began.
    pub pids: BTreeSet<u32>,
}

/// A `Running` condition's status and reason.
pub type RunningCondition = (String, String);

impl SettleRead {
    /// The read of `view` (`None`: no such VM), with the pids alive as it
    /// began.
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
pub(crate) const QUIET_CHANGES: usize = 2;

/// The changes of `reads` made while no process started or ended between
/// the two reads: `(from, to)`, in order.
pub(crate) fn quiet_changes(
    reads: &[SettleRead],
) -> Vec<(&Option<RunningCondition>, &Option<RunningCondition>)> {
    reads
        .windows(2)
        .filter(|w| w[0].running != w[1].running && w[0].pids == w[1].pids)
        .map(|w| (&w[0].running, &w[1].running))
        .collect()
}

pub(crate) fn condition_text(c: &Option<RunningCondition>) -> String {
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
pub(crate) fn instance_pids(
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
pub(crate) fn is_fake_hostagent(entries: &[JournalEntry], pid: u32) -> bool {
    entries
        .iter()
        .any(|e| e.pid == pid && e.tool == Tool::Limactl.as_str() && e.event() == event::INVOKED)
}

/// The `wsl.exe` verbs that act on one distro (`wsl.exe VERB DISTRO`) and
/// whose failure a reconciler reports: a delete's and a forced stop's.
pub(crate) const DISTRO_VERBS: [&str; 2] = ["--unregister", "--terminate"];

/// Per WSL2 distro, the outcome of each `wsl.exe VERB DISTRO` call in
/// journal order: true when it exited 0 (a call with no exit journaled
/// was killed at its bound: failed).
pub(crate) fn wsl_outcomes(entries: &[JournalEntry], verb: &str) -> BTreeMap<String, Vec<bool>> {
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
pub(crate) fn successes_only(
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
pub(crate) fn blames(line: &str, verb: &str, distro: &str) -> bool {
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
pub(crate) fn log_says_gave_up(log: &str, name: &str) -> bool {
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
pub(crate) fn budget_overruns(entries: &[JournalEntry], budget: u32) -> Vec<String> {
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
    use crate::journal::Journal;
    use crate::witness::{Witness, now_ms};
    use contract::journal::Event;
    use lima_layout::LimaHome;
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
