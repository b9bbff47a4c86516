//! Regression switches: each one puts back exactly one defect from the
//! findings catalogue (`shared/design/findings.md`), under that row's ID.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Regression {
    ConsoleGroupSignal,
    OrphanedPortHolders,
    BracketedHomePath,
    FinalizerAfterFailedDelete,
    ShutdownFallbackSkipsCleanup,
    SilentCleanupErrors,
    SpawnAttributesOverwritten,
    DivergentShutdownPaths,
    OrphanRecoverySkipsGraceful,
    ConcurrentKeygenRace,
    PartialKeyAfterCrash,
    MissingPublicKey,
    KeygenUnbounded,
    DiskLockLeak,
    RecycledPidKill,
    IgnoredSignalFallback,
    WslHangUnbounded,
    GracefulExitLeftovers,
    HostagentDeathLeftovers,
    PathPrefixIdentity,
    DegradedNotReported,
    KeyModeUnrepaired,
    CrashLoopFixedBackoff,
    DriverDeathUnnoticed,
    ControlMasterLeftover,
    DistroStopUnnoticed,
    InvalidLimaName,
    ForeignDiskLock,
    DeleteBlockerUnnamed,
}

impl Regression {
    pub const ALL: [Regression; 29] = [
        Regression::ConsoleGroupSignal,
        Regression::OrphanedPortHolders,
        Regression::BracketedHomePath,
        Regression::FinalizerAfterFailedDelete,
        Regression::ShutdownFallbackSkipsCleanup,
        Regression::SilentCleanupErrors,
        Regression::SpawnAttributesOverwritten,
        Regression::DivergentShutdownPaths,
        Regression::OrphanRecoverySkipsGraceful,
        Regression::ConcurrentKeygenRace,
        Regression::PartialKeyAfterCrash,
        Regression::MissingPublicKey,
        Regression::KeygenUnbounded,
        Regression::DiskLockLeak,
        Regression::RecycledPidKill,
        Regression::IgnoredSignalFallback,
        Regression::WslHangUnbounded,
        Regression::GracefulExitLeftovers,
        Regression::HostagentDeathLeftovers,
        Regression::PathPrefixIdentity,
        Regression::DegradedNotReported,
        Regression::KeyModeUnrepaired,
        Regression::CrashLoopFixedBackoff,
        Regression::DriverDeathUnnoticed,
        Regression::ControlMasterLeftover,
        Regression::DistroStopUnnoticed,
        Regression::InvalidLimaName,
        Regression::ForeignDiskLock,
        Regression::DeleteBlockerUnnamed,
    ];

