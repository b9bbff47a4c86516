//! The `limavm-reconciler` command line: `serve`, `regressions`, `ctl`.
//!
//! The folder owns the command line and how it reports: parsing, logging
//! set-up, exit codes, error chains, and `ctl` (the kubectl-like client of
//! the store).

pub(crate) mod ctl;

use crate::logging::{self, LogFormat};
use crate::regression::{Regression, Regressions};
use crate::service;
use crate::settings::Settings;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use contract::exit;
use ctl::CtlArgs;
use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable with comma-separated regression IDs, added to `--regress`.
pub(crate) const REGRESS_ENV: &str = contract::env::REGRESS;

#[derive(Debug, Parser)]
#[command(
    name = "limavm-reconciler",
    version,
    about = "The reference Lima-backed VM reconciler, with one regression switch per finding"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs the reconciler service until SIGTERM/SIGINT (Windows: CTRL_BREAK/CTRL_C).
    Serve(ServeArgs),
    /// Lists the regression switches, one `ID  description` a line.
    Regressions,
    /// kubectl-style access to the resources: apply, get, patch, delete, wait.
    Ctl(CtlArgs),
    /// Runs as the hostagent of instance NAME (Lima's `limactl hostagent`
    /// flags): what `serve --hostagent-entry embedded` re-executes itself as.
    Hostagent(HostagentArgs),
}

/// `hostagent --pidfile F --socket S [--debug] NAME`, as Lima v2.2.0's
/// `limactl hostagent` takes them (`--pidfile` and `--socket` always given
/// by the service).
#[derive(Debug, Args)]
pub(crate) struct HostagentArgs {
    /// Where the hostagent writes its pid (`ha.pid`).
    #[arg(long, value_name = "FILE")]
    pub(crate) pidfile: PathBuf,
    /// Where the hostagent serves its API (`ha.sock`).
    #[arg(long, value_name = "FILE")]
    pub(crate) socket: PathBuf,
    /// Accepted and ignored, as the fake `limactl` does.
    #[arg(long)]
    pub(crate) debug: bool,
    /// The instance's name (its directory under `LIMA_HOME`).
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Lima's home directory.
    #[arg(long, env = "LIMA_HOME", value_name = "DIR")]
    pub(crate) lima_home: PathBuf,
    /// The state directory: resources/, service.json, reconciler.log, events.jsonl.
    #[arg(long, value_name = "DIR")]
    pub(crate) state: PathBuf,
    /// Timeouts, backoffs and budgets (`--graceful-timeout 30s`, ...).
    #[command(flatten)]
    pub(crate) timings: contract::Timings,
    /// Switch on a regression (repeatable; see `regressions`).
    #[arg(long = "regress", value_name = "ID")]
    pub(crate) regress: Vec<Regression>,
    /// How to launch the hostagent: `hostagent` (default),
    /// `start-foreground` for real Lima (`limactl start --foreground`), or
    /// `embedded` (this executable re-executed as `hostagent`).
    #[arg(long, value_enum, env = contract::env::HOSTAGENT_ENTRY, default_value_t)]
    pub(crate) hostagent_entry: crate::settings::HostagentEntry,
    #[arg(long, value_enum, default_value_t)]
    pub(crate) log_format: LogFormat,
}

/// Runs the command line of this process; returns the exit code.
pub fn cli_main() -> i32 {
    cli_main_from(std::env::args_os())
}

/// Runs a command line (the first item is the program name).
pub(crate) fn cli_main_from<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Regressions => {
            print!("{}", regressions_listing());
            exit::OK
        }
        Command::Hostagent(args) => fakes::run_embedded_hostagent(&fakes::HostagentArgs {
            pidfile: args.pidfile,
            socket: args.socket,
            name: args.name,
        }),
        Command::Ctl(args) => ctl::run(
            args,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
    }
}

/// `ID  description` lines, aligned.
pub(crate) fn regressions_listing() -> String {
    let width = Regression::ALL
        .iter()
        .map(|r| r.id().len())
        .max()
        .unwrap_or(0);
    Regression::ALL
        .iter()
        .map(|r| format!("{:<width$}  {}\n", r.id(), r.defect()))
        .collect()
}

