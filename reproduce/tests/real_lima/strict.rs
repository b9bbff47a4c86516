//! What real Lima refuses, the fakes refuse the same way: instance names
//! that are not Lima identifiers, and an additional disk whose `in_use_by`
//! names another instance (running or not).

use crate::support::{
    EXIT, START, binaries, blank_template, instance, log_tail, real_lima_here, real_sandbox,
    start_foreground,
};
use harness::{Sandbox, Template};
use lima_layout::InstancePaths;
use std::process::{Command, Output};

/// The names of the bug reports, and one for each other rule.
fn refused_names() -> Vec<String> {
    let mut names = scenarios::refused_names();
    names.extend(["a--b".to_owned(), "vm.yaml".to_owned()]);
    names
}

/// A real-Lima sandbox and a fakes one, or `None` (skipped) without real
/// Lima.
fn real_and_fake() -> Option<(Sandbox, Sandbox)> {
    if !real_lima_here() {
        return None;
    }
    Some((real_sandbox(), Sandbox::new(&binaries()).unwrap()))
}

/// Runs `cmd` bounded; its output.
fn run(mut cmd: Command) -> Output {
    let out = proctree::run_bounded(&mut cmd, None, Some(EXIT)).expect("limactl returns");
    Output {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// `limactl hostagent --pidfile P --socket S -- NAME` for a name with an
/// instance directory and `lima.yaml`: exit code, stderr, and whether it
/// left its pid file or started a process.
fn hostagent_refusal(
    sandbox: &Sandbox,
    limactl: &std::path::Path,
    name: &str,
) -> (Option<i32>, String, bool) {
    let paths = sandbox.lima_home().instance(name);
    std::fs::create_dir_all(&paths.dir).unwrap();
    std::fs::write(paths.lima_yaml(), "vmType: qemu\n").unwrap();
    let mut cmd = sandbox.command(limactl);
    cmd.args(["hostagent", "--pidfile"])
        .arg(paths.ha_pid())
        .arg("--socket")
        .arg(paths.ha_sock())
        .arg("--")
        .arg(name);
    let out = run(cmd);
    let left =
        paths.ha_pid().exists() || paths.ha_sock().exists() || !sandbox.live_processes().is_empty();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        left,
    )
}

/// The words both say for `name`.
fn refusal_words(name: &str) -> &'static str {
    if name.ends_with(".yaml") {
        "must not end with .yml or .yaml"
    } else {
        "is not a valid identifier"
    }
}

#[test]
fn real_lima_and_the_fake_refuse_the_same_names_with_the_same_words() {
    let Some((real, fake)) = real_and_fake() else {
        return;
    };
    let fake_limactl = fake.fake_tool_path("limactl").unwrap();
    for name in refused_names() {
        let (code, stderr, left) = hostagent_refusal(&real, &real.tool_path("limactl"), &name);
        assert_eq!(code, Some(1), "real limactl hostagent {name:?}: {stderr}");
        assert!(
            stderr.contains(refusal_words(&name)),
            "real limactl hostagent {name:?}: {stderr}"
        );
        assert!(
            !left,
            "real limactl hostagent {name:?} left a pid file, socket or process"
        );
        let (fake_code, fake_stderr, fake_left) = hostagent_refusal(&fake, &fake_limactl, &name);
        assert_eq!(fake_code, code, "the fake for {name:?}: {fake_stderr}");
        assert!(
            fake_stderr.contains(refusal_words(&name)),
            "the fake for {name:?}: {fake_stderr}"
        );
        assert!(
            !fake_left,
            "the fake for {name:?} left a pid file, socket or process"
        );
        // `start --foreground` refuses them too (real Lima then reads the
        // name as a template locator, with words of its own).
        for (sandbox, limactl) in [
            (&real, real.tool_path("limactl")),
            (&fake, fake_limactl.clone()),
        ] {
            let mut cmd = sandbox.command(limactl);
            cmd.args(["start", "--foreground", "--tty=false", "--"])
                .arg(&name);
            let out = run(cmd);
            assert!(
                !out.status.success(),
                "limactl start {name:?} in {}: {out:?}",
                sandbox.root().display()
            );
            assert!(
                sandbox.live_processes().is_empty(),
                "limactl start {name:?} left a process"
            );
        }
    }
}

