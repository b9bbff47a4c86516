//! The target file's format (TOML, `fixtures/targets/README.md`): the
//! file and its service, cli, resource and lima sections, and how a file
//! is loaded (`{env:NAME}` expanded, parsed, then validated by
//! [`super::validate`]). The status map, the changes, the fixed timeouts and
//! the harness section have files of their own.

use super::bounds::{FixedTimeouts, HarnessSection};
use super::resource::{Changes, Observed};
use super::status::StatusMap;
use crate::driver::ResourceKind;
use crate::settings::DriverSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A target file: how to run a reconciler with a kubectl-style CLI and
/// read its resources. Loaded with [`TargetFile::load`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// A short name for reports.
    pub name: String,
    /// How the service runs: `[service]`.
    pub service: ServiceSection,
    /// How its CLI is called: `[cli]`.
    pub cli: CliSection,
    /// Which resources it owns and how they change: `[resource]`.
    pub resource: ResourceSection,
    /// How the target's conditions map onto the harness's notions; without
    /// it they are read as the reference's (`Running`, `Cleanup`).
    #[serde(default)]
    pub status: Option<StatusMap>,
    /// How the target uses Lima: `[lima]`.
    #[serde(default)]
    pub lima: LimaSection,
    /// The target's own fixed timeouts.
    #[serde(default)]
    pub timeouts: FixedTimeouts,
    /// How the harness drives it (command bound, settle window, jobs,
    /// instance slots).
    #[serde(default)]
    pub harness: HarnessSection,
}

/// How the target uses Lima.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimaSection {
    /// Where the target keeps its Lima instances when it does not follow
    /// `LIMA_HOME` (a path template such as `{home}/.rd2/lima`): the
    /// harness makes that path a link to the sandbox's Lima home, so that
    /// every check looks where the target writes.
    #[serde(default)]
    pub home: Option<String>,
    /// The target embeds Lima and re-executes itself as the hostagent: no
    /// `limactl` is called, faults go one layer lower (QEMU, `ssh`,
    /// `wsl.exe`).
    #[serde(default)]
    pub embedded_hostagent: bool,
    /// The spawn attributes the target gives its hostagent
    /// (`own_process_group`, `background_priority`); the
    /// spawn-attributes scenario checks these. Default: `own_process_group`.
    #[serde(default)]
    pub spawn_attributes: Option<Vec<String>>,
}

impl LimaSection {
    /// The spawn attributes a hostagent of this target must have.
    pub fn spawn_attributes(&self) -> Vec<String> {
        self.spawn_attributes
            .clone()
            .unwrap_or_else(|| vec!["own_process_group".to_owned()])
    }
}

/// `[service]`: how the target's service is started, found ready, stopped
/// and set up. Every string may hold placeholders.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The command that runs the service in the foreground.
    pub start: Vec<String>,
    /// The service is ready once this file exists (the harness removes it
    /// before every start).
    #[serde(default)]
    pub ready_file: Option<String>,
    /// ...or once this command exits 0.
    #[serde(default)]
    pub ready_command: Option<Vec<String>>,
    /// How to stop it; without, SIGTERM (Windows: CTRL_BREAK to its group).
    #[serde(default)]
    pub stop_command: Option<Vec<String>>,
    /// Arguments that switch one regression on (`{id}` is the finding ID);
    /// without them only the fixed variants can run.
    #[serde(default)]
    pub regression_args: Option<Vec<String>>,
    /// Arguments appended to `start` when the tools are real Lima's
    /// (`--toolset real`): what the service needs to drive real Lima (the
    /// reference: `--hostagent-entry=start-foreground`).
    #[serde(default)]
    pub real_lima_args: Vec<String>,
    /// Files the service logs to, read by scenarios that check the log.
    #[serde(default)]
    pub log_files: Vec<String>,
    /// Extra environment for the service, on top of the sandbox's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A JSON file holding an array of strings, appended to `start` at
    /// every start (a service whose setup writes its own arguments, such
    /// as `args.json`).
    #[serde(default)]
    pub args_file: Option<String>,
    /// Commands run in order before the service first starts with a state
    /// directory (`rdd service create ...`), as the service's user; each
    /// must exit 0.
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
    /// A command whose stdout is a kubeconfig: run until it succeeds while
    /// waiting for the service to be ready, saved to `{kubeconfig}`.
    #[serde(default)]
    pub kubeconfig_command: Option<Vec<String>>,
    /// The service must not run as root (Lima refuses it): when the harness
    /// is root, the service, its setup, stop and kubeconfig commands run as
    /// the unprivileged user the real-Lima shim uses (`limavm`, through
    /// `setpriv`, keeping CAP_DAC_OVERRIDE; see scripts/install-real-lima).
    #[serde(default)]
    pub unprivileged: bool,
}

