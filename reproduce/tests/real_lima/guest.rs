//! What only the real guest (`scripts/build-real-guest`) makes observable,
//! against the fake hostagent that imitates it: the events in
//! `ha.stdout.log`, the `ssh` command lines of the forwards, the process
//! tree of the port holder; and which process holds a forwarded port at
//! each step of a forced stop that kills only what the pid files name (the
//! `orphaned-port-holders` regression).
//!
//! Known differences, recorded so that a change on either side shows:
//! - the real hostagent passes every `ssh` option as `-o Key="value"`
//!   (`-F /dev/null`, `IdentityFile`, `User`, `ControlMaster=auto`,
//!   `ControlPersist=yes` on every call) and forwards to `127.0.0.1:GUEST`;
//!   the fake's `-O forward` call names only the control path, and forwards
//!   to `localhost:GUEST`. What a forward is (verb, control socket, bind
//!   address, guest port) is the same.
//! - the real hostagent starts its ControlMaster with its first requirement
//!   check (`ssh ... -o ControlPersist=yes -- /bin/bash -c ...`); the fake
//!   starts it with `ssh -f -N`. Either way the master detaches and is
//!   titled `ssh: INSTANCE_DIR/ssh.sock [mux]`.

use crate::support::{EXIT, binaries, built_guest, instance, log_tail, start_foreground};
use contract::journal::event;
use contract::plan::Fault;
use harness::{FaultPlanBuilder, Sandbox, Template, Toolset, eventually};
use lima_layout::InstancePaths;
use lima_layout::paths::read_pid_file;
use scenarios::steps::GUEST_BOOT;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The guest port every test here forwards (the guest serves it).
const GUEST_PORT: u16 = harness::template::GUEST_SERVED_PORTS.start;

/// A real-Lima sandbox and the real guest's template with a picked SSH
/// port and [`GUEST_PORT`] forwarded to a picked host port (returned), or
/// `None` when the test skips (see [`built_guest`]).
fn forwarding_real_guest() -> Option<(Sandbox, Template, u16)> {
    let guest = built_guest()?;
    let sandbox = Sandbox::with_toolset(&binaries(), Toolset::real_lima()).unwrap();
    let port = harness::ports::pick_free_port();
    let template = Template::real_guest(&guest)
        .ssh_port(harness::ports::pick_free_port())
        .forward(GUEST_PORT, port);
    Some((sandbox, template, port))
}

/// The events the hostagent printed so far (`ha.stdout.log`, one JSON
/// object a line), each as its `status` object.
fn statuses(vm: &InstancePaths) -> Vec<Value> {
    std::fs::read_to_string(vm.ha_stdout_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| e["status"].clone())
        .collect()
}

/// Each event's kind: `booting` (the SSH port only), `running`,
/// `degraded`, `exiting`.
fn kinds(statuses: &[Value]) -> Vec<&'static str> {
    statuses
        .iter()
        .map(|s| match () {
            _ if s["exiting"] == true => "exiting",
            _ if s["degraded"] == true => "degraded",
            _ if s["running"] == true => "running",
            _ => "booting",
        })
        .collect()
}

