//! The fault plan: a JSON file, named by `LIMAVM_FAULT_PLAN`, that every fake
//! reads at every invocation to learn which faults to inject.
//!
//! ```json
//! {"rules": [
//!   {"tool": "wsl.exe", "args": ["--unregister"], "times": 2, "fault": {"kind": "hang"}},
//!   {"tool": "limactl", "args": ["hostagent"], "fault": {"kind": "ignore_interrupt"}}
//! ]}
//! ```
//!
//! A rule applies to an invocation of its tool whose arguments include every
//! string of `args` (each equal to one whole argument). With `times: N` it
//! applies to the first N such invocations only, counted across processes in
//! a state file beside the plan; without `times`, to every one.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming the fault plan file.
pub const FAULT_PLAN_ENV: &str = "LIMAVM_FAULT_PLAN";

/// The tools a fake can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tool {
    #[serde(rename = "limactl")]
    Limactl,
    #[serde(rename = "ssh")]
    Ssh,
    #[serde(rename = "ssh-keygen")]
    SshKeygen,
    /// `wsl.exe`, also installed as `wsl`.
    #[serde(rename = "wsl.exe")]
    Wsl,
    /// The QEMU driver, `qemu-system-x86_64`.
    #[serde(rename = "qemu")]
    Qemu,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Limactl,
        Tool::Ssh,
        Tool::SshKeygen,
        Tool::Wsl,
        Tool::Qemu,
    ];

    /// The name used in plans and journals.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Limactl => "limactl",
            Tool::Ssh => "ssh",
            Tool::SshKeygen => "ssh-keygen",
            Tool::Wsl => "wsl.exe",
            Tool::Qemu => "qemu",
        }
    }

    /// The executable names (without `.exe`) a shim directory installs.
    pub fn executable_names(self) -> &'static [&'static str] {
        match self {
            Tool::Limactl => &["limactl"],
            Tool::Ssh => &["ssh"],
            Tool::SshKeygen => &["ssh-keygen"],
            Tool::Wsl => &["wsl", "wsl.exe"],
            Tool::Qemu => &["qemu-system-x86_64"],
        }
    }

    /// The personality an executable name selects (`.exe` and any directory
    /// stripped).
    pub fn from_executable(path: &str) -> Option<Tool> {
        let name = Path::new(path).file_name()?.to_str()?;
        let name = name.strip_suffix(".exe").unwrap_or(name);
        Tool::ALL.into_iter().find(|tool| {
            tool.executable_names()
                .iter()
                .any(|n| n.trim_end_matches(".exe") == name)
        })
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does to the invocations it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Never return (until killed).
    Hang,
    /// Wait this long, then behave normally.
    Delay { ms: u64 },
    /// Print `stderr`, exit with `code`, do nothing else.
    Fail {
        #[serde(default = "default_fail_code")]
        code: i32,
        #[serde(default)]
        stderr: String,
    },
    /// ssh-keygen: write half of the private key to the final path, then die.
    CrashHalfWay,
    /// hostagent, ssh, driver: take no notice of the graceful interrupt.
    IgnoreInterrupt,
    /// hostagent: on the interrupt, wait this long before shutting down.
    SlowExit { ms: u64 },
    /// hostagent: on graceful shutdown, leave the `ssh` children running.
    KeepChildren,
    /// hostagent: on the interrupt, start a new driver, rewrite the driver's
    /// pid file with its pid, and stop the old one.
    ReplaceDriver,
    /// hostagent: take no notice when the driver exits (real Lima's
    /// hostagent exits with "Driver stopped due to error").
    IgnoreDriverExit,
    /// hostagent: forward through one daemonized `ssh` ControlMaster
    /// (`-o ControlMaster=auto -o ControlPath=INSTANCE_DIR/ssh.sock -o
    /// ControlPersist=yes -f`, then `ssh -O forward` per port and `ssh -O
    /// exit` on stop), as real Lima v2.2.0 does, instead of one `ssh -L`
    /// child per forward. Unix only.
    ControlMaster,
}

