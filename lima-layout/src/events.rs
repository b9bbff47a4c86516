//! The JSON events a hostagent prints on stdout, one per line.

use serde::{Deserialize, Serialize};

/// The `status` of an event (Lima's `pkg/hostagent/events` `Status`);
/// false, empty and zero fields are left out, as Lima's `omitempty`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostagentStatus {
    /// The VM is up and its forwards are set up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub running: bool,
    /// Running, but some forward or requirement failed (see `errors`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// The hostagent is shutting down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exiting: bool,
    /// What failed, one message each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The host port of the guest's sshd.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ssh_local_port: u16,
}

fn is_zero(port: &u16) -> bool {
    *port == 0
}

/// One line of a hostagent's stdout (Lima's `events.Event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostagentEvent {
    /// When, RFC 3339 with nanoseconds as Go prints it ("" when absent).
    #[serde(default)]
    pub time: String,
    /// The hostagent's state at that time.
    pub status: HostagentStatus,
}

impl HostagentEvent {
    /// Parses one stdout line; `None` for anything that is not an event
    /// (a hostagent may print other text).
    pub fn parse_line(line: &str) -> Option<Self> {
        serde_json::from_str(line.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lima_style_events_and_skips_other_lines() {
        let ev = HostagentEvent::parse_line(
            r#"{"time":"2026-01-01T00:00:00Z","status":{"running":true,"sshLocalPort":60022}}"#,
        )
        .unwrap();
        assert!(ev.status.running);
        assert_eq!(ev.status.ssh_local_port, 60022);
        assert!(HostagentEvent::parse_line("level=info msg=hello").is_none());
        let exiting = HostagentEvent::parse_line(r#"{"status":{"exiting":true}}"#).unwrap();
        assert!(exiting.status.exiting);
    }
}
