//! `limactl`: the two ways a reconciler starts a hostagent are faked:
//! `hostagent --pidfile P --socket S NAME`, and `start --foreground NAME`,
//! which prepares the instance and then becomes that hostagent (see
//! [`start`]). Other subcommands are refused by name.

mod start;

use crate::error::FakeError;
use crate::hostagent::HostagentArgs;
use crate::instance::check_instance_name;
use crate::invocation::Invocation;
use start::StartArgs;
use std::path::PathBuf;

const TOOL: &str = "limactl";

#[derive(Debug, PartialEq, Eq)]
enum Subcommand {
    Hostagent(HostagentArgs),
    Start(StartArgs),
}

pub(crate) fn run(invocation: &Invocation) -> Result<i32, FakeError> {
    match parse(&invocation.args)? {
        Subcommand::Hostagent(args) => {
            check_instance_name(&args.name)?;
            crate::hostagent::run(invocation, &args)
        }
        Subcommand::Start(args) => {
            check_instance_name(&args.name)?;
            start::run(invocation, &args)
        }
    }
}

fn parse(args: &[String]) -> Result<Subcommand, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, m);
    let mut rest = args.iter().skip_while(|a| is_global_flag(a));
    let tail = |rest: &mut dyn Iterator<Item = &String>| rest.cloned().collect::<Vec<_>>();
    match rest.next().map(String::as_str) {
        Some("hostagent") => Ok(Subcommand::Hostagent(parse_hostagent(&tail(&mut rest))?)),
        Some("start") => Ok(Subcommand::Start(start::parse(&tail(&mut rest))?)),
        Some(other) => Err(usage(format!(
            "subcommand {other:?} is unsupported in the fake (only hostagent and start --foreground)"
        ))),
        None => Err(usage(
            "missing subcommand (the fake supports hostagent and start --foreground)".into(),
        )),
    }
}

/// Lima's persistent flags that take no value and change nothing a fake
/// does: `--debug`, `--tty[=bool]`, `-y`/`--yes`.
fn is_global_flag(arg: &str) -> bool {
    matches!(
        arg,
        "--debug" | "--tty" | "--tty=true" | "--tty=false" | "-y" | "--yes"
    )
}

/// `hostagent --pidfile P --socket S [--debug] [--] NAME`; values may also
/// be joined with `=`, as cobra allows.
fn parse_hostagent(args: &[String]) -> Result<HostagentArgs, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, format!("hostagent: {m}"));
    let (mut pidfile, mut socket, mut name) = (None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            // What follows is the name, however it looks.
            let operands: Vec<&String> = rest.by_ref().collect();
            match (name.is_none(), operands.as_slice()) {
                (true, [instance]) => name = Some((*instance).clone()),
                _ => return Err(usage(format!("unexpected arguments {operands:?}"))),
            }
            break;
        }
        let (flag, joined) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            joined
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        match flag {
            "--pidfile" => pidfile = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--debug" => {}
            flag if flag.starts_with('-') => return Err(usage(format!("unknown flag {flag}"))),
            instance if name.is_none() => name = Some(instance.to_owned()),
            extra => return Err(usage(format!("unexpected argument {extra:?}"))),
        }
    }
    Ok(HostagentArgs {
        pidfile: pidfile.ok_or_else(|| usage("missing --pidfile".into()))?,
        socket: socket.ok_or_else(|| usage("missing --socket".into()))?,
        name: name.ok_or_else(|| usage("missing instance NAME".into()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings;

    #[test]
    fn the_reconciler_s_command_line_parses_in_both_flag_forms() {
        let expected = Subcommand::Hostagent(HostagentArgs {
            pidfile: "/i/ha.pid".into(),
            socket: "/i/ha.sock".into(),
            name: "vm1".into(),
        });
        let separate = strings(&[
            "hostagent",
            "--pidfile",
            "/i/ha.pid",
            "--socket",
            "/i/ha.sock",
            "--debug",
            "vm1",
        ]);
        assert_eq!(parse(&separate).unwrap(), expected);
        let joined = strings(&[
            "--debug",
            "hostagent",
            "--pidfile=/i/ha.pid",
            "--socket=/i/ha.sock",
            "vm1",
        ]);
        assert_eq!(parse(&joined).unwrap(), expected);
    }

    #[test]
    fn a_name_after_the_double_dash_may_look_like_an_option() {
        let parsed = parse(&strings(&[
            "hostagent",
            "--pidfile",
            "p",
            "--socket",
            "s",
            "--",
            "-vm",
        ]))
        .unwrap();
        let Subcommand::Hostagent(args) = parsed else {
            panic!("not a hostagent: {parsed:?}");
        };
        assert_eq!(args.name, "-vm");
    }

    #[test]
    fn missing_and_unknown_arguments_are_named() {
        for (args, needle) in [
            (&["hostagent", "--socket", "s", "vm1"][..], "--pidfile"),
            (&["hostagent", "--pidfile", "p", "vm1"][..], "--socket"),
            (
                &["hostagent", "--pidfile", "p", "--socket", "s"][..],
                "NAME",
            ),
            (
                &[
                    "hostagent",
                    "--pidfile",
                    "p",
                    "--socket",
                    "s",
                    "--tty",
                    "vm1",
                ][..],
                "--tty",
            ),
            (&["hostagent", "--pidfile"][..], "--pidfile needs a value"),
            (&["stop", "vm1"][..], "\"stop\""),
            (&[][..], "missing subcommand"),
        ] {
            let err = parse(&strings(args)).unwrap_err();
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
