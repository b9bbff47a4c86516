//! The findings catalogue (`shared/design/findings.md`) as data: one entry
//! per finding ID, with its scenario and the words its symptom must contain.

use crate::context::{Ctx, ScenarioResult};
use crate::findings::{crash, delete, keys, leftovers, orphan, real_lima, stop, strict, wsl};
use contract::{FindingId, Timing};

/// How a finding runs against real Lima (`--toolset real`: real limactl,
/// QEMU, ssh and ssh-keygen; the blank-disk template, or the real guest
/// where a scenario needs the hostagent's running event).
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

/// A finding of the contract ([`FindingId`]: ID, title, defect, symptom
/// words) with the scenario that reproduces it and where it can run.
pub struct Finding {
    /// The finding, also the reference reconciler's regression switch.
    pub id: FindingId,
    /// The scenario: `Ok` when the reconciler behaves, the symptom when not.
    pub scenario: fn(&Ctx) -> ScenarioResult,
    /// Why the scenario cannot run on this OS, if it cannot.
    pub unsupported_here: Option<&'static str>,
    /// How it runs against real Lima.
    pub on_real_lima: OnRealLima,
    /// How it runs against a target that embeds its hostagent.
    pub on_embedded: OnEmbedded,
    /// Timeouts the scenario needs shorter than a bound of its own.
    pub needs: &'static [TimeoutNeed],
}

/// How a finding runs against a target that embeds Lima and re-executes
/// itself as the hostagent (`[lima] embedded_hostagent`): no `limactl` is
/// called, so faults go to QEMU, `ssh` and `wsl.exe`, and symptoms are
/// checked from outside (instance directory, processes, ports, the journal
/// of the fakes still on PATH).
#[derive(Debug, Clone, Copy)]
pub enum OnEmbedded {
    /// The scenario needs nothing of the fake hostagent.
    Same,
    /// The scenario's fault of the fake hostagent goes one layer lower, to
    /// a tool the embedded hostagent calls (see
    /// [`Ctx::graceful_stop_held`]): which.
    LowerLayer(&'static str),
    /// A scenario of its own, checking from outside what the scenario
    /// reads in the fake hostagent's journal (real Lima's, which needs no
    /// fake hostagent either).
    Own(fn(&Ctx) -> ScenarioResult),
    /// It needs a fault or a journal entry of the fake hostagent: why.
    NeedsFakeHostagent(&'static str),
}

/// A timeout the scenario needs below a bound: a target whose fixed
/// timeout is not gets "cannot run here", not a verdict.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutNeed {
    /// The timeout (a target file's `[timeouts]` fixes it under a short
    /// name: `graceful` for [`Timing::GracefulTimeout`]).
    pub timeout: Timing,
    /// The bound the timeout must be below.
    pub below: std::time::Duration,
    /// Why the scenario needs it so.
    pub why: &'static str,
}

impl TimeoutNeed {
    /// Why `settings` cannot run the scenario, if they cannot.
    pub fn unmet(&self, settings: &harness::DriverSettings) -> Option<String> {
        let value = settings.timings.duration(self.timeout)?;
        (value >= self.below).then(|| {
            format!(
                "needs {} < {:?}, target has {:?}: {}",
                self.timeout.name(),
                self.below,
                value,
                self.why
            )
        })
    }
}

/// How a graceful stop of a QEMU VM is held under an embedded hostagent.
const QEMU_IGNORES: &str = "QEMU ignores the interrupt (fault ignore_interrupt on qemu), so the hostagent's graceful stop outlasts the graceful timeout and the reconciler has to force it";

/// How a graceful stop of a WSL2 VM is held under an embedded hostagent.
const WSL_TERMINATE_HANGS: &str = "the hostagent's own `wsl.exe --terminate` hangs (fault hang, first call only), so its graceful stop outlasts the graceful timeout; the reconciler's calls get the scenario's faults";

impl Finding {
    /// The scenario to run with `toolset`, or why it cannot run there.
    pub fn scenario_for(
        &self,
        toolset: &harness::Toolset,
    ) -> Result<fn(&Ctx) -> ScenarioResult, &'static str> {
        if let Some(reason) = self.unsupported_here {
            return Err(reason);
        }
        let scenario = self.scenario_on_toolset(toolset)?;
        Ok(scenario)
    }

