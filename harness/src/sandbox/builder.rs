//! What goes into a sandbox: its executables, the tools on its PATH, and
//! where its root is. Scenarios take the whole set ([`Sandbox::new`]); the
//! fakes' own tests have no reconciler, and the reconciler's black-box tests
//! no fakes and nothing but the tools they name on PATH.

use super::{DEFAULT_ROOT_PREFIX, Sandbox};
use crate::binaries::Binaries;
use crate::error::HarnessError;
use crate::toolset::Toolset;
use contract::Tool;
use std::path::{Path, PathBuf};

/// The recipe of a [`Sandbox`]; [`SandboxBuilder::build`] makes it. By
/// default: no executables, every tool on PATH (fake, unless the toolset
/// says real), PATH going on with the harness's own, and the root in the
/// temporary directory named [`DEFAULT_ROOT_PREFIX`] plus a random suffix.
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    pub(super) fake: Option<PathBuf>,
    pub(super) reconciler: Option<PathBuf>,
    pub(super) toolset: Toolset,
    /// `None`: every tool, and the harness's PATH after the shims.
    pub(super) tools: Option<Vec<Tool>>,
    pub(super) parent: Option<PathBuf>,
    pub(super) prefix: String,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            fake: None,
            reconciler: None,
            toolset: Toolset::fakes(),
            tools: None,
            parent: None,
            prefix: DEFAULT_ROOT_PREFIX.to_owned(),
        }
    }
}

impl SandboxBuilder {
    /// Both executables: the fake and the reconciler.
    pub fn binaries(self, binaries: &Binaries) -> Self {
        self.fake(&binaries.fake).reconciler(&binaries.reconciler)
    }

    /// The multicall fake (`limavm-fake`), installed under the name of
    /// every tool the toolset fakes. Without it, a faked tool on PATH is a
    /// setup error.
    pub fn fake(mut self, exe: impl Into<PathBuf>) -> Self {
        self.fake = Some(exe.into());
        self
    }

    /// The reconciler, linked in as [`Sandbox::reconciler_exe`].
    pub fn reconciler(mut self, exe: impl Into<PathBuf>) -> Self {
        self.reconciler = Some(exe.into());
        self
    }

    /// Which tools are real (default: all fake).
    pub fn toolset(mut self, toolset: Toolset) -> Self {
        self.toolset = toolset;
        self
    }

    /// Only `tools` on PATH, and nothing else: PATH is the shim directory
    /// alone, so that a missing tool is missing for the processes of the
    /// sandbox whatever this machine has installed.
    pub fn only_tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
        self.tools = Some(tools.into_iter().collect());
        self
    }

    /// The root inside `parent` instead of the temporary directory (for
    /// hostile or long parent paths; the check that the temporary directory
    /// leaves room for sockets is then left to the caller).
    pub fn under(mut self, parent: &Path) -> Self {
        self.parent = Some(parent.to_owned());
        self
    }

    /// The start of the root's name (default [`DEFAULT_ROOT_PREFIX`]).
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Creates the sandbox: its root, HOME, LIMA_HOME, state directory,
    /// tool shims, reconciler link and an empty fault plan.
    ///
    /// Errors: the run is stopping ([`HarnessError::Interrupted`]); a
    /// directory or link cannot be made, a real tool is missing, a faked
    /// tool has no fake, or the temporary directory is too long for an
    /// instance's sockets or holds the PATH separator.
    pub fn build(self) -> Result<Sandbox, HarnessError> {
        Sandbox::create(self)
    }
}
