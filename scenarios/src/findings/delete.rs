//! A delete that fails for a reason other than WSL2: an entry of the
//! instance directory that cannot be removed (made so by the harness, for
//! root too: see `harness::unremovable`).

use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::steps::{self, SETTLE};
use crate::symptom;
use contract::condition::{kind, status};
use harness::{VmView, eventually};

/// The directory inside the instance that holds the unremovable file.
const BLOCKED_DIR: &str = "blocked";

/// VM vm runs; `INSTANCE_DIR/blocked/held` cannot be removed; vm is
/// deleted. The delete must fail, keep the finalizer, and say which entry
/// blocked it (not only the instance directory, which holds dozens);
/// once the entry can go, the retried delete finishes.
pub fn delete_blocker(ctx: &Ctx) -> ScenarioResult {
    let mut svc = ctx.started_service()?;
    let vm = ctx.qemu_vm("vm", 0)?;
    steps::bring_up(ctx, svc.as_mut(), &vm)?;
    let instance = ctx.sandbox.lima_home().instance("vm");
    let held = ctx
        .sandbox
        .make_unremovable(&instance.dir.join(BLOCKED_DIR))?;
    let blocker = held.display().to_string();
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
        // A retry that no longer finds the instance (the first attempt
        // removed what it could, `lima.yaml` included) must not take that
        // for success while the directory is still there.
        ensure(!dir_left, || {
            format!(
                "VM vm is gone although its delete failed: the finalizer was dropped and \
                 the instance directory {} is left (with {blocker})",
                instance.dir.display()
            )
        })?;
        return Err(ScenarioError::Harness(format!(
            "VM vm and its instance directory are gone: {blocker} did not block the delete"
        )));
    };
    ensure(!view.finalizers.is_empty(), || {
        format!(
            "VM vm: the failed delete dropped the finalizers: {}",
            summary(&view)
        )
    })?;
    ensure(message.contains(&blocker), || {
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
