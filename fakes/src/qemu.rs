//! `qemu-system-x86_64`, the VM driver: locks its disk images, holds its
//! `hostfwd` ports, writes its pid file, and runs until it is stopped.

use crate::error::{FakeError, os_error_text};
use crate::interrupts::Interrupts;
use crate::invocation::Invocation;
use crate::journal::Record;
use contract::exit;
use std::fs::{File, OpenOptions, TryLockError};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

const TOOL: &str = "qemu-system-x86_64";

/// QEMU options the fake accepts and skips, with a value and without.
const SKIPPED_WITH_VALUE: &[&str] = &[
    "-accel",
    "-append",
    "-audiodev",
    "-bios",
    "-boot",
    "-cdrom",
    "-chardev",
    "-cpu",
    "-d",
    "-device",
    "-display",
    "-fsdev",
    "-fw_cfg",
    "-global",
    "-initrd",
    "-k",
    "-kernel",
    "-L",
    "-m",
    "-M",
    "-machine",
    "-mon",
    "-monitor",
    "-net",
    "-numa",
    "-object",
    "-parallel",
    "-qmp",
    "-rtc",
    "-serial",
    "-smbios",
    "-smp",
    "-trace",
    "-uuid",
    "-vga",
    "-virtfs",
];
const SKIPPED_FLAGS: &[&str] = &[
    "-enable-kvm",
    "-no-reboot",
    "-no-shutdown",
    "-no-user-config",
    "-nodefaults",
    "-nographic",
    "-S",
    "-snapshot",
    "-usb",
];

#[derive(Debug, PartialEq, Eq)]
struct Drive {
    /// The `-drive` argument as given, for messages.
    spec: String,
    file: PathBuf,
}