    /// The scenario for `target` on `toolset`, or why it cannot run there.
    pub fn scenario_for_target(
        &self,
        toolset: &harness::Toolset,
        target: &harness::Target,
    ) -> Result<fn(&Ctx) -> ScenarioResult, &'static str> {
        let scenario = self.scenario_for(toolset)?;
        // Real Lima's scenarios never rely on the fake hostagent.
        if !target.embeds_hostagent() || toolset.has_real_lima() {
            return Ok(scenario);
        }
        match self.on_embedded {
            OnEmbedded::Same | OnEmbedded::LowerLayer(_) => Ok(scenario),
            OnEmbedded::Own(own) => Ok(own),
            OnEmbedded::NeedsFakeHostagent(why) => Err(why),
        }
    }

    fn scenario_on_toolset(
        &self,
        toolset: &harness::Toolset,
    ) -> Result<fn(&Ctx) -> ScenarioResult, &'static str> {
        if !toolset.has_real_lima() {
            return Ok(self.scenario);
        }
        match self.on_real_lima {
            OnRealLima::Same => Ok(self.scenario),
            OnRealLima::Own(scenario) => Ok(scenario),
            OnRealLima::NeedsFakes(reason) => Err(reason),
        }
    }

    /// What goes wrong, in a few words (from the contract).
    pub fn title(&self) -> &'static str {
        self.id.title()
    }

    /// True when `message` names the finding's symptom: a regressed run
    /// that fails for another reason does not reproduce it.
    pub fn names_symptom(&self, message: &str) -> bool {
        self.id.names_symptom(message)
    }
}

/// Why the findings about forwarders that outlive the forced stop need the
/// fakes. Measured by `reproduce/tests/real_lima/guest.rs` (a forced stop
/// of the pid files' processes alone; the port was free 72 ms and 88 ms
/// after QEMU's kill in two runs); Lima's side from v2.2.0's `pkg/hostagent` (`forwardSSH`,
/// `processGuestAgentEvents`).
const PORT_HOLDERS: &str = "needs ssh forwarders that outlive the forced stop, and real Lima \
     (v2.2.0) has none: every ssh forward (static ones, and dynamic ones with \
     LIMA_SSH_PORT_FORWARDER=true) is an `ssh -O forward` to one detached ControlMaster, and \
     the default gRPC forwarder listens in the hostagent itself; a stop that kills only what \
     ha.pid and qemu.pid name leaves the master holding the ports until QEMU dies, and it \
     then exits by itself within milliseconds, so even the regressed stop frees every port";

/// Why the WSL2 findings need the fakes on Linux and macOS.
const WSL: &str = "needs wsl.exe to hang or fail on demand; only the fake wsl.exe does (real WSL2 is Windows-only)";