    /// The stable finding ID.
    pub fn id(self) -> &'static str {
        match self {
            Regression::ConsoleGroupSignal => "console-group-signal",
            Regression::OrphanedPortHolders => "orphaned-port-holders",
            Regression::BracketedHomePath => "bracketed-home-path",
            Regression::FinalizerAfterFailedDelete => "finalizer-after-failed-delete",
            Regression::ShutdownFallbackSkipsCleanup => "shutdown-fallback-skips-cleanup",
            Regression::SilentCleanupErrors => "silent-cleanup-errors",
            Regression::SpawnAttributesOverwritten => "spawn-attributes-overwritten",
            Regression::DivergentShutdownPaths => "divergent-shutdown-paths",
            Regression::OrphanRecoverySkipsGraceful => "orphan-recovery-skips-graceful",
            Regression::ConcurrentKeygenRace => "concurrent-keygen-race",
            Regression::PartialKeyAfterCrash => "partial-key-after-crash",
            Regression::MissingPublicKey => "missing-public-key",
            Regression::KeygenUnbounded => "keygen-unbounded",
            Regression::DiskLockLeak => "disk-lock-leak",
            Regression::RecycledPidKill => "recycled-pid-kill",
            Regression::IgnoredSignalFallback => "ignored-signal-fallback",
            Regression::WslHangUnbounded => "wsl-hang-unbounded",
            Regression::GracefulExitLeftovers => "graceful-exit-leftovers",
            Regression::HostagentDeathLeftovers => "hostagent-death-leftovers",
            Regression::PathPrefixIdentity => "path-prefix-identity",
            Regression::DegradedNotReported => "degraded-not-reported",
            Regression::KeyModeUnrepaired => "key-mode-unrepaired",
            Regression::CrashLoopFixedBackoff => "crash-loop-fixed-backoff",
            Regression::DriverDeathUnnoticed => "driver-death-unnoticed",
            Regression::ControlMasterLeftover => "control-master-leftover",
            Regression::DistroStopUnnoticed => "distro-stop-unnoticed",
            Regression::InvalidLimaName => "invalid-lima-name",
            Regression::ForeignDiskLock => "foreign-disk-lock",
            Regression::DeleteBlockerUnnamed => "delete-blocker-unnamed",
        }
    }

    /// What the switched-on variant does wrong, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Regression::ConsoleGroupSignal => {
                "hostagent shares the reconciler's process group; the graceful interrupt goes to that whole group"
            }
            Regression::OrphanedPortHolders => {
                "forced stop kills only the hostagent and driver pids, not their descendants"
            }
            Regression::BracketedHomePath => {
                "tmp-file cleanup globs `<instance dir>/*<suffix>`, so pattern characters in the path hide the files"
            }
            Regression::FinalizerAfterFailedDelete => {
                "a failed or timed-out instance delete is logged and the finalizer removed anyway"
            }
            Regression::ShutdownFallbackSkipsCleanup => {
                "on service shutdown, a hostagent that outlives the graceful wait is hard-killed and nothing else"
            }
            Regression::SilentCleanupErrors => {
                "every failed forced-stop step is discarded without a log line"
            }
            Regression::SpawnAttributesOverwritten => {
                "the own-process-group helper replaces the spawn attributes set before it (background priority lost)"
            }
            Regression::DivergentShutdownPaths => {
                "the spec.running=false path force-stops with instance data read before the graceful wait"
            }
            Regression::OrphanRecoverySkipsGraceful => {
                "an orphaned hostagent found after a restart is force-stopped without the graceful interrupt"
            }
            Regression::ConcurrentKeygenRace => {
                "no key lock: \"private key missing?\" then ssh-keygen straight to the final path"
            }
            Regression::PartialKeyAfterCrash => {
                "ssh-keygen writes the final path and an existing private key is accepted without validation"
            }
            Regression::MissingPublicKey => {
                "only the private key is checked; a missing or mismatched user.pub is never repaired"
            }
            Regression::KeygenUnbounded => "ssh-keygen is awaited with no timeout",
            Regression::DiskLockLeak => {
                "forced stop does not release the additional disks' in_use_by locks"
            }
            Regression::RecycledPidKill => {
                "forced stop signals whatever pid ha.pid or the driver pid file names, with no identity check"
            }
            Regression::IgnoredSignalFallback => {
                "no forced fallback after the graceful wait: the stop waits for the hostagent forever"
            }
            Regression::WslHangUnbounded => "wsl.exe calls are awaited with no timeout",
            Regression::GracefulExitLeftovers => {
                "a hostagent that exited on the interrupt is taken at its word: what it left running is not looked for"
            }
            Regression::HostagentDeathLeftovers => {
                "the forced stop finds processes only through pid files and a live hostagent's tree"
            }
            Regression::PathPrefixIdentity => {
                "the driver identity check matches the instance directory as raw text, so `vm` matches `vm2/...`"
            }
            Regression::DriverDeathUnnoticed => {
                "the driver is not watched: a VM whose QEMU ended under a live hostagent stays Running=True"
            }
            Regression::CrashLoopFixedBackoff => {
                "a hostagent that dies before its first running event is restarted at the fixed restart backoff, reason Starting, no cause"
            }
            Regression::KeyModeUnrepaired => {
                "an existing private key is accepted whatever its mode: one others can read stays so"
            }
            Regression::DegradedNotReported => {
                "a hostagent's degraded running event is reported as plain Running=True"
            }
            Regression::ControlMasterLeftover => {
                "the forced stop neither sends `ssh -O exit` nor sees a daemonized ssh ControlMaster, whose title `ssh: DIR/ssh.sock [mux]` carries no path argument"
            }
            Regression::DistroStopUnnoticed => {
                "a WSL2 distro is not watched: one stopped from outside (`wsl.exe --shutdown`, `--terminate`) under a live hostagent stays Running=True"
            }
            Regression::InvalidLimaName => {
                "only names that break the layout are refused: an instance or disk name Lima refuses (`we[1]rd`, `with space`, over 76 characters) is started again and again"
            }
            Regression::ForeignDiskLock => {
                "an additional disk whose in_use_by names another instance is left so: the start fails as Lima refuses the disk, even when that instance is gone"
            }
            Regression::DeleteBlockerUnnamed => {
                "a failed instance delete names the instance directory, not the entry in it that could not be removed"
            }
        }
    }
}