/// `[cli]`: the kubectl-style command line; each verb's arguments follow
/// `prefix`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliSection {
    /// What every CLI call starts with (`["kubectl", "--context", "x"]`).
    pub prefix: Vec<String>,
    /// Applies the JSON document on stdin (`["apply", "-f", "-"]`).
    pub apply: Vec<String>,
    /// Prints resource `{name}` as JSON.
    pub get: Vec<String>,
    /// Merge-patches resource `{name}` with `{patch}`.
    pub patch: Vec<String>,
    /// Deletes resource `{name}`.
    pub delete: Vec<String>,
    /// Text in a failed `get`'s stderr that means "no such resource".
    pub not_found: String,
}

/// `[resource]`: the resource a VM is, and how it is written and read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSection {
    /// The resource's `apiVersion` (`limavm.dev/v1alpha1`).
    pub api_version: String,
    /// The resource's `kind` (`LimaVM`).
    pub kind: String,
    /// The namespace of the resources (`{namespace}`), if any.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Dotted path of the conditions list in a resource document.
    #[serde(default = "default_conditions")]
    pub conditions: String,
    /// The documents applied for one VM, in order (one `cli.apply` each),
    /// as templates; without, the reference's single LimaVM document.
    #[serde(default)]
    pub documents: Vec<serde_json::Value>,
    /// How a change is seen to be observed.
    #[serde(default)]
    pub observed: Observed,
    /// How each change is made.
    #[serde(default)]
    pub changes: Changes,
}

fn default_conditions() -> String {
    "status.conditions".into()
}

/// Why a target file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The file could not be read.
    #[error("cannot read target file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The file is no valid target file: an unset `{env:NAME}`, TOML that
    /// does not parse or fit the format, or a check of
    /// [`TargetFile::load`] that failed (the message names the field).
    #[error("target file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
}

