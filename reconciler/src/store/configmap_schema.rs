//! A second resource schema for `ctl --schema configmap`, shaped like the
//! LimaVM controllers that keep the template in a ConfigMap: namespaced
//! `limavm.dev/v1alpha2` LimaVMs with `spec.templateRef {name, namespace}`
//! naming a ConfigMap whose key `template` holds the lima.yaml, no
//! `status.observedGeneration`. It is a translation over the store: a
//! ConfigMap is kept next to it, a LimaVM becomes the store's
//! `limavm.dev/v1alpha1` document with the template filled in, and
//! applying a ConfigMap again changes the template of every LimaVM that
//! names it. Exists so that the harness's target files for such
//! reconcilers are exercised on every CI build.

use crate::store::atomic_file;
use crate::store::resource::API_VERSION;
use crate::store::{ApplyOutcome, Store, StoreError};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Why a document could not be applied under this schema.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigMapError {
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("LimaVM {vm}: spec.templateRef.name is missing")]
    MissingTemplateRef { vm: String },
    #[error("ConfigMap {name} not found")]
    ConfigMapNotFound { name: String },
    #[error("ConfigMap {name} has no key `template`")]
    NoTemplateKey { name: String },
    /// `reason` is `lima_layout::LimaConfig::parse`'s message (a string,
    /// not an error value).
    #[error("ConfigMap {name}: the template is not a Lima template: {reason}")]
    NotATemplate { name: String, reason: String },
    #[error(
        "--schema configmap takes a Namespace, a ConfigMap or a {API_VERSION_V2} LimaVM, not {kind:?}"
    )]
    UnknownKind { kind: Option<String> },
}

/// The API version of this schema's LimaVM.
pub(crate) const API_VERSION_V2: &str = "limavm.dev/v1alpha2";

/// Where the ConfigMaps and the template references are kept.
fn dir(store: &Store, what: &str) -> PathBuf {
    store.dir().join("configmap-schema").join(what)
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn write(path: &Path, value: &Value) -> Result<(), ConfigMapError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ConfigMapError::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    atomic_file::write(path, value.to_string().as_bytes()).map_err(|source| ConfigMapError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A name as a file name (no separators).
fn file(name: &str) -> String {
    crate::store::file_name_for(name)
}

/// Applies a ConfigMap or a v1alpha2 LimaVM; returns what kubectl prints.
pub(crate) fn apply(store: &Store, doc: Value) -> Result<String, ConfigMapError> {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match doc["kind"].as_str() {
        Some("Namespace") => Ok(format!("namespace/{name} unchanged")),
        Some("ConfigMap") => {
            write(&dir(store, "configmaps").join(file(&name)), &doc)?;
            for vm in store.list()? {
                let reference = read(&dir(store, "refs").join(file(vm.name())));
                if reference.is_some_and(|r| r["name"] == name.as_str()) {
                    let (template, vm_type) = template_of(store, &name)?;
                    store.patch_merge(
                        vm.name(),
                        &json!({"spec": {"template": template, "vmType": vm_type}}),
                    )?;
                }
            }
            Ok(format!("configmap/{name} configured"))
        }
        Some("LimaVM") if doc["apiVersion"] == API_VERSION_V2 => {
            let reference = &doc["spec"]["templateRef"];
            let map = reference["name"]
                .as_str()
                .ok_or_else(|| ConfigMapError::MissingTemplateRef { vm: name.clone() })?;
            let (template, vm_type) = template_of(store, map)?;
            write(&dir(store, "refs").join(file(&name)), reference)?;
            let namespace = doc["metadata"]["namespace"].clone();
            write(&dir(store, "namespaces").join(file(&name)), &namespace)?;
            let outcome = store.apply(json!({
                "apiVersion": API_VERSION,
                "kind": "LimaVM",
                "metadata": {"name": name},
                "spec": {
                    "running": doc["spec"]["running"].as_bool().unwrap_or(true),
                    "template": template,
                    "vmType": vm_type,
                }
            }))?;
            let outcome = match outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Configured => "configured",
                ApplyOutcome::Unchanged => "unchanged",
            };
            Ok(format!("limavm.limavm.dev/{name} {outcome}"))
        }
        other => Err(ConfigMapError::UnknownKind {
            kind: other.map(str::to_owned),
        }),
    }
}

/// The template text and VM type in ConfigMap `name`.
fn template_of(store: &Store, name: &str) -> Result<(String, String), ConfigMapError> {
    let name_of = || name.to_owned();
    let map = read(&dir(store, "configmaps").join(file(name)))
        .ok_or_else(|| ConfigMapError::ConfigMapNotFound { name: name_of() })?;
    let template = map["data"]["template"]
        .as_str()
        .ok_or_else(|| ConfigMapError::NoTemplateKey { name: name_of() })?
        .to_owned();
    let vm_type = lima_layout::LimaConfig::parse(&template)
        .map_err(|reason| ConfigMapError::NotATemplate {
            name: name_of(),
            reason,
        })?
        .vm_type
        .as_str()
        .to_owned();
    Ok((template, vm_type))
}

/// The store's document as this schema shows it: v1alpha2, namespaced,
/// with its template reference and without `status.observedGeneration`.
pub(crate) fn present(store: &Store, mut doc: Value) -> Value {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    doc["apiVersion"] = API_VERSION_V2.into();
    if let Some(namespace) = read(&dir(store, "namespaces").join(file(&name))) {
        doc["metadata"]["namespace"] = namespace;
    }
    if let Some(reference) = read(&dir(store, "refs").join(file(&name))) {
        doc["spec"]["templateRef"] = reference;
    }
    if let Some(status) = doc["status"].as_object_mut() {
        status.remove("observedGeneration");
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configmap_template_is_resolved_and_a_reapplied_one_changes_the_vm() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let map = |t: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "vm-source", "namespace": "ns"},
                   "data": {"template": t}})
        };
        let vm = json!({"apiVersion": API_VERSION_V2, "kind": "LimaVM",
                        "metadata": {"name": "vm", "namespace": "ns"},
                        "spec": {"running": false, "templateRef": {"name": "vm-source"}}});
        assert!(
            apply(&store, vm.clone())
                .unwrap_err()
                .to_string()
                .contains("vm-source not found")
        );
        apply(&store, map("vmType: qemu\n")).unwrap();
        apply(&store, vm).unwrap();
        let stored = store.get("vm").unwrap().unwrap();
        assert_eq!(stored.spec.template, "vmType: qemu\n");
        apply(&store, map("vmType: wsl2\n")).unwrap();
        let shown = present(&store, store.get("vm").unwrap().unwrap().to_value());
        assert_eq!(shown["spec"]["template"], "vmType: wsl2\n");
        assert_eq!(shown["spec"]["vmType"], "wsl2");
        assert_eq!(shown["metadata"]["namespace"], "ns");
        assert_eq!(shown["spec"]["templateRef"]["name"], "vm-source");
        assert!(shown["status"].get("observedGeneration").is_none());
        assert_eq!(shown["apiVersion"], API_VERSION_V2);
    }
}
