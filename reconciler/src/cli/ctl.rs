//! `limavm-reconciler ctl`: a kubectl-style command line over the store
//! (`apply -f`, `get -o json`, `patch --type=merge`, `delete`, `wait`).
//! Exit 0 on success, 1 on failure with a message on stderr.

use crate::settings::parse_duration;
use crate::store::resource::{CONDITION_RUNNING, LimaVm};
use crate::store::{ApplyOutcome, DeleteOutcome, PatchOutcome, Store, StoreError};
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How kubectl prints this resource type.
const QUALIFIED: &str = "limavm.limavm.dev";
const TYPE_ALIASES: [&str; 4] = [
    "limavm",
    "limavms",
    "limavm.limavm.dev",
    "limavms.limavm.dev",
];
const WAIT_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The reconciler's state directory.
    #[arg(long, env = contract::env::STATE, value_name = "DIR")]
    pub(crate) state: PathBuf,
    /// The resource schema: `limavm` (this reconciler's), or `configmap`
    /// (namespaced v1alpha2 LimaVMs whose template is in a ConfigMap; see
    /// `configmap_schema`).
    #[arg(long, value_enum, default_value = "limavm")]
    pub(crate) schema: Schema,
    #[command(subcommand)]
    pub(crate) command: CtlCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Schema {
    Limavm,
    Configmap,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CtlCommand {
    /// Creates or updates a LimaVM from a JSON (or YAML) file, `-` for stdin.
    Apply {
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: String,
    },
    /// Prints one LimaVM, or all of them.
    Get {
        /// `[limavm] [NAME]`
        #[arg(num_args = 0..=2, value_name = "NAME")]
        target: Vec<String>,
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<OutputFormat>,
    },
    /// Applies an RFC 7386 merge patch.
    Patch {
        /// `[limavm] NAME`
        #[arg(num_args = 1..=2, required = true, value_name = "NAME")]
        target: Vec<String>,
        #[arg(long = "type", default_value = "merge")]
        patch_type: String,
        #[arg(short = 'p', long = "patch", value_name = "JSON")]
        patch: String,
    },
    /// Deletes a LimaVM (finalizers make the deletion wait for cleanup).
    Delete {
        /// `[limavm] NAME`
        #[arg(num_args = 1..=2, required = true, value_name = "NAME")]
        target: Vec<String>,
        /// Wait until the resource is gone.
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
        wait: bool,
        /// Give up waiting after this long (default: no limit).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Waits for `--for=condition=Running=True` or `--for=delete`.
    Wait {
        /// `[limavm] NAME`
        #[arg(num_args = 1..=2, required = true, value_name = "NAME")]
        target: Vec<String>,
        #[arg(long = "for", value_name = "CONDITION")]
        wait_for: String,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Json,
    Yaml,
    Name,
}

#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error("Error from server (NotFound): limavms {0:?} not found")]
    NotFound(String),
    #[error("error: {0}")]
    Failed(String),
}

impl From<StoreError> for CtlError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { name } => CtlError::NotFound(name),
            other => CtlError::Failed(contract::error_chain::chain(&other)),
        }
    }
}

fn failed(message: impl Into<String>) -> CtlError {
    CtlError::Failed(message.into())
}

/// Runs one ctl command; returns the exit code.
pub(crate) fn run(
    args: CtlArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match execute(args, stdin, out) {
        Ok(()) => contract::exit::OK,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            contract::exit::FAILURE
        }
    }
}

