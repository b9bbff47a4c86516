//! The parts of a target file that describe a reconciler's resources and
//! status in its own terms: resource documents as templates, how each
//! change is made, how its conditions map onto the harness's notions, how a
//! change is seen to be observed, and its fixed timeouts. See
//! `fixtures/targets/README.md` for the format.

use crate::driver::{Condition, VmView};
use crate::settings::DriverSettings;
use crate::settings::SHUTDOWN_MARGIN;
use contract::condition::{kind, reason, status};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Expands `{placeholder}`s in every string of a JSON-like template. A
/// string that is exactly `{running}` becomes a JSON boolean; every other
/// placeholder is replaced as text (`{template}` by the lima.yaml text, so
/// the YAML lands in a string value, quoted by the serialiser).
pub fn expand_value(template: &Value, values: &dyn Fn(&str) -> String) -> Value {
    match template {
        Value::String(s) if s == "{running}" => Value::Bool(values("running") == "true"),
        Value::String(s) => Value::String(expand_text(s, values)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| expand_value(v, values)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (expand_text(k, values), expand_value(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces every `{name}` whose name `values` knows (an empty answer
/// counts as known) in `text`.
pub fn expand_text(text: &str, values: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                out.push_str(&values(&after[..close]));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// Every `{name}` used in the strings (and keys) of `value`.
pub fn placeholders_in(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut text = |s: &str| {
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) if is_name(&after[..close]) => {
                    found.push(after[..close].to_owned());
                    rest = &after[close + 1..];
                }
                _ => rest = after,
            }
        }
    };
    fn walk(v: &Value, text: &mut dyn FnMut(&str)) {
        match v {
            Value::String(s) => text(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, text)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                text(k);
                walk(v, text)
            }),
            _ => {}
        }
    }
    walk(value, &mut text);
    found
}

/// How one change to a VM is made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Change {
    /// `cli.patch` with this merge patch (a template) on the VM resource.
    Patch { patch: Value },
    /// `cli.apply` again of the documents of these kinds (for a reconciler
    /// that takes its template from a ConfigMap: re-apply the ConfigMap).
    Reapply { reapply: Vec<String> },
}

/// The changes a scenario makes; each defaults to the reference's merge
/// patch, a restart to "not supported".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Sets `spec.running` (placeholder `{running}`).
    #[serde(default)]
    pub running: Option<Change>,
    /// Replaces the lima.yaml (placeholders `{template}`, `{vm_type}`).
    #[serde(default)]
    pub template: Option<Change>,
    /// Asks for a restart (placeholder `{now}`, an RFC 3339 time).
    #[serde(default)]
    pub restart: Option<Change>,
}

impl Changes {
    pub fn running(&self) -> Change {
        self.running.clone().unwrap_or_else(|| Change::Patch {
            patch: serde_json::json!({"spec": {"running": "{running}"}}),
        })
    }

    pub fn template(&self) -> Change {
        self.template.clone().unwrap_or_else(|| Change::Patch {
            patch: serde_json::json!({"spec": {"template": "{template}", "vmType": "{vm_type}"}}),
        })
    }

    /// Every template, with the field it comes from.
    pub fn all(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        for (field, change) in [
            ("resource.changes.running", &self.running),
            ("resource.changes.template", &self.template),
            ("resource.changes.restart", &self.restart),
        ] {
            if let Some(Change::Patch { patch }) = change {
                out.push((field, patch.clone()));
            }
        }
        out
    }
}

/// How the harness tells that the reconciler observed a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Observed {
    /// `status.observedGeneration` reaches `metadata.generation`.
    #[default]
    ObservedGeneration,
    /// The conditions (type, status, reason, lastTransitionTime) differ from
    /// what they were just before the change: for resources without
    /// `observedGeneration`. A change that leaves every condition as it was
    /// is never seen as observed.
    StatusChange,
}

