//! "A reconciler under test", as scenarios see it: a service to start, stop
//! and crash, and LimaVM resources to apply, read, patch and delete.

use crate::error::HarnessError;
use crate::template::Template;
use contract::condition::{kind, reason, status};
use serde_json::Value;
use std::time::Duration;

/// The resource a scenario applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// `metadata.name`.
    pub name: String,
    /// `spec.running`: whether it should run.
    pub running: bool,
    /// The `lima.yaml` it runs.
    pub template: Template,
}

impl VmSpec {
    /// VM `name` of `template`, to run.
    pub fn new(name: &str, template: Template) -> Self {
        Self {
            name: name.to_owned(),
            running: true,
            template,
        }
    }

    /// The resource document, in the reference reconciler's schema.
    pub fn to_document(&self) -> Value {
        self.document(&ResourceKind::reference())
    }

    /// The resource document for a reconciler whose resources are `kind`.
    pub fn document(&self, kind: &ResourceKind) -> Value {
        let mut metadata = serde_json::json!({"name": self.name});
        if let Some(namespace) = kind.namespace.as_deref().filter(|n| !n.is_empty()) {
            metadata["namespace"] = namespace.into();
        }
        serde_json::json!({
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": metadata,
            "spec": {
                "running": self.running,
                "vmType": self.template.vm_type().as_str(),
                "template": self.template.to_yaml(),
            }
        })
    }
}

/// The merge patch that sets `spec.running`.
pub fn running_patch(running: bool) -> Value {
    serde_json::json!({"spec": {"running": running}})
}

/// The merge patch that replaces the template (and the VM type with it).
pub fn template_patch(template: &Template) -> Value {
    serde_json::json!({"spec": {"template": template.to_yaml(), "vmType": template.vm_type().as_str()}})
}

/// The merge patch that asks the reference reconciler for a restart: the
/// annotation [`contract::annotation::RESTART_REQUESTED`] set to now.
pub fn restart_patch() -> Value {
    serde_json::json!({"metadata": {"annotations": {
        contract::annotation::RESTART_REQUESTED: now_rfc3339()
    }}})
}

/// Now, as an RFC 3339 UTC time with nanoseconds: a value that differs at
/// every call (a restart annotation).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Which resources a reconciler owns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceKind {
    /// The resources' `apiVersion`.
    pub api_version: String,
    /// The resources' `kind` (`LimaVM`).
    pub kind: String,
    /// Their namespace, if namespaced.
    #[serde(default)]
    pub namespace: Option<String>,
}

impl ResourceKind {
    /// The reference reconciler's LimaVM.
    pub fn reference() -> Self {
        Self {
            api_version: "limavm.dev/v1alpha1".into(),
            kind: "LimaVM".into(),
            namespace: None,
        }
    }
}

/// A k8s-style condition of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The condition's `type` (`Running`, `Cleanup`).
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Its `reason` (`Stopped`, `StartFailed`...).
    pub reason: String,
    /// Its `message`, for people.
    pub message: String,
}

/// What a scenario reads back of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct VmView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.generation`: bumped by every spec change.
    pub generation: u64,
    /// `status.observedGeneration`: the generation the reconciler last acted
    /// on.
    pub observed_generation: u64,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `metadata.deletionTimestamp` is set.
    pub deletion_requested: bool,
    /// `status.restartCount`: restarts made.
    pub restart_count: u64,
    /// Its conditions (the harness's `Running` and `Cleanup` among them, see
    /// `contract::condition`).
    pub conditions: Vec<Condition>,
    /// The whole document, as read.
    pub raw: Value,
}

impl VmView {
    /// Reads a k8s-style document (`metadata`, `status.conditions`).
    pub fn from_document(doc: &Value) -> Self {
        Self::from_document_with(doc, &["status", "conditions"])
    }

