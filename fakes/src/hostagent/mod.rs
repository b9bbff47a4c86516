//! `limactl hostagent`: the process a reconciler starts per VM. It writes
//! its pid file, answers `/v1/info` on its socket, holds the additional
//! disks, runs the driver and the `ssh` forwards, prints Lima's JSON events,
//! and on the graceful interrupt stops all of that and removes its tmp
//! files. Killed outright, it does nothing: its children live on.

mod disks;
mod driver;
mod events;
mod forwards;

use crate::error::FakeError;
use crate::home::lima_home;
use crate::instance::{check_instance_name, check_socket_room, load_config};
use crate::interrupts::Interrupts;
use crate::invocation::Invocation;
use crate::journal::Record;
use contract::error_chain::chain;
use contract::exit;
use disks::DiskClaims;
use driver::Driver;
use forwards::{Forwards, SshLogin};
use lima_layout::info::{Info, bind, serve_info};
use lima_layout::paths::{read_pid_file, write_pid_file};
use lima_layout::{HostagentStatus, InstancePaths, LimaConfig, LimaHome};
use std::path::PathBuf;

/// How often the hostagent checks that its driver still runs.
const DRIVER_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// `hostagent --pidfile P --socket S NAME`: where the hostagent writes its
/// pid, where it listens (Lima's `ha.pid`, `ha.sock`), and the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostagentArgs {
    /// `--pidfile`: where the hostagent writes its pid (Lima's
    /// `<instance>/ha.pid`), refusing one that names a live process.
    pub pidfile: PathBuf,
    /// `--socket`: the Unix socket that answers `GET /v1/info` (Lima's
    /// `<instance>/ha.sock`).
    pub socket: PathBuf,
    /// The instance name, checked as Lima's `identifiers.Validate` does.
    pub name: String,
}

/// Runs the hostagent of `args.name` in this process, as a reconciler that
/// embeds Lima does when it re-executes itself as the hostagent: the
/// hostagent's code is the reconciler's own, so no fault of the plan
/// applies to it and it writes no journal; a name Lima refuses is refused
/// first, as `limactl hostagent` does; the driver (`qemu-system-x86_64`
/// or `wsl.exe`) and `ssh` are still looked up on `PATH`, and those fakes
/// read the plan and journal as always. Prints errors on stderr; returns
/// the exit code (0 after a graceful stop). Installs the interrupt handler,
/// so at most once per process.
pub fn run_embedded(args: &HostagentArgs) -> i32 {
    let invocation = Invocation {
        tool: crate::plan::Tool::Limactl,
        args: Vec::new(),
        journal: crate::journal::JournalWriter::disabled(),
        faults: crate::faults::Faults::default(),
    };
    let result = check_instance_name(&args.name).and_then(|()| run(&invocation, args));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{}", chain(&error));
            error.exit_code()
        }
    }
}

pub(crate) fn run(invocation: &Invocation, args: &HostagentArgs) -> Result<i32, FakeError> {
    let home = lima_home()?;
    let instance = home.instance(&args.name);
    let config = load_config(&instance)?;
    check_socket_room(&instance)?;
    let interrupts = Interrupts::install()?;
    let observed = proctree::ObservedAttributes::of_current_process();
    invocation.journal.record(Record::SpawnAttributes {
        own_process_group: observed.own_process_group,
        background_priority: observed.background_priority,
    });
    let mut agent = Agent {
        invocation,
        args,
        home,
        instance,
        config,
        wrote_pid_file: false,
        bound_socket: false,
        disks: DiskClaims::default(),
        driver: None,
        forwards: Forwards::default(),
    };
    let forward_errors = match agent.start() {
        Ok(errors) => errors,
        Err(message) => {
            agent.stop(false);
            return Err(FakeError::failed(message));
        }
    };
    for error in &forward_errors {
        eprintln!("{error}");
    }
    events::print(HostagentStatus {
        running: true,
        degraded: !forward_errors.is_empty(),
        errors: forward_errors,
        ssh_local_port: agent.config.ssh.local_port,
        ..HostagentStatus::default()
    });
    if let Some(status) = agent.await_stop(&interrupts) {
        // As Lima's hostagent: the driver's end is the hostagent's end.
        eprintln!("Driver stopped due to error: {status:?}");
        invocation.journal.record(Record::DriverStopped { status });
        agent.stop(false);
        events::print(HostagentStatus {
            exiting: true,
            ..HostagentStatus::default()
        });
        return Ok(exit::FAILURE);
    }
    agent.stop(invocation.faults.keep_children());
    events::print(HostagentStatus {
        exiting: true,
        ..HostagentStatus::default()
    });
    invocation.journal.record(Record::ShutdownComplete);
    Ok(exit::OK)
}

