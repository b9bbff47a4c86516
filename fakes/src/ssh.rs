//! `ssh`: holds the host side of every `-L` forward until it is stopped.
//! Nothing is forwarded anywhere; what matters to a reconciler is that the
//! ports are taken while ssh lives and free once it is gone. Like OpenSSH,
//! it refuses an identity file (`-i`) that others may read, and since the
//! guest accepts only that key, the connection then fails.
//!
//! With a ControlMaster (`-M` or `-o ControlMaster=yes|auto`, a
//! `ControlPath`/`-S`, and `-f` or `-o ControlPersist=yes`) it daemonizes
//! as OpenSSH does and holds the forwards there; `-O check|forward|exit`
//! talks to that master (see [`mux`]; Unix only).

use crate::error::{FakeError, OPENSSH_FATAL};
use crate::getopt::getopt;
use crate::interrupts::Interrupts;
use crate::invocation::Invocation;
use crate::journal::Record;
use contract::exit;
use forward::{LocalForward, bind_forward, parse_forward};
use std::net::TcpListener;
use std::path::PathBuf;

mod forward;
#[cfg(unix)]
pub(crate) mod mux;

const TOOL: &str = "ssh";
/// OpenSSH 9.2's option letters; `:` marks those that take a value.
const OPTIONS: &str = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy";

#[derive(Debug, PartialEq, Eq)]
struct SshArgs {
    forwards: Vec<LocalForward>,
    exit_on_forward_failure: bool,
    identities: Vec<std::path::PathBuf>,
    destination: String,
    control: Control,
}

/// The multiplexing options: `-M`, `-S`, `-f`, `-O` and their `-o` forms.
#[derive(Debug, Default, PartialEq, Eq)]
struct Control {
    /// `-M` or `ControlMaster=yes|auto|ask|autoask`.
    master: bool,
    /// `-S PATH` or `ControlPath=PATH` (`none` clears it).
    path: Option<PathBuf>,
    /// `ControlPersist=yes` or a time.
    persist: bool,
    /// `-f`: go to the background.
    background: bool,
    /// `-O COMMAND`.
    command: Option<String>,
}

impl Control {
    /// The path a detached master listens on, when these options ask for one.
    fn detached_master(&self) -> Option<&std::path::Path> {
        (self.master && (self.persist || self.background))
            .then_some(self.path.as_deref())
            .flatten()
    }
}

/// The `-O` commands OpenSSH knows.
const CONTROL_COMMANDS: [&str; 6] = ["check", "forward", "cancel", "exit", "stop", "proxy"];

pub(crate) fn run(invocation: &Invocation) -> Result<i32, FakeError> {
    let args = parse(&invocation.args)?;
    let journal = &invocation.journal;
    if let Some(command) = &args.control.command {
        let Some(path) = &args.control.path else {
            eprint!("No ControlPath specified for \"-O\" command\r\n");
            return Ok(OPENSSH_FATAL);
        };
        return control_client(command, path, &args.forwards);
    }
    if let Some(code) = refuse_unprotected_keys(&args, journal) {
        return Ok(code);
    }
    if let Some(path) = args.control.detached_master() {
        return detached_master(invocation, path, &args.forwards);
    }
    let interrupts = Interrupts::install()?;
    let mut held: Vec<TcpListener> = Vec::new();
    for forward in &args.forwards {
        match bind_forward(forward, journal) {
            Some(listener) => held.push(listener),
            // Without ExitOnForwardFailure the real ssh carries on.
            None if args.exit_on_forward_failure => return Ok(OPENSSH_FATAL),
            None => {}
        }
    }
    interrupts.wait_honoured(journal, invocation.faults.ignore_interrupt());
    drop(held);
    Ok(exit::OK)
}

#[cfg(unix)]
fn control_client(
    command: &str,
    path: &std::path::Path,
    forwards: &[LocalForward],
) -> Result<i32, FakeError> {
    Ok(mux::client(command, path, forwards))
}

/// The launcher (`-f`) starts the master; the master (started with
/// [`mux::MASTER_ARGS_ENV`] set) serves.
#[cfg(unix)]
fn detached_master(
    invocation: &Invocation,
    path: &std::path::Path,
    forwards: &[LocalForward],
) -> Result<i32, FakeError> {
    if std::env::var_os(mux::MASTER_ARGS_ENV).is_some() {
        mux::serve(invocation, path, forwards)
    } else {
        mux::launch(invocation, path)
    }
}

#[cfg(not(unix))]
fn control_client(
    _command: &str,
    _path: &std::path::Path,
    _forwards: &[LocalForward],
) -> Result<i32, FakeError> {
    Err(multiplexing_unsupported())
}

#[cfg(not(unix))]
fn detached_master(
    _invocation: &Invocation,
    _path: &std::path::Path,
    _forwards: &[LocalForward],
) -> Result<i32, FakeError> {
    Err(multiplexing_unsupported())
}

#[cfg(not(unix))]
fn multiplexing_unsupported() -> FakeError {
    FakeError::failed(
        "ControlMaster/ControlPath multiplexing is not supported by this fake on Windows",
    )
}

