//! A delete that fails for a reason other than WSL2: an entry of the
//! instance directory that cannot be removed (made so by the harness, for
//! root too: see `harness::unremovable`).

use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use crate::symptom;
use contract::FindingId;
use contract::condition::{kind, status};
use harness::{VmView, eventually};

/// The directory inside the instance that holds the unremovable file.
const BLOCKED_DIR: &str = "blocked";

/// VM vm runs; `INSTANCE_DIR/blocked/held` cannot be removed; vm is
/// deleted. The delete must fail, keep the finalizer, and say which entry
/// blocked it (not only the instance directory, which holds dozens);
/// once the entry can go, the retried delete finishes.
pub(crate) fn delete_blocker(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    let vm = ctx.qemu_vm("vm", 0)?;
    steps::bring_up(ctx, svc.as_mut(), &vm)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let held = ctx
        .sandbox
        .make_unremovable(&instance.dir.join(BLOCKED_DIR))?;
    let blocker = held.display().to_string();
    // A target with a Lima home of its own (a link to the sandbox's) names
    // the entry by its own path: the part below the Lima home is what
    // every spelling shares.
    let entry = held
        .strip_prefix(ctx.sandbox.lima_home().path())
        .unwrap_or(&held)
        .to_path_buf();
    svc.delete("vm")?;
    // `None`: vm is gone although its delete cannot have succeeded.
    let failed = eventually(SETTLE, "the delete to fail, saying so", || {
        let view = svc.get("vm").map_err(|e| e.to_string())?;
        let Some(view) = view else {
            return Ok(None);
        };
        match failure_message(&view) {
            Some(message) => Ok(Some((view, message))),
            None => Err(summary(&view)),
        }
    });
    let dir_left = instance.dir.exists();
    // The entry may go now: the retries are left to finish the delete.
    ctx.sandbox.release_unremovable()?;
    let failed = failed.map_err(|e| {
        symptom!(
            "VM vm: the delete with {blocker} unremovable never reported a failure: {}",
            e.last_seen
        )
    })?;
    let Some((view, message)) = failed else {
        return gone_although_blocked(ctx, dir_left, &instance.dir, &blocker);
    };
    ensure(!view.finalizers.is_empty(), || {
        format!(
            "VM vm: the failed delete dropped the finalizers: {}",
            summary(&view)
        )
    })?;
    ensure(names_entry(&message, &entry), || {
        format!(
            "VM vm: the failed delete names {message:?}, not the entry that blocked it ({blocker})"
        )
    })?;
    steps::wait_gone(svc.as_mut(), "vm", SETTLE)?;
    ensure(!instance.dir.exists(), || {
        format!(
            "VM vm is gone, but its instance directory {} is left",
            instance.dir.display()
        )
    })
}

/// VM vm went away although `blocker` kept its delete from finishing
/// (`dir_left`: the instance directory was still there): always an error.
/// A retry that no longer finds the instance (the first attempt removed
/// what it could, `lima.yaml` included) must not take that for success
/// while the directory is still there: that is the review's finalizer
/// dropped after a failed delete, on any OS.
fn gone_although_blocked(
    ctx: &Ctx,
    dir_left: bool,
    dir: &std::path::Path,
    blocker: &str,
) -> ScenarioResult {
    ctx.follow_on(
        FindingId::FinalizerAfterFailedDelete,
        ensure(!dir_left, || {
            format!(
                "VM vm is gone although its delete failed: the finalizer was dropped and \
                 the instance directory {} is left (with {blocker})",
                dir.display()
            )
        }),
    )?;
    if dir_left {
        // Which entry a failure names cannot be read from a resource
        // that is gone: not this finding's verdict either way.
        return Err(symptom!(
            "VM vm went away with its delete failed ({blocker} unremovable): no failure \
             could be read, the finalizer having been dropped"
        ));
    }
    Err(ScenarioError::Harness(format!(
        "VM vm and its instance directory are gone: {blocker} did not block the delete"
    )))
}

/// True when `message` names `entry` (a path below the Lima home), with
/// either separator: `vm/blocked/held` or `vm\\blocked\\held`.
fn names_entry(message: &str, entry: &std::path::Path) -> bool {
    let parts: Vec<String> = entry
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    ["/", "\\"]
        .iter()
        .any(|sep| message.contains(&parts.join(sep)))
}

/// The message of a condition that reports a failed delete: status False,
/// a reason that says delete or cleanup failed.
fn failure_message(view: &VmView) -> Option<String> {
    view.conditions
        .iter()
        .find(|c| {
            c.status == status::FALSE
                && (c.reason.contains("Delete") || c.kind == kind::CLEANUP)
                && !c.message.is_empty()
        })
        .map(|c| c.message.clone())
}

fn summary(view: &VmView) -> String {
    format!(
        "finalizers {:?}, conditions {:?}",
        view.finalizers, view.conditions
    )
}
