//! The checks a target file passes when it is loaded
//! ([`TargetFile::load`]), in the order they run: each names the field
//! that is wrong, so that a file's author fixes it before a scenario runs.

use super::file::{LimaSection, ResourceSection, ServiceSection, TargetFile};
use super::placeholders::{
    check_placeholders, is_placeholder, known_placeholders, placeholders_in,
};
use super::resource::Change;

impl TargetFile {
    /// Every check, the first failure's message naming its field.
    pub(super) fn validate(&self) -> Result<(), String> {
        self.check_name_and_commands()?;
        self.service.check_regression_args()?;
        self.lima.check_spawn_attributes()?;
        self.resource.check_conditions_path()?;
        self.service.check_env()?;
        self.check_harness_section()?;
        self.service.check_ready()?;
        self.validate_documents()?;
        self.check_placeholders()?;
        self.check_programs_exist()
    }

    /// A name for reports, a command to start and a CLI prefix, and the
    /// arguments of every verb.
    fn check_name_and_commands(&self) -> Result<(), String> {
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
        Ok(())
    }

    /// The harness section's bounds, and slots for any `{slot}` used.
    fn check_harness_section(&self) -> Result<(), String> {
        self.harness.validate()?;
        if self.harness.slots.is_none()
            && let Some(field) = self.field_naming("slot")
        {
            return Err(format!(
                "{field} uses {{slot}}, but harness.slots gives no slots to number"
            ));
        }
        Ok(())
    }

    /// Every placeholder of every command-line field is known.
    fn check_placeholders(&self) -> Result<(), String> {
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
        Ok(())
    }

    /// A program named without placeholders must exist now, not at the
    /// first scenario.
    fn check_programs_exist(&self) -> Result<(), String> {
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

    /// The documents and changes name known placeholders only, one
    /// document (if any) is of `resource.kind`, and every kind a change
    /// re-applies has a document.
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
}

impl ServiceSection {
    /// `regression_args`, when given, name `{id}`.
    fn check_regression_args(&self) -> Result<(), String> {
        if let Some(args) = &self.regression_args
            && !args.iter().any(|a| a.contains("{id}"))
        {
            return Err(
                "service.regression_args never names {id}: the service could not tell \
                 which regression to switch on"
                    .into(),
            );
        }
        Ok(())
    }

    /// `env` leaves the harness's own variables alone.
    fn check_env(&self) -> Result<(), String> {
        if let Some(key) = self.env.keys().find(|k| is_harness_variable(k)) {
            return Err(format!(
                "service.env sets {key}, a variable the harness sets itself \
                 (LIMAVM_*, LIMA_HOME, HOME, USERPROFILE): remove it"
            ));
        }
        Ok(())
    }

    /// The service has a way to say it is ready.
    fn check_ready(&self) -> Result<(), String> {
        if self.ready_file.is_none() && self.ready_command.is_none() {
            return Err("service needs ready_file or ready_command".into());
        }
        Ok(())
    }
}

impl LimaSection {
    /// Every spawn attribute is one [`proctree::SpawnAttributes::NAMES`]
    /// knows.
    fn check_spawn_attributes(&self) -> Result<(), String> {
        let known = proctree::SpawnAttributes::NAMES;
        if let Some(unknown) = self
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
        Ok(())
    }
}

impl ResourceSection {
    /// `conditions` is a dotted path.
    fn check_conditions_path(&self) -> Result<(), String> {
        if self.conditions.split('.').any(str::is_empty) {
            return Err(format!(
                "resource.conditions {:?} is no dotted path (such as status.conditions)",
                self.conditions
            ));
        }
        Ok(())
    }
}

/// True for the variables by which the harness finds and isolates what it
/// starts (the sandbox mark, the fault plan, the journal...): a target may
/// not override them.
fn is_harness_variable(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    upper.starts_with("LIMAVM_") || ["LIMA_HOME", "HOME", "USERPROFILE"].contains(&upper.as_str())
}
