//! The `serve` loop: SSH keys first, then `service.json`, then poll the
//! store and hand each resource to its worker; on SIGTERM/SIGINT (Windows:
//! CTRL_BREAK/CTRL_C) every worker stops its hostagent, all in parallel,
//! and the service exits.

use crate::lifecycle::keys::{self, KeyError};
use crate::logging::{Shown, ShownPath};
use crate::settings::Settings;
use crate::store::atomic_file;
use crate::store::{Scanned, Store, StoreError};
use crate::worker::{self, Message, Shared, WorkerHandle};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// A corrupt document is logged again at most this often.
const CORRUPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("cannot prepare the SSH keys")]
    Keys(#[from] KeyError),
    #[error("cannot open the resource store")]
    Store(#[from] StoreError),
    #[error("cannot write {}", path.display())]
    ServiceFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install the shutdown signal handler")]
    Signals(#[from] ctrlc::Error),
}

/// Runs the service until a shutdown signal; returns after every worker
/// has stopped its VM.
pub(crate) fn serve(settings: Settings) -> Result<(), ServiceError> {
    tracing::info!(
        pid = std::process::id(),
        lima_home = %ShownPath(settings.lima_home.path()),
        state = %ShownPath(&settings.state_dir),
        regressions = %settings.regressions,
        "starting the reconciler service"
    );
    // A file left by a service that died would announce a readiness that
    // is not this service's.
    let service_file = settings.service_file();
    let _ = std::fs::remove_file(&service_file);
    keys::ensure_ssh_keys(&settings)?;
    let store = Store::open(&settings.state_dir)?;
    let (signal_tx, signals) = channel();
    ctrlc::set_handler(move || {
        let _ = signal_tx.send(());
    })?;
    let ready = serde_json::json!({"pid": std::process::id(), "ready": true});
    atomic_file::write(&service_file, format!("{ready}\n").as_bytes()).map_err(|source| {
        ServiceError::ServiceFile {
            path: service_file.clone(),
            source,
        }
    })?;
    let poll_interval = settings.poll_interval;
    let shared = Arc::new(Shared::new(settings, store));
    tracing::info!("the reconciler service is ready");

    let mut service = Loop::new(shared.clone());
    loop {
        service.poll();
        match signals.recv_timeout(poll_interval) {
            Ok(()) => break,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    tracing::info!("shutdown requested: stopping every VM");
    shared.begin_shutdown();
    service.join_all();
    if let Err(e) = std::fs::remove_file(&service_file) {
        tracing::warn!(file = %ShownPath(&service_file), error = e.to_string().as_str(), "cannot remove the service file");
    }
    tracing::info!("the reconciler service stopped");
    Ok(())
}

/// The service loop's own state: the workers and what it last complained about.
struct Loop {
    shared: Arc<Shared>,
    workers: BTreeMap<String, WorkerHandle>,
    corrupt_logged: HashMap<PathBuf, Instant>,
    scan_error_logged: Option<Instant>,
}

impl Loop {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            workers: BTreeMap::new(),
            corrupt_logged: HashMap::new(),
            scan_error_logged: None,
        }
    }

    /// One pass: hand every resource to its worker, tell workers whose
    /// resource vanished, forget workers that finished.
    fn poll(&mut self) {
        self.forget_finished_workers();
        let scanned = match self.shared.store.scan() {
            Ok(scanned) => scanned,
            Err(e) => {
                if due(&mut self.scan_error_logged) {
                    tracing::error!(
                        error = contract::error_chain::chain(&e).as_str(),
                        "cannot read the resource store"
                    );
                }
                return;
            }
        };
        let mut present = BTreeSet::new();
        let mut corrupt = BTreeSet::new();
        for entry in scanned {
            match entry {
                Scanned::Valid(vm) => {
                    let name = vm.name().to_owned();
                    present.insert(name.clone());
                    self.deliver(name, Message::Update(vm));
                }
                Scanned::Corrupt { path, error } => {
                    self.report_corrupt(&path, &error);
                    corrupt.insert(path);
                }
            }
        }
        self.corrupt_logged.retain(|path, _| corrupt.contains(path));
        let vanished: Vec<String> = self
            .workers
            .keys()
            .filter(|name| !present.contains(*name))
            // A corrupt document still exists: its worker keeps what it has.
            .filter(|name| !corrupt.contains(&self.shared.store.path_of(name)))
            .cloned()
            .collect();
        for name in vanished {
            if let Some(worker) = self.workers.get(&name) {
                let _ = worker.inbox.send(Message::Gone);
            }
        }
    }

    fn deliver(&mut self, name: String, message: Message) {
        if !self.workers.contains_key(&name) {
            match worker::spawn(self.shared.clone(), name.clone()) {
                Ok(handle) => {
                    self.workers.insert(name.clone(), handle);
                }
                Err(e) => {
                    tracing::error!(instance = %Shown(&name), error = e.to_string().as_str(), "cannot start a worker thread");
                    return;
                }
            }
        }
        if let Some(worker) = self.workers.get(&name) {
            // A worker that just finished gets a successor on the next poll.
            let _ = worker.inbox.send(message);
        }
    }

    fn report_corrupt(&mut self, path: &std::path::Path, error: &str) {
        let now = Instant::now();
        let due = self
            .corrupt_logged
            .get(path)
            .is_none_or(|at| now.duration_since(*at) >= CORRUPT_LOG_INTERVAL);
        if due {
            self.corrupt_logged.insert(path.to_owned(), now);
            tracing::error!(
                file = %ShownPath(path),
                error,
                "skipping a corrupt resource document (no status can be written into it)"
            );
        }
    }

    fn forget_finished_workers(&mut self) {
        let finished: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, worker)| worker.thread.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for name in finished {
            if let Some(worker) = self.workers.remove(&name)
                && worker.thread.join().is_err()
            {
                tracing::error!(instance = %Shown(&name), "the worker panicked; a new one takes over");
            }
        }
    }

    fn join_all(&mut self) {
        for (name, worker) in std::mem::take(&mut self.workers) {
            drop(worker.inbox);
            if worker.thread.join().is_err() {
                tracing::error!(instance = %Shown(&name), "the worker panicked during shutdown");
            }
        }
    }
}

/// True (and stamps the time) when nothing was logged in the last interval.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < CORRUPT_LOG_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}
