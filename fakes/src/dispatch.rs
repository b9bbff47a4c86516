//! What every personality does first and last: journal the call, claim and
//! apply the generic faults, dispatch to the personality, journal the exit.
//! The top of the fakes' module graph: it imports every tool, and no tool
//! imports it.

use crate::error::FakeError;
use crate::faults::Faults;
use crate::invocation::Invocation;
use crate::journal::{JournalWriter, Record};
use crate::plan::Tool;
use contract::exit;
use std::path::Path;

/// Runs the personality `program` names and returns the exit code.
pub(crate) fn run(program: &str, args: Vec<String>) -> i32 {
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
            eprintln!("{}", contract::error_chain::chain(&error));
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
