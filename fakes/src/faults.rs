//! The faults claimed for one invocation, and the generic ones that every
//! personality applies the same way before doing its own work.

use crate::plan::{FAULT_PLAN_ENV, Fault, Tool, claim_faults};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Faults(Vec<Fault>);

impl Faults {
    /// The faults of the plan named by `LIMAVM_FAULT_PLAN` (none when unset).
    pub(crate) fn claim(tool: Tool, args: &[String]) -> Result<Self, crate::plan::PlanError> {
        match std::env::var_os(FAULT_PLAN_ENV).filter(|p| !p.is_empty()) {
            Some(path) => Ok(Self(claim_faults(&PathBuf::from(path), tool, args)?)),
            None => Ok(Self::default()),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Fault> {
        self.0.iter()
    }

    fn has(&self, wanted: &Fault) -> bool {
        self.0.contains(wanted)
    }

    pub(crate) fn ignore_interrupt(&self) -> bool {
        self.has(&Fault::IgnoreInterrupt)
    }

    pub(crate) fn keep_children(&self) -> bool {
        self.has(&Fault::KeepChildren)
    }

    pub(crate) fn replace_driver(&self) -> bool {
        self.has(&Fault::ReplaceDriver)
    }

    pub(crate) fn ignore_driver_exit(&self) -> bool {
        self.has(&Fault::IgnoreDriverExit)
    }

    pub(crate) fn control_master(&self) -> bool {
        self.has(&Fault::ControlMaster)
    }

    pub(crate) fn crash_half_way(&self) -> bool {
        self.has(&Fault::CrashHalfWay)
    }

    /// The longest `slow_exit` asked for, if any.
    pub(crate) fn slow_exit(&self) -> Option<Duration> {
        self.0
            .iter()
            .filter_map(|f| match f {
                Fault::SlowExit { ms } => Some(Duration::from_millis(*ms)),
                _ => None,
            })
            .max()
    }

    /// Applies `hang`, `delay` and `fail` in plan order. Returns the exit
    /// code when a `fail` ends the invocation; `hang` never returns.
    pub(crate) fn apply_generic(&self) -> Option<i32> {
        for fault in &self.0 {
            match fault {
                Fault::Hang => loop {
                    std::thread::park();
                },
                Fault::Delay { ms } => std::thread::sleep(Duration::from_millis(*ms)),
                Fault::Fail { code, stderr } => {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(stderr.as_bytes());
                    if !stderr.is_empty() && !stderr.ends_with('\n') {
                        let _ = err.write_all(b"\n");
                    }
                    let _ = err.flush();
                    return Some(*code);
                }
                _ => {}
            }
        }
        None
    }
}