fn execute(args: CtlArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), CtlError> {
    let store = Store::open(&args.state)?;
    match args.command {
        CtlCommand::Apply { file } => {
            let document = read_document(&file, stdin)?;
            let line = match args.schema {
                Schema::Configmap => crate::store::configmap_schema::apply(&store, document)
                    .map_err(|e| failed(contract::error_chain::chain(&e)))?,
                Schema::Limavm => apply(&store, document)?,
            };
            writeln!(out, "{line}").map_err(write_failed)
        }
        CtlCommand::Get { target, output } => {
            let name = resolve_get_target(&target)?;
            get(&store, name.as_deref(), output, args.schema, out)
        }
        CtlCommand::Patch {
            target,
            patch_type,
            patch,
        } => {
            let line = merge_patch(&store, &resolve_target(&target)?, &patch_type, &patch)?;
            writeln!(out, "{line}").map_err(write_failed)
        }
        CtlCommand::Delete {
            target,
            wait,
            timeout,
        } => {
            let name = resolve_target(&target)?;
            let outcome = store.delete(&name)?;
            writeln!(out, "{QUALIFIED} {name:?} deleted").map_err(write_failed)?;
            if wait && outcome == DeleteOutcome::Pending {
                wait_until(&name, timeout, || Ok(store.get(&name)?.is_none()))?;
            }
            Ok(())
        }
        CtlCommand::Wait {
            target,
            wait_for,
            timeout,
        } => {
            let name = resolve_target(&target)?;
            wait_for_condition(&store, &name, &WaitFor::parse(&wait_for)?, timeout)?;
            writeln!(out, "{QUALIFIED}/{name} condition met").map_err(write_failed)
        }
    }
}

fn write_failed(e: std::io::Error) -> CtlError {
    failed(format!("cannot write the output: {e}"))
}

/// `apply` of a LimaVM document; returns the line to print
/// (`limavm.limavm.dev/NAME created|configured|unchanged`).
fn apply(store: &Store, document: Value) -> Result<String, CtlError> {
    let name = document
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let outcome = match store.apply(document)? {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Configured => "configured",
        ApplyOutcome::Unchanged => "unchanged",
    };
    Ok(format!("{QUALIFIED}/{name} {outcome}"))
}

/// `patch --type=merge` (the only type supported); returns the line to print.
fn merge_patch(
    store: &Store,
    name: &str,
    patch_type: &str,
    patch: &str,
) -> Result<String, CtlError> {
    if patch_type != "merge" {
        return Err(failed(format!(
            "--type={patch_type} is not supported; use --type=merge"
        )));
    }
    let patch: Value = serde_json::from_str(patch)
        .map_err(|e| failed(format!("the patch is not valid JSON: {e}")))?;
    let note = match store.patch_merge(name, &patch)? {
        PatchOutcome::Patched => "",
        PatchOutcome::Unchanged => " (no change)",
    };
    Ok(format!("{QUALIFIED}/{name} patched{note}"))
}

/// `wait --for=…`: until the resource is gone or has the condition.
fn wait_for_condition(
    store: &Store,
    name: &str,
    wait_for: &WaitFor,
    timeout: Duration,
) -> Result<(), CtlError> {
    match wait_for {
        WaitFor::Delete => wait_until(name, Some(timeout), || Ok(store.get(name)?.is_none())),
        WaitFor::Condition { kind, status } => wait_until(name, Some(timeout), || {
            let vm = store
                .get(name)?
                .ok_or_else(|| CtlError::NotFound(name.to_owned()))?;
            Ok(vm
                .status
                .condition(kind)
                .is_some_and(|c| c.status.eq_ignore_ascii_case(status)))
        }),
    }
}

fn get(
    store: &Store,
    name: Option<&str>,
    output: Option<OutputFormat>,
    schema: Schema,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let show = |vm: &LimaVm| match schema {
        Schema::Limavm => vm.to_value(),
        Schema::Configmap => crate::store::configmap_schema::present(store, vm.to_value()),
    };
    let items = match name {
        Some(name) => vec![
            store
                .get(name)?
                .ok_or_else(|| CtlError::NotFound(name.to_owned()))?,
        ],
        None => store.list()?,
    };
    let value = match name {
        Some(_) => show(&items[0]),
        None => serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": items.iter().map(show).collect::<Vec<_>>(),
        }),
    };
    let text = match output {
        Some(OutputFormat::Json) => {
            serde_json::to_string_pretty(&value).expect("JSON values serialise") + "\n"
        }
        Some(OutputFormat::Yaml) => serde_norway::to_string(&value).expect("JSON values serialise"),
        Some(OutputFormat::Name) => items
            .iter()
            .map(|vm| format!("{QUALIFIED}/{}\n", printable(vm.name())))
            .collect(),
        None => table(&items),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| failed(format!("cannot write the output: {e}")))
}

