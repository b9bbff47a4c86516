//! Fault-injecting fakes of the tools a Lima-backed reconciler calls, and the
//! schema of the fault plan and journal they share with the harness.
//!
//! One multicall executable plays every tool: the name it is run under
//! (`limactl`, `ssh`, `ssh-keygen`, `wsl.exe`, `qemu-system-x86_64`) picks the
//! personality. [`run_multicall`] is the whole program; any binary can
//! dispatch to it.

pub mod install;
pub mod journal;
pub mod plan;

mod error;
mod faults;
mod getopt;
mod hostagent;
mod interrupts;
mod invocation;
mod keygen;
mod limactl;
mod platform;
mod ports;
mod qemu;
mod spawn;
mod ssh;
mod timestamp;
mod wsl;

/// Environment variable naming the fake `wsl.exe`'s state file.
pub use wsl::STATE_ENV as WSL_STATE_ENV;
pub use wsl::decode_output as decode_wsl_output;

/// Runs the personality named by this process's `argv[0]` with its
/// arguments, and returns the exit code.
pub fn run_multicall() -> i32 {
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut args = Vec::new();
    for arg in argv {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                eprintln!(
                    "{program}: argument {arg:?} is not valid UTF-8 (the fakes accept UTF-8 only)"
                );
                return 2;
            }
        }
    }
    invocation::run(&program, args)
}
