//! Port forwards: one `ssh -L` child per `portForwards` entry, as Lima's
//! hostagent runs them, with Lima's identifying options: the user key
//! (`-i LIMA_HOME/_config/user`) and the instance's control socket
//! (`-o ControlPath=INSTANCE_DIR/ssh.sock`). With fault `control_master`,
//! as real Lima v2.2.0: one daemonized ControlMaster on that path, `ssh -O
//! forward` per port, and `ssh -O exit` on stop.

use crate::journal::JournalWriter;
use crate::spawn::{kill_and_reap, run_bounded, spawn_tool, wait_while_alive};
use lima_layout::PortForward;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::time::Duration;

/// How long an `ssh` child gets to take its port.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long one `ssh` call to or starting the ControlMaster may take.
const MASTER_TIMEOUT: Duration = Duration::from_secs(15);

/// What identifies the forwarders as the instance's, as in Lima's `ssh`
/// command lines.
pub(crate) struct SshIdentity {
    pub(crate) private_key: std::path::PathBuf,
    pub(crate) control_path: std::path::PathBuf,
}

#[derive(Debug, Default)]
pub(crate) struct Forwards {
    children: Vec<Child>,
    /// The ControlMaster's socket, once one was started.
    master: Option<std::path::PathBuf>,
}

impl Forwards {
    /// Starts one child per forward with a host port and waits until each
    /// holds its port or has failed. Returns the failures; a failed forward
    /// does not stop the hostagent (the guest is up, a port is not).
    pub(crate) fn start(
        &mut self,
        forwards: &[PortForward],
        ssh_port: u16,
        identity: &SshIdentity,
        journal: &JournalWriter,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for forward in forwards.iter().filter(|f| f.host_port != 0) {
            if let Err(e) = self.start_one(forward, ssh_port, identity, journal) {
                errors.push(forward_error(forward, &e));
            }
        }
        errors
    }

    fn start_one(
        &mut self,
        forward: &PortForward,
        ssh_port: u16,
        identity: &SshIdentity,
        journal: &JournalWriter,
    ) -> Result<(), String> {
        let port = forward.host_port;
        // Free before the child starts means: whoever answers later is it.
        let free_before = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        let key = identity.private_key.to_string_lossy();
        let control_path = format!("ControlPath={}", identity.control_path.display());
        let args: Vec<String> = [
            "-i",
            &key,
            "-o",
            &control_path,
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            &format!("127.0.0.1:{port}:localhost:{}", forward.guest_port),
            "-p",
            &ssh_port.to_string(),
            "lima@127.0.0.1",
        ]
        .map(str::to_owned)
        .into();
        let mut child = spawn_tool("ssh", &args, journal)?;
        let result = wait_while_alive(&mut child, "ssh", READY_TIMEOUT, || {
            free_before && accepts_connections(port)
        });
        // A child still alive after a failed wait may hold the port later:
        // keep it so shutdown stops it.
        if !matches!(child.try_wait(), Ok(Some(_))) {
            self.children.push(child);
        }
        result
    }

    /// Starts the ControlMaster, then asks it for each forward with a host
    /// port. Returns the failures, as [`Forwards::start`] does.
    pub(crate) fn start_through_master(
        &mut self,
        forwards: &[PortForward],
        ssh_port: u16,
        identity: &SshIdentity,
        journal: &JournalWriter,
    ) -> Vec<String> {
        let control_path = format!("ControlPath={}", identity.control_path.display());
        let key = identity.private_key.to_string_lossy();
        let master: Vec<String> = [
            "-i",
            &key,
            "-o",
            "ControlMaster=auto",
            "-o",
            &control_path,
            "-o",
            "ControlPersist=yes",
            "-f",
            "-N",
            "-p",
            &ssh_port.to_string(),
            "lima@127.0.0.1",
        ]
        .map(str::to_owned)
        .into();
        if let Err(e) = ssh_call(&master, journal) {
            return vec![format!("starting the ssh ControlMaster: {e}")];
        }
        self.master = Some(identity.control_path.clone());
        let mut errors = Vec::new();
        for forward in forwards.iter().filter(|f| f.host_port != 0) {
            let spec = format!(
                "127.0.0.1:{}:localhost:{}",
                forward.host_port, forward.guest_port
            );
            let args: Vec<String> = [
                "-O",
                "forward",
                "-o",
                &control_path,
                "-L",
                &spec,
                "lima@127.0.0.1",
            ]
            .map(str::to_owned)
            .into();
            if let Err(e) = ssh_call(&args, journal) {
                errors.push(forward_error(forward, &e));
            }
        }
        errors
    }

    /// Stops every child outright, and the ControlMaster with `ssh -O exit`.
    pub(crate) fn stop(&mut self, journal: &JournalWriter) {
        self.children.iter_mut().for_each(kill_and_reap);
        self.children.clear();
        if let Some(path) = self.master.take() {
            let control_path = format!("ControlPath={}", path.display());
            let args: Vec<String> = ["-O", "exit", "-o", &control_path, "lima@127.0.0.1"]
                .map(str::to_owned)
                .into();
            if let Err(e) = ssh_call(&args, journal) {
                eprintln!("stopping the ssh ControlMaster: {e}");
            }
        }
    }
}

/// The hostagent's error for a forward that failed.
fn forward_error(forward: &PortForward, error: &str) -> String {
    format!(
        "forwarding 127.0.0.1:{} to guest port {}: {error}",
        forward.host_port, forward.guest_port
    )
}

/// One bounded `ssh` call that must exit 0; its stderr in the error.
fn ssh_call(args: &[String], journal: &JournalWriter) -> Result<(), String> {
    let output = run_bounded("ssh", args, MASTER_TIMEOUT, journal)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ssh {} exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        CONNECT_TIMEOUT,
    )
    .is_ok()
}