impl fmt::Display for Regression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown regression {id:?}; valid IDs: {}", valid_ids())]
pub struct UnknownRegression {
    pub id: String,
}

fn valid_ids() -> String {
    Regression::ALL
        .iter()
        .map(|r| r.id())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Regression {
    type Err = UnknownRegression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s.trim();
        Regression::ALL
            .into_iter()
            .find(|r| r.id() == id)
            .ok_or_else(|| UnknownRegression { id: id.to_owned() })
    }
}

/// The switches a service runs with (empty: the fixed reconciler).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Regressions(BTreeSet<Regression>);

impl Regressions {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn of(switches: impl IntoIterator<Item = Regression>) -> Self {
        Self(switches.into_iter().collect())
    }

    /// Parses a comma-separated list (`LIMAVM_REGRESS`); blanks are ignored.
    pub fn parse_list(list: &str) -> Result<Self, UnknownRegression> {
        list.split(',')
            .filter(|id| !id.trim().is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub fn enable(&mut self, regression: Regression) {
        self.0.insert(regression);
    }

    pub fn extend(&mut self, other: &Regressions) {
        self.0.extend(other.0.iter().copied());
    }

    pub fn is_on(&self, regression: Regression) -> bool {
        self.0.contains(&regression)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Regression> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Regressions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let ids: Vec<&str> = self.iter().map(Regression::id).collect();
        f.write_str(&ids.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_round_trips_and_is_unique() {
        let mut seen = BTreeSet::new();
        for regression in Regression::ALL {
            assert_eq!(regression.id().parse::<Regression>(), Ok(regression));
            assert!(seen.insert(regression.id()), "duplicate {regression}");
            assert!(!regression.description().is_empty());
        }
    }

    #[test]
    fn an_unknown_id_lists_the_valid_ones() {
        let err = "no-such-thing".parse::<Regression>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"no-such-thing\""), "{text}");
        assert!(text.contains("wsl-hang-unbounded"), "{text}");
        assert!(text.contains("console-group-signal"), "{text}");
    }

    #[test]
    fn lists_parse_with_blanks_and_spaces() {
        let set = Regressions::parse_list(" disk-lock-leak,,recycled-pid-kill ").unwrap();
        assert!(set.is_on(Regression::DiskLockLeak));
        assert!(set.is_on(Regression::RecycledPidKill));
        assert!(!set.is_on(Regression::WslHangUnbounded));
        assert!(Regressions::parse_list("").unwrap().is_empty());
        assert!(Regressions::parse_list("disk-lock-leak,nope").is_err());
        assert_eq!(set.to_string(), "disk-lock-leak,recycled-pid-kill");
    }
}
