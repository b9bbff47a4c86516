//! The resource store: one JSON document per LimaVM under
//! `<state>/resources/`, written atomically, every read-modify-write under
//! an exclusive lock on `<state>/resources/.lock` (reads take it shared, so
//! a rename never races an open reader on Windows).
//!
//! The folder owns everything persisted under `<state>/`: the store, the
//! LimaVM resource type, the ConfigMap schema `ctl` serves, JSON merge
//! patches, the state directory's lock and atomic file writes.

pub(crate) mod atomic_file;
pub(crate) mod configmap_schema;
pub(crate) mod merge_patch;
pub(crate) mod resource;
pub(crate) mod state_lock;

use crate::store::resource::{API_VERSION, KIND, LimaVm, Status, now_rfc3339};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid LimaVM document", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A document that breaks one of the store's rules (the message says
    /// which).
    #[error("invalid LimaVM: {0}")]
    Invalid(String),
    /// A document that does not deserialise as a LimaVM.
    #[error("invalid LimaVM")]
    Malformed(#[source] serde_json::Error),
    #[error("limavms {name:?} not found")]
    NotFound { name: String },
}

impl StoreError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// One document found by [`Store::scan`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scanned {
    Valid(Box<LimaVm>),
    /// A file that cannot be read as a LimaVM; nothing can be written into it.
    Corrupt {
        path: PathBuf,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchOutcome {
    Patched,
    Unchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteOutcome {
    /// No finalizer held it: the document is gone.
    Removed,
    /// Finalizers hold it: the deletion timestamp is set and the reconciler
    /// removes the document once they are released.
    Pending,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    resources: PathBuf,
    /// Documents as last parsed, with the file stamp they were parsed at:
    /// a poll re-reads only the documents that changed.
    parsed: Arc<Mutex<HashMap<PathBuf, (Stamp, LimaVm)>>>,
}

/// What identifies one version of a document file: a write replaces the
/// file (new inode on Unix) and sets its modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

/// How old a file's modification time must be before its stamp is trusted:
/// two writes within one timestamp tick (and a reused inode) can give equal
/// stamps to different contents, so a recently written file is parsed again.
const STAMP_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

impl Stamp {
    /// True when the file was last written long enough ago that a later
    /// write must show in its modification time.
    fn settled(&self) -> bool {
        self.modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= STAMP_SETTLE)
    }

    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }
}

impl Store {
    /// Opens (creating when needed) the store of a state directory.
    pub(crate) fn open(state_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let state_dir = state_dir.as_ref();
        if state_dir.exists() && !state_dir.is_dir() {
            return Err(StoreError::Io {
                path: state_dir.to_owned(),
                source: std::io::Error::other("the state directory is a file, not a directory"),
            });
        }
        let resources = state_dir.join("resources");
        std::fs::create_dir_all(&resources).map_err(StoreError::io(&resources))?;
        Ok(Self {
            resources,
            parsed: Arc::default(),
        })
    }

    /// The document at `path`, parsed again only when its file changed.
    fn read(&self, path: &Path) -> Result<Option<LimaVm>, StoreError> {
        let Some(stamp) = Stamp::of(path) else {
            self.lock_parsed().remove(path);
            return read_typed(path);
        };
        if let Some((seen, vm)) = self.lock_parsed().get(path)
            && *seen == stamp
            && stamp.settled()
        {
            return Ok(Some(vm.clone()));
        }
        // Stamped before reading: a write in between makes the next read
        // see a new stamp and parse again.
        let vm = read_typed(path)?;
        match &vm {
            Some(vm) => self
                .lock_parsed()
                .insert(path.to_owned(), (stamp, vm.clone())),
            None => self.lock_parsed().remove(path),
        };
        Ok(vm)
    }

    fn lock_parsed(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Stamp, LimaVm)>> {
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.resources
    }