    /// The same, with the conditions at another path (`["status", "x"]`).
    pub fn from_document_with(doc: &Value, conditions_path: &[&str]) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let conditions = conditions_path
            .iter()
            .fold(doc, |v, key| &v[*key])
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Condition {
                kind: text(&c["type"]),
                status: text(&c["status"]),
                reason: text(&c["reason"]),
                message: text(&c["message"]),
            })
            .collect();
        Self {
            name: text(&doc["metadata"]["name"]),
            generation: doc["metadata"]["generation"].as_u64().unwrap_or(0),
            observed_generation: doc["status"]["observedGeneration"].as_u64().unwrap_or(0),
            finalizers: doc["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect(),
            deletion_requested: !doc["metadata"]["deletionTimestamp"].is_null(),
            restart_count: doc["status"]["restartCount"].as_u64().unwrap_or(0),
            conditions,
            raw: doc.clone(),
        }
    }

    /// The condition of type `kind`, if any.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// `Running=<status>/<reason>`, for messages.
    pub fn running_summary(&self) -> String {
        match self.condition(kind::RUNNING) {
            Some(c) => format!(
                "Running={} reason={} message={:?}",
                c.status, c.reason, c.message
            ),
            None => "no Running condition".to_owned(),
        }
    }

    /// `Running=True`.
    pub fn is_running(&self) -> bool {
        self.condition(kind::RUNNING)
            .is_some_and(|c| c.status == status::TRUE)
    }

    /// Running=False with reason StartFailed: the reconciler says a start
    /// it tried failed (it may try again later).
    pub fn start_failed(&self) -> bool {
        self.condition(kind::RUNNING)
            .is_some_and(|c| c.status == status::FALSE && c.reason == reason::START_FAILED)
    }

    /// `Running=False` with reason `Stopped`.
    pub fn is_stopped(&self) -> bool {
        self.condition(kind::RUNNING)
            .is_some_and(|c| c.status == status::FALSE && c.reason == reason::STOPPED)
    }
}

/// A reconciler under test, as scenarios drive it. Every method fails with
/// [`HarnessError`] when the harness cannot do its part (a CLI that exits non-
/// zero or hangs, a service that is not ready in time).
pub trait ReconcilerDriver {
    /// Starts the service without waiting; returns its pid.
    fn spawn_service(&mut self) -> Result<u32, HarnessError>;
    /// Waits until the service just spawned is ready, or fails with why not.
    fn wait_ready(&mut self) -> Result<(), HarnessError>;
    /// Starts the service and waits until it is ready.
    fn start_service(&mut self) -> Result<(), HarnessError> {
        self.spawn_service()?;
        self.wait_ready()
    }
    /// Asks the service to shut down (SIGTERM / CTRL_BREAK) and waits up to
    /// `timeout`; returns its exit code.
    fn stop_service(&mut self, timeout: Duration) -> Result<Option<i32>, HarnessError>;
    /// Kills the service outright, leaving its hostagents behind.
    fn crash_service(&mut self) -> Result<(), HarnessError>;
    /// The service's pid while it runs.
    fn service_pid(&self) -> Option<u32>;
    /// True while the service process is alive.
    fn service_alive(&self) -> bool;

    /// Creates or replaces the resource of `vm`.
    fn apply(&mut self, vm: &VmSpec) -> Result<(), HarnessError>;
    /// Sets VM `name`'s `spec.running`.
    fn set_running(&mut self, name: &str, running: bool) -> Result<(), HarnessError>;
    /// Replaces VM `name`'s template (and VM type).
    fn set_template(&mut self, name: &str, template: &Template) -> Result<(), HarnessError>;
    /// Asks for VM `name` to be deleted (returns once asked, not once gone).
    fn delete(&mut self, name: &str) -> Result<(), HarnessError>;
    /// Reads VM `name` back; `None` when there is no such resource.
    fn get(&mut self, name: &str) -> Result<Option<VmView>, HarnessError>;
    /// Asks for a restart of VM `name`; fails for a reconciler that has no
    /// way to ask for one.
    fn request_restart(&mut self, name: &str) -> Result<(), HarnessError> {
        Err(HarnessError::Driver(format!(
            "this reconciler has no way to ask for a restart of {name}"
        )))
    }

    /// Everything the service has logged so far.
    fn log_text(&self) -> String;
}
