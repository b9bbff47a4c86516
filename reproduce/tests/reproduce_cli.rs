//! `reproduce` as a user runs it, with hostile circumstances: interrupted
//! mid-run (SIGINT to its process group and SIGTERM stop the run and clean
//! every sandbox, saying so; after SIGKILL, the next run reports what was
//! left and `--clean-leftovers` removes it), targets whose commands hang,
//! an environment that tries to leak into the sandbox, and failures of the
//! harness's own (which must end as harness errors, never as verdicts).
//! Each run gets a temporary directory of its own, so that what is left is
//! counted there and by the sandbox mark, never confused with other tests'
//! sandboxes.
#![cfg(unix)]

use assert_cmd::assert::{Assert, OutputAssertExt};
use harness::eventually;
use predicates::prelude::*;
use predicates::str::contains;
use proctree::ProcessTable;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const FINDING: &str = "orphaned-port-holders";
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A `reproduce` run in a process group of its own; killed with its
/// group and reaped when dropped.
struct Run {
    child: Child,
    stdout: Reader,
    stderr: Reader,
}

type Reader = std::thread::JoinHandle<String>;

fn reader(pipe: Option<impl std::io::Read + Send + 'static>) -> Reader {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

impl Run {
    fn start(tmp: &Path, args: &[&str]) -> Self {
        Self::start_with(tmp, args, |_| {})
    }

    fn start_with(tmp: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reproduce"));
        cmd.args(args)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        proctree::SpawnAttributes {
            own_process_group: true,
            background_priority: false,
        }
        .apply(&mut cmd);
        let mut child = cmd.spawn().expect("reproduce starts");
        Self {
            stdout: reader(child.stdout.take()),
            stderr: reader(child.stderr.take()),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the exit, for assertions on it.
    fn finish(mut self) -> Assert {
        let status = eventually(EXIT_DEADLINE, "reproduce to exit", || {
            self.child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let take = |r: &mut Reader| {
            std::mem::replace(r, std::thread::spawn(String::new))
                .join()
                .unwrap_or_default()
        };
        let (stdout, stderr) = (take(&mut self.stdout), take(&mut self.stderr));
        Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
        .assert()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Only while unreaped is the pid surely still this child's.
        if let Ok(None) = self.child.try_wait() {
            let _ = proctree::kill_tree(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// What a finished run wrote to stderr.
fn stderr_of(run: &Assert) -> String {
    String::from_utf8_lossy(&run.get_output().stderr).into_owned()
}

/// What a finished run wrote to stdout.
fn stdout_of(run: &Assert) -> String {
    String::from_utf8_lossy(&run.get_output().stdout).into_owned()
}

/// A temporary directory for one run; on drop (also on panic) whatever a
/// killed run left there is removed.
struct Tmp(tempfile::TempDir);

impl Tmp {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        harness::runs::remove_leftovers(self.0.path());
    }
}

/// Processes of sandboxes made under `tmp` (by their mark and TMPDIR).
fn sandbox_processes(tmp: &Path) -> Vec<String> {
    marked_processes(tmp, |_| true)
}

fn marked_processes(tmp: &Path, also: impl Fn(&proctree::ProcessInfo) -> bool) -> Vec<String> {
    let tmp = tmp.to_string_lossy();
    ProcessTable::snapshot()
        .iter()
        .filter(|p| {
            p.env_var(harness::sandbox::SANDBOX_ENV).is_some()
                && p.env_var("TMPDIR") == Some(tmp.as_ref())
                && also(p)
        })
        .map(|p| format!("{} (pid {})", p.name, p.pid))
        .collect()
}

fn sandbox_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("limavm"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a run of one finding and waits until its service is up.
fn started_run(tmp: &Path) -> Run {
    started_run_until(tmp, "a sandbox's service to run", &["serve"])
}

/// Starts a run of one finding and waits until processes with each of
/// `args` in their command line run (the service, `serve`, is a
/// long-lived one: it lives until stopped).
fn started_run_until(tmp: &Path, what: &str, args: &[&str]) -> Run {
    let run = Run::start(tmp, &["--only", FINDING, "--variants", "fixed", "-j", "1"]);
    eventually(Duration::from_secs(30), what, || {
        let missing: Vec<&str> = args
            .iter()
            .copied()
            .filter(|arg| marked_processes(tmp, |p| p.cmd.iter().any(|a| a == arg)).is_empty())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("none with {missing:?} yet"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    run
}

fn assert_clean(tmp: &Path, stderr: &str) {
    assert_eq!(sandbox_processes(tmp), Vec::<String>::new(), "{stderr}");
    assert_eq!(sandbox_dirs(tmp), Vec::<String>::new(), "{stderr}");
}

#[test]
fn sigint_to_the_group_stops_the_run_and_cleans_every_sandbox() {
    let tmp = Tmp::new();
    let run = started_run(tmp.path());
    proctree::interrupt_group(run.pid()).unwrap();
    let done = run
        .finish()
        .code(130)
        .stderr(contains("interrupted; cleaned").and(contains("directory")));
    assert_clean(tmp.path(), &stderr_of(&done));
}

#[test]
fn sigterm_stops_the_run_and_cleans_every_sandbox() {
    let tmp = Tmp::new();
    let run = started_run(tmp.path());
    proctree::request_shutdown(run.pid()).unwrap();
    let done = run
        .finish()
        .code(130)
        .stderr(contains("interrupted; cleaned"));
    assert_clean(tmp.path(), &stderr_of(&done));
}

#[test]
fn after_sigkill_the_next_run_reports_and_removes_what_was_left() {
    let tmp = Tmp::new();
    // Killed while its VM runs, not while its sandbox is being dropped
    // (whose service, asked to stop, would then leave nothing behind).
    let run = started_run_until(
        tmp.path(),
        "a sandbox's service and hostagent to run",
        &["serve", "hostagent"],
    );
    proctree::kill(run.pid()).unwrap();
    run.finish().interrupted();
    assert!(!sandbox_processes(tmp.path()).is_empty());
    assert!(!sandbox_dirs(tmp.path()).is_empty());

    Run::start(tmp.path(), &["--list"])
        .finish()
        .success()
        .stderr(contains("earlier runs that were killed left").and(contains("--clean-leftovers")));
    assert!(
        !sandbox_dirs(tmp.path()).is_empty(),
        "reporting removed nothing"
    );

    let done = Run::start(tmp.path(), &["--list", "--clean-leftovers"])
        .finish()
        .success()
        .stderr(contains("removed what earlier runs left"));
    let stderr = stderr_of(&done);
    let left = eventually(Duration::from_secs(10), "the leftovers to be gone", || {
        let (p, d) = (sandbox_processes(tmp.path()), sandbox_dirs(tmp.path()));
        if p.is_empty() && d.is_empty() {
            Ok(())
        } else {
            Err(format!("{p:?} {d:?}"))
        }
    });
    left.unwrap_or_else(|e| panic!("{e}\n{stderr}"));
}

/// The reference target file with `edit` applied, written into `dir`.
fn target_file(dir: &Path, edit: impl FnOnce(String) -> String) -> String {
    let text = include_str!("../../fixtures/targets/reference-ctl.toml");
    let path = dir.join("target.toml");
    std::fs::write(&path, edit(text.to_owned())).unwrap();
    path.to_string_lossy().into_owned()
}

/// A CLI prefix that runs `script` for the verb `verb` and the reference
/// `ctl` for every other.
fn prefix_with(verb: &str, script: &str) -> String {
    format!(
        "prefix = [\"sh\", \"-c\", 'r=\"$1\"; s=\"$2\"; shift 2; if [ \"$1\" = {verb} ]; then {script}; fi; exec \"$r\" ctl --state \"$s\" \"$@\"', \"sh\", \"{{reconciler}}\", \"{{state}}\"]"
    )
}

const REFERENCE_PREFIX: &str = r#"prefix = ["{reconciler}", "ctl", "--state", "{state}"]"#;

/// Runs one finding's fixed variant against `target`; returns the JSON
/// outcome and stderr, and checks the sandbox was cleaned.
fn run_target(tmp: &Path, target: &str, finding: &str) -> (serde_json::Value, String) {
    let run = Run::start(
        tmp,
        &[
            "--target",
            target,
            "--only",
            finding,
            "--variants",
            "fixed",
            "--format",
            "json",
            "--command-timeout",
            "1s",
        ],
    );
    let done = run.finish().code(1);
    let (stdout, stderr) = (stdout_of(&done), stderr_of(&done));
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_clean(tmp, &stderr);
    (report["findings"][0]["fixed"].clone(), stderr)
}

fn assert_harness_error(outcome: &serde_json::Value, names: &str) {
    assert_eq!(outcome["verdict"], "harness-error", "{outcome}");
    let message = outcome["message"].as_str().unwrap_or_default();
    assert!(message.contains(names), "{outcome}");
}

#[test]
fn a_get_that_hangs_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    let target = target_file(tmp.path(), |t| {
        t.replace(REFERENCE_PREFIX, &prefix_with("get", "exec sleep 600"))
    });
    let (outcome, _) = run_target(tmp.path(), &target, "orphaned-port-holders");
    assert_harness_error(&outcome, "did not finish within 1s");
    assert_harness_error(&outcome, " get ");
}

#[test]
fn a_get_whose_child_holds_stdout_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    let target = target_file(tmp.path(), |t| {
        t.replace(
            REFERENCE_PREFIX,
            &prefix_with(
                "get",
                "\"$r\" ctl --state \"$s\" \"$@\"; sleep 600 & exit 0",
            ),
        )
    });
    let (outcome, _) = run_target(tmp.path(), &target, "orphaned-port-holders");
    assert_harness_error(&outcome, "still held its output");
    assert_harness_error(&outcome, " get ");
}

#[test]
fn a_ready_command_that_never_returns_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    // A hung ready command is tried again until the ready timeout.
    let target = target_file(tmp.path(), |t| {
        let t = t.replace(
            r#"ready_file = "{state}/service.json""#,
            r#"ready_command = ["sleep", "600"]"#,
        );
        format!("{t}\n[harness]\nready_timeout = \"3s\"\n")
    });
    let (outcome, _) = run_target(tmp.path(), &target, "orphaned-port-holders");
    assert_harness_error(&outcome, "ready_command did not finish within 1s");
}

#[test]
fn a_stop_command_that_hangs_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    let target = target_file(tmp.path(), |t| {
        t.replace(
            r#"ready_file = "{state}/service.json""#,
            "ready_file = \"{state}/service.json\"\nstop_command = [\"sleep\", \"600\"]",
        )
    });
    let (outcome, _) = run_target(tmp.path(), &target, "shutdown-fallback-skips-cleanup");
    assert_harness_error(&outcome, "stop_command did not finish within");
}

#[test]
fn a_target_env_setting_the_sandbox_mark_is_refused_naming_it() {
    let tmp = Tmp::new();
    let target = target_file(tmp.path(), |t| {
        format!("{t}\n[service.env]\nLIMAVM_SANDBOX = \"elsewhere\"\n")
    });
    Run::start(tmp.path(), &["--target", &target, "--list"])
        .finish()
        .code(2)
        .stderr(contains("service.env sets LIMAVM_SANDBOX"));
}

#[test]
fn a_regression_exported_in_the_users_shell_does_not_reach_the_service() {
    let tmp = Tmp::new();
    let run = Run::start_with(
        tmp.path(),
        &["--only", FINDING, "--variants", "fixed", "--format", "json"],
        |cmd| {
            cmd.env(contract::env::REGRESS, FINDING);
        },
    );
    let done = run.finish().success().stdout(contains("\"passed\""));
    assert_clean(tmp.path(), &stderr_of(&done));
}

/// Runs the fixed variant of [`FINDING`] with `TMPDIR` at `tmp`; returns
/// the outcome and stderr.
fn run_fixed_in(tmp: &Path) -> (serde_json::Value, String) {
    let run = Run::start(
        tmp,
        &["--only", FINDING, "--variants", "fixed", "--format", "json"],
    );
    let done = run.finish().code(1);
    let (stdout, stderr) = (stdout_of(&done), stderr_of(&done));
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (report["findings"][0]["fixed"].clone(), stderr)
}

#[test]
fn a_tmpdir_holding_the_path_separator_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    let hostile = tmp.path().join("a:b");
    std::fs::create_dir(&hostile).unwrap();
    let (outcome, stderr) = run_fixed_in(&hostile);
    assert_harness_error(&outcome, "holds the PATH list separator");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_clean(&hostile, &stderr);
}

#[test]
fn a_tmpdir_too_long_for_sockets_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    let long = tmp.path().join("d".repeat(100));
    std::fs::create_dir(&long).unwrap();
    let (outcome, stderr) = run_fixed_in(&long);
    assert_harness_error(&outcome, "is too long: an instance's socket");
    assert_clean(&long, &stderr);
}

#[test]
fn a_fault_plan_removed_during_the_run_is_a_harness_error_naming_it() {
    let tmp = Tmp::new();
    let run = started_run(tmp.path());
    let dir = sandbox_dirs(tmp.path()).pop().expect("a sandbox directory");
    std::fs::remove_file(tmp.path().join(dir).join("faults.json")).unwrap();
    let done = run
        .finish()
        .code(1)
        .stdout(contains("HARNESS ERROR").and(contains("was removed during the run")));
    assert_clean(tmp.path(), &stderr_of(&done));
}

#[test]
fn a_full_stdout_is_an_error_naming_it_not_a_panic() {
    let tmp = Tmp::new();
    for args in [&["--list"][..], &["--only", FINDING, "--variants", "fixed"]] {
        let run = Run::start_with(tmp.path(), args, |cmd| {
            cmd.stdout(std::fs::File::create("/dev/full").unwrap());
        });
        run.finish()
            .code(2)
            .stderr(contains("cannot write the report to stdout").and(contains("panicked").not()));
    }
    assert_clean(tmp.path(), "");
}

#[test]
fn a_finding_named_twice_is_run_and_reported_once() {
    let tmp = Tmp::new();
    let run = Run::start(
        tmp.path(),
        &["--list", "--only", FINDING, "--only", FINDING],
    );
    let stdout = stdout_of(&run.finish().success());
    // A finding's first line starts with its ID; the lines under it are
    // indented.
    let listed = stdout.lines().filter(|l| l.starts_with(FINDING)).count();
    assert_eq!(listed, 1, "{stdout}");
}

/// Two findings whose scenarios are quick, for the shard and merge tests.
const SHARDED: [&str; 2] = ["missing-public-key", "key-mode-unrepaired"];

/// Runs `reproduce --format json` on [`SHARDED`] with `extra` arguments;
/// returns the report's path under `tmp` (named `name`).
fn json_report(tmp: &Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["--only", SHARDED[0], "--only", SHARDED[1]];
    args.extend(["--format", "json", "--jobs", "2"]);
    args.extend(extra);
    let done = Run::start(tmp, &args).finish().success();
    let path = tmp.join(name);
    std::fs::write(&path, stdout_of(&done)).unwrap();
    path
}

/// `reproduce --merge` of `files` with `extra` arguments.
fn merge(tmp: &Path, files: &[&Path], extra: &[&str]) -> Assert {
    let mut args = vec!["--merge"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend(extra);
    Run::start(tmp, &args).finish()
}

/// `(finding, variant, verdict)` of each run in a JSON report.
fn verdicts(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut runs: Vec<(String, String, String)> = report["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs: {report}"))
        .iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap_or_default().to_owned();
            (text("id"), text("variant"), text("verdict"))
        })
        .collect();
    runs.sort();
    runs
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn two_shards_merge_into_the_report_of_one_whole_run() {
    let tmp = Tmp::new();
    let first = json_report(tmp.path(), "1.json", &["--shard", "1/2"]);
    let second = json_report(tmp.path(), "2.json", &["--shard", "2/2"]);
    let whole = parse(&std::fs::read_to_string(json_report(tmp.path(), "all.json", &[])).unwrap());
    for (file, k) in [(&first, 1), (&second, 2)] {
        let part = parse(&std::fs::read_to_string(file).unwrap());
        assert_eq!(part["shard"], serde_json::json!({"index": k, "count": 2}));
        assert_eq!(part["runs"].as_array().unwrap().len(), 2, "{part}");
    }

    let merged = parse(&stdout_of(
        &merge(tmp.path(), &[&second, &first], &["--format", "json"]).success(),
    ));
    assert_eq!(verdicts(&merged), verdicts(&whole));
    assert_eq!(merged["summary"], whole["summary"]);
    assert_eq!(merged["selection"], whole["selection"]);
    assert_eq!(merged["shard"], serde_json::Value::Null);
    let ids = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        let findings = r["findings"].as_array().unwrap();
        findings.iter().map(|f| f["id"].clone()).collect()
    };
    assert_eq!(ids(&merged), ids(&whole), "catalogue order");

    let table = stdout_of(&merge(tmp.path(), &[&first, &second], &[]).success());
    assert!(
        SHARDED.iter().all(|id| table.contains(id)) && table.contains("2/2 reproduced, 2/2 fixed"),
        "{table}"
    );
    assert_clean(tmp.path(), "");
}

#[test]
fn merge_refuses_a_missing_a_repeated_or_a_foreign_shard_naming_the_findings() {
    let tmp = Tmp::new();
    let first = json_report(tmp.path(), "1.json", &["--shard", "1/2"]);
    let second = json_report(tmp.path(), "2.json", &["--shard", "2/2"]);

    // Shard 1/2 ran the first finding's fixed run and the second's
    // regressed one.
    merge(tmp.path(), &[&first], &[]).code(2).stderr(contains(format!(
        "the shards are incomplete: shard 2/2 not given; no report ran {} (regressed), {} (fixed)",
        SHARDED[0], SHARDED[1]
    )));
    merge(tmp.path(), &[&first, &second, &first], &[])
        .code(2)
        .stderr(contains(format!(
            "{} and {} are both shard 1/2: give each shard once",
            first.display(),
            first.display()
        )));

    let mut other = parse(&std::fs::read_to_string(&second).unwrap());
    other["selection"]["toolset"] = "real".into();
    let other_file = tmp.path().join("other.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    merge(tmp.path(), &[&first, &other_file], &[])
        .code(2)
        .stderr(contains(
            "are not shards of one run: they differ in toolset",
        ));

    let table = tmp.path().join("table.txt");
    std::fs::write(&table, "not json").unwrap();
    merge(tmp.path(), &[&table], &[]).code(2).stderr(contains(
        "table.txt: not a `reproduce --format json` report",
    ));
    assert_clean(tmp.path(), "");
}

/// `(class name, name, status)` of each test case of a JUnit report.
fn junit_cases(xml: &str) -> Vec<(String, String, &'static str)> {
    use quick_junit::{Report, TestCaseStatus};
    let report = Report::deserialize_from_str(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let suite = match report.test_suites.as_slice() {
        [suite] => suite,
        suites => panic!("one suite expected, {} in {xml}", suites.len()),
    };
    suite
        .test_cases
        .iter()
        .map(|case| {
            let status = match case.status {
                TestCaseStatus::Success { .. } => "success",
                TestCaseStatus::NonSuccess { .. } => "failure",
                TestCaseStatus::Skipped { .. } => "skipped",
            };
            let class = case.classname.as_ref().map(|c| c.as_str().to_owned());
            (
                class.unwrap_or_default(),
                case.name.as_str().to_owned(),
                status,
            )
        })
        .collect()
}

#[test]
fn a_run_and_an_audit_render_as_junit_with_a_case_per_run() {
    let tmp = Tmp::new();
    let only = ["--only", SHARDED[0], "--only", SHARDED[1], "--jobs", "2"];
    let run = Run::start(tmp.path(), &[&only[..], &["--format", "junit"]].concat());
    let cases = junit_cases(&stdout_of(&run.finish().success()));
    let case = |id: &str, variant: &str| (id.to_owned(), variant.to_owned(), "success");
    assert_eq!(
        cases,
        [
            case(SHARDED[0], "fixed"),
            case(SHARDED[0], "regressed"),
            case(SHARDED[1], "fixed"),
            case(SHARDED[1], "regressed"),
        ]
    );

    // An audit's JSON report, rendered again as JUnit through `--merge`
    // (what the GitHub Action does): a case per finding, then per invariant.
    let target = target_file(tmp.path(), |text| text);
    let audit = ["--target", &target, "--audit", "--format", "json"];
    let done = Run::start(tmp.path(), &[&only[..], &audit].concat()).finish();
    let report = tmp.path().join("audit.json");
    std::fs::write(&report, stdout_of(&done.success())).unwrap();
    let junit = merge(tmp.path(), &[&report], &["--format", "junit"]).success();
    let cases = junit_cases(&stdout_of(&junit));
    assert_eq!(
        cases[..2],
        [case(SHARDED[0], "fixed"), case(SHARDED[1], "fixed")]
    );
    assert!(
        cases.len() > 2
            && cases[2..]
                .iter()
                .all(|(_, name, status)| name == "invariant" && *status == "success"),
        "{cases:?}"
    );
    assert_clean(tmp.path(), "");
}

#[test]
fn a_shard_spec_counts_from_one_as_nextest_s_partition() {
    let tmp = Tmp::new();
    for bad in ["0/2", "3/2", "2"] {
        Run::start(tmp.path(), &["--shard", bad, "--list"])
            .finish()
            .code(2)
            .stderr(contains("--shard"));
    }
}
