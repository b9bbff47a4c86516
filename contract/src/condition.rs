//! The resource conditions the reference reconciler writes and the harness
//! reads, in Kubernetes' terms: a condition has a `type`, a `status` and a
//! `reason`.

/// Condition types.
pub mod kind {
    /// Whether the VM runs (`True`) or not (`False`); the reason says why.
    pub const RUNNING: &str = "Running";
    /// Whether the backend cleanup of a deleted resource failed.
    pub const CLEANUP: &str = "Cleanup";
}

/// Condition statuses (Kubernetes' `metav1.ConditionStatus`).
pub mod status {
    /// The condition holds.
    pub const TRUE: &str = "True";
    /// The condition does not hold.
    pub const FALSE: &str = "False";
    /// Not known yet.
    pub const UNKNOWN: &str = "Unknown";

    /// The status for a boolean.
    pub const fn of(holds: bool) -> &'static str {
        if holds { TRUE } else { FALSE }
    }
}

/// Reasons of the `Running` and `Cleanup` conditions.
pub mod reason {
    /// A hostagent was started and has not reported running yet.
    pub const STARTING: &str = "Starting";
    /// The hostagent reported running.
    pub const STARTED: &str = "Started";
    /// Running, but the hostagent reports errors (a port forward failed).
    pub const DEGRADED: &str = "Degraded";
    /// The driver ended while the hostagent runs (Lima's `Broken`).
    pub const BROKEN: &str = "Broken";
    /// A stop is under way.
    pub const STOPPING: &str = "Stopping";
    /// The VM is stopped.
    pub const STOPPED: &str = "Stopped";
    /// The last start failed; the message gives the cause.
    pub const START_FAILED: &str = "StartFailed";
    /// The resource's name cannot name a Lima instance.
    pub const INVALID_NAME: &str = "InvalidName";
    /// `Cleanup`: a backend delete attempt failed.
    pub const DELETE_FAILED: &str = "DeleteFailed";
    /// `Cleanup`: the delete retry budget is spent; the finalizer was
    /// dropped with a recorded report.
    pub const DELETE_RETRY_BUDGET_SPENT: &str = "DeleteRetryBudgetSpent";
}
