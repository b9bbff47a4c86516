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
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

/// How long an `ssh` child gets to take its port.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one probe of a forwarded port may wait for its answer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long one `ssh` call to or starting the ControlMaster may take.
const MASTER_TIMEOUT: Duration = Duration::from_secs(15);
/// Where the forwarders log in, as Lima's hostagent does.
const GUEST: &str = "lima@127.0.0.1";
/// What starts the ControlMaster, as real Lima v2.2.0 does.
const MASTER_OPTIONS: [&str; 6] = [
    "-o",
    "ControlMaster=auto",
    "-o",
    "ControlPersist=yes",
    "-f",
    "-N",
];

/// How the forwarders log in to the guest, with what identifies them as
/// the instance's, as in Lima's `ssh` command lines.
#[derive(Debug, Clone)]
pub(crate) struct SshLogin {
    /// `-i`: the user's private key (`LIMA_HOME/_config/user`).
    pub(crate) private_key: PathBuf,
    /// `-o ControlPath=`: the instance's control socket.
    pub(crate) control_path: PathBuf,
    /// `-p`: the host port of the guest's sshd (`ssh.localPort`).
    pub(crate) port: u16,
}

impl SshLogin {
    /// `-o ControlPath=PATH`'s value.
    fn control_path_option(&self) -> String {
        format!("ControlPath={}", self.control_path.display())
    }

    /// `-i KEY -o ControlPath=PATH OPTIONS... -p PORT lima@127.0.0.1`.
    fn command_line(&self, options: &[&str]) -> Vec<String> {
        let head = [
            "-i".to_owned(),
            self.private_key.to_string_lossy().into_owned(),
            "-o".to_owned(),
            self.control_path_option(),
        ];
        let tail = ["-p".to_owned(), self.port.to_string(), GUEST.to_owned()];
        head.into_iter()
            .chain(options.iter().map(|o| (*o).to_owned()))
            .chain(tail)
            .collect()
    }

    /// `-O COMMAND -o ControlPath=PATH OPTIONS... lima@127.0.0.1`: a request
    /// to the ControlMaster.
    fn control_request(&self, command: &str, options: &[&str]) -> Vec<String> {
        ["-O", command, "-o", &self.control_path_option()]
            .iter()
            .chain(options)
            .chain(&[GUEST])
            .map(|a| (*a).to_owned())
            .collect()
    }
}

/// The `ssh` children and ControlMaster one hostagent started.
#[derive(Debug, Default)]
pub(crate) struct Forwards {
    children: Vec<Child>,
    /// The ControlMaster's login, once one was started.
    master: Option<SshLogin>,
}

impl Forwards {
    /// Starts every forward with a host port and waits until each holds its
    /// port or has failed: one `ssh -L` child each, or with
    /// `through_master` one ControlMaster asked for each. Returns the
    /// failures; a failed forward does not stop the hostagent (the guest is
    /// up, a port is not).
    pub(crate) fn start(
        &mut self,
        forwards: &[PortForward],
        login: &SshLogin,
        through_master: bool,
        journal: &JournalWriter,
    ) -> Vec<String> {
        if through_master {
            if let Err(e) = ssh_call(&login.command_line(&MASTER_OPTIONS), journal) {
                return vec![format!("starting the ssh ControlMaster: {e}")];
            }
            self.master = Some(login.clone());
        }
        let mut errors = Vec::new();
        for forward in forwards.iter().filter(|f| f.host_port != 0) {
            let spec = format!(
                "127.0.0.1:{}:localhost:{}",
                forward.host_port, forward.guest_port
            );
            let result = if through_master {
                ssh_call(&login.control_request("forward", &["-L", &spec]), journal)
            } else {
                self.start_one(login, forward.host_port, &spec, journal)
            };
            if let Err(e) = result {
                errors.push(forward_error(forward, &e));
            }
        }
        errors
    }

    /// One `ssh -L SPEC` child, waited for until it holds `port`.
    fn start_one(
        &mut self,
        login: &SshLogin,
        port: u16,
        spec: &str,
        journal: &JournalWriter,
    ) -> Result<(), String> {
        // Free before the child starts means: whoever answers later is it.
        let free_before = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        let args = login.command_line(&["-N", "-o", "ExitOnForwardFailure=yes", "-L", spec]);
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

    /// Stops every child outright, and the ControlMaster with `ssh -O exit`.
    pub(crate) fn stop(&mut self, journal: &JournalWriter) {
        self.children.iter_mut().for_each(kill_and_reap);
        self.children.clear();
        if let Some(master) = self.master.take()
            && let Err(e) = ssh_call(&master.control_request("exit", &[]), journal)
        {
            eprintln!("stopping the ssh ControlMaster: {e}");
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
