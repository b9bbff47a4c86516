//! Fault-injecting fakes of the tools a Lima-backed reconciler calls. The
//! fault plan they read and the journal they write are declared in
//! `contract`, which the harness reads them with.
//!
//! One multicall executable plays every tool: the name it is run under
//! (`limactl`, `ssh`, `ssh-keygen`, `wsl.exe`, `qemu-system-x86_64`) picks the
//! personality. [`run_multicall`] is the whole program; any binary can
//! dispatch to it. [`run_embedded_hostagent`] is the hostagent alone, for a
//! reconciler that embeds it.

pub use contract::install;
pub mod journal;
pub mod plan;

mod dispatch;
mod error;
mod faults;
mod getopt;
mod home;
mod hostagent;
mod instance;
mod interrupts;
mod invocation;
mod keygen;
mod limactl;
mod platform;
mod ports;
mod qemu;
mod spawn;
mod ssh;
#[cfg(test)]
mod test_support;
mod timestamp;
mod wsl;

/// The fake hostagent as a library: what a reconciler that embeds Lima
/// runs when it re-executes itself as `<self> hostagent ... NAME`.
pub use hostagent::{HostagentArgs, run_embedded as run_embedded_hostagent};
pub use wsl::decode_output as decode_wsl_output;

/// True when this process is one of the fakes: `argv[0]` names a tool, or
/// it is a detached `ssh` ControlMaster (whose `argv[0]` is its title).
/// Another binary that embeds the fakes checks this before its own work.
pub fn is_fake_process() -> bool {
    let argv0 = std::env::args().next().unwrap_or_default();
    #[cfg(unix)]
    if master_args().is_some() {
        return true;
    }
    plan::Tool::from_executable(&argv0).is_some()
}

/// Runs the personality named by this process's `argv[0]` with its
/// arguments, and returns the exit code.
pub fn run_multicall() -> i32 {
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    #[cfg(unix)]
    if let Some(args) = master_args() {
        // A detached ssh ControlMaster: argv is only its title.
        return dispatch::run("ssh", args);
    }
    let mut args = Vec::new();
    for arg in argv {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                eprintln!(
                    "{program}: argument {arg:?} is not valid UTF-8 (the fakes accept UTF-8 only)"
                );
                return contract::exit::USAGE;
            }
        }
    }
    dispatch::run(&program, args)
}

/// The arguments of a detached `ssh` ControlMaster, passed in
/// [`ssh::mux::MASTER_ARGS_ENV`] because its `argv` is its title only.
#[cfg(unix)]
fn master_args() -> Option<Vec<String>> {
    let json = std::env::var(ssh::mux::MASTER_ARGS_ENV).ok()?;
    serde_json::from_str(&json).ok()
}