#[derive(Debug, PartialEq, Eq)]
struct HostForward {
    /// The `-netdev` argument and the rule, for messages.
    netdev: String,
    rule: String,
    address: String,
    port: u16,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct QemuArgs {
    /// `-daemonize`: detach, and return once the daemon runs.
    daemonize: bool,
    name: Option<String>,
    pidfile: Option<PathBuf>,
    drives: Vec<Drive>,
    forwards: Vec<HostForward>,
}

pub(crate) fn run(invocation: &Invocation) -> Result<i32, FakeError> {
    let args = parse(&invocation.args)?;
    if args.daemonize {
        return daemonize(invocation, &args);
    }
    let interrupts = Interrupts::install()?;
    let journal = &invocation.journal;
    let mut locks: Vec<File> = Vec::new();
    for drive in &args.drives {
        locks.push(lock_disk(drive)?);
        journal.record(Record::DiskLocked {
            path: drive.file.clone(),
        });
    }
    let mut held: Vec<TcpListener> = Vec::new();
    for forward in &args.forwards {
        match crate::ports::bind(&forward.address, forward.port) {
            Ok(listener) => {
                journal.record(Record::PortBound { port: forward.port });
                held.push(listener);
            }
            Err(error) => {
                journal.record(Record::PortBindFailed {
                    port: forward.port,
                    error: os_error_text(&error),
                });
                return Err(FakeError::failed(format!(
                    "{TOOL}: -netdev {}: could not set up host forwarding rule '{}'",
                    forward.netdev, forward.rule
                )));
            }
        }
    }
    // The pid file comes last: once it exists, the disks and ports are held.
    if let Some(pidfile) = &args.pidfile {
        lima_layout::paths::write_pid_file(pidfile, std::process::id()).map_err(|e| {
            FakeError::failed(format!(
                "{TOOL}: cannot create PID file: Cannot open pid file: {}",
                os_error_text(&e)
            ))
        })?;
    }
    interrupts.wait_honoured(journal, invocation.faults.ignore_interrupt());
    if let Some(pidfile) = &args.pidfile {
        remove_own_pid_file(pidfile);
    }
    drop((held, locks));
    Ok(exit::OK)
}

/// How long `-daemonize` waits for the daemon to write its pid file.
const DAEMON_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `-daemonize`, as QEMU does it: the daemon runs detached (its parent, this
/// process, exits), so it no longer descends from whoever started QEMU and
/// only its pid file leads to it.
fn daemonize(invocation: &Invocation, args: &QemuArgs) -> Result<i32, FakeError> {
    let Some(pidfile) = &args.pidfile else {
        return Err(FakeError::usage(
            TOOL,
            "-daemonize needs -pidfile here".to_owned(),
        ));
    };
    let rest: Vec<String> = invocation
        .args
        .iter()
        .filter(|a| a.as_str() != "-daemonize" && a.as_str() != "--daemonize")
        .cloned()
        .collect();
    let mut daemon =
        crate::spawn::spawn_daemon(TOOL, &rest, &invocation.journal).map_err(FakeError::failed)?;
    let pid = daemon.id();
    let what = format!(
        "the {TOOL} daemon (pid {pid}) writing {}",
        pidfile.display()
    );
    crate::spawn::wait_while_alive(&mut daemon, &what, DAEMON_START_TIMEOUT, || {
        lima_layout::paths::read_pid_file(pidfile) == Some(pid)
    })
    .map_err(FakeError::failed)?;
    // Dropping the handle without waiting leaves the daemon to its new
    // parent once this process exits.
    drop(daemon);
    Ok(exit::OK)
}

/// An exclusive lock on a disk image (created when missing), refused the
/// way QEMU refuses an image that another process has open.
fn lock_disk(drive: &Drive) -> Result<File, FakeError> {
    let cannot_open = |e: &std::io::Error| {
        FakeError::failed(format!(
            "{TOOL}: -drive {}: Could not open '{}': {}",
            drive.spec,
            drive.file.display(),
            os_error_text(e)
        ))
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&drive.file)
        .map_err(|e| cannot_open(&e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(FakeError::failed(format!(
            "{TOOL}: -drive {}: Failed to get \"write\" lock\nIs another process using the image [{}]?",
            drive.spec,
            drive.file.display()
        ))),
        Err(TryLockError::Error(e)) => Err(cannot_open(&e)),
    }
}

/// A successor may already have written its own pid there.
fn remove_own_pid_file(pidfile: &Path) {
    if lima_layout::paths::read_pid_file(pidfile) == Some(std::process::id()) {
        let _ = std::fs::remove_file(pidfile);
    }
}

fn parse(args: &[String]) -> Result<QemuArgs, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, m);
    let mut parsed = QemuArgs::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') {
            // A bare argument is the first hard disk image, as in QEMU.
            parsed.drives.push(Drive {
                spec: arg.clone(),
                file: PathBuf::from(arg),
            });
            continue;
        }
        // QEMU accepts `--opt` for `-opt`.
        let option = arg
            .strip_prefix('-')
            .filter(|o| o.starts_with('-'))
            .unwrap_or(arg);
        if SKIPPED_FLAGS.contains(&option) {
            continue;
        }
        if option == "-daemonize" {
            parsed.daemonize = true;
            continue;
        }
        let known = matches!(
            option,
            "-name" | "-pidfile" | "-drive" | "-hda" | "-netdev" | "-nic"
        ) || SKIPPED_WITH_VALUE.contains(&option);
        if !known {
            return Err(usage(format!("{arg}: invalid option")));
        }
        let value = rest
            .next()
            .ok_or_else(|| usage(format!("{arg}: requires an argument")))?;
        match option {
            "-name" => parsed.name = Some(guest_name(value)),
            "-pidfile" => parsed.pidfile = Some(PathBuf::from(value)),
            "-drive" => parsed.drives.extend(drive_file(value).map(|file| Drive {
                spec: value.clone(),
                file,
            })),
            "-hda" => parsed.drives.push(Drive {
                spec: value.clone(),
                file: PathBuf::from(value),
            }),
            "-netdev" | "-nic" => {
                for rule in option_values(value, "hostfwd") {
                    parsed
                        .forwards
                        .push(host_forward(value, &rule).ok_or_else(|| {
                            usage(format!(
                                "-netdev {value}: invalid host forwarding rule '{rule}'"
                            ))
                        })?);
                }
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// `-name NAME` or `-name guest=NAME,...`.
fn guest_name(value: &str) -> String {
    let first = split_options(value).into_iter().next().unwrap_or_default();
    first.strip_prefix("guest=").unwrap_or(&first).to_owned()
}

fn drive_file(value: &str) -> Option<PathBuf> {
    option_values(value, "file").pop().map(PathBuf::from)
}

/// Every `key=value` of a QEMU option list with this key.
fn option_values(list: &str, key: &str) -> Vec<String> {
    split_options(list)
        .into_iter()
        .filter_map(|part| {
            part.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
        .collect()
}

/// Splits a QEMU option list on `,`; `,,` stands for a literal comma.
fn split_options(list: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                parts.last_mut().expect("never empty").push(',');
            }
            ',' => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    parts
}

/// `hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`; UDP rules
/// hold no TCP port and are skipped.
fn host_forward(netdev: &str, rule: &str) -> Option<HostForward> {
    let (host, _guest) = rule.split_once('-')?;
    let mut fields = host.splitn(3, ':');
    let protocol = fields.next()?;
    let address = fields.next()?;
    let port = fields.next()?.parse::<u16>().ok().filter(|p| *p != 0)?;
    if !matches!(protocol, "" | "tcp") {
        return None;
    }
    Some(HostForward {
        netdev: netdev.to_owned(),
        rule: rule.to_owned(),
        address: if address.is_empty() {
            "0.0.0.0"
        } else {
            address
        }
        .to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings;

    #[test]
    fn the_hostagent_s_command_line_parses() {
        let netdev = "user,id=net0,hostfwd=tcp:127.0.0.1:60022-:22";
        let args = parse(&strings(&[
            "-name",
            "guest=vm1,debug-threads=on",
            "-pidfile",
            "/i/qemu.pid",
            "-m",
            "4G",
            "-nographic",
            "-drive",
            "file=/i/a,,b/diffdisk,format=raw",
            "-netdev",
            netdev,
        ]))
        .unwrap();
        assert_eq!(args.name.as_deref(), Some("vm1"));
        assert_eq!(args.pidfile, Some(PathBuf::from("/i/qemu.pid")));
        assert_eq!(args.drives[0].file, PathBuf::from("/i/a,b/diffdisk"));
        assert_eq!(
            args.forwards,
            [HostForward {
                netdev: netdev.into(),
                rule: "tcp:127.0.0.1:60022-:22".into(),
                address: "127.0.0.1".into(),
                port: 60022
            }]
        );
    }

    #[test]
    fn unknown_options_and_bad_rules_are_named() {
        let err = parse(&strings(&["-frobnicate"])).unwrap_err();
        assert!(
            err.to_string().contains("-frobnicate: invalid option"),
            "{err}"
        );
        let err = parse(&strings(&["-netdev", "user,hostfwd=tcp:x-:22"])).unwrap_err();
        assert!(err.to_string().contains("tcp:x-:22"), "{err}");
        let err = parse(&strings(&["-pidfile"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
