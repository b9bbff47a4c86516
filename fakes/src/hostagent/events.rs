//! The JSON events the hostagent prints on stdout, one per line, flushed at
//! once because the reconciler follows them live.

use lima_layout::{HostagentEvent, HostagentStatus};
use std::io::Write;

pub(crate) fn print(status: HostagentStatus) {
    let event = HostagentEvent {
        time: crate::timestamp::now_rfc3339(),
        status,
    };
    let line = serde_json::to_string(&event).expect("hostagent events serialise");
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the hostagent; the reconciler sees the
    // missing events instead.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
