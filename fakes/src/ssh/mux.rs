//! OpenSSH connection multiplexing (Unix only): a daemonized ControlMaster
//! that listens on its `ControlPath` socket and holds the host side of
//! every forward it is asked for, and the `-O check|forward|exit` client.
//!
//! Real Lima (v2.2.0) forwards through one master started as `ssh -o
//! ControlMaster=auto -o ControlPath=INSTANCE_DIR/ssh.sock -o
//! ControlPersist=yes -f ...`, which detaches (a session of its own; its
//! launcher exits, so its parent becomes pid 1 or a subreaper) and
//! retitles itself `ssh: INSTANCE_DIR/ssh.sock [mux]`; then `ssh -O
//! forward -L ...` per port and `ssh -O exit` on stop. The master here
//! does the same, with its own line protocol on the socket: one request
//! line (`check`, `exit`, `forward BIND PORT`) answered by `ok PID` or
//! `error TEXT`.

use super::forward::{LocalForward, bind_forward};
use crate::error::{FakeError, OPENSSH_FATAL};
use crate::invocation::Invocation;
use crate::journal::Record;
use crate::spawn::POLL;
use contract::exit;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set (to the JSON array of the original arguments) on the detached
/// master, whose `argv` is only its title.
pub(crate) const MASTER_ARGS_ENV: &str = "LIMAVM_FAKE_SSH_MASTER_ARGS";
/// How long the launcher (`-f`) waits for the master to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the master's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The title OpenSSH's master gives itself (`setproctitle("%s [mux]")`).
pub(crate) fn title(control_path: &Path) -> String {
    format!("ssh: {} [mux]", control_path.display())
}

/// `ssh -f` with a master: starts the detached master and returns once it
/// answers on `control_path`, as `ssh -f` returns once connected. With a
/// live master there already, it does nothing (ControlMaster=auto).
pub(crate) fn launch(invocation: &Invocation, control_path: &Path) -> Result<i32, FakeError> {
    if request(control_path, "check").is_ok() {
        return Ok(exit::OK);
    }
    let exe = std::env::current_exe()
        .map_err(|e| FakeError::failed(format!("cannot find this executable: {e}")))?;
    let args = serde_json::to_string(&invocation.args)
        .map_err(|e| FakeError::failed(format!("cannot encode the arguments: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.env(MASTER_ARGS_ENV, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = spawn_detached(cmd, &title(control_path))
        .map_err(|e| FakeError::failed(format!("cannot start the control master: {e}")))?;
    invocation.journal.record(Record::ChildStarted {
        pid: child.id(),
        tool: "ssh".to_owned(),
    });
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if request(control_path, "check").is_ok() {
            // Not waited for: the master outlives its launcher.
            return Ok(exit::OK);
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprint!(
                "control master exited ({status}) before listening on {}\r\n",
                control_path.display()
            );
            return Ok(OPENSSH_FATAL);
        }
        if Instant::now() >= deadline {
            eprint!(
                "control master (pid {}) not listening on {} within {READY_TIMEOUT:?}\r\n",
                child.id(),
                control_path.display()
            );
            return Ok(OPENSSH_FATAL);
        }
        std::thread::sleep(POLL);
    }
}

/// The detached master itself: binds `forwards`, listens on
/// `control_path` and serves requests until `exit` (or a signal).
pub(crate) fn serve(
    invocation: &Invocation,
    control_path: &Path,
    forwards: &[LocalForward],
) -> Result<i32, FakeError> {
    let journal = &invocation.journal;
    // OpenSSH refuses a path a live master answers on; a dead one's socket
    // file is replaced.
    let _ = std::fs::remove_file(control_path);
    let listener = UnixListener::bind(control_path)
        .map_err(|e| FakeError::failed(format!("ControlSocket {}: {e}", control_path.display())))?;
    journal.record(Record::Listening {
        path: control_path.to_owned(),
    });
    let mut held: Vec<TcpListener> = Vec::new();
    for forward in forwards {
        match bind_forward(forward, journal) {
            Some(listener) => held.push(listener),
            None => return Ok(OPENSSH_FATAL),
        }
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if answer(stream, &mut held, journal) == Flow::Exit {
            break;
        }
    }
    let _ = std::fs::remove_file(control_path);
    drop(held);
    Ok(exit::OK)
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

fn answer(
    stream: UnixStream,
    held: &mut Vec<TcpListener>,
    journal: &crate::journal::JournalWriter,
) -> Flow {
    let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return Flow::Continue;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let pid = std::process::id();
    let (reply, flow) = match words[..] {
        ["check"] => (format!("ok {pid}"), Flow::Continue),
        ["exit"] => (format!("ok {pid}"), Flow::Exit),
        ["forward", bind, port] => match port.parse::<u16>() {
            Ok(port) => {
                let forward = LocalForward {
                    bind_address: bind.to_owned(),
                    port,
                };
                match bind_forward(&forward, journal) {
                    Some(listener) => {
                        held.push(listener);
                        (format!("ok {pid}"), Flow::Continue)
                    }
                    None => (
                        format!("error Port forwarding failed for {bind}:{port}"),
                        Flow::Continue,
                    ),
                }
            }
            Err(_) => (format!("error bad port {port}"), Flow::Continue),
        },
        _ => ("error unknown request".to_owned(), Flow::Continue),
    };
    let _ = (&stream).write_all(format!("{reply}\n").as_bytes());
    flow
}

/// `ssh -O COMMAND -S PATH`: one request to the master; OpenSSH's messages
/// and exit codes.
pub(crate) fn client(command: &str, control_path: &Path, forwards: &[LocalForward]) -> i32 {
    let requests: Vec<String> = match command {
        "forward" => forwards
            .iter()
            .map(|f| format!("forward {} {}", f.bind_address, f.port))
            .collect(),
        other => vec![other.to_owned()],
    };
    for line in &requests {
        match request(control_path, line) {
            Ok(pid) => match command {
                "check" => eprint!("Master running (pid={pid})\r\n"),
                "exit" => eprint!("Exit request sent.\r\n"),
                _ => {}
            },
            Err(message) => {
                eprint!("{message}\r\n");
                return OPENSSH_FATAL;
            }
        }
    }
    0
}

/// Sends one request line; the master's pid on `ok`.
fn request(control_path: &Path, line: &str) -> Result<u32, String> {
    let stream = UnixStream::connect(control_path).map_err(|e| {
        format!(
            "Control socket connect({}): {}",
            control_path.display(),
            crate::error::os_error_text(&e)
        )
    })?;
    let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
    (&stream)
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("mux_client_request: write: {e}"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(|e| format!("mux_client_request: read from master failed: {e}"))?;
    match reply.trim_end().split_once(' ') {
        Some(("ok", pid)) => pid
            .parse()
            .map_err(|_| format!("mux_client_request: bad answer {reply:?}")),
        Some(("error", text)) => Err(format!("mux_client_request: {text}")),
        _ => Err(format!(
            "mux_client_request: read from master failed: {}",
            if reply.is_empty() {
                "Broken pipe"
            } else {
                reply.trim_end()
            }
        )),
    }
}

/// Starts `cmd` as a daemon does (`setsid`), with `arg0` as its whole
/// visible command line.
fn spawn_detached(mut cmd: Command, arg0: &str) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    cmd.arg0(arg0);
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}
