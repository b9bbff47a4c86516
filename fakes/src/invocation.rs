//! The [`Invocation`] every personality takes: which tool runs, with what
//! arguments, where it journals and which faults it claimed. The dispatch
//! that builds one and picks the personality is in [`crate::dispatch`].

use crate::faults::Faults;
use crate::journal::JournalWriter;
use crate::plan::Tool;

/// One run of one personality.
pub(crate) struct Invocation {
    /// The personality `argv[0]` named.
    pub(crate) tool: Tool,
    /// The arguments after `argv[0]`, all UTF-8.
    pub(crate) args: Vec<String>,
    /// Where this run journals (disabled when `LIMAVM_JOURNAL` is unset).
    pub(crate) journal: JournalWriter,
    /// The faults of the plan this run claimed, in plan order.
    pub(crate) faults: Faults,
}
