//! Drive any reconciler through a kubectl-style command line, described by
//! a target file (TOML). See `fixtures/targets/README.md` for the format.

use crate::driver::{
    ReconcilerDriver, ResourceKind, VmSpec, VmView, running_patch, template_patch,
};
use crate::reference::ReferenceSettings;
use crate::service::{NotReady, ServiceProcess, run_cli};
use crate::template::Template;
use crate::{HarnessError, Sandbox};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// A short name for reports.
    pub name: String,
    pub service: ServiceSection,
    pub cli: CliSection,
    pub resource: ResourceSection,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    /// Files the service logs to, read by scenarios that check the log.
    #[serde(default)]
    pub log_files: Vec<String>,
    /// Extra environment for the service, on top of the sandbox's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliSection {
    /// What every CLI call starts with (`["kubectl", "--context", "x"]`).
    pub prefix: Vec<String>,
    pub apply: Vec<String>,
    pub get: Vec<String>,
    pub patch: Vec<String>,
    pub delete: Vec<String>,
    /// Text in a failed `get`'s stderr that means "no such resource".
    pub not_found: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSection {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Dotted path of the conditions list in a resource document.
    #[serde(default = "default_conditions")]
    pub conditions: String,
}

fn default_conditions() -> String {
    "status.conditions".into()
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read target file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("target file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The placeholders a target file may use.
const PLACEHOLDERS: &[&str] = &[
    "reconciler",
    "state",
    "lima_home",
    "home",
    "sandbox",
    "bin",
    "name",
    "patch",
    "id",
    "poll_interval",
    "start_timeout",
    "graceful_timeout",
    "wsl_timeout",
    "delete_timeout",
    "keygen_timeout",
    "delete_backoff",
    "delete_backoff_max",
    "delete_retry_budget",
    "restart_backoff",
];

impl TargetFile {
    pub fn load(path: &Path) -> Result<Self, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| TargetError::Invalid {
            path: path.to_owned(),
            message,
        };
        let target: TargetFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        target.validate().map_err(invalid)?;
        Ok(target)
    }

    fn validate(&self) -> Result<(), String> {
        let commands = [
            ("service.start", &self.service.start),
            ("cli.prefix", &self.cli.prefix),
        ];
        for (field, command) in commands {
            if command.is_empty() {
                return Err(format!("{field} is empty: it must name a command"));
            }
        }
        if let Some(key) = self.service.env.keys().find(|k| is_harness_variable(k)) {
            return Err(format!(
                "service.env sets {key}, a variable the harness sets itself \
                 (LIMAVM_*, LIMA_HOME, HOME, USERPROFILE): remove it"
            ));
        }
        if self.service.ready_file.is_none() && self.service.ready_command.is_none() {
            return Err("service needs ready_file or ready_command".into());
        }
        for (field, args) in self.all_templates() {
            for arg in &args {
                check_placeholders(arg).map_err(|p| {
                    format!(
                        "{field}: unknown placeholder {{{p}}} (known: {})",
                        PLACEHOLDERS.join(", ")
                    )
                })?;
            }
        }
        // A program named without placeholders must exist now, not at the
        // first scenario.
        for (field, program) in [
            ("service.start", &self.service.start[0]),
            ("cli.prefix", &self.cli.prefix[0]),
        ] {
            if !program.contains('{') && which::which(program).is_err() {
                return Err(format!("{field}: command {program:?} not found"));
            }
        }
        Ok(())
    }

    /// Every field that may hold placeholders, with its name.
    fn all_templates(&self) -> Vec<(&'static str, Vec<String>)> {
        let optional = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        vec![
            ("service.start", self.service.start.clone()),
            (
                "service.ready_file",
                self.service.ready_file.iter().cloned().collect(),
            ),
            (
                "service.ready_command",
                optional(&self.service.ready_command),
            ),
            ("service.stop_command", optional(&self.service.stop_command)),
            (
                "service.regression_args",
                optional(&self.service.regression_args),
            ),
            ("service.log_files", self.service.log_files.clone()),
            ("cli.prefix", self.cli.prefix.clone()),
            ("cli.apply", self.cli.apply.clone()),
            ("cli.get", self.cli.get.clone()),
            ("cli.patch", self.cli.patch.clone()),
            ("cli.delete", self.cli.delete.clone()),
        ]
    }

    pub fn supports_regressions(&self) -> bool {
        self.service.regression_args.is_some()
    }

    fn kind(&self) -> ResourceKind {
        ResourceKind {
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
            namespace: self.resource.namespace.clone(),
        }
    }
}

/// True for the variables by which the harness finds and isolates what it
/// starts (the sandbox mark, the fault plan, the journal...): a target may
/// not override them.
fn is_harness_variable(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    upper.starts_with("LIMAVM_") || ["LIMA_HOME", "HOME", "USERPROFILE"].contains(&upper.as_str())
}

/// The first unknown `{placeholder}` in `arg`, if any.
fn check_placeholders(arg: &str) -> Result<(), String> {
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

pub struct ExternalDriver<'s> {
    sandbox: &'s Sandbox,
    target: TargetFile,
    settings: ReferenceSettings,
    state_dir: PathBuf,
    service: ServiceProcess<'s>,
}

impl<'s> ExternalDriver<'s> {
    pub fn new(
        sandbox: &'s Sandbox,
        target: TargetFile,
        settings: ReferenceSettings,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            sandbox,
            service: ServiceProcess::new(sandbox, state_dir.join("service.out.log")),
            target,
            settings,
            state_dir,
        }
    }

    fn values(&self, extra: &[(&str, String)]) -> BTreeMap<&'static str, String> {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let s = &self.settings;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut values: BTreeMap<&'static str, String> = BTreeMap::from([
            ("reconciler", path(&self.sandbox.reconciler_exe())),
            ("state", path(&self.state_dir)),
            ("lima_home", path(self.sandbox.lima_home().path())),
            ("home", path(&self.sandbox.home())),
            ("sandbox", path(self.sandbox.root())),
            ("bin", path(&self.sandbox.bin_dir())),
            ("poll_interval", ms(s.poll_interval)),
            ("start_timeout", ms(s.start_timeout)),
            ("graceful_timeout", ms(s.graceful_timeout)),
            ("wsl_timeout", ms(s.wsl_timeout)),
            ("delete_timeout", ms(s.delete_timeout)),
            ("keygen_timeout", ms(s.keygen_timeout)),
            ("delete_backoff", ms(s.delete_backoff)),
            ("delete_backoff_max", ms(s.delete_backoff_max)),
            ("delete_retry_budget", s.delete_retry_budget.to_string()),
            ("restart_backoff", ms(s.restart_backoff)),
        ]);
        for (key, value) in extra {
            let key = PLACEHOLDERS
                .iter()
                .find(|p| *p == key)
                .expect("extra values use known placeholders");
            values.insert(key, value.clone());
        }
        values
    }

    fn expand(&self, args: &[String], extra: &[(&str, String)]) -> Vec<String> {
        let values = self.values(extra);
        args.iter()
            .map(|arg| {
                values
                    .iter()
                    .fold(arg.clone(), |a, (k, v)| a.replace(&format!("{{{k}}}"), v))
            })
            .collect()
    }

    fn command(&self, args: &[String]) -> std::process::Command {
        command(self.sandbox, args)
    }

    fn cli(
        &self,
        verb: &[String],
        extra: &[(&str, String)],
        stdin: Option<&str>,
    ) -> Result<String, HarnessError> {
        let mut args = self.expand(&self.target.cli.prefix, extra);
        args.extend(self.expand(verb, extra));
        run_cli(
            self.command(&args),
            stdin,
            &format!("{} {}", self.target.name, args[1..].join(" ")),
            self.settings.command_timeout,
        )
    }

    fn patch(&self, name: &str, patch: serde_json::Value) -> Result<(), HarnessError> {
        self.cli(
            &self.target.cli.patch,
            &[("name", name.to_owned()), ("patch", patch.to_string())],
            None,
        )
        .map(|_| ())
    }

    fn ready_file(&self) -> Option<PathBuf> {
        let file = self.target.service.ready_file.as_ref()?;
        Some(PathBuf::from(
            self.expand(std::slice::from_ref(file), &[]).remove(0),
        ))
    }

    fn stop_command(&self) -> Option<(std::process::Command, Duration)> {
        self.target.service.stop_command.as_ref().map(|c| {
            (
                self.command(&self.expand(c, &[])),
                self.settings.command_timeout,
            )
        })
    }
}

