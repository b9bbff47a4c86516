//! The driver for the reference reconciler: `limavm-reconciler serve` as
//! the service, its `ctl` for writes, its resource files for reads.

use crate::commands::run_cli;
use crate::driver::{
    ReconcilerDriver, VmSpec, VmView, restart_patch, running_patch, template_patch,
};
use crate::error::HarnessError;
use crate::sandbox::Sandbox;
use crate::service::{NotReady, ServiceProcess};
use crate::settings::DriverSettings;
use crate::template::Template;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The reference service's flags for `settings`: its timings
/// ([`contract::Timings::args`]), a `--regress=<id>` per regression, and
/// `--hostagent-entry` when set.
fn serve_args(settings: &DriverSettings) -> Vec<String> {
    let mut args = settings.timings.args();
    args.extend(
        settings
            .regressions
            .iter()
            .map(|id| format!("--regress={id}")),
    );
    args.extend(
        settings
            .hostagent_entry
            .iter()
            .map(|entry| format!("--hostagent-entry={entry}")),
    );
    args
}

/// The driver of the reference reconciler (`limavm-reconciler serve`) in a
/// sandbox; dropping it shuts the service down.
pub struct ReferenceDriver<'s> {
    sandbox: &'s Sandbox,
    settings: DriverSettings,
    state_dir: PathBuf,
    service: ServiceProcess<'s>,
}

impl<'s> ReferenceDriver<'s> {
    /// A driver whose service keeps its state in the sandbox's state directory.
    pub fn new(sandbox: &'s Sandbox, settings: DriverSettings) -> Self {
        Self::with_state(sandbox, settings, sandbox.state_dir())
    }

    /// A service with a state directory of its own (several services may
    /// share one LIMA_HOME).
    pub fn with_state(sandbox: &'s Sandbox, settings: DriverSettings, state_dir: PathBuf) -> Self {
        Self {
            sandbox,
            settings,
            service: ServiceProcess::new(sandbox, state_dir.join("service.out.log")),
            state_dir,
        }
    }

    /// The service's state directory (`service.json`, `resources/`).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The settings it runs the service with.
    pub fn settings(&self) -> &DriverSettings {
        &self.settings
    }

    /// The file of resource `name`. The store writes most names as
    /// `<name>.json` but escapes characters a file name cannot hold (`/`,
    /// `%`, a leading `.`, more on Windows); rather than copy its encoding,
    /// an escaped name is found by the `metadata.name` inside the documents.
    fn resource_file(&self, name: &str) -> Option<PathBuf> {
        let dir = self.state_dir.join("resources");
        let holds_name = |path: &Path| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|doc| doc["metadata"]["name"] == name)
        };
        let plain = dir.join(format!("{name}.json"));
        if is_plain_file_name(name) && holds_name(&plain) {
            return Some(plain);
        }
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| is_document_file(path))
            .find(|path| holds_name(path))
    }

    fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, HarnessError> {
        let mut cmd = self.sandbox.command(self.sandbox.reconciler_exe());
        cmd.arg("ctl")
            .arg("--state")
            .arg(&self.state_dir)
            .args(args);
        run_cli(
            cmd,
            stdin,
            &format!("limavm-reconciler ctl {}", args.join(" ")),
            self.settings.command_timeout,
        )
    }

    fn patch(&self, name: &str, patch: serde_json::Value) -> Result<(), HarnessError> {
        // `--` first: a name such as `-rf` must not read as options.
        self.ctl(
            &[
                "patch",
                "--type=merge",
                "-p",
                &patch.to_string(),
                "--",
                name,
            ],
            None,
        )
        .map(|_| ())
    }
}

/// True when the store surely writes `name` as `<name>.json`: one
/// component, no escape character, not hidden. On Windows every name is
/// looked up by content (device names such as `CON` must never be opened).
fn is_plain_file_name(name: &str) -> bool {
    !cfg!(windows)
        && !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '%', '\0'])
}

/// A resource document, not a lock or an atomic write's temporary.
fn is_document_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"))
}

impl ReconcilerDriver for ReferenceDriver<'_> {
    fn spawn_service(&mut self) -> Result<u32, HarnessError> {
        let mut cmd = self.sandbox.command(self.sandbox.reconciler_exe());
        cmd.arg("serve")
            .arg("--lima-home")
            .arg(self.sandbox.lima_home().path())
            .arg("--state")
            .arg(&self.state_dir)
            .args(serve_args(&self.settings));
        if self.settings.isolated_path {
            cmd.env("PATH", self.sandbox.bin_dir());
        }
        self.service.spawn(cmd)
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let service_json = self.state_dir.join("service.json");
        let pid = self.service.pid();
        self.service.wait_ready(crate::service::READY_TIMEOUT, || {
            let text = std::fs::read_to_string(&service_json).unwrap_or_default();
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if doc["ready"] == true && doc["pid"].as_u64() == pid.map(u64::from) {
                Ok(())
            } else {
                Err(NotReady::Yet(format!("service.json is {text:?}")))
            }
        })
    }

    fn stop_service(&mut self, timeout: Duration) -> Result<Option<i32>, HarnessError> {
        self.service.stop(timeout, None)
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
        self.ctl(&["apply", "-f", "-"], Some(&vm.to_document().to_string()))
            .map(|_| ())
    }

    fn set_running(&mut self, name: &str, running: bool) -> Result<(), HarnessError> {
        self.patch(name, running_patch(running))
    }

    fn set_template(&mut self, name: &str, template: &Template) -> Result<(), HarnessError> {
        self.patch(name, template_patch(template))
    }

    fn request_restart(&mut self, name: &str) -> Result<(), HarnessError> {
        self.patch(name, restart_patch())
    }

    fn delete(&mut self, name: &str) -> Result<(), HarnessError> {
        self.ctl(&["delete", "--", name], None).map(|_| ())
    }

    fn get(&mut self, name: &str) -> Result<Option<VmView>, HarnessError> {
        // The store writes documents atomically, so a plain read never sees
        // half of one.
        let Some(file) = self.resource_file(name) else {
            return Ok(None);
        };
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    HarnessError::Driver(format!("resource {name} is not JSON: {e}"))
                })?;
                Ok(Some(VmView::from_document(&doc)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HarnessError::Io {
                what: format!("reading resource {name}"),
                source: e,
            }),
        }
    }

    fn log_text(&self) -> String {
        let log =
            std::fs::read_to_string(self.state_dir.join("reconciler.log")).unwrap_or_default();
        format!("{log}{}", self.service.output_text())
    }
}

impl Drop for ReferenceDriver<'_> {
    /// Stops the service the way an operator would, so that what it leaves
    /// behind is what the leak check judges; a service that does not stop in
    /// time is killed (and the sandbox then kills what it left).
    fn drop(&mut self) {
        self.service
            .shut_down(self.settings.drop_shutdown_timeout, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolset::Toolset;

    #[test]
    fn the_hostagent_entry_is_passed_only_for_real_lima() {
        let entry = |settings: DriverSettings| {
            serve_args(&settings)
                .into_iter()
                .filter(|a| a.starts_with("--hostagent-entry"))
                .collect::<Vec<_>>()
        };
        assert!(entry(DriverSettings::fast().for_toolset(&Toolset::fakes())).is_empty());
        assert_eq!(
            entry(DriverSettings::fast().for_toolset(&Toolset::real_lima())),
            ["--hostagent-entry=start-foreground"]
        );
    }
}