/// Starts `vm` as the reconciler's `start-foreground` entry does and
/// waits for the running event; returns the hostagent's pid.
fn start_until_running(sandbox: &Sandbox, vm: &InstancePaths, bound: Duration) -> u32 {
    let hostagent = start_foreground(sandbox, vm);
    eventually(bound, "the hostagent's running event", || {
        if let Some(code) = sandbox.try_reap(hostagent) {
            return Err(format!("the hostagent exited ({code:?})"));
        }
        let events = statuses(vm);
        if events.iter().any(|s| s["running"] == true) {
            Ok(())
        } else {
            Err(format!("events so far: {events:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&vm.ha_stderr_log())));
    hostagent
}

/// A forward an `ssh` command line asks a ControlMaster for, with the
/// instance's paths and the picked host port written the same way for
/// both hostagents: `(verb, control socket, bind, guest port)`.
type ForwardRequest = (String, String, String, u16);

/// The TCP forward `args` ask for (`-O VERB`, `-o ControlPath=...`,
/// `-L BIND:PORT:HOST:GUEST`), or `None` for any other `ssh` call.
fn forward_request(args: &[String], vm: &InstancePaths, host_port: u16) -> Option<ForwardRequest> {
    let (mut verb, mut control_path, mut spec) = (None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-O" => verb = args.next().cloned(),
            "-L" => spec = args.next().cloned(),
            "-o" => {
                if let Some(path) = args.next().and_then(|o| o.strip_prefix("ControlPath=")) {
                    control_path = Some(path.trim_matches('"').to_owned());
                }
            }
            _ => {}
        }
    }
    let spec = spec?;
    let [address, port, _host, guest] = spec.split(':').collect::<Vec<_>>()[..] else {
        return None; // a Unix socket forward (the guest agent's)
    };
    let port = if port == host_port.to_string() {
        "HOST_PORT"
    } else {
        port
    };
    let control_path = control_path?;
    let control = Path::new(&control_path)
        .strip_prefix(&vm.dir)
        .map(|p| format!("INSTANCE_DIR/{}", p.display()))
        .unwrap_or(control_path);
    Some((
        verb?,
        control,
        format!("{address}:{port}"),
        guest.parse().ok()?,
    ))
}

/// Splits a command line as Go's `exec.Cmd.String()` prints it: words
/// between spaces, where a double-quoted part (Lima quotes `-o` values,
/// which may contain spaces) belongs to its word, quotes kept.
fn split_logged(command: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut quoted = false;
    for c in command.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                words.last_mut().unwrap().push(c);
            }
            ' ' if !quoted => words.push(String::new()),
            _ => words.last_mut().unwrap().push(c),
        }
    }
    words.retain(|w| !w.is_empty());
    words
}

/// The `ssh` command lines the real hostagent ran, from its debug log
/// (``Running `/usr/bin/ssh ...` ``), without the program.
fn logged_ssh_commands(vm: &InstancePaths) -> Vec<Vec<String>> {
    std::fs::read_to_string(vm.ha_stderr_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| {
            let msg = l["msg"].as_str()?;
            let command = msg.strip_prefix("Running `")?.strip_suffix('`')?;
            // The program's path may contain spaces (the sandbox's bin
            // directory): it ends where the options begin.
            let words = split_logged(command);
            let program = words.iter().position(|w| w.starts_with('-'))?;
            let path = words[..program].join(" ");
            (Path::new(&path).file_name()? == "ssh").then(|| words[program..].to_vec())
        })
        .collect()
}

/// The `ssh` command lines the fakes journaled.
fn journaled_ssh_commands(sandbox: &Sandbox) -> Vec<Vec<String>> {
    sandbox
        .journal()
        .events(Some("ssh"), event::INVOKED)
        .iter()
        .map(|e| e.args().to_vec())
        .collect()
}

/// What the forwarded port looks like from outside while the VM runs.
#[derive(Debug, PartialEq, Eq)]
struct Holding {
    /// The holders' titles, `INSTANCE_DIR` for the instance directory.
    titles: Vec<String>,
    /// Whether each holder descends from the hostagent.
    in_hostagent_tree: Vec<bool>,
    /// Whether each holder has a process group other than the hostagent's.
    own_process_group: Vec<bool>,
}

fn holding(vm: &InstancePaths, host_port: u16, hostagent: u32) -> (Holding, Vec<u32>) {
    let holders = harness::ports::listeners(host_port);
    let tree = proctree::ProcessTable::snapshot().descendants(hostagent);
    let dir = vm.dir.to_string_lossy().into_owned();
    let holding = Holding {
        titles: holders
            .iter()
            .map(|(_, title)| title.replace(&dir, "INSTANCE_DIR"))
            .collect(),
        in_hostagent_tree: holders.iter().map(|(pid, _)| tree.contains(pid)).collect(),
        own_process_group: holders
            .iter()
            .map(|(pid, _)| {
                proctree::ObservedAttributes::of_process(*pid, hostagent)
                    .is_some_and(|a| a.own_process_group)
            })
            .collect(),
    };
    (holding, holders.into_iter().map(|(pid, _)| pid).collect())
}

/// What one hostagent showed from its start to its graceful end.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    /// The kinds of its events, in order.
    events: Vec<&'static str>,
    /// The forwards its `ssh` calls asked for.
    forwards: Vec<ForwardRequest>,
    holding: Holding,
    code: Option<i32>,
    port_free_after: bool,
}

/// Runs `template` as `vm` in `sandbox` until the running event, looks,
/// stops it gracefully, looks again. `ssh_commands` reads the `ssh`
/// command lines back.
fn observe(
    sandbox: &Sandbox,
    template: &Template,
    host_port: u16,
    boot: Duration,
    ssh_commands: impl Fn(&Sandbox, &InstancePaths) -> Vec<Vec<String>>,
) -> Observed {
    let vm = instance(sandbox, "vm", template);
    let hostagent = start_until_running(sandbox, &vm, boot);
    let (holding, _) = holding(&vm, host_port, hostagent);
    // QEMU takes the power button through its QMP socket, open by now.
    proctree::interrupt_group(hostagent).unwrap();
    let code = sandbox.wait_child(hostagent, GUEST_BOOT).unwrap();
    let port_free_after = eventually(EXIT, "the forwarded port to be free", || {
        harness::ports::is_free(host_port)
            .then_some(())
            .ok_or_else(|| format!("held by {:?}", harness::ports::listeners(host_port)))
    })
    .is_ok();
    Observed {
        events: kinds(&statuses(&vm)),
        forwards: ssh_commands(sandbox, &vm)
            .iter()
            .filter_map(|args| forward_request(args, &vm, host_port))
            .collect(),
        holding,
        code,
        port_free_after,
    }
}

