//! `observed = "status-change"`: for a resource without
//! `observedGeneration`, a generation and an observed generation made from
//! the changes the driver makes and the conditions it reads.

use crate::driver::VmView;
use serde_json::Value;

/// A snapshot of the conditions that changes whenever the reconciler
/// writes one (type, status, reason, lastTransitionTime).
pub(super) fn status_fingerprint(doc: &Value, conditions_path: &[&str]) -> String {
    let conditions = conditions_path.iter().fold(doc, |v, key| &v[*key]);
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}/{}@{}",
                c["type"].as_str().unwrap_or_default(),
                c["status"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default(),
                c["lastTransitionTime"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Per VM, what its conditions were before the last change made through
/// the driver, and how many changes were made: gives a resource without
/// `observedGeneration` a generation and an observed generation.
#[derive(Debug, Default)]
pub(super) struct ChangeTracker {
    vms: std::collections::HashMap<String, (u64, String)>,
}

impl ChangeTracker {
    /// Records a change to `name` whose conditions read `before`.
    pub(super) fn changed(&mut self, name: &str, before: String) {
        let entry = self
            .vms
            .entry(name.to_owned())
            .or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = before;
    }

    /// Sets `view.generation` to the number of changes (1 for a resource
    /// this driver never changed) and `view.observed_generation` to it once
    /// the conditions differ from `before` the last change (one less until
    /// then).
    pub(super) fn fill(&self, view: &mut VmView, now: &str) {
        let (generation, before) = self
            .vms
            .get(&view.name)
            .cloned()
            .unwrap_or((1, String::new()));
        view.generation = generation;
        view.observed_generation = if now != before {
            generation
        } else {
            generation - 1
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_observed_once_the_conditions_move() {
        let mut tracker = ChangeTracker::default();
        let mut v = VmView::from_document(&serde_json::json!({"metadata": {"name": "vm"}}));
        tracker.fill(&mut v, "");
        assert!(v.observed_generation < v.generation, "no status yet");
        tracker.fill(&mut v, "Running=False/Stopped@t1");
        assert_eq!(v.observed_generation, v.generation);
        tracker.changed("vm", "Running=False/Stopped@t1".into());
        tracker.fill(&mut v, "Running=False/Stopped@t1");
        assert_eq!((v.generation, v.observed_generation), (1, 0));
        tracker.fill(&mut v, "Running=False/Starting@t2");
        assert_eq!((v.generation, v.observed_generation), (1, 1));
    }
}