/// The exit codes a process can return here: Unix keeps the low 8 bits of
/// the status (so 256 would read as 0 and -1 as 255); Windows keeps all 32.
pub const EXIT_CODES: std::ops::RangeInclusive<i32> = if cfg!(windows) {
    i32::MIN..=i32::MAX
} else {
    0..=255
};

fn default_fail_code() -> i32 {
    1
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Hang => "hang",
            Fault::Delay { .. } => "delay",
            Fault::Fail { .. } => "fail",
            Fault::CrashHalfWay => "crash_half_way",
            Fault::IgnoreInterrupt => "ignore_interrupt",
            Fault::SlowExit { .. } => "slow_exit",
            Fault::KeepChildren => "keep_children",
            Fault::ReplaceDriver => "replace_driver",
            Fault::IgnoreDriverExit => "ignore_driver_exit",
            Fault::ControlMaster => "control_master",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub tool: Tool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    pub fault: Fault,
}

impl Rule {
    pub fn matches(&self, tool: Tool, args: &[String]) -> bool {
        self.tool == tool
            && self
                .args
                .iter()
                .all(|wanted| args.iter().any(|a| a == wanted))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read fault plan {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed fault plan {path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("cannot update fault counters beside {path}: {source}")]
    Counters {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FaultPlan {
    pub fn parse(text: &str) -> Result<Self, String> {
        let plan: FaultPlan = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (index, rule) in plan.rules.iter().enumerate() {
            if rule.times == Some(0) {
                return Err(format!(
                    "rules[{index}].times: 0 would never apply; omit the rule"
                ));
            }
            if let Fault::Fail { code, .. } = rule.fault
                && !EXIT_CODES.contains(&code)
            {
                return Err(format!(
                    "rules[{index}].fault.code: {code} is not an exit code this platform can return ({}..={})",
                    EXIT_CODES.start(),
                    EXIT_CODES.end()
                ));
            }
        }
        Ok(plan)
    }

    pub fn load(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| PlanError::Malformed {
            path: path.to_owned(),
            message,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a fault plan serialises")
    }
}

/// The faults that apply to one invocation, in plan order. Counted rules are
/// claimed under an exclusive lock so that concurrent invocations never both
/// take the last use of a rule.
pub fn claim_faults(
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

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fail_codes_the_platform_cannot_return_are_refused() {
        let plan = |code: i64| {
            FaultPlan::parse(&format!(
                r#"{{"rules":[{{"tool":"ssh","fault":{{"kind":"fail","code":{code}}}}}]}}"#
            ))
        };
        assert!(plan(1).is_ok());
        assert!(plan(255).is_ok());
        if cfg!(unix) {
            for code in [300, -1, 256] {
                let err = plan(code).unwrap_err();
                assert!(
                    err.contains(&format!("fault.code: {code} is not an exit code")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn unknown_fields_and_kinds_are_named() {
        let err =
            FaultPlan::parse(r#"{"rules":[{"tool":"ssh","fault":{"kind":"hang"},"tims":2}]}"#)
                .unwrap_err();
        assert!(err.contains("tims"), "{err}");
        let err = FaultPlan::parse(r#"{"rules":[{"tool":"ssh","fault":{"kind":"explode"}}]}"#)
            .unwrap_err();
        assert!(err.contains("explode"), "{err}");
        let err =
            FaultPlan::parse(r#"{"rules":[{"tool":"scp","fault":{"kind":"hang"}}]}"#).unwrap_err();
        assert!(err.contains("scp"), "{err}");
    }

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

    #[test]
    fn executable_names_select_personalities() {
        assert_eq!(Tool::from_executable("/x/bin/wsl.exe"), Some(Tool::Wsl));
        assert_eq!(Tool::from_executable("wsl"), Some(Tool::Wsl));
        assert_eq!(
            Tool::from_executable("C:\\bin\\ssh-keygen.exe").is_some(),
            cfg!(windows)
        );
        assert_eq!(
            Tool::from_executable("qemu-system-x86_64"),
            Some(Tool::Qemu)
        );
        assert_eq!(Tool::from_executable("scp"), None);
    }
}
