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
pub const FAULT_PLAN_ENV: &str = crate::env::FAULT_PLAN;

/// The tools a fake can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tool {
    /// Lima's `limactl`, also as the hostagent (`limactl hostagent`).
    #[serde(rename = "limactl")]
    Limactl,
    /// OpenSSH's `ssh` (port forwards, the ControlMaster).
    #[serde(rename = "ssh")]
    Ssh,
    /// OpenSSH's `ssh-keygen`.
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
    /// Every tool.
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
    Delay {
        /// The wait, in milliseconds.
        ms: u64,
    },
    /// Print `stderr`, exit with `code`, do nothing else.
    Fail {
        /// The exit code (default 1); must be in [`EXIT_CODES`].
        #[serde(default = "default_fail_code")]
        code: i32,
        /// What to print on standard error.
        #[serde(default)]
        stderr: String,
    },
    /// ssh-keygen: write half of the private key to the final path, then die.
    CrashHalfWay,
    /// hostagent, ssh, driver: take no notice of the graceful interrupt.
    IgnoreInterrupt,
    /// hostagent: on the interrupt, wait this long before shutting down.
    SlowExit {
        /// The wait, in milliseconds.
        ms: u64,
    },
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

/// The exit codes a process can return here (see [`crate::exit::RANGE`]).
pub const EXIT_CODES: std::ops::RangeInclusive<i32> = crate::exit::RANGE;

fn default_fail_code() -> i32 {
    1
}

impl Fault {
    /// The fault's `kind` as written in a plan (`ignore_interrupt`).
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
/// One rule of a plan: which invocations it applies to and what it does.
pub struct Rule {
    /// The tool whose invocations the rule applies to.
    pub tool: Tool,
    /// Arguments the invocation must include, each equal to one whole
    /// argument; empty: every invocation of the tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Applies to the first this many matching invocations only (counted
    /// across processes); `None`: to every one. Never 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// What the rule does.
    pub fault: Fault,
}

impl Rule {
    /// True when the rule applies to `tool` run with `args` (not counting
    /// `times`).
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
/// The fault plan: its rules, in order.
pub struct FaultPlan {
    /// The rules; every one that applies to an invocation takes effect.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
/// A plan that cannot be read, parsed or counted. The message names the
/// file; the I/O error, when there is one, is the [`source`](std::error::Error::source).
pub enum PlanError {
    /// The plan file cannot be read.
    #[error("cannot read fault plan {path}")]
    Read {
        /// The plan file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The plan file is not a valid plan.
    #[error("malformed fault plan {path}: {message}")]
    Malformed {
        /// The plan file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The counters of rules with `times` cannot be updated.
    #[error("cannot update fault counters beside {path}")]
    Counters {
        /// The plan file.
        path: PathBuf,
        /// Why the counters cannot be updated.
        #[source]
        source: std::io::Error,
    },
}

impl FaultPlan {
    /// Parses a plan's JSON and checks it (no rule with `times: 0`, exit
    /// codes this platform can return); the error names the field.
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

    /// Reads and parses the plan file at `path`.
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

    /// The plan as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a fault plan serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
