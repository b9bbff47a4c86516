//! What a scenario works with: its sandbox, the reconciler settings for this
//! run, and a way to start services of the reconciler under test.

use contract::plan::{Fault, Tool};
use harness::defects::Defect;
use harness::{
    DriverSettings, FaultPlanBuilder, HarnessError, ReconcilerDriver, Sandbox, Target, VmSpec,
};
use std::path::PathBuf;

/// Why a scenario failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    /// The reconciler misbehaved: the message names what was observed
    /// (the port and who holds it, the file left, the process killed...).
    Symptom(String),
    /// The harness could not do its part; says nothing about the reconciler.
    Harness(String),
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScenarioError::Symptom(m) => write!(f, "{m}"),
            ScenarioError::Harness(m) => write!(f, "harness error: {m}"),
        }
    }
}

impl From<HarnessError> for ScenarioError {
    fn from(e: HarnessError) -> Self {
        ScenarioError::Harness(contract::error_chain::chain(&e))
    }
}

/// A wait for a precondition the scenario sets up itself.
impl From<harness::WaitError> for ScenarioError {
    fn from(e: harness::WaitError) -> Self {
        ScenarioError::Harness(contract::error_chain::chain(&e))
    }
}

/// A broken key pair is the symptom of the reconciler that made it.
impl From<crate::key_pair::KeyPairError> for ScenarioError {
    fn from(e: crate::key_pair::KeyPairError) -> Self {
        ScenarioError::Symptom(contract::error_chain::chain(&e))
    }
}

/// A scenario's result: `Ok` when the reconciler behaved.
pub type ScenarioResult = Result<(), ScenarioError>;

/// A symptom, formatted.
#[macro_export]
macro_rules! symptom {
    ($($arg:tt)*) => {
        $crate::context::ScenarioError::Symptom(format!($($arg)*))
    };
}

/// Fails with the symptom unless `condition` holds.
pub fn ensure(condition: bool, symptom: impl FnOnce() -> String) -> ScenarioResult {
    if condition {
        Ok(())
    } else {
        Err(ScenarioError::Symptom(symptom()))
    }
}

/// What a scenario works with.
pub struct Ctx<'s> {
    /// The run's sandbox: LIMA_HOME, the tools, the fault plan, the journal.
    pub sandbox: &'s Sandbox,
    /// The reconciler's settings, with the target's fixed timeouts.
    pub settings: DriverSettings,
    /// The reconciler under test.
    pub target: Target,
}

impl<'s> Ctx<'s> {
    /// A context driving the reference reconciler.
    pub fn new(sandbox: &'s Sandbox, settings: DriverSettings) -> Self {
        Self::for_target(sandbox, settings, Target::Reference)
    }

    /// A context driving `target`; its fixed timeouts replace those of
    /// `settings` (here and in every `with_settings`).
    pub fn for_target(sandbox: &'s Sandbox, settings: DriverSettings, target: Target) -> Self {
        Self {
            sandbox,
            settings: target.settings(settings),
            target,
        }
    }

    /// `plan` plus what holds a VM's graceful stop past the graceful
    /// timeout, so that the reconciler has to force it: the fake hostagent
    /// ignoring the interrupt. A target that embeds its hostagent runs its
    /// own code instead, so the fault goes one layer lower, to what that
    /// hostagent waits for: QEMU ignoring the interrupt, or, for the WSL2
    /// distro `wsl_distro`, the first `wsl.exe --terminate` of it hanging
    /// (later calls, the reconciler's forced stop, answer).
    pub fn graceful_stop_held(
        &self,
        plan: FaultPlanBuilder,
        wsl_distro: Option<&str>,
    ) -> FaultPlanBuilder {
        if !self.target.embeds_hostagent() || self.real_lima() {
            return plan.hostagent(Fault::IgnoreInterrupt);
        }
        match wsl_distro {
            None => plan.always(Tool::Qemu, &[], Fault::IgnoreInterrupt),
            Some(distro) => plan.times(Tool::Wsl, &["--terminate", distro], 1, Fault::Hang),
        }
    }

