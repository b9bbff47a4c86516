//! `wsl.exe` (also `wsl`): a registry of distros in a state file, and `-d`
//! processes that stand for a running distro.

mod output;
mod state;

pub use output::decode_output;

use crate::error::FakeError;
use crate::interrupts::Interrupts;
use crate::invocation::Invocation;
use contract::exit;
use output::print_lines;
use state::{Distro, Session, StateFile, WslState};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOOL: &str = "wsl.exe";
/// How long `--terminate` waits for a killed session to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

const NOT_FOUND: [&str; 2] = [
    "There is no distribution with the supplied name.",
    "Error code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND",
];
const ALREADY_EXISTS: [&str; 2] = [
    "A distribution with the supplied name already exists.",
    "Error code: Wsl/Service/RegisterDistro/ERROR_ALREADY_EXISTS",
];
const SUCCESS: &str = "The operation completed successfully.";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    List {
        quiet: bool,
        running: bool,
        verbose: bool,
    },
    Terminate(String),
    Unregister(String),
    Import {
        distro: String,
        location: PathBuf,
        source: PathBuf,
    },
    Run(String),
    Shutdown,
}

pub(crate) fn run(invocation: &Invocation) -> Result<i32, FakeError> {
    let command = parse(&invocation.args)?;
    let states = StateFile::from_env()?;
    let journal = &invocation.journal;
    match command {
        Command::List {
            quiet,
            running,
            verbose,
        } => {
            let state = states.update(journal, |state| state.clone())?;
            print_lines(&list(&state, quiet, running, verbose));
            Ok(exit::OK)
        }
        Command::Terminate(name) => {
            let found = states.update(journal, |state| {
                let key = state.find(&name)?;
                end_sessions(state.distros.get_mut(&key)?);
                Some(())
            })?;
            Ok(report(found.is_some()))
        }
        Command::Unregister(name) => {
            let found = states.update(journal, |state| {
                let key = state.find(&name)?;
                let mut distro = state.distros.remove(&key)?;
                end_sessions(&mut distro);
                Some(())
            })?;
            Ok(report(found.is_some()))
        }
        Command::Import {
            distro,
            location,
            source,
        } => import(&states, invocation, distro, location, source),
        Command::Run(name) => run_session(&states, invocation, &name),
        Command::Shutdown => {
            states.update(journal, |state| {
                state.distros.values_mut().for_each(end_sessions);
            })?;
            Ok(exit::OK)
        }
    }
}

fn report(found: bool) -> i32 {
    if found {
        print_lines(&[SUCCESS]);
        0
    } else {
        print_lines(&NOT_FOUND);
        1
    }
}

fn list(state: &WslState, quiet: bool, running: bool, verbose: bool) -> Vec<String> {
    let shown = state
        .distros
        .iter()
        .filter(|(_, d)| !running || d.state == state::DistroState::Running);
    if quiet {
        return shown.map(|(name, _)| name.clone()).collect();
    }
    let rows: Vec<String> = if verbose {
        shown
            .map(|(name, d)| format!("  {name:<24}{:<16}2", d.state.as_str()))
            .collect()
    } else {
        shown.map(|(name, _)| name.clone()).collect()
    };
    if rows.is_empty() {
        return rows;
    }
    let header = if verbose {
        format!("  {:<24}{:<16}VERSION", "NAME", "STATE")
    } else {
        "Windows Subsystem for Linux Distributions:".to_owned()
    };
    std::iter::once(header).chain(rows).collect()
}

/// Kills every session's process tree and waits (bounded) until they are
/// gone, so the distro reads as stopped from now on.
fn end_sessions(distro: &mut Distro) {
    for session in &distro.sessions {
        let _ = proctree::kill_tree(session.pid);
    }
    let deadline = Instant::now() + KILL_WAIT;
    while distro.sessions.iter().any(|s| proctree::is_alive(s.pid)) && Instant::now() < deadline {
        std::thread::sleep(crate::spawn::POLL);
    }
    distro.sessions.clear();
}

fn import(
    states: &StateFile,
    invocation: &Invocation,
    distro: String,
    location: PathBuf,
    source: PathBuf,
) -> Result<i32, FakeError> {
    std::fs::create_dir_all(&location).map_err(|e| {
        FakeError::failed(format!(
            "{TOOL}: cannot create the install location {}: {e}",
            location.display()
        ))
    })?;
    let added = states.update(&invocation.journal, |state| {
        if state.find(&distro).is_some() {
            return false;
        }
        state.distros.insert(distro, Distro::new(location, source));
        true
    })?;
    if added {
        print_lines(&[SUCCESS]);
        Ok(exit::OK)
    } else {
        print_lines(&ALREADY_EXISTS);
        Ok(exit::FAILURE)
    }
}

