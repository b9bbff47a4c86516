//! Fault-injecting fakes of the tools a Lima-backed reconciler calls, and the
//! schema of the fault plan and journal they share with the harness.

pub mod journal;
pub mod plan;