/// One condition a notion matches: its `type`, and optionally its
/// `status` and `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionRule {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub status: Option<String>,
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
    #[serde(default)]
    pub running: Vec<ConditionRule>,
    #[serde(default)]
    pub stopped: Vec<ConditionRule>,
    #[serde(default)]
    pub starting: Vec<ConditionRule>,
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
    pub fn apply(&self, view: &mut VmView) {
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

/// The target's own timeouts, fixed in its code (not flags): each one set
/// replaces the harness's value, and scenarios derive their expectations
/// from it. Durations as `30s`, `500ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedTimeouts {
    /// Graceful stop: interrupt, then this long before forcing.
    #[serde(default, with = "opt_duration")]
    pub graceful: Option<Duration>,
    /// A hostagent start (until it reports running).
    #[serde(default, with = "opt_duration")]
    pub start: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub wsl: Option<Duration>,
    /// One backend delete attempt.
    #[serde(default, with = "opt_duration")]
    pub delete: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub keygen: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub restart_backoff: Option<Duration>,
    /// How long the target waits for a hostagent's pid file (informational:
    /// no scenario depends on it yet).
    #[serde(default, with = "opt_duration")]
    pub pid_file_wait: Option<Duration>,
}

impl FixedTimeouts {
    /// `settings` with every fixed timeout in place.
    pub fn apply(&self, mut settings: DriverSettings) -> DriverSettings {
        let timings = &mut settings.timings;
        let fields = [
            (self.graceful, &mut timings.graceful_timeout),
            (self.start, &mut timings.start_timeout),
            (self.wsl, &mut timings.wsl_timeout),
            (self.delete, &mut timings.delete_timeout),
            (self.keygen, &mut timings.keygen_timeout),
            (self.restart_backoff, &mut timings.restart_backoff),
        ];
        for (fixed, field) in fields {
            if let Some(value) = fixed {
                *field = value;
            }
        }
        // A service's own shutdown stops its VMs gracefully first: give it
        // that long, and a margin for the forced stops after it, before
        // the harness kills it.
        settings.drop_shutdown_timeout = settings
            .drop_shutdown_timeout
            .max(settings.graceful_timeout + SHUTDOWN_MARGIN);
        settings
    }

    /// The fixed timeouts, as `graceful 30s, pid_file_wait 5s`.
    pub fn describe(&self) -> String {
        [
            ("graceful", self.graceful),
            ("start", self.start),
            ("wsl", self.wsl),
            ("delete", self.delete),
            ("keygen", self.keygen),
            ("restart_backoff", self.restart_backoff),
            ("pid_file_wait", self.pid_file_wait),
        ]
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| format!("{name} {}", humantime::format_duration(d))))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// How the harness drives the target: its own bounds and parallelism,
/// not timeouts of the target's code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessSection {
    /// The bound of every command the harness runs for the target (CLI
    /// verbs, ready, stop and kubeconfig commands); `reproduce
    /// --command-timeout` overrides it. Default
    /// [`crate::settings::DEFAULT_COMMAND_TIMEOUT`].
    #[serde(default, with = "opt_duration")]
    pub command_timeout: Option<Duration>,
    /// How long the VMs are read, nothing asked, before each service stop
    /// (the statuses-settle invariant); `0s` skips it. Default
    /// [`crate::settings::DEFAULT_SETTLE_WINDOW`].
    #[serde(default, with = "opt_duration")]
    pub settle_window: Option<Duration>,
    /// How long a started service gets to be ready (its ready file, ready
    /// and kubeconfig commands; one that hangs while the service comes up
    /// is tried again). Default
    /// [`crate::service::EXTERNAL_READY_TIMEOUT`].
    #[serde(default, with = "opt_duration")]
    pub ready_timeout: Option<Duration>,
    /// At most this many scenarios at once (a service with fixed ports and
    /// no slots: 1). Default: no limit beyond `reproduce --jobs`.
    #[serde(default)]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Instance slots: each sandbox holds one, named by the `{slot}`
    /// placeholder, and as many scenarios run at once as there are slots.
    #[serde(default)]
    pub slots: Option<crate::slots::Slots>,
}

impl HarnessSection {
    /// Checks the bounds: a command or ready timeout of more than 0s and
    /// at most 1h (as `reproduce --command-timeout`), a settle window of at
    /// most a minute, and the slots' numbers.
    pub fn validate(&self) -> Result<(), String> {
        let hour = Duration::from_secs(3600);
        for (field, value) in [
            ("command_timeout", self.command_timeout),
            ("ready_timeout", self.ready_timeout),
        ] {
            match value {
                Some(d) if d.is_zero() => {
                    return Err(format!("harness.{field} must be more than 0s"));
                }
                Some(d) if d > hour => return Err(format!("harness.{field} must be at most 1h")),
                _ => {}
            }
        }
        if self
            .settle_window
            .is_some_and(|d| d > Duration::from_secs(60))
        {
            return Err("harness.settle_window must be at most 1m".into());
        }
        self.slots
            .as_ref()
            .map_or(Ok(()), crate::slots::Slots::validate)
    }

