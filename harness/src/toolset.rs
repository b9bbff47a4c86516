//! Which executable stands behind each tool name on the sandbox's PATH.

use crate::HarnessError;
use fakes::plan::Tool;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Fake,
    /// The real tool, resolved on the harness's own PATH.
    Real,
}

/// A choice per tool; every tool is faked unless chosen otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolset {
    real: BTreeMap<&'static str, ()>,
}

impl Toolset {
    pub fn fakes() -> Self {
        Self::default()
    }

    pub fn with_real(mut self, tool: Tool) -> Self {
        self.real.insert(tool.as_str(), ());
        self
    }

    pub fn choice(&self, tool: Tool) -> ToolChoice {
        if self.real.contains_key(tool.as_str()) {
            ToolChoice::Real
        } else {
            ToolChoice::Fake
        }
    }

    /// The real executable for `tool`, found on PATH.
    pub fn resolve_real(tool: Tool) -> Result<PathBuf, HarnessError> {
        let name = tool.executable_names()[0];
        which::which(name).map_err(|_| HarnessError::RealToolMissing {
            tool: name.to_owned(),
        })
    }
}
