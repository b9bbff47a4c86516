//! `[status]` of a target file: the target's conditions mapped onto the
//! harness's notions (`Running` True/False with reason `Stopped`,
//! `Starting`, `StartFailed`; `Cleanup` False).

use crate::driver::{Condition, VmView};
use contract::condition::{kind, reason, status};
use serde::Deserialize;

/// One condition a notion matches: its `type`, and optionally its
/// `status` and `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionRule {
    /// The condition's `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its `status` (`True`, `False`, `Unknown`); any when unset.
    #[serde(default)]
    pub status: Option<String>,
    /// Its `reason`; any when unset.
    #[serde(default)]
    pub reason: Option<String>,
}

impl ConditionRule {
    fn find<'c>(&self, conditions: &'c [Condition]) -> Option<&'c Condition> {
        conditions.iter().find(|c| {
            c.kind == self.kind
                && self.status.as_ref().is_none_or(|s| *s == c.status)
                && self.reason.as_ref().is_none_or(|r| *r == c.reason)
        })
    }
}

/// The target's conditions mapped onto the harness's notions (see
/// `VmView`): each notion holds when any of its rules matches. Checked in
/// the order start_failed, stopped, starting, running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMap {
    /// The VM runs (the harness's `Running=True`).
    #[serde(default)]
    pub running: Vec<ConditionRule>,
    /// The VM is stopped (`Running=False`, reason `Stopped`).
    #[serde(default)]
    pub stopped: Vec<ConditionRule>,
    /// The VM is starting (`Running=False`, reason `Starting`).
    #[serde(default)]
    pub starting: Vec<ConditionRule>,
    /// A start failed (`Running=False`, reason `StartFailed`).
    #[serde(default)]
    pub start_failed: Vec<ConditionRule>,
    /// A delete that is failing (the harness's `Cleanup=False`).
    #[serde(default)]
    pub cleanup_failed: Vec<ConditionRule>,
}

impl StatusMap {
    /// Replaces the target's `Running` and `Cleanup` notions in `view` by
    /// the harness's: `Running` True/`Running`, or False with reason
    /// `StartFailed`, `Stopped` or `Starting`; `Cleanup` False. The target's
    /// own conditions of other types stay.
    pub(crate) fn apply(&self, view: &mut VmView) {
        let raw = std::mem::take(&mut view.conditions);
        let matched = |rules: &[ConditionRule]| rules.iter().find_map(|r| r.find(&raw)).cloned();
        let running = [
            (&self.start_failed, status::FALSE, reason::START_FAILED),
            (&self.stopped, status::FALSE, reason::STOPPED),
            (&self.starting, status::FALSE, reason::STARTING),
            // The target's own reason for running is not known; the type
            // stands in for it.
            (&self.running, status::TRUE, kind::RUNNING),
        ]
        .into_iter()
        .find_map(|(rules, status, reason)| {
            matched(rules).map(|c| Condition {
                kind: kind::RUNNING.into(),
                status: status.into(),
                reason: reason.into(),
                message: c.message,
            })
        });
        let cleanup = matched(&self.cleanup_failed).map(|c| Condition {
            kind: kind::CLEANUP.into(),
            status: status::FALSE.into(),
            reason: c.reason,
            message: c.message,
        });
        view.conditions = raw
            .into_iter()
            .filter(|c| c.kind != kind::RUNNING && c.kind != kind::CLEANUP)
            .chain(running)
            .chain(cleanup)
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn view(conditions: &[(&str, &str, &str)]) -> VmView {
        let conditions: Vec<Value> = conditions
            .iter()
            .map(|(t, s, r)| serde_json::json!({"type": t, "status": s, "reason": r}))
            .collect();
        VmView::from_document(&serde_json::json!({
            "metadata": {"name": "vm"}, "status": {"conditions": conditions}
        }))
    }

    #[test]
    fn conditions_map_onto_the_harness_notions() {
        let map: StatusMap = toml::from_str(
            r#"
running = [{ type = "Running", status = "True" }]
stopped = [{ type = "Running", status = "False", reason = "Stopped" }]
starting = [{ type = "Running", reason = "Starting" }, { type = "Running", status = "Unknown" }]
start_failed = [{ type = "Running", reason = "StartFailed" }]
cleanup_failed = [{ type = "Deleted", status = "False" }]
"#,
        )
        .unwrap();
        let mut v = view(&[
            ("Created", "True", "Created"),
            ("Running", "Unknown", "Reconciling"),
        ]);
        map.apply(&mut v);
        assert_eq!(v.condition("Running").unwrap().reason, "Starting");
        assert!(v.condition("Created").is_some());
        let mut v = view(&[("Running", "False", "StartFailed")]);
        map.apply(&mut v);
        assert_eq!(v.condition("Running").unwrap().reason, "StartFailed");
        let mut v = view(&[
            ("Running", "False", "Stopped"),
            ("Deleted", "False", "Busy"),
        ]);
        map.apply(&mut v);
        assert!(v.is_stopped());
        assert_eq!(v.condition("Cleanup").unwrap().reason, "Busy");
        let mut v = view(&[("Running", "False", "Weird")]);
        map.apply(&mut v);
        assert!(v.condition("Running").is_none(), "no notion matches");
    }
}