    /// A check beyond the scenario's own, of `defect`'s kind (a finding:
    /// a tmp file left after a stop is `bracketed-home-path`'s, whichever
    /// scenario sees it; or an invariant): its symptom is filed under that
    /// defect and the scenario goes on, so that its own check still gives
    /// its own verdict. In the finding's own scenario it is that
    /// scenario's check.
    pub fn follow_on(&self, defect: impl Into<Defect>, check: ScenarioResult) -> ScenarioResult {
        match check {
            Err(ScenarioError::Symptom(message)) => {
                self.sandbox.witness().found(defect.into(), message);
                Ok(())
            }
            other => other,
        }
    }

    /// The same target and sandbox, other settings.
    pub fn with_settings(&self, settings: DriverSettings) -> Self {
        Self::for_target(self.sandbox, settings, self.target.clone())
    }

    /// A driver for a service of the reconciler under test, not started yet.
    pub fn service(&self) -> Box<dyn ReconcilerDriver + 's> {
        self.service_with_state(self.sandbox.state_dir())
    }

    /// The same, with a state directory of its own.
    pub fn service_with_state(&self, state_dir: PathBuf) -> Box<dyn ReconcilerDriver + 's> {
        self.target
            .driver(self.sandbox, self.settings.clone(), state_dir)
    }

    /// A started service.
    pub fn started_service(&self) -> Result<Box<dyn ReconcilerDriver + 's>, ScenarioError> {
        let mut service = self.service();
        service.start_service()?;
        Ok(service)
    }

    /// True when the VMs are real Lima's ([`Ctx::qemu_vm`]: the blank-disk
    /// template, where the hostagent and QEMU run and no guest OS boots;
    /// [`Ctx::guest_vm`]: the real guest).
    pub fn real_lima(&self) -> bool {
        self.sandbox.toolset().has_real_lima()
    }

    /// A QEMU VM. With the fakes, `forwards` guest ports go to picked host
    /// ports through `ssh` children. On real Lima forwards need a guest, so
    /// there are none: the blank-disk template with a picked SSH port,
    /// which QEMU itself holds.
    pub fn qemu_vm(&self, name: &str, forwards: usize) -> Result<VmSpec, ScenarioError> {
        if !self.real_lima() {
            return Ok(crate::findings::qemu_vm(name, forwards));
        }
        let disk = harness::real_lima::blank_disk(&self.sandbox.root().join("images"))?;
        let template =
            harness::Template::blank_disk(&disk).ssh_port(harness::ports::pick_free_port());
        Ok(VmSpec::new(name, template))
    }

    /// A QEMU VM whose guest really boots. With the fakes, the same as
    /// [`Ctx::qemu_vm`]. On real Lima, the guest of `scripts/build-real-guest`
    /// (`fixtures/lima/real-guest.yaml`): the hostagent reports running, and
    /// each of the `forwards` (at most 4) is a static `ssh -L` forward of a
    /// port the guest serves to a picked host port.
    pub fn guest_vm(&self, name: &str, forwards: usize) -> Result<VmSpec, ScenarioError> {
        if !self.real_lima() {
            return Ok(crate::findings::qemu_vm(name, forwards));
        }
        let guest = harness::real_lima::RealGuest::built().ok_or_else(|| {
            ScenarioError::Harness(
                "the real guest is not built: run scripts/build-real-guest".into(),
            )
        })?;
        let served = harness::template::GUEST_SERVED_PORTS;
        if forwards > served.len() {
            return Err(ScenarioError::Harness(format!(
                "the real guest serves {} ports, {forwards} forwards asked",
                served.len()
            )));
        }
        let template = served.take(forwards).fold(
            harness::Template::real_guest(&guest).ssh_port(harness::ports::pick_free_port()),
            |t, guest_port| t.forward(guest_port, harness::ports::pick_free_port()),
        );
        Ok(VmSpec::new(name, template))
    }
}
