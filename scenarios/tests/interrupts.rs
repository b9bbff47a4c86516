//! `reproduce` interrupted mid-run: SIGINT to its process group and SIGTERM
//! stop the run and clean every sandbox, saying so; after SIGKILL, the next
//! run reports what was left and `--clean-leftovers` removes it. Each run
//! gets a temporary directory of its own, so that what is left is counted
//! there and by the sandbox mark, never confused with other tests' sandboxes.
#![cfg(unix)]

use harness::eventually;
use proctree::ProcessTable;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const FINDING: &str = "orphaned-port-holders";
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A `reproduce` run in a process group of its own; killed with its
/// group and reaped when dropped.
struct Run {
    child: Child,
}

impl Run {
    fn start(tmp: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reproduce"));
        cmd.args(args)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        proctree::SpawnAttributes {
            own_process_group: true,
            background_priority: false,
        }
        .apply(&mut cmd);
        Self {
            child: cmd.spawn().expect("reproduce starts"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the exit; returns the code and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = eventually(EXIT_DEADLINE, "reproduce to exit", || {
            self.child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.code(), stderr)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Only while unreaped is the pid surely still this child's.
        if let Ok(None) = self.child.try_wait() {
            let _ = proctree::kill_tree(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// A temporary directory for one run; on drop (also on panic) whatever a
/// killed run left there is removed.
struct Tmp(tempfile::TempDir);

impl Tmp {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        harness::runs::remove_leftovers(self.0.path());
    }
}

/// Processes of sandboxes made under `tmp` (by their mark and TMPDIR).
fn sandbox_processes(tmp: &Path) -> Vec<String> {
    let tmp = tmp.to_string_lossy();
    ProcessTable::snapshot()
        .iter()
        .filter(|p| {
            p.env_var(harness::sandbox::SANDBOX_ENV).is_some()
                && p.env_var("TMPDIR") == Some(tmp.as_ref())
        })
        .map(|p| format!("{} (pid {})", p.name, p.pid))
        .collect()
}

fn sandbox_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("limavm"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a run of one finding and waits until its service is up.
fn started_run(tmp: &Path) -> Run {
    let run = Run::start(tmp, &["--only", FINDING, "--variants", "fixed", "-j", "1"]);
    eventually(Duration::from_secs(30), "a sandbox process to run", || {
        let found = sandbox_processes(tmp);
        if found.is_empty() {
            Err("none yet".to_owned())
        } else {
            Ok(())
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    run
}

fn assert_clean(tmp: &Path, stderr: &str) {
    assert_eq!(sandbox_processes(tmp), Vec::<String>::new(), "{stderr}");
    assert_eq!(sandbox_dirs(tmp), Vec::<String>::new(), "{stderr}");
}

#[test]
fn sigint_to_the_group_stops_the_run_and_cleans_every_sandbox() {
    let tmp = Tmp::new();
    let run = started_run(tmp.path());
    proctree::interrupt_group(run.pid()).unwrap();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; cleaned"), "{stderr}");
    assert!(stderr.contains("directory"), "{stderr}");
    assert_clean(tmp.path(), &stderr);
}

#[test]
fn sigterm_stops_the_run_and_cleans_every_sandbox() {
    let tmp = Tmp::new();
    let run = started_run(tmp.path());
    proctree::request_shutdown(run.pid()).unwrap();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; cleaned"), "{stderr}");
    assert_clean(tmp.path(), &stderr);
}

#[test]
fn after_sigkill_the_next_run_reports_and_removes_what_was_left() {
    let tmp = Tmp::new();
    let run = started_run(tmp.path());
    proctree::kill(run.pid()).unwrap();
    let (code, _) = run.finish();
    assert_eq!(code, None);
    assert!(!sandbox_processes(tmp.path()).is_empty());
    assert!(!sandbox_dirs(tmp.path()).is_empty());

    let (code, stderr) = Run::start(tmp.path(), &["--list"]).finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("earlier runs that were killed left") && stderr.contains("--clean-leftovers"),
        "{stderr}"
    );
    assert!(!sandbox_dirs(tmp.path()).is_empty(), "reporting removed nothing");

    let (code, stderr) = Run::start(tmp.path(), &["--list", "--clean-leftovers"]).finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("removed what earlier runs left"), "{stderr}");
    let left = eventually(Duration::from_secs(10), "the leftovers to be gone", || {
        let (p, d) = (sandbox_processes(tmp.path()), sandbox_dirs(tmp.path()));
        if p.is_empty() && d.is_empty() {
            Ok(())
        } else {
            Err(format!("{p:?} {d:?}"))
        }
    });
    left.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
}