fn serve(args: ServeArgs) -> i32 {
    let regress_env = std::env::var(REGRESS_ENV).unwrap_or_default();
    let log_format = args.log_format;
    let settings = match settings_from(args, &regress_env) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            return exit::USAGE;
        }
    };
    // Held until the service returns: a second service on this state
    // directory refuses to start.
    let _lock = match crate::store::state_lock::StateLock::acquire(&settings.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {}", contract::error_chain::ErrorChain(&e));
            return exit::FAILURE;
        }
    };
    match run_service(settings, log_format) {
        Ok(()) => exit::OK,
        Err(e) => {
            let text = describe(&e);
            tracing::error!(error = text.as_str(), "the reconciler service failed");
            eprintln!("error: {text}");
            exit::FAILURE
        }
    }
}

fn run_service(settings: Settings, log_format: LogFormat) -> anyhow::Result<()> {
    logging::init(&settings.log_file(), log_format).context("cannot set up logging")?;
    service::serve(settings).context("the reconciler service failed")
}

/// The error and its causes on one line, by the crate's one chain printer.
fn describe(error: &anyhow::Error) -> String {
    contract::error_chain::chain(error.as_ref())
}

/// Settings from the arguments plus `LIMAVM_REGRESS`.
pub(crate) fn settings_from(args: ServeArgs, regress_env: &str) -> anyhow::Result<Settings> {
    let mut regressions = Regressions::of(args.regress);
    let from_env = Regressions::parse_list(regress_env).context(REGRESS_ENV)?;
    regressions.extend(&from_env);
    let lima_home = std::path::absolute(&args.lima_home)
        .with_context(|| format!("--lima-home {}", args.lima_home.display()))?;
    let state_dir = std::path::absolute(&args.state)
        .with_context(|| format!("--state {}", args.state.display()))?;
    let mut settings = Settings::new(lima_home, state_dir);
    settings.timings = args.timings;
    settings.hostagent_entry = args.hostagent_entry;
    settings.regressions = regressions;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("limavm-reconciler").chain(args.iter().copied()))
    }

    /// `serve --lima-home /l --state /s`, then `extra`.
    fn serve_line<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["serve", "--lima-home", "/l", "--state", "/s"][..], extra].concat()
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        match parse(args).unwrap().command {
            Command::Serve(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_takes_durations_and_repeated_regressions() {
        let args = serve_args(&serve_line(&[
            "--graceful-timeout",
            "250ms",
            "--regress",
            "disk-lock-leak",
            "--regress",
            "recycled-pid-kill",
            "--log-format",
            "json",
        ]));
        assert_eq!(args.timings.graceful_timeout, Duration::from_millis(250));
        assert_eq!(args.timings.poll_interval, Duration::from_millis(100));
        assert_eq!(args.log_format, LogFormat::Json);
        let settings = settings_from(args, "wsl-hang-unbounded").unwrap();
        assert_eq!(
            settings.regressions,
            Regressions::of([
                Regression::DiskLockLeak,
                Regression::RecycledPidKill,
                Regression::WslHangUnbounded
            ])
        );
        assert_eq!(settings.delete_retry_budget, 8);
    }

    #[test]
    fn an_unknown_regression_is_a_usage_error_listing_the_valid_ids() {
        let err = parse(&serve_line(&["--regress", "bogus"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("bogus") && text.contains("disk-lock-leak"),
            "{text}"
        );
        let args = serve_args(&serve_line(&[]));
        let err = settings_from(args, "disk-lock-leak,bogus").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("LIMAVM_REGRESS") && text.contains("wsl-hang-unbounded"),
            "{text}"
        );
    }

    #[test]
    fn errors_are_described_with_each_cause_once() {
        let keys =
            crate::lifecycle::keys::KeyError::Command(crate::command::CommandError::TimedOut {
                tool: "ssh-keygen".into(),
                timeout: Duration::from_millis(300),
                stderr: String::new(),
            });
        let error = anyhow::Error::new(service::ServiceError::Keys(keys))
            .context("the reconciler service failed");
        assert_eq!(
            describe(&error),
            "the reconciler service failed: cannot prepare the SSH keys: ssh-keygen did not finish within 300ms"
        );
    }

    #[test]
    fn a_bad_duration_is_a_usage_error() {
        let err = parse(&serve_line(&["--start-timeout", "soon"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("soon"));
    }

    #[test]
    fn durations_a_deadline_cannot_hold_and_a_zero_poll_are_usage_errors() {
        for (option, value, says) in [
            (
                "--keygen-timeout",
                "18446744073709551615s",
                "longer than the longest",
            ),
            (
                "--graceful-timeout",
                "18446744073709551615s",
                "longer than the longest",
            ),
            (
                "--start-timeout",
                "18446744073709551615s",
                "longer than the longest",
            ),
            ("--poll-interval", "0s", "is zero"),
        ] {
            let err = parse(&serve_line(&[option, value])).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{option}");
            let text = err.to_string();
            assert!(text.contains(option) && text.contains(says), "{text}");
        }
    }

    #[test]
    fn the_listing_has_every_id_once() {
        let listing = regressions_listing();
        assert_eq!(listing.lines().count(), Regression::ALL.len());
        for regression in Regression::ALL {
            assert!(
                listing
                    .lines()
                    .any(|l| l.starts_with(regression.id()) && l.ends_with(regression.defect())),
                "{regression}"
            );
        }
    }

    #[test]
    fn ctl_parses_kubectl_style_arguments() {
        for args in [
            &["ctl", "--state", "/s", "apply", "-f", "-"][..],
            &["ctl", "--state", "/s", "get", "-o", "json"],
            &["ctl", "--state", "/s", "get", "vm1", "-o", "json"],
            &[
                "ctl",
                "--state",
                "/s",
                "patch",
                "vm1",
                "--type=merge",
                "-p",
                "{}",
            ],
            &[
                "ctl",
                "--state",
                "/s",
                "delete",
                "vm1",
                "--wait",
                "--timeout",
                "5s",
            ],
            &["ctl", "--state", "/s", "delete", "vm1", "--wait=false"],
            &[
                "ctl",
                "--state",
                "/s",
                "wait",
                "vm1",
                "--for=delete",
                "--timeout",
                "5s",
            ],
            &[
                "ctl",
                "--state",
                "/s",
                "wait",
                "vm1",
                "--for=condition=Running=True",
            ],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        assert!(parse(&["ctl", "--state", "/s", "get", "-o", "xml"]).is_err());
        assert!(parse(&["ctl", "--state", "/s", "delete"]).is_err());
        assert!(parse(&["ctl", "--state", "/s", "patch", "vm1"]).is_err());
    }

    #[test]
    fn the_embedded_entry_re_executes_as_a_hostagent_with_limas_flags() {
        let serve = serve_args(&serve_line(&[]));
        assert_eq!(
            serve.hostagent_entry,
            crate::settings::HostagentEntry::Hostagent
        );
        let serve = serve_args(&serve_line(&["--hostagent-entry", "embedded"]));
        assert_eq!(
            serve.hostagent_entry,
            crate::settings::HostagentEntry::Embedded
        );
        let args = ["hostagent", "--pidfile", "/i/ha.pid", "--socket=/i/ha.sock"];
        let Command::Hostagent(hostagent) =
            parse(&[&args[..], &["--", "-x"]].concat()).unwrap().command
        else {
            panic!("not a hostagent");
        };
        assert_eq!(hostagent.pidfile, PathBuf::from("/i/ha.pid"));
        assert_eq!(hostagent.socket, PathBuf::from("/i/ha.sock"));
        assert_eq!(hostagent.name, "-x");
        assert!(
            parse(&["hostagent", "--socket", "s", "vm"]).is_err(),
            "no pid file"
        );
    }
}
