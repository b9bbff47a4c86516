//! The findings of the code review (`shared/design/findings.md`), one entry
//! each: the stable ID (also the reference reconciler's `--regress` switch),
//! a title, the defect its regression switch puts back, and the words a
//! regressed run's symptom must contain.
//!
//! A new finding is one entry in the table below; the reconciler's switch,
//! the catalogue's scenario and the test cases follow from it.

use std::fmt;
use std::str::FromStr;

/// What the contract knows of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingInfo {
    /// The stable ID, such as `disk-lock-leak`.
    pub id: &'static str,
    /// What goes wrong, in a few words, for `reproduce --list` and reports.
    pub title: &'static str,
    /// What the reference reconciler does wrong with the switch on, in one
    /// line (`limavm-reconciler regressions`).
    pub defect: &'static str,
    /// A regressed run reproduces the finding only when its symptom
    /// contains one of these: failing for another reason does not count.
    pub symptoms: &'static [&'static str],
}

/// Declares [`FindingId`], its `ALL` list and its [`FindingInfo`] table
/// from one entry per finding.
macro_rules! findings {
    ($(
        $variant:ident = $id:literal {
            title: $title:literal,
            defect: $defect:literal,
            symptoms: [$($symptom:literal),+ $(,)?] $(,)?
        }
    ),+ $(,)?) => {
        /// A finding of the review, by its stable ID (`Display` and
        /// `FromStr` use the ID, such as `disk-lock-leak`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FindingId {
            $( #[doc = $title] $variant, )+
        }

        impl FindingId {
            /// Every finding, in catalogue order.
            pub const ALL: &'static [FindingId] = &[$(FindingId::$variant),+];

            /// The finding's ID, title, defect and symptom words.
            pub const fn info(self) -> &'static FindingInfo {
                match self {
                    $(FindingId::$variant => &FindingInfo {
                        id: $id,
                        title: $title,
                        defect: $defect,
                        symptoms: &[$($symptom),+],
                    },)+
                }
            }
        }
    };
}