/// OpenSSH ignores a private key others may access ("UNPROTECTED PRIVATE
/// KEY FILE!"); when every `-i` key was ignored, authentication fails.
fn refuse_unprotected_keys(args: &SshArgs, journal: &crate::journal::JournalWriter) -> Option<i32> {
    let mut refused = 0;
    for path in &args.identities {
        if let Some(mode) = crate::platform::too_open_key_mode(path) {
            crate::keygen::warn_unprotected(path, mode);
            journal.record(Record::KeyRefused {
                path: path.to_owned(),
                mode: format!("0{mode:o}"),
            });
            refused += 1;
        }
    }
    (refused > 0 && refused == args.identities.len()).then(|| {
        eprint!("{}: Permission denied (publickey).\r\n", args.destination);
        OPENSSH_FATAL
    })
}

fn parse(args: &[String]) -> Result<SshArgs, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, m);
    let parsed = getopt(args, OPTIONS).map_err(|e| usage(e.to_string()))?;
    if parsed.operands.is_empty() {
        return Err(usage("missing destination (user@host)".into()));
    }
    let mut forwards = Vec::new();
    let mut exit_on_forward_failure = false;
    let mut identities = Vec::new();
    let mut control = Control::default();
    for (letter, value) in &parsed.options {
        let value = value.as_deref().unwrap_or_default();
        match letter {
            'L' => {
                forwards.push(parse_forward(value).ok_or_else(|| {
                    usage(format!("Bad local forwarding specification '{value}'"))
                })?)
            }
            'o' => {
                if let Some(answer) = option_value(value, "ExitOnForwardFailure") {
                    exit_on_forward_failure = answer.eq_ignore_ascii_case("yes");
                }
                if let Some(answer) = option_value(value, "ControlMaster") {
                    control.master = !answer.eq_ignore_ascii_case("no");
                }
                if let Some(answer) = option_value(value, "ControlPath") {
                    control.path = (!answer.eq_ignore_ascii_case("none")).then(|| answer.into());
                }
                if let Some(answer) = option_value(value, "ControlPersist") {
                    control.persist = !answer.eq_ignore_ascii_case("no");
                }
            }
            'M' => control.master = true,
            'S' => control.path = (!value.eq_ignore_ascii_case("none")).then(|| value.into()),
            'f' => control.background = true,
            'O' => {
                if !CONTROL_COMMANDS.contains(&value) {
                    return Err(usage(format!("Invalid multiplex command '{value}'")));
                }
                control.command = Some(value.to_owned());
            }
            'i' => identities.push(std::path::PathBuf::from(value)),
            'p' => {
                value
                    .parse::<u16>()
                    .map_err(|_| usage(format!("Bad port '{value}'")))?;
            }
            _ => {}
        }
    }
    Ok(SshArgs {
        forwards,
        exit_on_forward_failure,
        identities,
        destination: parsed.operands[0].clone(),
        control,
    })
}

/// The value of `-o Key=value` or `-o "Key value"` when `Key` is `key`
/// (ssh option names are case-insensitive).
fn option_value<'a>(option: &'a str, key: &str) -> Option<&'a str> {
    let split = option.find(['=', ' ', '\t'])?;
    let (name, value) = option.split_at(split);
    name.eq_ignore_ascii_case(key)
        .then(|| value[1..].trim_start_matches(['=', ' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings;

    #[test]
    fn lima_s_command_line_parses_with_joined_and_separate_values() {
        let args = parse(&strings(&[
            "-F",
            "/dev/null",
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            "127.0.0.1:8080:localhost:80",
            "-L9090:localhost:90",
            "-p",
            "60022",
            "-i",
            "/k",
            "lima@127.0.0.1",
        ]))
        .unwrap();
        assert!(args.exit_on_forward_failure);
        assert_eq!(
            args.forwards,
            [
                LocalForward::new("127.0.0.1", 8080),
                LocalForward::new("127.0.0.1", 9090)
            ]
        );
    }

    #[test]
    fn lima_s_control_master_and_client_command_lines_parse() {
        let master = parse(&strings(&[
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPath=/l/vm/ssh.sock",
            "-o",
            "ControlPersist=yes",
            "-f",
            "-N",
            "lima@127.0.0.1",
        ]))
        .unwrap();
        assert_eq!(
            master.control.detached_master(),
            Some(std::path::Path::new("/l/vm/ssh.sock"))
        );
        let client = parse(&strings(&[
            "-O",
            "exit",
            "-S",
            "/l/vm/ssh.sock",
            "lima@127.0.0.1",
        ]))
        .unwrap();
        assert_eq!(client.control.command.as_deref(), Some("exit"));
        assert_eq!(client.control.detached_master(), None);
        let err = parse(&strings(&["-O", "explode", "h"])).unwrap_err();
        assert!(err.to_string().contains("'explode'"), "{err}");
    }

    #[test]
    fn option_names_are_case_insensitive_and_take_both_separators() {
        assert_eq!(
            option_value("exitonforwardfailure yes", "ExitOnForwardFailure"),
            Some("yes")
        );
        assert_eq!(
            option_value("ExitOnForwardFailure=no", "ExitOnForwardFailure"),
            Some("no")
        );
        assert_eq!(option_value("Port=1", "ExitOnForwardFailure"), None);
    }

    #[test]
    fn a_missing_destination_or_bad_forward_is_a_usage_error() {
        assert_eq!(parse(&strings(&["-N"])).unwrap_err().exit_code(), 2);
        let err = parse(&strings(&["-L", "nope", "h"])).unwrap_err();
        assert!(err.to_string().contains("'nope'"), "{err}");
        let err = parse(&strings(&["-Z", "h"])).unwrap_err();
        assert!(err.to_string().contains("-- Z"), "{err}");
    }
}