/// `_disks/data/in_use_by` made to name `holder`.
fn mark(sandbox: &Sandbox, holder: &InstancePaths) {
    std::os::unix::fs::symlink(&holder.dir, sandbox.lima_home().disk_in_use_by("data")).unwrap();
}

/// Starts `vm` as the reconciler does and waits for the start to end,
/// which must fail; its logs.
fn refused_start(sandbox: &Sandbox, vm: &InstancePaths) -> String {
    let pid = start_foreground(sandbox, vm);
    let code = sandbox.wait_child(pid, START).unwrap();
    let log = [vm.ha_stderr_log(), vm.dir.join("ha.start.log")]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        matches!(code, Some(c) if c != 0),
        "a start Lima refuses ended with {code:?} in {}: {}",
        sandbox.root().display(),
        log_tail(&vm.ha_stderr_log())
    );
    log
}

#[test]
fn real_lima_and_the_fake_refuse_a_disk_marked_in_use_by_another_instance() {
    let Some((real, fake)) = real_and_fake() else {
        return;
    };
    let mut create = real.command(real.tool_path("limactl"));
    create.args(["disk", "create", "data", "--size", "64MiB"]);
    assert!(run(create).status.success(), "limactl disk create");
    let gone = real.lima_home().instance("gone");
    std::fs::create_dir_all(&gone.dir).unwrap();
    mark(&real, &gone);
    let real_vm = instance(&real, "vm", &blank_template(&real).disk("data"));
    let real_log = refused_start(&real, &real_vm);
    assert!(
        real_log.contains("in use by instance"),
        "real Lima: {real_log}"
    );
    assert!(real_log.contains("gone"), "real Lima: {real_log}");

    std::fs::create_dir_all(fake.lima_home().disk_dir("data")).unwrap();
    let fake_gone = fake.lima_home().instance("gone");
    std::fs::create_dir_all(&fake_gone.dir).unwrap();
    mark(&fake, &fake_gone);
    let template = Template::blank_disk(std::path::Path::new("/unused/by/the/fake.qcow2"))
        .ssh_port(harness::ports::pick_free_port())
        .disk("data");
    let fake_vm = instance(&fake, "vm", &template);
    let fake_log = refused_start(&fake, &fake_vm);
    assert!(fake_log.contains("in use by"), "the fake: {fake_log}");
    assert!(fake_log.contains("gone"), "the fake: {fake_log}");

    for (sandbox, holder) in [(&real, &gone), (&fake, &fake_gone)] {
        assert_eq!(
            std::fs::read_link(sandbox.lima_home().disk_in_use_by("data"))
                .ok()
                .as_ref(),
            Some(&holder.dir),
            "the refused start changed the mark in {}",
            sandbox.root().display()
        );
        assert!(
            sandbox.live_processes().is_empty(),
            "a refused start left a process"
        );
    }
}

#[test]
fn real_lima_and_the_fake_refuse_a_disk_name_that_is_not_an_identifier() {
    let Some((real, fake)) = real_and_fake() else {
        return;
    };
    for sandbox in [&real, &fake] {
        let vm = sandbox.lima_home().instance("vm");
        std::fs::create_dir_all(&vm.dir).unwrap();
        let template = if std::ptr::eq(sandbox, &real) {
            blank_template(sandbox)
        } else {
            Template::blank_disk(std::path::Path::new("/unused/by/the/fake.qcow2"))
        };
        std::fs::write(vm.lima_yaml(), template.disk("we[1]rd").to_yaml()).unwrap();
        let log = refused_start(sandbox, &vm);
        assert!(
            log.contains("additionalDisks[0].name"),
            "{}: {log}",
            sandbox.root().display()
        );
        assert!(
            sandbox.live_processes().is_empty(),
            "a refused start left a process"
        );
    }
}
