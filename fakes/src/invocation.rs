//! What every personality does first and last: journal the call, claim and
//! apply the generic faults, dispatch, journal the exit.

use crate::error::FakeError;
use crate::faults::Faults;
use crate::journal::{JournalWriter, Record};
use crate::plan::Tool;
use contract::exit;
use std::path::{Path, PathBuf};

/// One run of one personality.
pub struct Invocation {
    pub tool: Tool,
    pub args: Vec<String>,
    pub journal: JournalWriter,
    pub faults: Faults,
}

/// Runs the personality `program` names and returns the exit code.
pub fn run(program: &str, args: Vec<String>) -> i32 {
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.to_owned());
    let Some(tool) = Tool::from_executable(program) else {
        let journal = JournalWriter::from_env(&name);
        journal.record(Record::Invoked {
            args: args.to_vec(),
        });
        eprintln!(
            "limavm-fake: unknown personality {name:?}: run this binary under one of the names {}",
            known_names()
        );
        journal.record(Record::Exit { code: exit::USAGE });
        return exit::USAGE;
    };
    let journal = JournalWriter::from_env(tool.as_str());
    journal.record(Record::Invoked {
        args: args.to_vec(),
    });
    let code = match start(tool, args, journal.clone()).and_then(dispatch) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    };
    journal.record(Record::Exit { code });
    code
}

fn known_names() -> String {
    Tool::ALL
        .iter()
        .flat_map(|t| t.executable_names().iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

fn start(tool: Tool, args: Vec<String>, journal: JournalWriter) -> Result<Invocation, FakeError> {
    let faults = Faults::claim(tool, &args)?;
    for fault in faults.iter() {
        journal.record(Record::Fault {
            kind: fault.kind().to_owned(),
        });
    }
    Ok(Invocation {
        tool,
        args,
        journal,
        faults,
    })
}

fn dispatch(invocation: Invocation) -> Result<i32, FakeError> {
    if let Some(code) = invocation.faults.apply_generic() {
        return Ok(code);
    }
    match invocation.tool {
        Tool::Limactl => crate::limactl::run(&invocation),
        Tool::Ssh => crate::ssh::run(&invocation),
        Tool::SshKeygen => crate::keygen::run(&invocation),
        Tool::Wsl => crate::wsl::run(&invocation),
        Tool::Qemu => crate::qemu::run(&invocation),
    }
}

/// The user's home directory: `HOME`, or on Windows `USERPROFILE`.
pub fn home_dir() -> Result<PathBuf, FakeError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| {
            if cfg!(windows) {
                std::env::var_os("USERPROFILE")
            } else {
                None
            }
        })
        .map(PathBuf::from)
        .ok_or_else(|| FakeError::failed("HOME is not set, so there is no default to derive"))
}

/// `LIMA_HOME`, by default `$HOME/.lima`.
pub fn lima_home() -> Result<lima_layout::LimaHome, FakeError> {
    match std::env::var_os("LIMA_HOME").filter(|h| !h.is_empty()) {
        Some(path) => Ok(lima_layout::LimaHome::new(path)),
        None => Ok(lima_layout::LimaHome::new(home_dir()?.join(".lima"))),
    }
}