/// Every finding of `shared/design/findings.md`, in its order.
pub static CATALOGUE: &[Finding] = &[
    Finding {
        id: FindingId::ConsoleGroupSignal,
        scenario: stop::console_group_signal,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::OrphanedPortHolders,
        scenario: stop::orphaned_port_holders,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(PORT_HOLDERS),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "needs ssh forwarders still running when the forced stop comes: an embedded \
             hostagent ends them first on the graceful interrupt (as Lima's does, before it \
             stops the driver), so only a hostagent that ignores the interrupt leaves them \
             (fault ignore_interrupt of the fake hostagent)",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::BracketedHomePath,
        scenario: stop::bracketed_home_path,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::LowerLayer(QEMU_IGNORES),
        needs: &[],
    },
    Finding {
        id: FindingId::FinalizerAfterFailedDelete,
        scenario: wsl::finalizer_after_failed_delete,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(WSL),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::ShutdownFallbackSkipsCleanup,
        scenario: wsl::shutdown_fallback_skips_cleanup,
        unsupported_here: None,
        // Where there is no WSL2, the same shutdown with a QEMU VM.
        on_real_lima: OnRealLima::Own(stop::shutdown_fallback_skips_qemu_cleanup),
        on_embedded: OnEmbedded::LowerLayer(WSL_TERMINATE_HANGS),
        needs: &[],
    },
    Finding {
        id: FindingId::SilentCleanupErrors,
        scenario: wsl::silent_cleanup_errors,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a forced-stop step to fail (wsl.exe --terminate exiting 1), which only the fake wsl.exe does",
        ),
        on_embedded: OnEmbedded::LowerLayer(WSL_TERMINATE_HANGS),
        needs: &[],
    },
    Finding {
        id: FindingId::SpawnAttributesOverwritten,
        scenario: stop::spawn_attributes_overwritten,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::spawn_attributes_overwritten),
        on_embedded: OnEmbedded::Own(real_lima::spawn_attributes_overwritten),
        needs: &[],
    },
    Finding {
        id: FindingId::DivergentShutdownPaths,
        scenario: stop::divergent_shutdown_paths,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a hostagent that replaces its driver while shutting down (fault replace_driver)",
        ),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "needs a hostagent that replaces its driver while shutting down (fault replace_driver of the fake hostagent)",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::OrphanRecoverySkipsGraceful,
        scenario: orphan::orphan_recovery_skips_graceful,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::orphan_recovery_skips_graceful),
        on_embedded: OnEmbedded::Own(real_lima::orphan_recovery_skips_graceful),
        needs: &[],
    },
    Finding {
        id: FindingId::ConcurrentKeygenRace,
        scenario: keys::concurrent_keygen_race,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a slow ssh-keygen (fault delay) to hold the race window open; the real one is too quick to race reliably",
        ),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::PartialKeyAfterCrash,
        scenario: keys::partial_key_after_crash,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs ssh-keygen to die half way through writing the key (fault crash_half_way)",
        ),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::MissingPublicKey,
        scenario: keys::missing_public_key,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::KeygenUnbounded,
        scenario: keys::keygen_unbounded,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes("needs ssh-keygen to hang (fault hang)"),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::DiskLockLeak,
        scenario: stop::disk_lock_leak,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::disk_lock_leak),
        on_embedded: OnEmbedded::LowerLayer(QEMU_IGNORES),
        needs: &[],
    },
    Finding {
        id: FindingId::RecycledPidKill,
        scenario: stop::recycled_pid_kill,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::IgnoredSignalFallback,
        scenario: stop::ignored_signal_fallback,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::LowerLayer(QEMU_IGNORES),
        needs: &[],
    },
    Finding {
        id: FindingId::WslHangUnbounded,
        scenario: wsl::wsl_hang_unbounded,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(WSL),
        on_embedded: OnEmbedded::LowerLayer(
            "the hanging `wsl.exe --terminate` of the stuck distro holds the hostagent's own graceful stop too",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::GracefulExitLeftovers,
        scenario: leftovers::graceful_exit_leftovers,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a hostagent that exits leaving its forwarders (fault keep_children)",
        ),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "needs a hostagent that exits leaving its forwarders (fault keep_children of the fake hostagent)",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::HostagentDeathLeftovers,
        scenario: leftovers::hostagent_death_leftovers,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(PORT_HOLDERS),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::PathPrefixIdentity,
        scenario: leftovers::path_prefix_identity,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "runs two VMs at once and writes one's qemu.pid into the other; with real QEMU it \
             needs two guests' worth of time for what the fakes show the same way",
        ),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::DegradedNotReported,
        scenario: leftovers::degraded_not_reported,
        unsupported_here: None,
        on_real_lima: OnRealLima::Own(real_lima::degraded_not_reported),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::KeyModeUnrepaired,
        scenario: keys::key_mode_unprotected,
        unsupported_here: if cfg!(windows) {
            Some("Windows keys have ACLs, not mode bits; OpenSSH's mode check is Unix-only")
        } else {
            None
        },
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::CrashLoopFixedBackoff,
        scenario: crash::crash_loop,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a QEMU that fails 300 ms after it starts (faults delay and fail on qemu)",
        ),
        on_embedded: OnEmbedded::LowerLayer(
            "each start is counted by the QEMU it runs (the fake QEMU's journal), not by a `limactl hostagent` call",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::DriverDeathUnnoticed,
        scenario: crash::driver_death,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a hostagent that outlives its driver (fault ignore_driver_exit); real Lima's exits",
        ),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "needs a hostagent that outlives its driver (fault ignore_driver_exit of the fake hostagent)",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::ControlMasterLeftover,
        scenario: leftovers::control_master_leftover,
        unsupported_here: if cfg!(windows) {
            Some("the fake ssh's ControlMaster (a daemon on a Unix socket) is Unix-only")
        } else {
            None
        },
        on_real_lima: OnRealLima::NeedsFakes(
            "needs a hostagent that exits leaving its ssh ControlMaster (faults control_master and keep_children)",
        ),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "needs a hostagent that exits leaving its ssh ControlMaster (faults control_master and keep_children of the fake hostagent)",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::DistroStopUnnoticed,
        scenario: crash::distro_stop,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(WSL),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "needs a hostagent that outlives its distro (fault ignore_driver_exit of the fake hostagent)",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::InvalidLimaName,
        scenario: strict::invalid_lima_name,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "counts each name's starts in the fake limactl's journal (real limactl keeps none); \
             the fidelity tests show that real Lima refuses these names as the fake does",
        ),
        on_embedded: OnEmbedded::NeedsFakeHostagent(
            "counts the starts of each name in the fake limactl's journal; an embedded hostagent \
             refuses the name before it starts anything the fakes journal",
        ),
        needs: &[],
    },
    Finding {
        id: FindingId::ForeignDiskLock,
        scenario: strict::foreign_disk_lock,
        unsupported_here: None,
        on_real_lima: OnRealLima::NeedsFakes(
            "the blank-disk template has no additional disk for real Lima to refuse; the \
             fidelity tests compare real Lima's refusal of a marked disk with the fake's",
        ),
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
    Finding {
        id: FindingId::DeleteBlockerUnnamed,
        scenario: delete::delete_blocker,
        unsupported_here: None,
        on_real_lima: OnRealLima::Same,
        on_embedded: OnEmbedded::Same,
        needs: &[],
    },
];