/// `text` with every control character escaped (`\u{1b}`, `\n`): a name
/// must not move the cursor or recolour the terminal it is printed to.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn table(items: &[LimaVm]) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "RUNNING".to_owned(),
        "REASON".to_owned(),
        "RESTARTS".to_owned(),
    ]];
    for vm in items {
        let running = vm.status.condition(CONDITION_RUNNING);
        rows.push([
            printable(vm.name()),
            running.map_or("Unknown".to_owned(), |c| printable(&c.status)),
            running.map_or(String::new(), |c| printable(&c.reason)),
            vm.status.restart_count.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("   ").trim_end());
        text.push('\n');
    }
    text
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitFor {
    Delete,
    Condition { kind: String, status: String },
}

impl WaitFor {
    /// `delete`, `condition=Running` (meaning True) or `condition=Running=False`.
    fn parse(text: &str) -> Result<Self, CtlError> {
        if text == "delete" {
            return Ok(WaitFor::Delete);
        }
        let Some(condition) = text.strip_prefix("condition=") else {
            return Err(failed(format!(
                "unrecognised --for={text}; use condition=TYPE[=STATUS] or delete"
            )));
        };
        let (kind, status) = condition
            .split_once('=')
            .unwrap_or((condition, contract::condition::status::TRUE));
        if kind.is_empty() || status.is_empty() {
            return Err(failed(format!("malformed --for={text}")));
        }
        Ok(WaitFor::Condition {
            kind: kind.to_owned(),
            status: status.to_owned(),
        })
    }
}

/// Polls `done` until it holds or `timeout` (`None`: no limit) passes.
fn wait_until(
    name: &str,
    timeout: Option<Duration>,
    mut done: impl FnMut() -> Result<bool, CtlError>,
) -> Result<(), CtlError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if done()? {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(failed(format!(
                "timed out waiting for the condition on limavms/{name}"
            )));
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// The largest document `apply` reads (bytes); a LimaVM is a few hundred.
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// The deepest nesting of `[`/`{` `apply` parses (a LimaVM has 4 levels).
pub(crate) const MAX_DOCUMENT_DEPTH: usize = 32;

fn read_document(file: &str, stdin: &mut dyn Read) -> Result<Value, CtlError> {
    let source = if file == "-" { "stdin" } else { file };
    let too_large = || {
        failed(format!(
            "{source} is larger than the largest document accepted, {MAX_DOCUMENT_BYTES} bytes"
        ))
    };
    let mut bytes = Vec::new();
    if file == "-" {
        stdin
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| failed(format!("cannot read stdin: {e}")))?;
    } else {
        let opened =
            std::fs::File::open(file).map_err(|e| failed(format!("cannot read {file}: {e}")))?;
        if opened
            .metadata()
            .is_ok_and(|m| m.len() > MAX_DOCUMENT_BYTES)
        {
            return Err(too_large());
        }
        opened
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| failed(format!("cannot read {file}: {e}")))?;
    }
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(too_large());
    }
    let text =
        String::from_utf8(bytes).map_err(|e| failed(format!("{source} is not UTF-8: {e}")))?;
    if nesting_depth(&text) > MAX_DOCUMENT_DEPTH {
        return Err(failed(format!(
            "{source} nests deeper than the deepest document accepted, {MAX_DOCUMENT_DEPTH} levels"
        )));
    }
    // Each document is parsed as what it was meant to be, so that its
    // errors come from that parser: `.json` or a `{`/`[` start is JSON,
    // anything else YAML.
    let lower = file.to_ascii_lowercase();
    let json = lower.ends_with(".json")
        || (!lower.ends_with(".yaml")
            && !lower.ends_with(".yml")
            && text.trim_start().starts_with(['{', '[']));
    if json {
        serde_json::from_str(&text).map_err(|e| failed(format!("{source} is not valid JSON: {e}")))
    } else {
        serde_norway::from_str(&text)
            .map_err(|e| failed(format!("{source} is not valid YAML: {e}")))
    }
}