findings! {
    ConsoleGroupSignal = "console-group-signal" {
        title: "graceful interrupt hits the reconciler's own process group",
        defect: "hostagent shares the reconciler's process group; the graceful interrupt goes to that whole group",
        symptoms: ["died when VM vm was stopped gracefully", "stopped answering"],
    },
    OrphanedPortHolders = "orphaned-port-holders" {
        title: "forced stop leaves ssh port forwarders alive",
        defect: "forced stop kills only the hostagent and driver pids, not their descendants",
        symptoms: ["still held by ssh"],
    },
    BracketedHomePath = "bracketed-home-path" {
        title: "tmp-file cleanup treats a bracketed path as a glob pattern",
        defect: "tmp-file cleanup globs `<instance dir>/*<suffix>`, so pattern characters in the path hide the files",
        symptoms: ["tmp files left in"],
    },
    FinalizerAfterFailedDelete = "finalizer-after-failed-delete" {
        title: "finalizer removed although the backend delete failed",
        defect: "a failed or timed-out instance delete is logged and the finalizer removed anyway",
        symptoms: ["still registered", "the finalizer was dropped"],
    },
    ShutdownFallbackSkipsCleanup = "shutdown-fallback-skips-cleanup" {
        title: "service-shutdown hard kill skips the forced-stop cleanup",
        defect: "on service shutdown, a hostagent that outlives the graceful wait is hard-killed and nothing else",
        symptoms: ["still running"],
    },
    SilentCleanupErrors = "silent-cleanup-errors" {
        title: "forced-stop errors are discarded",
        defect: "every failed forced-stop step is discarded without a log line",
        symptoms: ["no log line names"],
    },
    SpawnAttributesOverwritten = "spawn-attributes-overwritten" {
        title: "own-group helper replaces the other spawn attributes",
        defect: "the own-process-group helper replaces the spawn attributes set before it (background priority lost)",
        symptoms: ["was spawned without"],
    },
    DivergentShutdownPaths = "divergent-shutdown-paths" {
        title: "a stop path force-stops with stale instance data",
        defect: "the spec.running=false path force-stops with instance data read before the graceful wait",
        symptoms: ["the driver started during shutdown", "still alive"],
    },
    OrphanRecoverySkipsGraceful = "orphan-recovery-skips-graceful" {
        title: "orphaned hostagent killed without the graceful interrupt",
        defect: "an orphaned hostagent found after a restart is force-stopped without the graceful interrupt",
        symptoms: ["without the graceful interrupt"],
    },
    ConcurrentKeygenRace = "concurrent-keygen-race" {
        title: "services starting at once race ssh-keygen",
        defect: "no key lock: \"private key missing?\" then ssh-keygen straight to the final path",
        symptoms: ["failed to start", "key pair mismatch", "more than one key pair"],
    },
    PartialKeyAfterCrash = "partial-key-after-crash" {
        title: "a half-written key from a crashed ssh-keygen is accepted",
        defect: "ssh-keygen writes the final path and an existing private key is accepted without validation",
        symptoms: ["is not a valid OpenSSH key"],
    },
    MissingPublicKey = "missing-public-key" {
        title: "a missing public key is never repaired",
        defect: "only the private key is checked; a missing or mismatched user.pub is never repaired",
        symptoms: ["still missing after start"],
    },
    KeygenUnbounded = "keygen-unbounded" {
        title: "ssh-keygen awaited without a bound",
        defect: "ssh-keygen is awaited with no timeout",
        symptoms: ["awaited without a bound"],
    },
    DiskLockLeak = "disk-lock-leak" {
        title: "forced stop keeps additional disks locked",
        defect: "forced stop does not release the additional disks' in_use_by locks",
        symptoms: ["in_use_by still present"],
    },
    RecycledPidKill = "recycled-pid-kill" {
        title: "forced stop kills whatever process a stale pid file names",
        defect: "forced stop signals whatever pid ha.pid or the driver pid file names, with no identity check",
        symptoms: ["bystander pid"],
    },
    IgnoredSignalFallback = "ignored-signal-fallback" {
        title: "no forced fallback after the graceful wait",
        defect: "no forced fallback after the graceful wait: the stop waits for the hostagent forever",
        symptoms: ["did not complete within the graceful timeout"],
    },
    WslHangUnbounded = "wsl-hang-unbounded" {
        title: "wsl.exe awaited without a bound",
        defect: "wsl.exe calls are awaited with no timeout",
        symptoms: ["never returned"],
    },
    GracefulExitLeftovers = "graceful-exit-leftovers" {
        title: "a hostagent that exits gracefully but leaves children is taken at its word",
        defect: "a hostagent that exited on the interrupt is taken at its word: what it left running is not looked for",
        symptoms: ["after the hostagent exited gracefully"],
    },
    HostagentDeathLeftovers = "hostagent-death-leftovers" {
        title: "processes of a hostagent that died are found only through pid files",
        defect: "the forced stop finds processes only through pid files and a live hostagent's tree",
        symptoms: ["hostagent that died"],
    },
    PathPrefixIdentity = "path-prefix-identity" {
        title: "process identity by raw path text: deleting vm kills vm2's QEMU",
        defect: "the driver identity check matches the instance directory as raw text, so `vm` matches `vm2/...`",
        symptoms: ["was killed when vm was deleted"],
    },
    DegradedNotReported = "degraded-not-reported" {
        title: "a degraded hostagent is reported as plain Running",
        defect: "a hostagent's degraded running event is reported as plain Running=True",
        symptoms: ["although its hostagent reported it degraded"],
    },
    KeyModeUnrepaired = "key-mode-unrepaired" {
        title: "a private key others can read is accepted and left so",
        defect: "an existing private key is accepted whatever its mode: one others can read stays so",
        symptoms: ["UNPROTECTED PRIVATE KEY FILE"],
    },
    CrashLoopFixedBackoff = "crash-loop-fixed-backoff" {
        title: "a hostagent that dies before running is restarted at a fixed pace, without a cause",
        defect: "a hostagent that dies before its first running event is restarted at the fixed restart backoff, reason Starting, no cause",
        symptoms: ["crash-loops"],
    },
    DriverDeathUnnoticed = "driver-death-unnoticed" {
        title: "a VM whose driver ended under a live hostagent still claims to run",
        defect: "the driver is not watched: a VM whose QEMU ended under a live hostagent stays Running=True",
        symptoms: ["still claims to run after its QEMU"],
    },
    ControlMasterLeftover = "control-master-leftover" {
        title: "a daemonized ssh ControlMaster holds a forwarded port after the stop",
        defect: "the forced stop neither sends `ssh -O exit` nor sees a daemonized ssh ControlMaster, whose title `ssh: DIR/ssh.sock [mux]` carries no path argument",
        symptoms: ["ControlMaster"],
    },
    DistroStopUnnoticed = "distro-stop-unnoticed" {
        title: "a VM whose WSL2 distro was shut down from outside still claims to run",
        defect: "a WSL2 distro is not watched: one stopped from outside (`wsl.exe --shutdown`, `--terminate`) under a live hostagent stays Running=True",
        symptoms: ["still claims to run after its WSL2 distro"],
    },
    InvalidLimaName = "invalid-lima-name" {
        title: "a name Lima refuses is started again and again instead of being refused",
        defect: "only names that break the layout are refused: an instance or disk name Lima refuses (`we[1]rd`, `with space`, over 76 characters) is started again and again",
        symptoms: ["a name Lima refuses, was started"],
    },
    ForeignDiskLock = "foreign-disk-lock" {
        title: "a disk marked in use by an instance a host crash left behind is never released",
        defect: "an additional disk whose in_use_by names another instance is left so: the start fails as Lima refuses the disk, even when that instance is gone",
        symptoms: ["stays marked in use by instance gone"],
    },
    DeleteBlockerUnnamed = "delete-blocker-unnamed" {
        title: "a failed delete names the instance directory, not the entry that blocked it",
        defect: "a failed instance delete names the instance directory, not the entry in it that could not be removed",
        symptoms: ["not the entry that blocked it"],
    },
}

