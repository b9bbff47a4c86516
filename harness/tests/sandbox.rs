//! The sandbox itself: its layout, and that it finds and removes what a
//! test leaks.

use contract::Tool;
use fakes::journal::{JournalWriter, Record};
use harness::{Binaries, FaultPlanBuilder, Sandbox, Toolset, eventually, ports};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The sandbox only links these; the tests here never run them.
fn binaries() -> Binaries {
    Binaries::multicall(&std::env::current_exe().unwrap())
}

/// Env var that turns this test binary into a process holding a port.
const HOLD_PORT_ENV: &str = "LIMAVM_TEST_HOLD_PORT";

/// Not a test: run by the leak tests as a child that binds a port,
/// journals it like a fake would, and stays until killed.
#[test]
#[ignore = "helper process for the leak tests"]
fn hold_port_helper() {
    let Ok(port) = std::env::var(HOLD_PORT_ENV) else {
        return;
    };
    let port: u16 = port.parse().unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    JournalWriter::from_env("holder").record(Record::PortBound { port });
    loop {
        // Idles until killed; accepting keeps the port held.
        let _ = listener.accept();
    }
}

/// Starts the holder inside the sandbox, not as a tracked child: the way a
/// grandchild orphaned by a reconciler would exist.
fn leak_a_holder(sandbox: &Sandbox, port: u16) -> u32 {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["hold_port_helper", "--exact", "--ignored", "--nocapture"])
        .envs(sandbox.env())
        .env(HOLD_PORT_ENV, port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Reaped by a thread of its own, so it never lingers as a zombie.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    eventually(
        Duration::from_secs(10),
        "the holder to bind its port",
        || {
            if sandbox
                .journal()
                .bound_ports()
                .iter()
                .any(|b| b.port == port)
            {
                Ok(())
            } else {
                Err("not journaled yet".into())
            }
        },
    )
    .unwrap();
    pid
}

#[test]
fn the_root_path_is_hostile_and_holds_the_layout() {
    let sandbox = Sandbox::new(&binaries()).unwrap();
    let root = sandbox.root().to_string_lossy().into_owned();
    assert!(root.contains("[1]") && root.contains(' '), "{root}");
    assert!(sandbox.lima_home().path().starts_with(sandbox.home()));
    for tool in [
        "limactl",
        "ssh",
        "ssh-keygen",
        "wsl.exe",
        "wsl",
        "qemu-system-x86_64",
    ] {
        assert!(sandbox.tool_path(tool).exists(), "{tool} not installed");
    }
    assert!(sandbox.reconciler_exe().exists());
    let env = sandbox.env();
    let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
    assert_eq!(std::env::split_paths(path).next(), Some(sandbox.bin_dir()));
}

#[test]
fn a_root_whose_path_cannot_be_on_path_keeps_its_shims_elsewhere() {
    let separator = if cfg!(windows) { ";" } else { ":" };
    let parent = tempfile::tempdir().unwrap();
    let hostile = parent.path().join(format!("a{separator}b"));
    std::fs::create_dir(&hostile).unwrap();
    let sandbox = Sandbox::under(&hostile, &binaries(), Toolset::fakes()).unwrap();
    assert!(sandbox.home().starts_with(&hostile));
    assert!(!sandbox.bin_dir().starts_with(&hostile));
    assert!(sandbox.tool_path("limactl").exists());
    let env = sandbox.env();
    let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
    assert_eq!(std::env::split_paths(path).next(), Some(sandbox.bin_dir()));
}

#[test]
fn a_sandbox_with_only_some_tools_has_nothing_else_on_path() {
    let sandbox = Sandbox::builder()
        .fake(&binaries().fake)
        .only_tools([Tool::Wsl])
        .build()
        .unwrap();
    assert!(sandbox.tool_path("wsl.exe").exists());
    for absent in ["limactl", "ssh", "ssh-keygen", "qemu-system-x86_64"] {
        assert!(!sandbox.tool_path(absent).exists(), "{absent} installed");
    }
    assert!(
        !sandbox.reconciler_exe().exists(),
        "no reconciler was given"
    );
    let env = sandbox.env();
    let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
    assert_eq!(
        std::env::split_paths(path).collect::<Vec<_>>(),
        [sandbox.bin_dir()]
    );
}

#[test]
fn a_faked_tool_without_the_fake_is_a_setup_error() {
    let Err(e) = Sandbox::builder()
        .reconciler(&binaries().reconciler)
        .only_tools([Tool::Ssh])
        .build()
    else {
        panic!("built a sandbox whose ssh has no executable");
    };
    assert!(e.to_string().contains("without the fake tools"), "{e}");
}

#[test]
fn the_leak_detector_reports_a_leaked_process_and_its_port() {
    let sandbox = Sandbox::new(&binaries()).unwrap();
    let port = ports::pick_free_port();
    let pid = leak_a_holder(&sandbox, port);
    let report = sandbox.leak_report();
    assert!(report.processes.iter().any(|p| p.pid == pid), "{report}");
    assert!(
        report.ports.iter().any(|p| p.port == port && p.pid == pid),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains(&pid.to_string()) && text.contains(&port.to_string()),
        "{text}"
    );

    let found = sandbox.cleanup();
    assert!(!found.is_clean());
    assert!(!proctree::is_alive(pid), "pid {pid} survived the cleanup");
    assert!(
        ports::is_free(port),
        "port {port} still held after the cleanup"
    );
    assert!(sandbox.leak_report().is_clean());
}

#[test]
fn dropping_the_sandbox_on_panic_kills_what_was_leaked() {
    let port = ports::pick_free_port();
    let pid = std::sync::Mutex::new(0);
    let root = std::sync::Mutex::new(PathBuf::new());
    let result = std::panic::catch_unwind(|| {
        let sandbox = Sandbox::new(&binaries()).unwrap();
        *root.lock().unwrap() = sandbox.root().to_owned();
        *pid.lock().unwrap() = leak_a_holder(&sandbox, port);
        panic!("the scenario failed");
    });
    assert!(result.is_err());
    let pid = *pid.lock().unwrap();
    assert!(!proctree::is_alive(pid), "pid {pid} survived the panic");
    assert!(ports::is_free(port));
    assert!(
        !root.lock().unwrap().exists(),
        "the sandbox root was not removed"
    );
}

#[test]
fn a_written_fault_plan_is_what_the_fakes_read() {
    use fakes::plan::{Fault, FaultPlan, Tool};
    let sandbox = Sandbox::new(&binaries()).unwrap();
    let plan = FaultPlanBuilder::new()
        .times(Tool::Wsl, &["--unregister"], 2, Fault::Hang)
        .always(Tool::SshKeygen, &[], Fault::Delay { ms: 5 });
    sandbox.set_faults(&plan).unwrap();
    assert_eq!(FaultPlan::load(&sandbox.plan_path()).unwrap(), plan.build());
}