/// The real guest's hostagent and the fake one (fault `control_master`,
/// as real Lima v2.2.0 forwards) print the same events, ask for the same
/// forward, and leave it to a detached ControlMaster outside the
/// hostagent's tree and process group, which a graceful stop ends.
#[test]
fn a_real_guest_s_events_ssh_forwards_and_port_holder_match_the_fake_hostagent_s() {
    let Some((real, template, port)) = forwarding_real_guest() else {
        return;
    };
    let real_seen = observe(&real, &template, port, GUEST_BOOT, |_, vm| {
        logged_ssh_commands(vm)
    });

    let fake = Sandbox::new(&binaries()).unwrap();
    fake.set_faults(&FaultPlanBuilder::new().hostagent(Fault::ControlMaster))
        .unwrap();
    let port = harness::ports::pick_free_port();
    let template = Template::new(lima_layout::VmType::Qemu)
        .ssh_port(harness::ports::pick_free_port())
        .forward(GUEST_PORT, port);
    let fake_seen = observe(&fake, &template, port, EXIT, |sandbox, _| {
        journaled_ssh_commands(sandbox)
    });

    let expected = Observed {
        events: vec!["booting", "running", "exiting"],
        forwards: vec![(
            "forward".to_owned(),
            "INSTANCE_DIR/ssh.sock".to_owned(),
            "127.0.0.1:HOST_PORT".to_owned(),
            GUEST_PORT,
        )],
        holding: Holding {
            titles: vec!["ssh: INSTANCE_DIR/ssh.sock [mux]".to_owned()],
            in_hostagent_tree: vec![false],
            own_process_group: vec![true],
        },
        code: Some(0),
        port_free_after: true,
    };
    assert_eq!(
        real_seen, expected,
        "the real hostagent with the real guest"
    );
    assert_eq!(
        fake_seen, real_seen,
        "the fake hostagent against the real one"
    );
    for sandbox in [&real, &fake] {
        let live = sandbox.live_processes();
        assert!(live.is_empty(), "left running: {live:?}");
    }
}

/// The forwarded port's holders, for the trace.
fn holders_now(port: u16) -> String {
    let holders = harness::ports::listeners(port);
    if holders.is_empty() {
        "free".to_owned()
    } else {
        format!("{holders:?}")
    }
}

/// Why `orphaned-port-holders` cannot be reproduced on real Lima: a forced
/// stop that kills only the processes the pid files name, and not their
/// descendants (what the regression does: `proctree::kill` of `ha.pid`,
/// then of `qemu.pid`), still frees the forwarded port, because its only
/// holder, the ssh ControlMaster, exits by itself as soon as QEMU's end
/// closes its connection. The test prints the trace: who holds the port at
/// each step.
#[test]
fn a_forced_stop_of_the_pid_files_processes_alone_frees_a_real_guest_s_forwarded_port() {
    let Some((sandbox, template, port)) = forwarding_real_guest() else {
        return;
    };
    let vm = instance(&sandbox, "vm", &template);
    let hostagent = start_until_running(&sandbox, &vm, GUEST_BOOT);
    let qemu = read_pid_file(&vm.driver_pid(lima_layout::VmType::Qemu)).expect("qemu.pid");
    let (_, holders) = holding(&vm, port, hostagent);
    let mut trace = vec![format!("running: {}", holders_now(port))];
    let [master] = holders[..] else {
        panic!("one holder expected: {trace:?}");
    };

    proctree::kill(hostagent).unwrap();
    sandbox.wait_child(hostagent, EXIT).unwrap();
    trace.push(format!(
        "ha.pid's process {hostagent} killed: {}",
        holders_now(port)
    ));
    assert_eq!(
        harness::ports::listeners(port)
            .into_iter()
            .map(|(pid, _)| pid)
            .collect::<Vec<_>>(),
        [master],
        "the master holds the port while QEMU runs: {trace:?}"
    );
    assert!(
        proctree::is_alive(qemu),
        "QEMU {qemu} died with the hostagent"
    );

    proctree::kill(qemu).unwrap();
    let killed = Instant::now();
    let freed = eventually(EXIT, "the forwarded port to be free", || {
        harness::ports::is_free(port)
            .then(|| killed.elapsed())
            .ok_or_else(|| holders_now(port))
    });
    trace.push(format!(
        "qemu.pid's process {qemu} killed: free after {freed:?}; master {master} alive: {}",
        proctree::is_alive(master)
    ));
    eprintln!("{}", trace.join("\n"));
    assert!(freed.is_ok(), "{trace:?}");
    eventually(EXIT, "the ssh master to exit", || {
        (!proctree::is_alive(master))
            .then_some(())
            .ok_or_else(|| format!("master {master} alive"))
    })
    .unwrap();
}