/// A finding for `reproduce --list`: its ID and title, then how it runs on
/// real Lima and against a target that embeds its hostagent.
pub fn describe(f: &Finding) -> String {
    let real = match f.on_real_lima {
        OnRealLima::Same => "runs as it is".to_owned(),
        OnRealLima::Own(_) => "a scenario of its own, observing through real Lima".to_owned(),
        OnRealLima::NeedsFakes(why) => format!("cannot run: {why}"),
    };
    let embedded = match f.on_embedded {
        OnEmbedded::Same => "runs (with the fakes or real Lima)".to_owned(),
        OnEmbedded::LowerLayer(how) => format!("runs one layer lower: {how}"),
        OnEmbedded::Own(_) => {
            "a scenario of its own, observing from outside (as on real Lima)".to_owned()
        }
        OnEmbedded::NeedsFakeHostagent(why) => {
            format!("with --toolset real as on real Lima; with the fakes cannot run: {why}")
        }
    };
    let mut text = format!(
        "{:32} {}\n{:32}   real Lima: {real}\n{:32}   embedded hostagent: {embedded}",
        f.id.id(),
        f.title(),
        "",
        ""
    );
    for need in f.needs {
        text.push_str(&format!(
            "\n{:32}   needs {} < {:?}: {}",
            "",
            need.timeout.name(),
            need.below,
            need.why
        ));
    }
    text
}

/// The catalogue's entry for the finding `id` (`disk-lock-leak`).
pub fn find(id: &str) -> Option<&'static Finding> {
    CATALOGUE.iter().find(|f| f.id.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_every_finding_of_the_contract_once_in_its_order() {
        let ids: Vec<FindingId> = CATALOGUE.iter().map(|f| f.id).collect();
        assert_eq!(ids, FindingId::ALL);
    }

    #[test]
    fn the_listing_says_how_each_finding_runs_against_an_embedded_hostagent() {
        let line = |id: &str| {
            let text = describe(find(id).unwrap());
            text.lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("embedded hostagent: ")
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| panic!("{text}"))
        };
        assert!(line("ignored-signal-fallback").starts_with("runs one layer lower: QEMU ignores"));
        assert!(line("spawn-attributes-overwritten").contains("observing from outside"));
        assert!(line("missing-public-key").starts_with("runs"));
        assert!(line("divergent-shutdown-paths").contains("cannot run: needs a hostagent"));
    }
}
