//! The findings catalogue (`shared/design/findings.md`) as data: one entry
//! per finding ID, with its scenario and the words its symptom must contain.

use crate::context::{Ctx, ScenarioResult};
use crate::findings::{keys, orphan, real_lima, stop, wsl};

/// How a finding runs against real Lima (`--toolset real`: real limactl,
/// QEMU, ssh and ssh-keygen, the blank-disk template).
#[derive(Debug, Clone, Copy)]
pub enum OnRealLima {
    /// The catalogue's scenario runs as it is.
    Same,
    /// A scenario of its own, checking the defect through what real Lima
    /// makes observable.
    Own(fn(&Ctx) -> ScenarioResult),
    /// It needs a fault only the fakes inject: why.
    NeedsFakes(&'static str),
}

pub struct Finding {
    /// The stable ID, also the reference reconciler's regression switch.
    pub id: &'static str,
    pub title: &'static str,
    /// A regressed run reproduces the finding only when its symptom contains
    /// one of these: failing for another reason does not count.
    pub symptom_markers: &'static [&'static str],
    pub scenario: fn(&Ctx) -> ScenarioResult,
    /// Why the scenario cannot run on this OS, if it cannot.
    pub unsupported_here: Option<&'static str>,
    pub on_real_lima: OnRealLima,
}

impl Finding {
    /// The scenario to run with `toolset`, or why it cannot run there.
    pub fn scenario_for(
        &self,
        toolset: &harness::Toolset,
    ) -> Result<fn(&Ctx) -> ScenarioResult, &'static str> {
        if let Some(reason) = self.unsupported_here {
            return Err(reason);
        }
        if !toolset.has_real_lima() {
            return Ok(self.scenario);
        }
        match self.on_real_lima {
            OnRealLima::Same => Ok(self.scenario),
            OnRealLima::Own(scenario) => Ok(scenario),
            OnRealLima::NeedsFakes(reason) => Err(reason),
        }
    }

    pub fn names_symptom(&self, message: &str) -> bool {
        self.symptom_markers.iter().any(|m| message.contains(m))
    }
}

/// Why the WSL2 findings need the fakes on Linux and macOS.
const WSL: &str = "needs wsl.exe to hang or fail on demand; only the fake wsl.exe does (real WSL2 is Windows-only)";

pub static CATALOGUE: &[Finding] = &[
    Finding {
        id: "console-group-signal",
        title: "graceful interrupt hits the reconciler's own process group",
        symptom_markers: &[
            "died when VM vm was stopped gracefully",
            "stopped answering",
        ],
        scenario: stop::console_group_signal,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
    },
    Finding {
        id: "orphaned-port-holders",
        title: "forced stop leaves ssh port forwarders alive",
        symptom_markers: &["still held by ssh"],
        scenario: stop::orphaned_port_holders,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs port holders that outlive the forced stop: with the real guest, real Lima's \
             forwards are held by ssh's ControlMaster, which outlives a killed hostagent but \
             exits by itself (within about two seconds) once the forced stop kills QEMU and \
             its SSH connection closes, so even the regressed stop frees the ports; only the \
             fake hostagent's ssh children outlive it",
        ),
    },
    Finding {
        id: "bracketed-home-path",
        title: "tmp-file cleanup treats a bracketed path as a glob pattern",
        symptom_markers: &["tmp files left in"],
        scenario: stop::bracketed_home_path,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
    },
    Finding {
        id: "finalizer-after-failed-delete",
        title: "finalizer removed although the backend delete failed",
        symptom_markers: &["still registered"],
        scenario: wsl::finalizer_after_failed_delete,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(WSL),
    },
    Finding {
        id: "shutdown-fallback-skips-cleanup",
        title: "service-shutdown hard kill skips the forced-stop cleanup",
        symptom_markers: &["still running"],
        scenario: wsl::shutdown_fallback_skips_cleanup,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(WSL),
    },
    Finding {
        id: "silent-cleanup-errors",
        title: "forced-stop errors are discarded",
        symptom_markers: &["no log line names"],
        scenario: wsl::silent_cleanup_errors,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a forced-stop step to fail (wsl.exe --terminate exiting 1), which only the fake wsl.exe does",
        ),
    },
    Finding {
        id: "spawn-attributes-overwritten",
        title: "own-group helper replaces the other spawn attributes",
        symptom_markers: &["was spawned without"],
        scenario: stop::spawn_attributes_overwritten,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::spawn_attributes_overwritten),
    },
    Finding {
        id: "divergent-shutdown-paths",
        title: "a stop path force-stops with stale instance data",
        symptom_markers: &["the driver started during shutdown", "still alive"],
        scenario: stop::divergent_shutdown_paths,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a hostagent that replaces its driver while shutting down (fault replace_driver)",
        ),
    },
    Finding {
        id: "orphan-recovery-skips-graceful",
        title: "orphaned hostagent killed without the graceful interrupt",
        symptom_markers: &["without the graceful interrupt"],
        scenario: orphan::orphan_recovery_skips_graceful,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::orphan_recovery_skips_graceful),
    },
    Finding {
        id: "concurrent-keygen-race",
        title: "services starting at once race ssh-keygen",
        symptom_markers: &[
            "failed to start",
            "key pair mismatch",
            "more than one key pair",
        ],
        scenario: keys::concurrent_keygen_race,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a slow ssh-keygen (fault delay) to hold the race window open; the real one is too quick to race reliably",
        ),
    },
    Finding {
        id: "partial-key-after-crash",
        title: "a half-written key from a crashed ssh-keygen is accepted",
        symptom_markers: &["is not a valid OpenSSH key"],
        scenario: keys::partial_key_after_crash,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs ssh-keygen to die half way through writing the key (fault crash_half_way)",
        ),
    },
    Finding {
        id: "missing-public-key",
        title: "a missing public key is never repaired",
        symptom_markers: &["still missing after start"],
        scenario: keys::missing_public_key,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
    },
    Finding {
        id: "keygen-unbounded",
        title: "ssh-keygen awaited without a bound",
        symptom_markers: &["awaited without a bound"],
        scenario: keys::keygen_unbounded,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes("needs ssh-keygen to hang (fault hang)"),
    },
    Finding {
        id: "disk-lock-leak",
        title: "forced stop keeps additional disks locked",
        symptom_markers: &["in_use_by still present"],
        scenario: stop::disk_lock_leak,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::disk_lock_leak),
    },
    Finding {
        id: "recycled-pid-kill",
        title: "forced stop kills whatever process a stale pid file names",
        symptom_markers: &["bystander pid"],
        scenario: stop::recycled_pid_kill,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
    },
    Finding {
        id: "ignored-signal-fallback",
        title: "no forced fallback after the graceful wait",
        symptom_markers: &["did not complete within the graceful timeout"],
        scenario: stop::ignored_signal_fallback,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
    },
    Finding {
        id: "wsl-hang-unbounded",
        title: "wsl.exe awaited without a bound",
        symptom_markers: &["never returned"],
        scenario: wsl::wsl_hang_unbounded,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(WSL),
    },
];

pub fn find(id: &str) -> Option<&'static Finding> {
    CATALOGUE.iter().find(|f| f.id == id)
}
