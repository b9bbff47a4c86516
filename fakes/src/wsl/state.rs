//! The fake's registry of WSL distros: a JSON file (`LIMAVM_FAKE_WSL_STATE`,
//! default `$HOME/.limavm-fake-wsl.json`), read and written only under an
//! exclusive lock on `<file>.lock`, replaced atomically so that lock-free
//! readers (the harness) never see half a file.

use crate::error::FakeError;
use crate::journal::{JournalWriter, Record};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The variable naming the state file.
const STATE_ENV: &str = contract::env::FAKE_WSL_STATE;
const DEFAULT_FILE_NAME: &str = ".limavm-fake-wsl.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DistroState {
    Stopped,
    Running,
}

impl DistroState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DistroState::Stopped => "Stopped",
            DistroState::Running => "Running",
        }
    }
}

/// One `wsl -d` process; the start time tells a recycled pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Session {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
}

impl Session {
    pub(crate) fn of_current_process() -> Self {
        let pid = std::process::id();
        let start_time = proctree::ProcessTable::snapshot_of(&[pid])
            .get(pid)
            .map_or(0, |p| p.start_time);
        Self { pid, start_time }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Distro {
    /// Running exactly while a session is alive.
    pub(crate) state: DistroState,
    #[serde(default)]
    pub(crate) location: PathBuf,
    #[serde(default)]
    pub(crate) source: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) sessions: Vec<Session>,
}

impl Distro {
    pub(crate) fn new(location: PathBuf, source: PathBuf) -> Self {
        Self {
            state: DistroState::Stopped,
            location,
            source,
            sessions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WslState {
    #[serde(default)]
    pub(crate) distros: BTreeMap<String, Distro>,
}

impl WslState {
    /// The registered name matching `name` (WSL compares names without
    /// regard to case).
    pub(crate) fn find(&self, name: &str) -> Option<String> {
        self.distros
            .keys()
            .find(|key| key.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Drops sessions whose process is gone (or whose pid was recycled) and
    /// derives every distro's state from the sessions left.
    fn settle(&mut self) {
        let pids: Vec<u32> = self
            .distros
            .values()
            .flat_map(|d| d.sessions.iter().map(|s| s.pid))
            .collect();
        let table = proctree::ProcessTable::snapshot_of(&pids);
        for distro in self.distros.values_mut() {
            distro.sessions.retain(|s| {
                table
                    .get(s.pid)
                    .is_some_and(|p| !p.zombie && p.start_time == s.start_time)
            });
            distro.state = if distro.sessions.is_empty() {
                DistroState::Stopped
            } else {
                DistroState::Running
            };
        }
    }
}

pub(crate) struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub(crate) fn from_env() -> Result<Self, FakeError> {
        let path = match std::env::var_os(STATE_ENV).filter(|p| !p.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => crate::home::home_dir()?.join(DEFAULT_FILE_NAME),
        };
        Ok(Self { path })
    }

    /// Reads the state under the lock, lets `change` edit it, settles it,
    /// writes it back when it changed, and journals each distro whose state
    /// changed (`Unregistered` when it disappeared).
    pub(crate) fn update<T>(
        &self,
        journal: &JournalWriter,
        change: impl FnOnce(&mut WslState) -> T,
    ) -> Result<T, FakeError> {
        let _lock = self.lock()?;
        let before = self.load()?;
        let mut after = before.clone();
        after.settle();
        let result = change(&mut after);
        after.settle();
        if after != before {
            self.save(&after)?;
        }
        journal_changes(journal, &before, &after);
        Ok(result)
    }

    fn lock(&self) -> Result<File, FakeError> {
        let lock_path = sibling(&self.path, "lock");
        let failed = |e: std::io::Error| {
            FakeError::failed(format!(
                "wsl (limavm fake): cannot lock {}: {e}",
                lock_path.display()
            ))
        };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(failed)?;
        file.lock().map_err(failed)?;
        Ok(file)
    }

    fn load(&self) -> Result<WslState, FakeError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) if text.trim().is_empty() => Ok(WslState::default()),
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                FakeError::usage(
                    "wsl",
                    format!("malformed state file {}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WslState::default()),
            Err(e) => Err(FakeError::failed(format!(
                "wsl (limavm fake): cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    fn save(&self, state: &WslState) -> Result<(), FakeError> {
        let text = serde_json::to_string_pretty(state).expect("the WSL state serialises");
        let tmp = sibling(&self.path, &format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                FakeError::failed(format!(
                    "wsl (limavm fake): cannot write {}: {e}",
                    self.path.display()
                ))
            })
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn journal_changes(journal: &JournalWriter, before: &WslState, after: &WslState) {
    let names: BTreeSet<&String> = before.distros.keys().chain(after.distros.keys()).collect();
    for name in names {
        let old = before.distros.get(name).map(|d| d.state.as_str());
        let new = after.distros.get(name).map(|d| d.state.as_str());
        if old != new {
            journal.record(Record::DistroState {
                distro: name.to_owned(),
                state: new.unwrap_or("Unregistered").to_owned(),
            });
        }
    }
}