    /// The file that holds the resource `name`.
    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.resources.join(file_name_for(name))
    }

    /// Creates the resource, or updates its spec, labels and annotations;
    /// the generation moves when the spec changes. Status, finalizers and
    /// the deletion timestamp are never taken from the applied document.
    pub(crate) fn apply(&self, document: Value) -> Result<ApplyOutcome, StoreError> {
        let applied = parse_applied(document)?;
        let _lock = self.lock(true)?;
        let path = self.path_of(applied.name());
        match self.read(&path)? {
            None => {
                let mut created = LimaVm::new(applied.metadata.name.clone(), applied.spec);
                created.metadata.labels = applied.metadata.labels;
                created.metadata.annotations = applied.metadata.annotations;
                write_typed(&path, &created)?;
                Ok(ApplyOutcome::Created)
            }
            Some(existing) => {
                let mut updated = existing.clone();
                if updated.spec != applied.spec {
                    updated.spec = applied.spec;
                    updated.metadata.generation += 1;
                }
                updated.metadata.labels = applied.metadata.labels;
                updated.metadata.annotations = applied.metadata.annotations;
                if updated == existing {
                    return Ok(ApplyOutcome::Unchanged);
                }
                write_typed(&path, &updated)?;
                Ok(ApplyOutcome::Configured)
            }
        }
    }

    pub(crate) fn get(&self, name: &str) -> Result<Option<LimaVm>, StoreError> {
        let _lock = self.lock(false)?;
        self.read(&self.path_of(name))
    }

    /// Every valid resource, by name; corrupt documents are left out (see
    /// [`Store::scan`] to hear about them).
    pub(crate) fn list(&self) -> Result<Vec<LimaVm>, StoreError> {
        Ok(self
            .scan()?
            .into_iter()
            .filter_map(|scanned| match scanned {
                Scanned::Valid(vm) => Some(*vm),
                Scanned::Corrupt { .. } => None,
            })
            .collect())
    }

    /// Every document, valid or not, sorted by file name.
    pub(crate) fn scan(&self) -> Result<Vec<Scanned>, StoreError> {
        let _lock = self.lock(false)?;
        let entries =
            std::fs::read_dir(&self.resources).map_err(StoreError::io(&self.resources))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| is_document_file(path))
            .collect();
        paths.sort();
        let mut found = Vec::new();
        for path in paths {
            match self.read(&path) {
                Ok(None) => {} // removed since the listing
                Ok(Some(vm)) if self.path_of(vm.name()) != path => found.push(Scanned::Corrupt {
                    error: format!(
                        "it holds metadata.name {:?}, whose file is {}",
                        vm.name(),
                        file_name_for(vm.name())
                    ),
                    path,
                }),
                Ok(Some(vm)) => found.push(Scanned::Valid(Box::new(vm))),
                Err(error) => found.push(Scanned::Corrupt {
                    path,
                    error: contract::error_chain::chain(&error),
                }),
            }
        }
        Ok(found)
    }

    /// Applies an RFC 7386 merge patch to the document. The name, the
    /// generation, the deletion timestamp and the status cannot be patched.
    pub(crate) fn patch_merge(
        &self,
        name: &str,
        patch: &Value,
    ) -> Result<PatchOutcome, StoreError> {
        let _lock = self.lock(true)?;
        let path = self.path_of(name);
        let existing = self.read(&path)?.ok_or_else(|| StoreError::NotFound {
            name: name.to_owned(),
        })?;
        let mut document = existing.to_value();
        merge_patch::apply(&mut document, patch);
        let mut patched = LimaVm::from_value(document).map_err(StoreError::Malformed)?;
        if patched.name() != existing.name() {
            return Err(StoreError::Invalid(format!(
                "metadata.name cannot be changed (from {:?} to {:?})",
                existing.name(),
                patched.name()
            )));
        }
        check_kind(&patched.api_version, &patched.kind)?;
        patched.status = existing.status.clone();
        patched.metadata.deletion_timestamp = existing.metadata.deletion_timestamp.clone();
        patched.metadata.generation = existing.metadata.generation;
        if patched.spec != existing.spec {
            patched.metadata.generation += 1;
        }
        if patched == existing {
            return Ok(PatchOutcome::Unchanged);
        }
        if patched.is_being_deleted() && patched.metadata.finalizers.is_empty() {
            remove_document(&path)?;
        } else {
            write_typed(&path, &patched)?;
        }
        Ok(PatchOutcome::Patched)
    }

    /// Deletes the resource: at once when no finalizer holds it, otherwise
    /// by setting its deletion timestamp.
    pub(crate) fn delete(&self, name: &str) -> Result<DeleteOutcome, StoreError> {
        let _lock = self.lock(true)?;
        let path = self.path_of(name);
        let mut vm = self.read(&path)?.ok_or_else(|| StoreError::NotFound {
            name: name.to_owned(),
        })?;
        if vm.metadata.finalizers.is_empty() {
            remove_document(&path)?;
            return Ok(DeleteOutcome::Removed);
        }
        if vm.metadata.deletion_timestamp.is_none() {
            vm.metadata.deletion_timestamp = Some(now_rfc3339());
            write_typed(&path, &vm)?;
        }
        Ok(DeleteOutcome::Pending)
    }

    /// Changes the status of `name`; `false` when the resource is gone.
    pub(crate) fn update_status(
        &self,
        name: &str,
        change: impl FnOnce(&mut Status),
    ) -> Result<bool, StoreError> {
        self.update(name, |vm| change(&mut vm.status))
    }

    /// Adds a finalizer; `false` when the resource is gone.
    pub(crate) fn add_finalizer(&self, name: &str, finalizer: &str) -> Result<bool, StoreError> {
        self.update(name, |vm| {
            if !vm.has_finalizer(finalizer) {
                vm.metadata.finalizers.push(finalizer.to_owned());
            }
        })
    }

    /// Removes a finalizer, and the whole document when it is being deleted
    /// and no finalizer is left. `true` when the document is gone now.
    pub(crate) fn remove_finalizer(&self, name: &str, finalizer: &str) -> Result<bool, StoreError> {
        let _lock = self.lock(true)?;
        let path = self.path_of(name);
        let Some(mut vm) = self.read(&path)? else {
            return Ok(true);
        };
        vm.metadata.finalizers.retain(|f| f != finalizer);
        if vm.is_being_deleted() && vm.metadata.finalizers.is_empty() {
            remove_document(&path)?;
            return Ok(true);
        }
        write_typed(&path, &vm)?;
        Ok(false)
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut LimaVm)) -> Result<bool, StoreError> {
        let _lock = self.lock(true)?;
        let path = self.path_of(name);
        let Some(existing) = self.read(&path)? else {
            return Ok(false);
        };
        let mut updated = existing.clone();
        change(&mut updated);
        if updated != existing {
            write_typed(&path, &updated)?;
        }
        Ok(true)
    }

    /// Holds the store lock until the returned file is dropped.
    fn lock(&self, exclusive: bool) -> Result<File, StoreError> {
        let path = self.resources.join(".lock");
        let lock_error = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_error)?;
        if exclusive {
            file.lock().map_err(lock_error)?;
        } else {
            file.lock_shared().map_err(lock_error)?;
        }
        Ok(file)
    }
}