/// `-d DISTRO [command...]`: this process is the distro's session until it
/// is killed (by `--terminate`) or interrupted. The command is not run.
fn run_session(states: &StateFile, invocation: &Invocation, name: &str) -> Result<i32, FakeError> {
    let interrupts = Interrupts::install()?;
    let me = Session::of_current_process();
    let joined = states.update(&invocation.journal, |state| {
        let key = state.find(name)?;
        state.distros.get_mut(&key)?.sessions.push(me);
        Some(key)
    })?;
    let Some(key) = joined else {
        print_lines(&NOT_FOUND);
        return Ok(exit::FAILURE);
    };
    interrupts.wait_honoured(&invocation.journal, invocation.faults.ignore_interrupt());
    states.update(&invocation.journal, |state| {
        if let Some(distro) = state.distros.get_mut(&key) {
            distro.sessions.retain(|s| *s != me);
        }
    })?;
    Ok(exit::OK)
}

fn parse(args: &[String]) -> Result<Command, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, m);
    let Some((first, rest)) = args.split_first() else {
        return Err(usage(
            "missing command (--list, --terminate, --unregister, --import, -d, --shutdown)".into(),
        ));
    };
    let exactly = |count: usize, what: &str| -> Result<&[String], FakeError> {
        if rest.len() == count {
            Ok(rest)
        } else {
            Err(usage(format!("{first} takes {what}, got {rest:?}")))
        }
    };
    match first.as_str() {
        "--list" | "-l" => parse_list(rest),
        "--terminate" | "-t" => Ok(Command::Terminate(
            exactly(1, "one distro name")?[0].clone(),
        )),
        "--unregister" => Ok(Command::Unregister(
            exactly(1, "one distro name")?[0].clone(),
        )),
        "--import" => parse_import(rest),
        "-d" | "--distribution" => match rest.first() {
            Some(distro) => Ok(Command::Run(distro.clone())),
            None => Err(usage(format!("{first} takes a distro name"))),
        },
        "--shutdown" => {
            exactly(0, "no arguments")?;
            Ok(Command::Shutdown)
        }
        other => Err(usage(format!("unknown argument {other:?}"))),
    }
}

/// `--list` with `--quiet`/`-q`, `--running`, `--verbose`/`-v` and `--all`.
fn parse_list(flags: &[String]) -> Result<Command, FakeError> {
    let (mut quiet, mut running, mut verbose) = (false, false, false);
    for flag in flags {
        match flag.as_str() {
            "--quiet" | "-q" => quiet = true,
            "--running" => running = true,
            "--verbose" | "-v" => verbose = true,
            "--all" => {}
            other => {
                return Err(FakeError::usage(
                    TOOL,
                    format!("unknown --list option {other:?}"),
                ));
            }
        }
    }
    Ok(Command::List {
        quiet,
        running,
        verbose,
    })
}

/// `--import DISTRO INSTALL_LOCATION FILE [--vhd | --version N]`.
fn parse_import(rest: &[String]) -> Result<Command, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, m);
    let (fields, options) = rest.split_at(rest.len().min(3));
    let [distro, location, source] = fields else {
        return Err(usage(format!(
            "--import takes DISTRO INSTALL_LOCATION FILE, got {rest:?}"
        )));
    };
    match options {
        [] | [_] if options.iter().all(|o| o == "--vhd") => {}
        [flag, _version] if flag == "--version" => {}
        _ => return Err(usage(format!("unknown --import options {options:?}"))),
    }
    Ok(Command::Import {
        distro: distro.clone(),
        location: PathBuf::from(location),
        source: PathBuf::from(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings;

    #[test]
    fn commands_parse_in_long_and_short_forms() {
        assert_eq!(
            parse(&strings(&["-l", "-q", "--running"])).unwrap(),
            Command::List {
                quiet: true,
                running: true,
                verbose: false
            }
        );
        assert_eq!(
            parse(&strings(&["-t", "lima-a"])).unwrap(),
            Command::Terminate("lima-a".into())
        );
        assert_eq!(
            parse(&strings(&[
                "--import",
                "lima-a",
                "/d",
                "/d/disk",
                "--version",
                "2"
            ]))
            .unwrap(),
            Command::Import {
                distro: "lima-a".into(),
                location: "/d".into(),
                source: "/d/disk".into()
            }
        );
        assert_eq!(
            parse(&strings(&["-d", "lima-a", "--", "uname"])).unwrap(),
            Command::Run("lima-a".into())
        );
    }

    #[test]
    fn bad_command_lines_name_what_is_wrong() {
        for (args, needle) in [
            (&["--frob"][..], "--frob"),
            (&["--terminate"][..], "--terminate"),
            (&["--import", "a", "b"][..], "--import"),
            (&["-l", "--nope"][..], "--nope"),
            (&[][..], "missing command"),
        ] {
            let err = parse(&strings(args)).unwrap_err();
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