/// The deepest nesting of `[` and `{` outside quoted strings (an upper
/// bound for YAML flow collections as well as JSON).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// `NAME`, `limavm NAME` or `limavm/NAME`.
fn resolve_target(target: &[String]) -> Result<String, CtlError> {
    match target {
        [one] => Ok(match one.split_once('/') {
            Some((kind, name)) if TYPE_ALIASES.contains(&kind) => name.to_owned(),
            _ => one.clone(),
        }),
        [kind, name] if TYPE_ALIASES.contains(&kind.as_str()) => Ok(name.clone()),
        [kind, _] => Err(failed(format!(
            "the server doesn't have a resource type {kind:?} (this store holds limavms)"
        ))),
        _ => Err(failed("a resource name is required")),
    }
}

/// As [`resolve_target`], but nothing or a bare type lists everything.
fn resolve_get_target(target: &[String]) -> Result<Option<String>, CtlError> {
    match target {
        [] => Ok(None),
        [one] if TYPE_ALIASES.contains(&one.as_str()) => Ok(None),
        _ => resolve_target(target).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::store::resource::CLEANUP_FINALIZER;
    use clap::Parser;

    struct Ran {
        code: i32,
        out: String,
        err: String,
    }

    fn ctl(state: &std::path::Path, args: &[&str], stdin: &str) -> Ran {
        let mut argv = vec![
            "limavm-reconciler",
            "ctl",
            "--state",
            state.to_str().unwrap(),
        ];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let crate::cli::Command::Ctl(ctl_args) = cli.command else {
            panic!("not ctl")
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(ctl_args, &mut stdin.as_bytes(), &mut out, &mut err);
        Ran {
            code,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    const VM1: &str = r#"{"apiVersion":"limavm.dev/v1alpha1","kind":"LimaVM",
        "metadata":{"name":"vm1"},"spec":{"running":true,"vmType":"qemu","template":""}}"#;

    #[test]
    fn apply_get_patch_delete_round_trip() {
        let state = tempfile::tempdir().unwrap();
        let s = state.path();
        let ran = ctl(s, &["apply", "-f", "-"], VM1);
        assert_eq!(
            (ran.code, ran.out.as_str()),
            (0, "limavm.limavm.dev/vm1 created\n")
        );
        assert_eq!(
            ctl(s, &["apply", "-f", "-"], VM1).out,
            "limavm.limavm.dev/vm1 unchanged\n"
        );

        let ran = ctl(s, &["get", "vm1", "-o", "json"], "");
        let doc: Value = serde_json::from_str(&ran.out).unwrap();
        assert_eq!(doc["metadata"]["name"], "vm1");
        assert_eq!(doc["metadata"]["generation"], 1);

        let ran = ctl(
            s,
            &[
                "patch",
                "vm1",
                "--type=merge",
                "-p",
                r#"{"spec":{"running":false}}"#,
            ],
            "",
        );
        assert_eq!(
            (ran.code, ran.out.as_str()),
            (0, "limavm.limavm.dev/vm1 patched\n")
        );
        let doc: Value =
            serde_json::from_str(&ctl(s, &["get", "limavm", "vm1", "-o", "json"], "").out).unwrap();
        assert_eq!(doc["spec"]["running"], false);
        assert_eq!(doc["metadata"]["generation"], 2);

        let list: Value = serde_json::from_str(&ctl(s, &["get", "-o", "json"], "").out).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1);

        let ran = ctl(s, &["delete", "vm1"], "");
        assert_eq!(
            (ran.code, ran.out.as_str()),
            (0, "limavm.limavm.dev \"vm1\" deleted\n")
        );
        let list: Value = serde_json::from_str(&ctl(s, &["get", "-o", "json"], "").out).unwrap();
        assert_eq!(list["items"], serde_json::json!([]));
    }

    #[test]
    fn not_found_is_exit_1_with_the_kubectl_message() {
        let state = tempfile::tempdir().unwrap();
        for args in [
            &["get", "ghost", "-o", "json"][..],
            &["delete", "ghost"],
            &["patch", "ghost", "--type=merge", "-p", "{}"],
            &[
                "wait",
                "ghost",
                "--for=condition=Running=True",
                "--timeout",
                "1s",
            ],
        ] {
            let ran = ctl(state.path(), args, "");
            assert_eq!(ran.code, 1, "{args:?}");
            assert_eq!(
                ran.err, "Error from server (NotFound): limavms \"ghost\" not found\n",
                "{args:?}"
            );
        }
    }

    #[test]
    fn yaml_files_apply_too_and_bad_input_is_explained() {
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join("vm.yaml");
        std::fs::write(
            &file,
            "apiVersion: limavm.dev/v1alpha1\nkind: LimaVM\nmetadata: {name: y}\nspec: {running: false}\n",
        )
        .unwrap();
        let ran = ctl(state.path(), &["apply", "-f", file.to_str().unwrap()], "");
        assert_eq!(ran.code, 0, "{}", ran.err);
        let ran = ctl(state.path(), &["apply", "-f", "-"], "{\"metadata\":{}}");
        assert_eq!(ran.code, 1);
        assert!(ran.err.contains("metadata.name is required"), "{}", ran.err);
        let ran = ctl(state.path(), &["patch", "y", "--type=json", "-p", "[]"], "");
        assert!(ran.err.contains("--type=merge"), "{}", ran.err);
        let ran = ctl(state.path(), &["patch", "y", "-p", "{nope"], "");
        assert!(ran.err.contains("not valid JSON"), "{}", ran.err);
        let ran = ctl(state.path(), &["get", "pods", "y"], "");
        assert!(ran.err.contains("\"pods\""), "{}", ran.err);
    }

    #[test]
    fn yaml_errors_come_from_the_yaml_parser_and_json_errors_from_json() {
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join("vm.yaml");
        std::fs::write(&file, "metadata:\n  name: [y\n").unwrap();
        let ran = ctl(state.path(), &["apply", "-f", file.to_str().unwrap()], "");
        assert_eq!(ran.code, 1);
        assert!(ran.err.contains("is not valid YAML"), "{}", ran.err);
        assert!(!ran.err.contains("JSON"), "{}", ran.err);
        let ran = ctl(state.path(), &["apply", "-f", "-"], "{\"metadata\": ");
        assert!(ran.err.contains("stdin is not valid JSON"), "{}", ran.err);
    }

    #[test]
    fn huge_and_deeply_nested_documents_are_refused_at_once() {
        let state = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let huge = "[".repeat(50 * 1024 * 1024);
        let ran = ctl(state.path(), &["apply", "-f", "-"], &huge);
        assert_eq!(ran.code, 1);
        assert!(
            ran.err
                .contains("larger than the largest document accepted"),
            "{}",
            ran.err
        );
        let file = state.path().join("huge.json");
        std::fs::write(&file, &huge).unwrap();
        let ran = ctl(state.path(), &["apply", "-f", file.to_str().unwrap()], "");
        assert!(
            ran.err
                .contains("larger than the largest document accepted"),
            "{}",
            ran.err
        );
        drop(huge);
        let deep = "[".repeat(100_000);
        let ran = ctl(state.path(), &["apply", "-f", "-"], &deep);
        assert!(ran.err.contains("nests deeper than"), "{}", ran.err);
        let ran = ctl(
            state.path(),
            &["apply", "-f", "-"],
            &format!("a: {}", "[".repeat(1000)),
        );
        assert!(ran.err.contains("nests deeper than"), "{}", ran.err);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_state_path_naming_a_file_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        std::fs::write(&file, "").unwrap();
        let ran = ctl(&file, &["get"], "");
        assert_eq!(ran.code, 1);
        assert!(
            ran.err.contains("is a file, not a directory"),
            "{}",
            ran.err
        );
    }

    #[test]
    fn control_characters_in_names_are_escaped_in_tables_and_names() {
        let state = tempfile::tempdir().unwrap();
        let doc = serde_json::json!({
            "apiVersion": "limavm.dev/v1alpha1", "kind": "LimaVM",
            "metadata": {"name": "evil\u{1b}[2Jname\n"}, "spec": {"running": false}
        });
        let ran = ctl(state.path(), &["apply", "-f", "-"], &doc.to_string());
        assert_eq!(ran.code, 0, "{}", ran.err);
        for args in [&["get"][..], &["get", "-o", "name"]] {
            let ran = ctl(state.path(), args, "");
            assert!(!ran.out.contains('\u{1b}'), "{args:?}: {:?}", ran.out);
            assert!(
                ran.out.contains("evil\\u{1b}[2Jname\\n"),
                "{args:?}: {:?}",
                ran.out
            );
        }
    }

    #[test]
    fn wait_sees_conditions_and_deletion_or_times_out() {
        let state = tempfile::tempdir().unwrap();
        let s = state.path();
        ctl(s, &["apply", "-f", "-"], VM1);
        let store = Store::open(s).unwrap();
        store
            .update_status("vm1", |st| {
                st.set_condition("Running", true, "Started", "up");
            })
            .unwrap();
        let wait = |target, condition, timeout| {
            ctl(s, &["wait", target, condition, "--timeout", timeout], "")
        };
        let ran = wait("vm1", "--for=condition=Running=True", "2s");
        assert_eq!(
            (ran.code, ran.out.as_str()),
            (0, "limavm.limavm.dev/vm1 condition met\n")
        );
        let ran = wait("limavm/vm1", "--for=condition=Running", "1s");
        assert_eq!(ran.code, 0);
        let started = Instant::now();
        let ran = wait("vm1", "--for=condition=Running=False", "200ms");
        assert_eq!(ran.code, 1);
        assert!(
            ran.err
                .contains("timed out waiting for the condition on limavms/vm1")
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        store.add_finalizer("vm1", CLEANUP_FINALIZER).unwrap();
        let ran = ctl(s, &["delete", "vm1", "--wait", "--timeout", "200ms"], "");
        assert_eq!(ran.code, 1, "the finalizer holds it");
        let remover = std::thread::spawn({
            let store = store.clone();
            move || store.remove_finalizer("vm1", CLEANUP_FINALIZER).unwrap()
        });
        let ran = wait("vm1", "--for=delete", "10s");
        assert_eq!(ran.code, 0, "{}", ran.err);
        assert!(remover.join().unwrap());
    }

    #[test]
    fn wait_for_is_parsed_strictly() {
        assert_eq!(WaitFor::parse("delete").unwrap(), WaitFor::Delete);
        assert_eq!(
            WaitFor::parse("condition=Running").unwrap(),
            WaitFor::Condition {
                kind: "Running".into(),
                status: "True".into()
            }
        );
        assert_eq!(
            WaitFor::parse("condition=Cleanup=False").unwrap(),
            WaitFor::Condition {
                kind: "Cleanup".into(),
                status: "False".into()
            }
        );
        assert!(WaitFor::parse("jsonpath={.x}").is_err());
        assert!(WaitFor::parse("condition==True").is_err());
    }

    #[test]
    fn targets_accept_kubectl_type_prefixes() {
        let t = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve_target(&t(&["vm1"])).unwrap(), "vm1");
        assert_eq!(resolve_target(&t(&["limavm", "vm1"])).unwrap(), "vm1");
        assert_eq!(
            resolve_target(&t(&["limavms.limavm.dev/vm1"])).unwrap(),
            "vm1"
        );
        assert_eq!(resolve_target(&t(&["a/b"])).unwrap(), "a/b");
        assert!(resolve_target(&t(&["pod", "vm1"])).is_err());
        assert_eq!(resolve_get_target(&t(&[])).unwrap(), None);
        assert_eq!(resolve_get_target(&t(&["limavms"])).unwrap(), None);
    }

    #[test]
    fn the_table_shows_the_running_condition() {
        let state = tempfile::tempdir().unwrap();
        ctl(state.path(), &["apply", "-f", "-"], VM1);
        let ran = ctl(state.path(), &["get"], "");
        assert_eq!(
            ran.out,
            "NAME   RUNNING   REASON   RESTARTS\nvm1    Unknown            0\n"
        );
    }
}