fn parse_applied(mut document: Value) -> Result<LimaVm, StoreError> {
    let Value::Object(members) = &mut document else {
        return Err(StoreError::Invalid(
            "the document is not a JSON object".into(),
        ));
    };
    members.remove("status");
    let name = members
        .get("metadata")
        .and_then(|m| m.get("name"))
        .ok_or_else(|| StoreError::Invalid("metadata.name is required".into()))?;
    if !name.is_string() {
        return Err(StoreError::Invalid(format!(
            "metadata.name must be a string, not {name}"
        )));
    }
    let applied = LimaVm::from_value(document).map_err(StoreError::Malformed)?;
    check_kind(&applied.api_version, &applied.kind)?;
    Ok(applied)
}

fn check_kind(api_version: &str, kind: &str) -> Result<(), StoreError> {
    if kind != KIND {
        return Err(StoreError::Invalid(format!(
            "kind {kind:?} is not {KIND:?}"
        )));
    }
    if api_version != API_VERSION {
        return Err(StoreError::Invalid(format!(
            "apiVersion {api_version:?} is not {API_VERSION:?}"
        )));
    }
    Ok(())
}

fn is_document_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && name.ends_with(".json")
}

fn read_typed(path: &Path) -> Result<Option<LimaVm>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |source| StoreError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let value: Value = serde_json::from_str(&text).map_err(corrupt)?;
    LimaVm::from_value(value).map(Some).map_err(corrupt)
}

