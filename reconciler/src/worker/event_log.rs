//! `<state>/events.jsonl`: one JSON object a line for things an operator
//! must not miss, such as a deletion that gave up and left something behind.

use crate::store::resource::now_rfc3339;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

pub(crate) const DELETE_RETRY_BUDGET_SPENT: &str = "delete_retry_budget_spent";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordedEvent {
    pub(crate) time: String,
    pub(crate) event: String,
    pub(crate) instance: String,
    pub(crate) attempts: u32,
    pub(crate) last_error: String,
    pub(crate) left_behind: Vec<String>,
    pub(crate) message: String,
}

impl RecordedEvent {
    pub(crate) fn delete_retry_budget_spent(
        instance: &str,
        attempts: u32,
        last_error: &str,
        left_behind: Vec<String>,
    ) -> Self {
        let message = format!(
            "gave up deleting instance {instance:?} after {attempts} failed attempts and removed its finalizer; left behind: {}",
            if left_behind.is_empty() {
                "nothing known".to_owned()
            } else {
                left_behind.join(", ")
            }
        );
        Self {
            time: now_rfc3339(),
            event: DELETE_RETRY_BUDGET_SPENT.to_owned(),
            instance: instance.to_owned(),
            attempts,
            last_error: last_error.to_owned(),
            left_behind,
            message,
        }
    }
}

/// Appends one line (a single write, so concurrent appenders never interleave).
pub(crate) fn append(path: &Path, event: &RecordedEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).expect("an event serialises");
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let event = RecordedEvent::delete_retry_budget_spent(
            "vm1",
            8,
            "wsl.exe did not finish within 60s",
            vec!["WSL2 distro lima-vm1 still registered".into()],
        );
        append(&path, &event).unwrap();
        append(&path, &event).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], DELETE_RETRY_BUDGET_SPENT);
        assert_eq!(lines[0]["instance"], "vm1");
        assert_eq!(
            lines[0]["leftBehind"][0],
            "WSL2 distro lima-vm1 still registered"
        );
        assert!(
            lines[0]["message"]
                .as_str()
                .unwrap()
                .contains("lima-vm1 still registered")
        );
    }
}
