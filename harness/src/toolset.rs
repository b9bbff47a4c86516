//! Which executable stands behind each tool name on the sandbox's PATH.

use crate::error::HarnessError;
use contract::Tool;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What stands behind one tool name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The multicall fake, with fault injection and a journal.
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
    /// Every tool faked.
    pub fn fakes() -> Self {
        Self::default()
    }

    /// Real Lima: the real `limactl` (with its QEMU, `ssh` and
    /// `ssh-keygen`); `wsl.exe` stays fake, as real WSL2 is Windows-only.
    pub fn real_lima() -> Self {
        [Tool::Limactl, Tool::Qemu, Tool::Ssh, Tool::SshKeygen]
            .into_iter()
            .fold(Self::fakes(), Self::with_real)
    }

    /// True when `limactl` is the real one.
    pub fn has_real_lima(&self) -> bool {
        self.choice(Tool::Limactl) == ToolChoice::Real
    }

    /// The same toolset with `tool` real.
    pub fn with_real(mut self, tool: Tool) -> Self {
        self.real.insert(tool.as_str(), ());
        self
    }

    /// Whether `tool` is fake or real.
    pub fn choice(&self, tool: Tool) -> ToolChoice {
        if self.real.contains_key(tool.as_str()) {
            ToolChoice::Real
        } else {
            ToolChoice::Fake
        }
    }

    /// The real executable for `tool`: `limactl` from the project's tools
    /// directory or PATH (see `real_lima`), the others from PATH.
    pub fn resolve_real(tool: Tool) -> Result<PathBuf, HarnessError> {
        let name = tool.executable_names()[0];
        let found = match tool {
            Tool::Limactl => crate::real_lima::limactl_path(),
            _ => which::which(name).ok(),
        };
        found.ok_or_else(|| HarnessError::RealToolMissing {
            tool: name.to_owned(),
        })
    }
}
