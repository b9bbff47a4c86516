//! Drive any reconciler through a kubectl-style command line, described by
//! a target file (TOML). See `fixtures/targets/README.md` for the format.

use crate::driver::{ReconcilerDriver, ResourceKind, VmSpec, VmView};
use crate::error::HarnessError;
use crate::sandbox::Sandbox;
use crate::service::{NotReady, ServiceProcess, run_cli};
use crate::settings::DriverSettings;
use crate::target_lima::now_rfc3339;
use crate::target_schema::{
    Change, ChangeTracker, Changes, FixedTimeouts, HarnessSection, Observed, StatusMap,
    expand_value, placeholders_in, status_fingerprint,
};
use crate::template::Template;
use contract::Timings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// A short name for reports.
    pub name: String,
    pub service: ServiceSection,
    pub cli: CliSection,
    pub resource: ResourceSection,
    /// How the target's conditions map onto the harness's notions; without
    /// it they are read as the reference's (`Running`, `Cleanup`).
    #[serde(default)]
    pub status: Option<StatusMap>,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSection {
    pub api_version: String,
    pub kind: String,
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

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read target file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("target file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The placeholders a target file may use besides the timings'
/// ([`Timings::NAMES`]).
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
    "namespace",
    "kubeconfig",
    "running",
    "template",
    "vm_type",
    "now",
    "slot",
];

/// Every placeholder, for error messages.
fn known_placeholders() -> String {
    [PLACEHOLDERS, Timings::NAMES].concat().join(", ")
}

/// True when `name` is a placeholder a target file may use.
fn is_placeholder(name: &str) -> bool {
    PLACEHOLDERS.contains(&name) || Timings::NAMES.contains(&name)
}

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
        let text = crate::target_lima::expand_env(&text).map_err(invalid)?;
        let target: TargetFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        target.validate().map_err(invalid)?;
        Ok(target)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is empty: reports name the target by it".into());
        }
        let commands = [
            ("service.start", &self.service.start),
            ("cli.prefix", &self.cli.prefix),
        ];
        for (field, command) in commands {
            if command.is_empty() {
                return Err(format!("{field} is empty: it must name a command"));
            }
        }
        let verbs = [
            ("cli.apply", &self.cli.apply),
            ("cli.get", &self.cli.get),
            ("cli.patch", &self.cli.patch),
            ("cli.delete", &self.cli.delete),
        ];
        for (field, args) in verbs {
            if args.is_empty() {
                return Err(format!(
                    "{field} is empty: it must hold the verb's arguments after cli.prefix"
                ));
            }
        }
        if let Some(args) = &self.service.regression_args
            && !args.iter().any(|a| a.contains("{id}"))
        {
            return Err(
                "service.regression_args never names {id}: the service could not tell \
                 which regression to switch on"
                    .into(),
            );
        }
        let known = proctree::SpawnAttributes::NAMES;
        if let Some(unknown) = self
            .lima
            .spawn_attributes
            .iter()
            .flatten()
            .find(|a| !known.contains(&a.as_str()))
        {
            return Err(format!(
                "lima.spawn_attributes: unknown attribute {unknown:?} (known: {})",
                known.join(", ")
            ));
        }
        if self.resource.conditions.split('.').any(str::is_empty) {
            return Err(format!(
                "resource.conditions {:?} is no dotted path (such as status.conditions)",
                self.resource.conditions
            ));
        }
        if let Some(key) = self.service.env.keys().find(|k| is_harness_variable(k)) {
            return Err(format!(
                "service.env sets {key}, a variable the harness sets itself \
                 (LIMAVM_*, LIMA_HOME, HOME, USERPROFILE): remove it"
            ));
        }
        self.harness.validate()?;
        if self.harness.slots.is_none()
            && let Some(field) = self.field_naming("slot")
        {
            return Err(format!(
                "{field} uses {{slot}}, but harness.slots gives no slots to number"
            ));
        }
        if self.service.ready_file.is_none() && self.service.ready_command.is_none() {
            return Err("service needs ready_file or ready_command".into());
        }
        self.validate_documents()?;
        for (field, args) in self.all_templates() {
            for arg in &args {
                check_placeholders(arg).map_err(|p| {
                    format!(
                        "{field}: unknown placeholder {{{p}}} (known: {})",
                        known_placeholders()
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

    /// The documents and changes, each a JSON template, with its field.
    fn templated_values(&self) -> Vec<(String, serde_json::Value)> {
        let documents = self.resource.documents.iter().enumerate();
        documents
            .map(|(i, d)| (format!("resource.documents[{i}]"), d.clone()))
            .chain(
                self.resource
                    .changes
                    .all()
                    .into_iter()
                    .map(|(f, v)| (f.to_owned(), v)),
            )
            .collect()
    }

    /// The first field whose template names `{placeholder}`, if any.
    fn field_naming(&self, placeholder: &str) -> Option<String> {
        let text = format!("{{{placeholder}}}");
        let in_args = self
            .all_templates()
            .into_iter()
            .find(|(_, args)| args.iter().any(|a| a.contains(&text)))
            .map(|(field, _)| field.to_owned());
        in_args.or_else(|| {
            self.templated_values()
                .into_iter()
                .find(|(_, v)| placeholders_in(v).iter().any(|p| p == placeholder))
                .map(|(field, _)| field)
        })
    }

    fn validate_documents(&self) -> Result<(), String> {
        for (field, value) in self.templated_values() {
            if let Some(p) = placeholders_in(&value)
                .into_iter()
                .find(|p| !is_placeholder(p))
            {
                return Err(format!(
                    "{field}: unknown placeholder {{{p}}} (known: {})",
                    known_placeholders()
                ));
            }
        }
        let kinds: Vec<&str> = self
            .resource
            .documents
            .iter()
            .map(|d| d["kind"].as_str().unwrap_or_default())
            .collect();
        if !kinds.is_empty() && !kinds.contains(&self.resource.kind.as_str()) {
            return Err(format!(
                "resource.documents: none is of kind {} (resource.kind)",
                self.resource.kind
            ));
        }
        let changes = &self.resource.changes;
        for (field, change) in [
            ("running", &changes.running),
            ("template", &changes.template),
            ("restart", &changes.restart),
        ] {
            if let Some(Change::Reapply { reapply }) = change
                && let Some(kind) = reapply.iter().find(|k| !kinds.contains(&k.as_str()))
            {
                return Err(format!(
                    "resource.changes.{field}: no document of kind {kind} to re-apply"
                ));
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
            (
                "service.real_lima_args",
                self.service.real_lima_args.clone(),
            ),
            ("service.log_files", self.service.log_files.clone()),
            ("service.env", self.service.env.values().cloned().collect()),
            ("service.setup", self.service.setup.concat()),
            (
                "service.kubeconfig_command",
                optional(&self.service.kubeconfig_command),
            ),
            ("lima.home", self.lima.home.iter().cloned().collect()),
            (
                "service.args_file",
                self.service.args_file.iter().cloned().collect(),
            ),
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

    /// `settings` with the target's fixed timeouts in place.
    pub fn settings(&self, settings: DriverSettings) -> DriverSettings {
        self.harness.apply(self.timeouts.apply(settings))
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
        if !is_placeholder(name) {
            return Err(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

pub struct ExternalDriver<'s> {
    sandbox: &'s Sandbox,
    target: TargetFile,
    settings: DriverSettings,
    state_dir: PathBuf,
    service: ServiceProcess<'s>,
    /// Generations of a target without `observedGeneration`.
    tracker: ChangeTracker,
}

impl<'s> ExternalDriver<'s> {
    pub fn new(
        sandbox: &'s Sandbox,
        target: TargetFile,
        settings: DriverSettings,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            sandbox,
            service: ServiceProcess::new(sandbox, state_dir.join("service.out.log")),
            target,
            settings,
            state_dir,
            tracker: ChangeTracker::default(),
        }
    }

    /// Where `{kubeconfig}` points: the output of `kubeconfig_command`.
    fn kubeconfig_path(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    fn values(&self, extra: &[(&str, String)]) -> BTreeMap<&'static str, String> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut values: BTreeMap<&'static str, String> = BTreeMap::from([
            ("reconciler", path(&self.sandbox.reconciler_exe())),
            ("state", path(&self.state_dir)),
            ("lima_home", path(self.sandbox.lima_home().path())),
            ("home", path(&self.sandbox.home())),
            ("sandbox", path(self.sandbox.root())),
            ("bin", path(&self.sandbox.bin_dir())),
            ("now", now_rfc3339()),
            (
                "namespace",
                self.target.resource.namespace.clone().unwrap_or_default(),
            ),
            ("kubeconfig", path(&self.kubeconfig_path())),
            (
                "slot",
                self.sandbox
                    .held_slot()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
        ]);
        values.extend(self.settings.timings.values());
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

    /// A command of the service's own (start, setup, stop, kubeconfig): run
    /// unprivileged when the target says so.
    fn service_command(&self, args: &[String]) -> Result<std::process::Command, HarnessError> {
        let mut cmd = self.command(&self.privileged_args(args)?);
        for (key, value) in &self.target.service.env {
            cmd.env(key, self.expand(std::slice::from_ref(value), &[]).remove(0));
        }
        Ok(cmd)
    }

    /// The values of the placeholders of a VM's documents and changes.
    fn vm_values(
        &self,
        name: &str,
        vm: Option<&VmSpec>,
        running: Option<bool>,
    ) -> impl Fn(&str) -> String {
        let mut extra: Vec<(&str, String)> = vec![("name", name.to_owned())];
        if let Some(vm) = vm {
            extra.push(("template", vm.template.to_yaml()));
            extra.push(("vm_type", vm.template.vm_type().as_str().to_owned()));
            extra.push(("running", vm.running.to_string()));
        }
        if let Some(running) = running {
            extra.push(("running", running.to_string()));
        }
        let values = self.values(&extra);
        move |key: &str| values.get(key).cloned().unwrap_or_default()
    }

    /// Makes `change` to VM `name`; `vm` gives the documents' values.
    fn change(
        &mut self,
        name: &str,
        change: Change,
        vm: Option<&VmSpec>,
        running: Option<bool>,
    ) -> Result<(), HarnessError> {
        self.before_change(name)?;
        let values = self.vm_values(name, vm, running);
        match change {
            Change::Patch { patch } => self.patch(name, expand_value(&patch, &values)),
            Change::Reapply { reapply } => {
                let docs: Vec<serde_json::Value> = self
                    .target
                    .resource
                    .documents
                    .iter()
                    .filter(|d| reapply.iter().any(|k| d["kind"] == k.as_str()))
                    .map(|d| expand_value(d, &values))
                    .collect();
                docs.iter()
                    .try_for_each(|doc| self.apply_document(name, doc))
            }
        }
    }

    fn apply_document(&self, name: &str, doc: &serde_json::Value) -> Result<(), HarnessError> {
        self.cli(
            &self.target.cli.apply,
            &[("name", name.to_owned())],
            Some(&doc.to_string()),
        )
        .map(|_| ())
    }

    /// With `observed = "status-change"`: remembers the conditions before a
    /// change.
    fn before_change(&mut self, name: &str) -> Result<(), HarnessError> {
        if self.target.resource.observed != Observed::StatusChange {
            return Ok(());
        }
        let before = self
            .get_document(name)?
            .map(|doc| status_fingerprint(&doc, &self.conditions_path()))
            .unwrap_or_default();
        self.tracker.changed(name, before);
        Ok(())
    }

    fn conditions_path(&self) -> Vec<&str> {
        self.target.resource.conditions.split('.').collect()
    }

    /// The resource document, or `None` when there is no such resource.
    fn get_document(&self, name: &str) -> Result<Option<serde_json::Value>, HarnessError> {
        match self.cli(&self.target.cli.get, &[("name", name.to_owned())], None) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                HarnessError::Driver(format!(
                    "{} get {name} printed no JSON: {e}",
                    self.target.name
                ))
            }),
            Err(HarnessError::Cli { stderr, .. })
                if stderr.contains(&self.target.cli.not_found) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs the setup commands once per state directory.
    fn setup(&self) -> Result<(), HarnessError> {
        let marker = self.state_dir.join(".harness-setup-done");
        if self.target.service.setup.is_empty() || marker.exists() {
            return Ok(());
        }
        for args in &self.target.service.setup {
            let args = self.expand(args, &[]);
            run_cli(
                self.service_command(&args)?,
                None,
                &format!("{} setup {}", self.target.name, args.join(" ")),
                self.settings.command_timeout,
            )?;
        }
        std::fs::write(&marker, b"").map_err(HarnessError::io("marking the setup done"))
    }

    /// Links the target's own Lima home to the sandbox's.
    fn link_lima_home(&self) -> Result<(), HarnessError> {
        let Some(home) = &self.target.lima.home else {
            return Ok(());
        };
        let path = PathBuf::from(self.expand(std::slice::from_ref(home), &[]).remove(0));
        crate::target_lima::link_lima_home(&path, self.sandbox.lima_home().path())
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
        let args = self.expand(self.target.service.stop_command.as_ref()?, &[]);
        // Without the privileges to drop, the stop command runs as is.
        let cmd = self
            .service_command(&args)
            .unwrap_or_else(|_| self.command(&args));
        Some((cmd, self.settings.command_timeout))
    }

    /// `args` prefixed as the service's own commands are (see
    /// `service_command`).
    fn privileged_args(&self, args: &[String]) -> Result<Vec<String>, HarnessError> {
        if !self.target.service.unprivileged {
            return Ok(args.to_vec());
        }
        let prefix = crate::real_lima::drop_privileges_prefix().map_err(|e| {
            HarnessError::Driver(format!(
                "target {} must run unprivileged: {e}",
                self.target.name
            ))
        })?;
        Ok([prefix.unwrap_or_default(), args.to_vec()].concat())
    }
}

impl ReconcilerDriver for ExternalDriver<'_> {
    fn spawn_service(&mut self) -> Result<u32, HarnessError> {
        // Every placeholder from here on may name the slot.
        if let Some(slots) = &self.target.harness.slots {
            self.sandbox.instance_slot(&self.target.name, slots)?;
        }
        // The setup may write what the start reads (`args_file`).
        std::fs::create_dir_all(&self.state_dir)
            .map_err(HarnessError::io("creating the service's state directory"))?;
        self.link_lima_home()?;
        self.setup()?;
        let mut args = self.expand(&self.target.service.start, &[]);
        if let Some(regression_args) = &self.target.service.regression_args {
            for id in &self.settings.regressions {
                args.extend(self.expand(regression_args, &[("id", id.to_string())]));
            }
        } else if !self.settings.regressions.is_empty() {
            return Err(HarnessError::Driver(format!(
                "target {} declares no regression_args: cannot switch on {:?}",
                self.target.name, self.settings.regressions
            )));
        }
        if self.sandbox.toolset().has_real_lima() {
            args.extend(self.expand(&self.target.service.real_lima_args, &[]));
        }
        if let Some(file) = &self.target.service.args_file {
            let file = self.expand(std::slice::from_ref(file), &[]).remove(0);
            args.extend(crate::target_lima::read_args_file(Path::new(&file))?);
        }
        let mut cmd = self.service_command(&args)?;
        if self.settings.isolated_path {
            cmd.env("PATH", self.sandbox.bin_dir());
        }
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
        let kubeconfig = match &self.target.service.kubeconfig_command {
            Some(args) => Some((
                self.privileged_args(&self.expand(args, &[]))?,
                self.kubeconfig_path(),
            )),
            None => None,
        };
        let ready = ReadyCheck {
            kubeconfig,
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
        let timeout = self
            .target
            .harness
            .ready_timeout
            .unwrap_or(crate::service::EXTERNAL_READY_TIMEOUT);
        self.service.wait_ready(timeout, || ready.holds(sandbox))
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
        if self.target.resource.documents.is_empty() {
            let doc = vm.document(&self.target.kind());
            return self.apply_document(&vm.name, &doc);
        }
        self.before_change(&vm.name)?;
        let values = self.vm_values(&vm.name, Some(vm), None);
        let docs: Vec<serde_json::Value> = self
            .target
            .resource
            .documents
            .iter()
            .map(|d| expand_value(d, &values))
            .collect();
        docs.iter()
            .try_for_each(|doc| self.apply_document(&vm.name, doc))
    }

    fn set_running(&mut self, name: &str, running: bool) -> Result<(), HarnessError> {
        let change = self.target.resource.changes.running();
        self.change(name, change, None, Some(running))
    }

    fn set_template(&mut self, name: &str, template: &Template) -> Result<(), HarnessError> {
        let change = self.target.resource.changes.template();
        // The documents of a re-applied template keep the VM's running
        // state as it is in the resource.
        let running = self
            .get(name)?
            .and_then(|v| v.raw["spec"]["running"].as_bool())
            .unwrap_or(true);
        let mut vm = VmSpec::new(name, template.clone());
        vm.running = running;
        self.change(name, change, Some(&vm), Some(running))
    }

    fn request_restart(&mut self, name: &str) -> Result<(), HarnessError> {
        let change = self
            .target
            .resource
            .changes
            .restart
            .clone()
            .ok_or_else(|| {
                HarnessError::Driver(format!(
                    "target {} declares no resource.changes.restart",
                    self.target.name
                ))
            })?;
        self.change(name, change, None, None)
    }

    fn delete(&mut self, name: &str) -> Result<(), HarnessError> {
        self.cli(&self.target.cli.delete, &[("name", name.to_owned())], None)
            .map(|_| ())
    }

    fn get(&mut self, name: &str) -> Result<Option<VmView>, HarnessError> {
        let Some(doc) = self.get_document(name)? else {
            return Ok(None);
        };
        let path = self.conditions_path();
        let mut view = VmView::from_document_with(&doc, &path);
        if self.target.resource.observed == Observed::StatusChange {
            self.tracker
                .fill(&mut view, &status_fingerprint(&doc, &path));
        }
        if let Some(map) = &self.target.status {
            map.apply(&mut view);
        }
        Ok(Some(view))
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
    /// This command (full words) prints a kubeconfig, saved to the path...
    kubeconfig: Option<(Vec<String>, PathBuf)>,
    /// This file exists...
    file: Option<PathBuf>,
    /// ...and/or this command exits 0...
    command: Option<Vec<String>>,
    /// ...within this bound.
    timeout: Duration,
}

impl ReadyCheck {
    /// In order: the file, the kubeconfig, the command (a CLI that starts
    /// a service of its own when none runs must not be called before the
    /// service has said it runs).
    fn holds(&self, sandbox: &Sandbox) -> Result<(), NotReady> {
        if let Some(path) = self.file.as_ref().filter(|p| !p.exists()) {
            return Err(NotReady::Yet(format!(
                "{} does not exist yet",
                path.display()
            )));
        }
        if let Some((args, path)) = &self.kubeconfig {
            match run_cli(
                command(sandbox, args),
                None,
                "kubeconfig_command",
                self.timeout,
            ) {
                Ok(text) => crate::target_lima::write_file(path, &text).map_err(NotReady::Yet)?,
                // Exited non-zero, or hung while the service comes up (a
                // CLI that waits for its API server): not serving yet.
                Err(e @ (HarnessError::Cli { .. } | HarnessError::CommandHung { .. })) => {
                    return Err(NotReady::Yet(e.to_string()));
                }
                Err(e) => return Err(NotReady::Never(e)),
            }
        }
        if let Some(args) = &self.command {
            match run_cli(command(sandbox, args), None, "ready_command", self.timeout) {
                Ok(_) => {}
                // Exited non-zero, or hung while the service comes up.
                Err(e @ (HarnessError::Cli { .. } | HarnessError::CommandHung { .. })) => {
                    return Err(NotReady::Yet(e.to_string()));
                }
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
