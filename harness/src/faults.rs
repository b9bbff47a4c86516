//! Writing fault plans for the fakes.

use contract::plan::{Fault, FaultPlan, Rule, Tool};
use std::path::Path;

/// Builds a fault plan rule by rule.
#[derive(Debug, Clone, Default)]
pub struct FaultPlanBuilder {
    plan: FaultPlan,
}

impl FaultPlanBuilder {
    /// A plan without faults: every tool behaves.
    pub fn new() -> Self {
        Self::default()
    }

    /// `fault` on every invocation of `tool` whose arguments include `args`.
    pub fn always(self, tool: Tool, args: &[&str], fault: Fault) -> Self {
        self.push(tool, args, None, fault)
    }

    /// `fault` on every `limactl hostagent` invocation, the tool most
    /// scenarios fault.
    pub fn hostagent(self, fault: Fault) -> Self {
        self.always(Tool::Limactl, &["hostagent"], fault)
    }

    /// `fault` on the first `times` such invocations only.
    pub fn times(self, tool: Tool, args: &[&str], times: u32, fault: Fault) -> Self {
        self.push(tool, args, Some(times), fault)
    }

    fn push(mut self, tool: Tool, args: &[&str], times: Option<u32>, fault: Fault) -> Self {
        self.plan.rules.push(Rule {
            tool,
            args: args.iter().map(|a| a.to_string()).collect(),
            times,
            fault,
        });
        self
    }

    /// The plan, as the fakes read it (`contract::plan`).
    pub fn build(self) -> FaultPlan {
        self.plan
    }

    /// Writes the plan atomically, so a fake never reads half of it.
    /// Writes the plan (atomically); a plan the fakes would refuse (an exit
    /// code the platform cannot return...) is refused here, with their
    /// reason, as `InvalidInput`.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let text = self.plan.to_json();
        FaultPlan::parse(&text).map_err(|message| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid fault plan: {message}"),
            )
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    }
}