impl TargetFile {
    /// Reads the target file at `path`: `{env:NAME}` replaced by the
    /// variable's value, parsed, then checked (every field named, every
    /// placeholder known, the programs it names without placeholders on
    /// PATH). Fails with [`TargetError`] naming the file.
    pub fn load(path: &Path) -> Result<Self, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| TargetError::Invalid {
            path: path.to_owned(),
            message,
        };
        let text = super::placeholders::expand_env(&text).map_err(invalid)?;
        let target: TargetFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        target.validate().map_err(invalid)?;
        Ok(target)
    }

    /// True when the file can switch a finding's regression on
    /// (`service.regression_args`).
    pub fn supports_regressions(&self) -> bool {
        self.service.regression_args.is_some()
    }

    /// `settings` with the target's fixed timeouts in place.
    pub fn settings(&self, settings: DriverSettings) -> DriverSettings {
        self.harness.apply(self.timeouts.apply(settings))
    }

    /// The resources the target owns (`resource.api_version`, `kind`,
    /// `namespace`).
    pub(super) fn kind(&self) -> ResourceKind {
        ResourceKind {
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
            namespace: self.resource.namespace.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<TargetFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        TargetFile::load(&path).map_err(|e| contract::error_chain::chain(&e))
    }

    const GOOD: &str = r#"
name = "t"
[service]
start = ["{reconciler}", "serve"]
ready_file = "{state}/ready"
[cli]
prefix = ["{reconciler}", "ctl"]
apply = ["apply", "-f", "-"]
get = ["get", "{name}", "-o", "json"]
patch = ["patch", "{name}", "--type=merge", "-p", "{patch}"]
delete = ["delete", "{name}"]
not_found = "NotFound"
[resource]
api_version = "v1"
kind = "LimaVM"
"#;

    #[test]
    fn a_good_file_loads() {
        let target = parse(GOOD).unwrap();
        assert_eq!(target.resource.conditions, "status.conditions");
        assert!(!target.supports_regressions());
    }

    #[test]
    fn a_wrong_field_is_named() {
        let err = parse(&GOOD.replace("not_found", "notfound")).unwrap_err();
        assert!(err.contains("notfound"), "{err}");
    }

    #[test]
    fn a_missing_command_is_named() {
        let err =
            parse(&GOOD.replace(r#"start = ["{reconciler}", "serve"]"#, "start = []")).unwrap_err();
        assert!(err.contains("service.start is empty"), "{err}");
    }

    #[test]
    fn a_cli_that_is_not_found_is_named() {
        let err = parse(&GOOD.replace(
            r#"prefix = ["{reconciler}", "ctl"]"#,
            r#"prefix = ["no-such-kubectl-here"]"#,
        ))
        .unwrap_err();
        assert!(
            err.contains("no-such-kubectl-here") && err.contains("not found"),
            "{err}"
        );
    }

    #[test]
    fn a_service_env_overriding_the_harness_is_refused_naming_it() {
        for key in ["LIMAVM_SANDBOX", "limavm_regress", "LIMA_HOME"] {
            let err = parse(&format!("{GOOD}\n[service.env]\n{key} = \"x\"\n")).unwrap_err();
            assert!(err.contains(&format!("service.env sets {key}")), "{err}");
        }
        let ok = format!("{GOOD}\n[service.env]\nRUST_LOG = \"debug\"\n");
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn an_empty_verb_a_regression_without_its_id_an_unknown_attribute_and_a_bad_path_are_named() {
        let cases = [
            (
                GOOD.replace(r#"apply = ["apply", "-f", "-"]"#, "apply = []"),
                "cli.apply is empty",
            ),
            (
                GOOD.replace(
                    r#"start = ["{reconciler}", "serve"]"#,
                    "start = [\"{reconciler}\", \"serve\"]\nregression_args = [\"--regress\"]",
                ),
                "never names {id}",
            ),
            (
                format!("{GOOD}\n[lima]\nspawn_attributes = [\"fly\"]\n"),
                "unknown attribute \"fly\" (known: own_process_group, background_priority)",
            ),
            (format!("{GOOD}conditions = \"\"\n"), "is no dotted path"),
            (
                format!("{GOOD}conditions = \"status..conditions\"\n"),
                "is no dotted path",
            ),
            (
                GOOD.replace(r#"name = "t""#, r#"name = " ""#),
                "name is empty",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
        let with_id = GOOD.replace(
            r#"start = ["{reconciler}", "serve"]"#,
            "start = [\"{reconciler}\", \"serve\"]\nregression_args = [\"--regress={id}\"]",
        );
        assert!(parse(&with_id).unwrap().supports_regressions());
    }

    #[test]
    fn the_harness_section_sets_bounds_slots_and_jobs() {
        let with = |section: &str| format!("{GOOD}\n[harness]\n{section}\n");
        let target = parse(&with(
            "command_timeout = \"90s\"\nsettle_window = \"0s\"\nslots = { first = 10, count = 3 }",
        ))
        .unwrap();
        let settings = target.settings(DriverSettings::fast());
        assert_eq!(settings.command_timeout, Duration::from_secs(90));
        assert!(settings.settle_window.is_zero());
        assert_eq!(target.harness.max_jobs(), Some(3));
        assert_eq!(
            parse(&with("jobs = 1")).unwrap().harness.max_jobs(),
            Some(1)
        );
        assert_eq!(parse(GOOD).unwrap().harness.max_jobs(), None);
        // Without the section, the defaults: long enough for a real
        // reconciler's CLI.
        let defaults = parse(GOOD).unwrap().settings(DriverSettings::fast());
        assert_eq!(
            defaults.command_timeout,
            crate::settings::DEFAULT_COMMAND_TIMEOUT
        );
        for (text, expected) in [
            (
                with("slots = { first = 1, count = 0 }"),
                "at least one slot",
            ),
            (with("jobs = 0"), "jobs"),
            (
                GOOD.replace("{state}/ready", "{state}/ready-{slot}"),
                "service.ready_file uses {slot}, but harness.slots gives no slots",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let err = parse(&GOOD.replace("{state}/ready", "{stat}/ready")).unwrap_err();
        assert!(err.contains("{stat}"), "{err}");
    }
}
