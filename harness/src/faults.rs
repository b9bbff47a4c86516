//! Writing fault plans for the fakes.

use fakes::plan::{Fault, FaultPlan, Rule, Tool};
use std::path::Path;

/// Builds a fault plan rule by rule.
#[derive(Debug, Clone, Default)]
pub struct FaultPlanBuilder {
    plan: FaultPlan,
}

impl FaultPlanBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `fault` on every invocation of `tool` whose arguments include `args`.
    pub fn always(self, tool: Tool, args: &[&str], fault: Fault) -> Self {
        self.push(tool, args, None, fault)
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

    pub fn build(self) -> FaultPlan {
        self.plan
    }

    /// Writes the plan atomically, so a fake never reads half of it.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.plan.to_json())?;
        std::fs::rename(tmp, path)
    }
}