impl FindingId {
    /// The stable ID, such as `disk-lock-leak`.
    pub const fn id(self) -> &'static str {
        self.info().id
    }

    /// What goes wrong, in a few words.
    pub const fn title(self) -> &'static str {
        self.info().title
    }

    /// What the reference reconciler does wrong with this switch on.
    pub const fn defect(self) -> &'static str {
        self.info().defect
    }

    /// True when `message` names this finding's symptom.
    pub fn names_symptom(self, message: &str) -> bool {
        self.info().symptoms.iter().any(|s| message.contains(s))
    }
}

impl fmt::Display for FindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// An ID that names no finding; its message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown finding {id:?}; valid IDs: {}", valid_ids())]
pub struct UnknownFinding {
    /// The ID as given, trimmed.
    pub id: String,
}

fn valid_ids() -> String {
    FindingId::ALL
        .iter()
        .map(|f| f.id())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for FindingId {
    type Err = UnknownFinding;

    /// Parses an ID; surrounding blanks are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s.trim();
        FindingId::ALL
            .iter()
            .copied()
            .find(|f| f.id() == id)
            .ok_or_else(|| UnknownFinding { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_id_round_trips_and_is_unique_and_described() {
        let mut seen = BTreeSet::new();
        for &finding in FindingId::ALL {
            assert_eq!(finding.id().parse::<FindingId>(), Ok(finding));
            assert!(seen.insert(finding.id()), "duplicate {finding}");
            assert!(!finding.title().is_empty() && !finding.defect().is_empty());
            assert!(finding.info().symptoms.iter().all(|s| !s.is_empty()));
        }
    }

    #[test]
    fn an_unknown_id_lists_the_valid_ones() {
        let text = "no-such-thing"
            .parse::<FindingId>()
            .unwrap_err()
            .to_string();
        assert!(text.contains("\"no-such-thing\""), "{text}");
        assert!(text.contains("wsl-hang-unbounded"), "{text}");
        assert!(text.contains("console-group-signal"), "{text}");
    }

    #[test]
    fn symptoms_are_matched_as_substrings() {
        assert!(FindingId::DiskLockLeak.names_symptom("disk x: in_use_by still present"));
        assert!(!FindingId::DiskLockLeak.names_symptom("timed out"));
    }
}