/// What one hostagent holds, so that every way out releases exactly that.
struct Agent<'a> {
    invocation: &'a Invocation,
    args: &'a HostagentArgs,
    home: LimaHome,
    instance: InstancePaths,
    config: LimaConfig,
    wrote_pid_file: bool,
    bound_socket: bool,
    disks: DiskClaims,
    driver: Option<Driver>,
    forwards: Forwards,
}

impl Agent<'_> {
    /// Brings everything up; returns the port forwards that failed.
    fn start(&mut self) -> Result<Vec<String>, String> {
        let journal = &self.invocation.journal;
        self.write_pid_file()?;
        journal.record(Record::PidFileWritten {
            path: self.args.pidfile.clone(),
        });
        self.listen()?;
        journal.record(Record::Listening {
            path: self.args.socket.clone(),
        });
        let disks: Vec<String> = self.config.disk_names().map(str::to_owned).collect();
        for disk in &disks {
            self.disks.claim(&self.home, &self.instance, disk)?;
        }
        self.driver = Some(Driver::start(&self.instance, &self.config, journal)?);
        // As Lima's hostagent once QEMU runs: the booting event, which
        // carries the SSH port only.
        events::print(HostagentStatus {
            ssh_local_port: self.config.ssh.local_port,
            ..HostagentStatus::default()
        });
        let login = SshLogin {
            private_key: self.home.user_private_key(),
            control_path: self.instance.dir.join("ssh.sock"),
            port: self.config.ssh.local_port,
        };
        let through_master = self.invocation.faults.control_master();
        Ok(self
            .forwards
            .start(&self.config.port_forwards, &login, through_master, journal))
    }

    /// Lima refuses to start over a pid file whose process is alive.
    fn write_pid_file(&mut self) -> Result<(), String> {
        let path = &self.args.pidfile;
        let me = std::process::id();
        if let Some(pid) = read_pid_file(path).filter(|pid| *pid != me && proctree::is_alive(*pid))
        {
            return Err(format!(
                "pidfile {} already exists and names a live process ({pid})",
                path.display()
            ));
        }
        write_pid_file(path, me)
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
        self.wrote_pid_file = true;
        Ok(())
    }

    fn listen(&mut self) -> Result<(), String> {
        let socket = &self.args.socket;
        // A socket file left by a dead hostagent would make bind fail; the
        // pid file check above showed no live one owns it.
        if socket.symlink_metadata().is_ok() {
            let _ = std::fs::remove_file(socket);
        }
        let listener =
            bind(socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        self.bound_socket = true;
        let info = Info {
            ssh_local_port: self.config.ssh.local_port,
        };
        std::thread::spawn(move || serve_info(listener, &info));
        Ok(())
    }

    /// Waits for an interrupt that ends the hostagent, applying the
    /// interrupt faults on the way; or for the driver to end on its own,
    /// returning how it ended.
    fn await_stop(&mut self, interrupts: &Interrupts) -> Option<String> {
        let invocation = self.invocation;
        let journal = &invocation.journal;
        let mut replaced = false;
        let watch_driver = !invocation.faults.ignore_driver_exit();
        loop {
            while !interrupts.next_within(journal, DRIVER_POLL) {
                if let Some(status) = self.driver.as_mut().and_then(Driver::exit_status)
                    && watch_driver
                {
                    return Some(status);
                }
            }
            // Lima's hostagent logs the same line (to its stderr log).
            eprintln!("Received SIGINT, shutting down the host agent");
            if invocation.faults.replace_driver() && !replaced {
                replaced = true;
                self.replace_driver();
            }
            if !invocation.faults.ignore_interrupt() {
                break;
            }
            journal.record(Record::InterruptIgnored);
        }
        if let Some(delay) = invocation.faults.slow_exit() {
            std::thread::sleep(delay);
        }
        None
    }

    fn replace_driver(&mut self) {
        let journal = &self.invocation.journal;
        let Some(driver) = &mut self.driver else {
            return;
        };
        match driver.replace(journal) {
            Ok((old, new)) => journal.record(Record::DriverReplaced { old, new }),
            Err(e) => eprintln!("replacing the driver failed: {e}"),
        }
    }

    /// Stops what was started and removes what was made, logging each step
    /// that fails and carrying on.
    fn stop(&mut self, keep_children: bool) {
        let journal = &self.invocation.journal;
        if !keep_children {
            self.forwards.stop(journal);
        }
        let mut errors = Vec::new();
        let mut tmp_files = Vec::new();
        if let Some(mut driver) = self.driver.take() {
            errors.extend(driver.stop(journal));
            tmp_files.extend(driver.pid_file().map(PathBuf::from));
        }
        errors.extend(self.disks.release());
        if self.bound_socket {
            tmp_files.push(self.args.socket.clone());
        }
        if self.wrote_pid_file {
            tmp_files.push(self.args.pidfile.clone());
        }
        for file in tmp_files {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    errors.push(format!("cannot remove {}: {e}", file.display()));
                }
                _ => {}
            }
        }
        for error in errors {
            eprintln!("shutdown: {error}");
        }
    }
}