fn write_typed(path: &Path, vm: &LimaVm) -> Result<(), StoreError> {
    let mut text = serde_json::to_string_pretty(vm).expect("a LimaVM serialises");
    text.push('\n');
    atomic_file::write(path, text.as_bytes()).map_err(StoreError::io(path))
}

fn remove_document(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `<name>.json`. Characters that cannot be in a file name on this platform
/// (and `%`, the escape itself) are written `%XX` (UTF-8 bytes); so is a
/// leading `.`, which would make `.`/`..` or hide the file. Any name,
/// including ones the reconciler refuses as instance names, gets a file of
/// its own, and ordinary names keep the plain `<name>.json`.
///
/// A trailing `.` or space of the name is kept on Windows too: Windows
/// strips those only at the end of a whole file name, and the file name
/// always ends in `.json`. So `..` is `%2E..json` on every platform.
pub(crate) fn file_name_for(name: &str) -> String {
    if name.is_empty() {
        // No other name encodes to a lone '%'.
        return "%.json".to_owned();
    }
    let windows = cfg!(windows);
    let reserved_device = windows && is_windows_device_name(name);
    let mut encoded = String::new();
    for (index, c) in name.chars().enumerate() {
        let unsafe_here = matches!(c, '/' | '%' | '\0')
            || (index == 0 && c == '.')
            || (windows
                && (matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
                    || c.is_control()
                    || (index == 0 && reserved_device)));
        if unsafe_here {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        } else {
            encoded.push(c);
        }
    }
    encoded.push_str(".json");
    encoded
}

/// `CON`, `nul.txt`, `COM1`...: names Windows keeps for devices.
fn is_windows_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::resource::CLEANUP_FINALIZER;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn vm_doc(name: &str, running: bool) -> Value {
        json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "labels": {"team": "a"}},
            "spec": {"running": running, "vmType": "qemu", "template": "images: []\n"}
        })
    }

    #[test]
    fn apply_creates_then_bumps_the_generation_only_for_spec_changes() {
        let (_dir, store) = store();
        assert_eq!(
            store.apply(vm_doc("vm1", true)).unwrap(),
            ApplyOutcome::Created
        );
        let vm = store.get("vm1").unwrap().unwrap();
        assert_eq!(vm.metadata.generation, 1);
        assert!(vm.metadata.finalizers.is_empty());
        assert_eq!(vm.metadata.labels["team"], "a");
        assert_eq!(
            store.apply(vm_doc("vm1", true)).unwrap(),
            ApplyOutcome::Unchanged
        );

        let mut relabelled = vm_doc("vm1", true);
        relabelled["metadata"]["labels"]["team"] = json!("b");
        assert_eq!(store.apply(relabelled).unwrap(), ApplyOutcome::Configured);
        assert_eq!(store.get("vm1").unwrap().unwrap().metadata.generation, 1);

        assert_eq!(
            store.apply(vm_doc("vm1", false)).unwrap(),
            ApplyOutcome::Configured
        );
        assert_eq!(store.get("vm1").unwrap().unwrap().metadata.generation, 2);
    }

    #[test]
    fn apply_never_touches_status_or_finalizers() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        store.add_finalizer("vm1", CLEANUP_FINALIZER).unwrap();
        store.update_status("vm1", |s| s.restart_count = 3).unwrap();
        let mut doc = vm_doc("vm1", false);
        doc["status"] = json!({"restartCount": 99, "conditions": "garbage"});
        doc["metadata"]["finalizers"] = json!([]);
        store.apply(doc).unwrap();
        let vm = store.get("vm1").unwrap().unwrap();
        assert_eq!(vm.status.restart_count, 3);
        assert_eq!(vm.metadata.finalizers, [CLEANUP_FINALIZER]);
        assert!(!vm.spec.running);
    }

    #[test]
    fn apply_refuses_documents_that_are_not_limavms() {
        let (_dir, store) = store();
        for (doc, expected) in [
            (json!([1]), "not a JSON object"),
            (json!({"spec": {}}), "metadata.name is required"),
            (json!({"metadata": {"name": 3}}), "must be a string"),
            (json!({"kind": "Pod", "metadata": {"name": "a"}}), "\"Pod\""),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
                "apiVersion",
            ),
            (
                json!({"metadata": {"name": "a"}, "spec": {"vmType": "hyperv"}}),
                "hyperv",
            ),
        ] {
            let err = contract::error_chain::chain(&store.apply(doc.clone()).unwrap_err());
            assert!(err.contains(expected), "{doc}: {err}");
        }
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn merge_patch_changes_the_spec_and_bumps_the_generation() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        let outcome = store
            .patch_merge(
                "vm1",
                &json!({"spec": {"running": false}, "status": {"restartCount": 7}}),
            )
            .unwrap();
        assert_eq!(outcome, PatchOutcome::Patched);
        let vm = store.get("vm1").unwrap().unwrap();
        assert!(!vm.spec.running);
        assert_eq!(vm.spec.template, "images: []\n");
        assert_eq!(vm.metadata.generation, 2);
        assert_eq!(vm.status.restart_count, 0, "status is not patchable");
        assert_eq!(
            store
                .patch_merge("vm1", &json!({"spec": {"running": false}}))
                .unwrap(),
            PatchOutcome::Unchanged
        );
        let err = store
            .patch_merge("vm1", &json!({"metadata": {"name": "other"}}))
            .unwrap_err();
        assert!(err.to_string().contains("cannot be changed"), "{err}");
        assert!(matches!(
            store.patch_merge("none", &json!({})),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn delete_without_finalizers_removes_at_once() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        assert_eq!(store.delete("vm1").unwrap(), DeleteOutcome::Removed);
        assert!(store.get("vm1").unwrap().is_none());
        assert!(matches!(
            store.delete("vm1"),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn delete_with_a_finalizer_waits_for_its_removal() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        store.add_finalizer("vm1", CLEANUP_FINALIZER).unwrap();
        assert_eq!(store.delete("vm1").unwrap(), DeleteOutcome::Pending);
        let vm = store.get("vm1").unwrap().unwrap();
        let stamp = vm.metadata.deletion_timestamp.clone().unwrap();
        assert_eq!(store.delete("vm1").unwrap(), DeleteOutcome::Pending);
        assert_eq!(
            store
                .get("vm1")
                .unwrap()
                .unwrap()
                .metadata
                .deletion_timestamp,
            Some(stamp),
            "a second delete keeps the first timestamp"
        );
        assert!(store.remove_finalizer("vm1", CLEANUP_FINALIZER).unwrap());
        assert!(store.get("vm1").unwrap().is_none());
    }

    #[test]
    fn patching_away_the_last_finalizer_of_a_deleted_resource_removes_it() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        store.add_finalizer("vm1", CLEANUP_FINALIZER).unwrap();
        store.delete("vm1").unwrap();
        store
            .patch_merge("vm1", &json!({"metadata": {"finalizers": null}}))
            .unwrap();
        assert!(store.get("vm1").unwrap().is_none());
    }

    #[test]
    fn a_document_changed_behind_the_cache_is_read_again() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        assert!(store.get("vm1").unwrap().unwrap().spec.running);
        // Another process (a second Store) changes it: same length, new file.
        Store::open(store.dir().parent().unwrap())
            .unwrap()
            .apply(vm_doc("vm1", false))
            .unwrap();
        assert!(!store.get("vm1").unwrap().unwrap().spec.running);
        std::fs::write(store.path_of("vm1"), "{not json").unwrap();
        assert!(matches!(store.get("vm1"), Err(StoreError::Corrupt { .. })));
        std::fs::remove_file(store.path_of("vm1")).unwrap();
        assert!(store.get("vm1").unwrap().is_none());
    }

    #[test]
    fn a_corrupt_document_is_reported_by_path_and_others_still_list() {
        let (_dir, store) = store();
        store.apply(vm_doc("good", true)).unwrap();
        std::fs::write(store.path_of("bad"), "{not json").unwrap();
        std::fs::write(
            store.dir().join("stray.json"),
            serde_json::to_string(&vm_doc("other", true)).unwrap(),
        )
        .unwrap();
        let scanned = store.scan().unwrap();
        let corrupt: Vec<&PathBuf> = scanned
            .iter()
            .filter_map(|s| match s {
                Scanned::Corrupt { path, .. } => Some(path),
                Scanned::Valid(_) => None,
            })
            .collect();
        assert_eq!(
            corrupt,
            [&store.path_of("bad"), &store.dir().join("stray.json")]
        );
        let names: Vec<String> = store
            .list()
            .unwrap()
            .iter()
            .map(|v| v.name().to_owned())
            .collect();
        assert_eq!(names, ["good"]);
        let err = store.get("bad").unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
        assert!(store.update_status("bad", |s| s.restart_count = 1).is_err());
        assert_eq!(
            std::fs::read_to_string(store.path_of("bad")).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temporaries() {
        let (_dir, store) = store();
        store.apply(vm_doc("vm1", true)).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        store
                            .update_status("vm1", |s| s.restart_count += 1)
                            .unwrap();
                        store
                            .patch_merge(
                                "vm1",
                                &json!({"metadata": {"labels": {"w": format!("{i}-{n}")}}}),
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..100 {
            // Every read sees a whole document.
            store.get("vm1").unwrap().unwrap();
        }
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(store.get("vm1").unwrap().unwrap().status.restart_count, 100);
        let mut names: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".lock", "vm1.json"]);
    }

    #[test]
    fn every_name_gets_a_distinct_safe_file_name() {
        let names = [
            "vm1",
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a%2Fb",
            "_config",
            "con",
            "CON.x",
            "com1",
            "tail.",
            "tail ",
            "x:y",
            "we[1]rd {*?} ü",
            "-dash",
            "a\0b",
        ];
        let files: std::collections::BTreeSet<String> =
            names.iter().map(|n| file_name_for(n)).collect();
        assert_eq!(files.len(), names.len(), "{files:?}");
        assert_eq!(file_name_for("vm1"), "vm1.json");
        assert_eq!(file_name_for("a/b"), "a%2Fb.json");
        assert_eq!(file_name_for(".."), "%2E..json");
        assert_eq!(file_name_for("tail."), "tail..json");
        assert_eq!(file_name_for("tail "), "tail .json");
        if cfg!(windows) {
            assert_eq!(file_name_for("we[1]rd {*?} ü"), "we[1]rd {%2A%3F} ü.json");
        } else {
            assert_eq!(file_name_for("we[1]rd {*?} ü"), "we[1]rd {*?} ü.json");
        }
        for file in &files {
            assert!(!file.contains(['/', '\0']), "{file}");
            assert!(!file.starts_with('.'), "{file}");
        }
        let (_dir, store) = store();
        for name in names {
            store.apply(vm_doc(name, false)).unwrap();
            assert_eq!(store.get(name).unwrap().unwrap().name(), name);
        }
        assert_eq!(store.list().unwrap().len(), names.len());
    }
}