    /// `settings` with this section's bounds in place.
    pub fn apply(&self, mut settings: DriverSettings) -> DriverSettings {
        if let Some(timeout) = self.command_timeout {
            settings.command_timeout = timeout;
        }
        if let Some(window) = self.settle_window {
            settings.settle_window = window;
        }
        settings
    }

    /// How many scenarios may run at once: the slots' count, or `jobs`.
    pub fn max_jobs(&self) -> Option<usize> {
        [
            self.slots.map(|slots| slots.count as usize),
            self.jobs.map(std::num::NonZeroUsize::get),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t)
                .map_err(|e| serde::de::Error::custom(format!("{t:?} is not a duration: {e}")))
        })
        .transpose()
    }
}

/// A snapshot of the conditions that changes whenever the reconciler
/// writes one (type, status, reason, lastTransitionTime).
pub fn status_fingerprint(doc: &Value, conditions_path: &[&str]) -> String {
    let conditions = conditions_path.iter().fold(doc, |v, key| &v[*key]);
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}/{}@{}",
                c["type"].as_str().unwrap_or_default(),
                c["status"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default(),
                c["lastTransitionTime"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Per VM, what its conditions were before the last change made through
/// the driver, and how many changes were made: gives a resource without
/// `observedGeneration` a generation and an observed generation.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    vms: std::collections::HashMap<String, (u64, String)>,
}

impl ChangeTracker {
    /// Records a change to `name` whose conditions read `before`.
    pub fn changed(&mut self, name: &str, before: String) {
        let entry = self
            .vms
            .entry(name.to_owned())
            .or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = before;
    }

    /// Sets `view.generation` to the number of changes (1 for a resource
    /// this driver never changed) and `view.observed_generation` to it once
    /// the conditions differ from `before` the last change (one less until
    /// then).
    pub fn fill(&self, view: &mut VmView, now: &str) {
        let (generation, before) = self
            .vms
            .get(&view.name)
            .cloned()
            .unwrap_or((1, String::new()));
        view.generation = generation;
        view.observed_generation = if now != before {
            generation
        } else {
            generation - 1
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> String {
        match name {
            "name" => "vm".into(),
            "running" => "true".into(),
            "template" => "images: []\n".into(),
            _ => String::new(),
        }
    }

    #[test]
    fn running_becomes_a_boolean_and_text_is_replaced() {
        let template = serde_json::json!({
            "metadata": {"name": "{name}-lima"},
            "spec": {"running": "{running}", "t": "{template}", "n": 3, "json": "{\"a\": 1}"}
        });
        let doc = expand_value(&template, &values);
        assert_eq!(doc["metadata"]["name"], "vm-lima");
        assert_eq!(doc["spec"]["running"], true);
        assert_eq!(doc["spec"]["t"], "images: []\n");
        assert_eq!(doc["spec"]["n"], 3);
        assert_eq!(doc["spec"]["json"], "{\"a\": 1}", "not a placeholder");
        assert_eq!(placeholders_in(&template), ["name", "running", "template"]);
    }

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

    #[test]
    fn a_change_is_observed_once_the_conditions_move() {
        let mut tracker = ChangeTracker::default();
        let mut v = view(&[]);
        tracker.fill(&mut v, "");
        assert!(v.observed_generation < v.generation, "no status yet");
        tracker.fill(&mut v, "Running=False/Stopped@t1");
        assert_eq!(v.observed_generation, v.generation);
        tracker.changed("vm", "Running=False/Stopped@t1".into());
        tracker.fill(&mut v, "Running=False/Stopped@t1");
        assert_eq!((v.generation, v.observed_generation), (1, 0));
        tracker.fill(&mut v, "Running=False/Starting@t2");
        assert_eq!((v.generation, v.observed_generation), (1, 1));
    }

    #[test]
    fn fixed_timeouts_replace_the_settings() {
        let fixed: FixedTimeouts =
            toml::from_str("graceful = \"30s\"\npid_file_wait = \"5s\"").unwrap();
        let settings = fixed.apply(DriverSettings::fast());
        assert_eq!(settings.graceful_timeout, Duration::from_secs(30));
        assert_eq!(fixed.describe(), "graceful 30s, pid_file_wait 5s");
        let bad = toml::from_str::<FixedTimeouts>("graceful = \"soon\"").unwrap_err();
        assert!(bad.to_string().contains("soon"), "{bad}");
    }
}
