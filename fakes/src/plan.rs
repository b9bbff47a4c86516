//! The fault plan's schema lives in [`contract::plan`]; this module claims
//! the faults that apply to one invocation of a fake.

pub use contract::plan::*;
use std::path::{Path, PathBuf};

/// The faults that apply to one invocation, in plan order. Counted rules are
/// claimed under an exclusive lock so that concurrent invocations never both
/// take the last use of a rule.
pub(crate) fn claim_faults(
    plan_path: &Path,
    tool: Tool,
    args: &[String],
) -> Result<Vec<Fault>, PlanError> {
    let plan = FaultPlan::load(plan_path)?;
    let matching: Vec<(usize, &Rule)> = plan
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.matches(tool, args))
        .collect();
    if matching.iter().all(|(_, rule)| rule.times.is_none()) {
        return Ok(matching.into_iter().map(|(_, r)| r.fault.clone()).collect());
    }
    let counters = |source| PlanError::Counters {
        path: plan_path.to_owned(),
        source,
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(counts_path(plan_path, "lock"))
        .map_err(counters)?;
    lock.lock().map_err(counters)?;
    let counts_file = counts_path(plan_path, "counts.json");
    let mut used: Vec<u32> = std::fs::read_to_string(&counts_file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    used.resize(plan.rules.len(), 0);
    let mut faults = Vec::new();
    for (index, rule) in matching {
        match rule.times {
            Some(times) if used[index] >= times => {}
            Some(_) => {
                used[index] += 1;
                faults.push(rule.fault.clone());
            }
            None => faults.push(rule.fault.clone()),
        }
    }
    std::fs::write(
        &counts_file,
        serde_json::to_string(&used).expect("counts serialise"),
    )
    .map_err(counters)?;
    Ok(faults)
}

/// `<plan>.<suffix>`, the files that hold a plan's counters.
fn counts_path(plan_path: &Path, suffix: &str) -> PathBuf {
    let mut name = plan_path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings as args;

    #[test]
    fn counted_rules_apply_the_given_number_of_times_then_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let plan = FaultPlan {
            rules: vec![Rule {
                tool: Tool::Wsl,
                args: args(&["--unregister"]),
                times: Some(2),
                fault: Fault::Hang,
            }],
        };
        std::fs::write(&path, plan.to_json()).unwrap();
        let call = args(&["--unregister", "lima-a"]);
        assert_eq!(
            claim_faults(&path, Tool::Wsl, &call).unwrap(),
            [Fault::Hang]
        );
        assert!(
            claim_faults(&path, Tool::Wsl, &args(&["--terminate"]))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            claim_faults(&path, Tool::Wsl, &call).unwrap(),
            [Fault::Hang]
        );
        assert!(claim_faults(&path, Tool::Wsl, &call).unwrap().is_empty());
    }
}
