//! `resource.changes` and `resource.observed` of a target file: how each
//! change to a VM is made (a merge patch or a re-apply), and how the
//! harness tells that the reconciler observed it.

use serde::Deserialize;
use serde_json::Value;

/// How one change to a VM is made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Change {
    /// `cli.patch` with this merge patch (a template) on the VM resource.
    Patch {
        /// The merge patch, a JSON template.
        patch: Value,
    },
    /// `cli.apply` again of the documents of these kinds (for a reconciler
    /// that takes its template from a ConfigMap: re-apply the ConfigMap).
    Reapply {
        /// The `kind`s of the documents to apply again.
        reapply: Vec<String>,
    },
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
    /// How `spec.running` is set: the file's change, or the reference's
    /// merge patch `{"spec": {"running": {running}}}`.
    pub(crate) fn running(&self) -> Change {
        self.running.clone().unwrap_or_else(|| Change::Patch {
            patch: serde_json::json!({"spec": {"running": "{running}"}}),
        })
    }

    /// How the template is replaced: the file's change, or the
    /// reference's merge patch of `spec.template` and `spec.vmType`.
    pub(crate) fn template(&self) -> Change {
        self.template.clone().unwrap_or_else(|| Change::Patch {
            patch: serde_json::json!({"spec": {"template": "{template}", "vmType": "{vm_type}"}}),
        })
    }

    /// Every template, with the field it comes from.
    pub(crate) fn all(&self) -> Vec<(&'static str, Value)> {
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
