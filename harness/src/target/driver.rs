//! [`ExternalDriver`]: any reconciler driven through a kubectl-style
//! command line, as its [`TargetFile`] describes it.

use super::file::TargetFile;
use super::home::{link_lima_home, read_args_file};
use super::placeholders::{PLACEHOLDERS, expand_value};
use super::ready::ReadyCheck;
use super::resource::{Change, Observed};
use super::tracker::{ChangeTracker, status_fingerprint};
use crate::commands::run_cli;
use crate::driver::{ReconcilerDriver, VmSpec, VmView, now_rfc3339};
use crate::error::HarnessError;
use crate::sandbox::Sandbox;
use crate::service::ServiceProcess;
use crate::settings::DriverSettings;
use crate::template::Template;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The driver of a target file's reconciler: its service started, made
/// ready and stopped as `[service]` says, its resources written and read
/// through `[cli]`. Dropping it shuts the service down.
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
    /// A driver of `target` in `sandbox`, its service's state (setup marker,
    /// kubeconfig, output) in `state_dir`.
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
        self.sandbox.command_line(args)
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
        link_lima_home(&path, self.sandbox.lima_home().path())
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
            args.extend(read_args_file(Path::new(&file))?);
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

impl Drop for ExternalDriver<'_> {
    fn drop(&mut self) {
        let stop = self.stop_command();
        self.service
            .shut_down(self.settings.drop_shutdown_timeout, stop);
    }
}