impl ReconcilerDriver for ExternalDriver<'_> {
    fn spawn_service(&mut self) -> Result<u32, HarnessError> {
        let mut args = self.expand(&self.target.service.start, &[]);
        if let Some(regression_args) = &self.target.service.regression_args {
            for id in &self.settings.regressions {
                args.extend(self.expand(regression_args, &[("id", id.clone())]));
            }
        } else if !self.settings.regressions.is_empty() {
            return Err(HarnessError::Driver(format!(
                "target {} declares no regression_args: cannot switch on {:?}",
                self.target.name, self.settings.regressions
            )));
        }
        let mut cmd = self.command(&args);
        cmd.envs(&self.target.service.env);
        if self.settings.isolated_path {
            cmd.env("PATH", self.sandbox.bin_dir());
        }
        std::fs::create_dir_all(&self.state_dir)
            .map_err(HarnessError::io("creating the service's state directory"))?;
        if let Some(file) = self.ready_file() {
            // A previous (crashed) service's marker must not count.
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(HarnessError::Io {
                        what: format!("removing the stale ready file {}", file.display()),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        self.service.spawn(cmd)
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let ready = ReadyCheck {
            file: self.ready_file(),
            command: self
                .target
                .service
                .ready_command
                .as_ref()
                .map(|c| self.expand(c, &[])),
            timeout: self.settings.command_timeout,
        };
        let sandbox = self.sandbox;
        self.service.wait_ready(|| ready.holds(sandbox))
    }

    fn stop_service(&mut self, timeout: Duration) -> Result<Option<i32>, HarnessError> {
        let stop = self.stop_command();
        self.service.stop(timeout, stop)
    }

    fn crash_service(&mut self) -> Result<(), HarnessError> {
        self.service.crash()
    }

    fn service_pid(&self) -> Option<u32> {
        self.service.pid()
    }

    fn service_alive(&self) -> bool {
        self.service.alive()
    }

    fn apply(&mut self, vm: &VmSpec) -> Result<(), HarnessError> {
        let doc = vm.document(&self.target.kind()).to_string();
        self.cli(
            &self.target.cli.apply,
            &[("name", vm.name.clone())],
            Some(&doc),
        )
        .map(|_| ())
    }

    fn set_running(&mut self, name: &str, running: bool) -> Result<(), HarnessError> {
        self.patch(name, running_patch(running))
    }

    fn set_template(&mut self, name: &str, template: &Template) -> Result<(), HarnessError> {
        self.patch(name, template_patch(template))
    }

    fn delete(&mut self, name: &str) -> Result<(), HarnessError> {
        self.cli(&self.target.cli.delete, &[("name", name.to_owned())], None)
            .map(|_| ())
    }

    fn get(&mut self, name: &str) -> Result<Option<VmView>, HarnessError> {
        match self.cli(&self.target.cli.get, &[("name", name.to_owned())], None) {
            Ok(text) => {
                let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    HarnessError::Driver(format!(
                        "{} get {name} printed no JSON: {e}",
                        self.target.name
                    ))
                })?;
                let path: Vec<&str> = self.target.resource.conditions.split('.').collect();
                Ok(Some(VmView::from_document_with(&doc, &path)))
            }
            Err(HarnessError::Cli { stderr, .. })
                if stderr.contains(&self.target.cli.not_found) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        for file in self.expand(&self.target.service.log_files, &[]) {
            text.push_str(&std::fs::read_to_string(file).unwrap_or_default());
        }
        text.push_str(&self.service.output_text());
        text
    }
}

fn command(sandbox: &Sandbox, args: &[String]) -> std::process::Command {
    let mut cmd = sandbox.command(&args[0]);
    cmd.args(&args[1..]);
    cmd
}

/// When a target's service counts as ready.
struct ReadyCheck {
    /// This file exists...
    file: Option<PathBuf>,
    /// ...and/or this command exits 0...
    command: Option<Vec<String>>,
    /// ...within this bound.
    timeout: Duration,
}

impl ReadyCheck {
    fn holds(&self, sandbox: &Sandbox) -> Result<(), NotReady> {
        if let Some(path) = self.file.as_ref().filter(|p| !p.exists()) {
            return Err(NotReady::Yet(format!(
                "{} does not exist yet",
                path.display()
            )));
        }
        if let Some(args) = &self.command {
            match run_cli(command(sandbox, args), None, "ready_command", self.timeout) {
                Ok(_) => {}
                // Exited non-zero: not ready yet.
                Err(e @ HarnessError::Cli { .. }) => return Err(NotReady::Yet(e.to_string())),
                Err(e) => return Err(NotReady::Never(e)),
            }
        }
        Ok(())
    }
}

impl Drop for ExternalDriver<'_> {
    fn drop(&mut self) {
        let stop = self.stop_command();
        self.service
            .shut_down(self.settings.drop_shutdown_timeout, stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TargetFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        TargetFile::load(&path).map_err(|e| e.to_string())
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
    fn an_unknown_placeholder_is_named() {
        let err = parse(&GOOD.replace("{state}/ready", "{stat}/ready")).unwrap_err();
        assert!(err.contains("{stat}"), "{err}");
    }
}
