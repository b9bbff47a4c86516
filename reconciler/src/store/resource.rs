//! The LimaVM resource: a Kubernetes-style document with spec and status.

use lima_layout::VmType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

pub(crate) const API_VERSION: &str = "limavm.dev/v1alpha1";
pub(crate) const KIND: &str = "LimaVM";
/// Held while the resource owns an instance; deletion waits for it.
pub(crate) const CLEANUP_FINALIZER: &str = "limavm.dev/cleanup";

pub(crate) const CONDITION_RUNNING: &str = contract::condition::kind::RUNNING;
pub(crate) const CONDITION_CLEANUP: &str = contract::condition::kind::CLEANUP;

/// Reasons of the `Running` and `Cleanup` conditions.
pub(crate) use contract::condition::reason;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LimaVm {
    #[serde(default = "default_api_version")]
    pub(crate) api_version: String,
    #[serde(default = "default_kind")]
    pub(crate) kind: String,
    pub(crate) metadata: Metadata,
    #[serde(default)]
    pub(crate) spec: Spec,
    #[serde(default)]
    pub(crate) status: Status,
}

fn default_api_version() -> String {
    API_VERSION.to_owned()
}

fn default_kind() -> String {
    KIND.to_owned()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) generation: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) finalizers: Vec<String>,
    #[serde(default)]
    pub(crate) deletion_timestamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Spec {
    #[serde(default)]
    pub(crate) running: bool,
    #[serde(default)]
    pub(crate) vm_type: VmType,
    /// The `lima.yaml` text; `vmType` is set from `spec.vmType` on top.
    #[serde(default)]
    pub(crate) template: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    #[serde(default)]
    pub(crate) observed_generation: u64,
    #[serde(default)]
    pub(crate) restart_count: u32,
    #[serde(default)]
    pub(crate) conditions: Vec<Condition>,
    #[serde(default)]
    pub(crate) deletion: DeletionStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// `True`, `False` or `Unknown`.
    pub(crate) status: String,
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) last_transition_time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletionStatus {
    #[serde(default)]
    pub(crate) attempts: u32,
    #[serde(default)]
    pub(crate) last_error: Option<String>,
    #[serde(default)]
    pub(crate) next_retry: Option<String>,
}

impl LimaVm {
    /// A new resource as `apply` creates it.
    pub(crate) fn new(name: impl Into<String>, spec: Spec) -> Self {
        Self {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata: Metadata {
                name: name.into(),
                generation: 1,
                ..Metadata::default()
            },
            spec,
            status: Status::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.metadata.name
    }

    pub(crate) fn is_being_deleted(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// The value of the restart request annotation
    /// ([`contract::annotation::RESTART_REQUESTED`]), if any.
    pub(crate) fn restart_request(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(contract::annotation::RESTART_REQUESTED)
            .map(String::as_str)
    }

    pub(crate) fn has_finalizer(&self, finalizer: &str) -> bool {
        self.metadata.finalizers.iter().any(|f| f == finalizer)
    }

    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a LimaVM serialises")
    }

    /// The LimaVM in `value`; fails naming the first field that does not
    /// fit (an unknown spec field is refused by name).
    pub(crate) fn from_value(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

impl Status {
    pub(crate) fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Sets a condition; its transition time moves only when its status does.
    pub(crate) fn set_condition(&mut self, kind: &str, status: bool, reason: &str, message: &str) {
        let status = contract::condition::status::of(status);
        match self.conditions.iter_mut().find(|c| c.kind == kind) {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = now_rfc3339();
                }
                existing.status = status.to_owned();
                existing.reason = reason.to_owned();
                existing.message = message.to_owned();
            }
            None => self.conditions.push(Condition {
                kind: kind.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now_rfc3339(),
            }),
        }
    }
}

/// Now, as `2026-03-19T17:37:41Z`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// As [`rfc3339`] with milliseconds, for times that short backoffs set.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// How long until an RFC 3339 time (zero when it has passed); `None` when
/// the text is not such a time.
pub(crate) fn time_until(text: &str) -> Option<Duration> {
    let when = humantime::parse_rfc3339_weak(text).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shape_is_written() {
        let mut vm = LimaVm::new(
            "vm1",
            Spec {
                running: true,
                vm_type: VmType::Qemu,
                template: "images: []\n".into(),
            },
        );
        vm.status
            .set_condition(CONDITION_RUNNING, true, reason::STARTED, "up");
        let value = vm.to_value();
        assert_eq!(value["apiVersion"], API_VERSION);
        assert_eq!(value["kind"], KIND);
        assert_eq!(value["metadata"]["generation"], 1);
        assert_eq!(
            value["metadata"]["deletionTimestamp"],
            serde_json::Value::Null
        );
        assert_eq!(value["spec"]["vmType"], "qemu");
        assert_eq!(value["status"]["observedGeneration"], 0);
        assert_eq!(value["status"]["deletion"]["attempts"], 0);
        assert_eq!(
            value["status"]["deletion"]["nextRetry"],
            serde_json::Value::Null
        );
        let condition = &value["status"]["conditions"][0];
        assert_eq!(condition["type"], "Running");
        assert_eq!(condition["status"], "True");
        assert!(
            condition["lastTransitionTime"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(LimaVm::from_value(value).unwrap(), vm);
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut status = Status::default();
        status.set_condition("Running", false, reason::STARTING, "a");
        status.conditions[0].last_transition_time = "earlier".into();
        status.set_condition("Running", false, reason::STARTED, "b");
        assert_eq!(status.conditions[0].last_transition_time, "earlier");
        assert_eq!(status.conditions[0].reason, "Started");
        status.set_condition("Running", true, reason::STARTED, "c");
        assert_ne!(status.conditions[0].last_transition_time, "earlier");
    }

    #[test]
    fn unknown_spec_fields_are_refused_by_name() {
        let err = LimaVm::from_value(serde_json::json!({
            "metadata": {"name": "a"}, "spec": {"runing": true}
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("runing"), "{err}");
    }

    #[test]
    fn times_until_an_rfc3339_instant() {
        let later = rfc3339(SystemTime::now() + Duration::from_secs(100));
        let left = time_until(&later).unwrap();
        assert!(left > Duration::from_secs(90) && left <= Duration::from_secs(100));
        assert_eq!(time_until("2000-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(time_until("tomorrow"), None);
    }
}
