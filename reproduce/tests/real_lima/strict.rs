//! What real Lima refuses, the fakes refuse the same way: instance names
//! that are not Lima identifiers, an additional disk whose `in_use_by`
//! names another instance (running or not), each template check of
//! `lima_layout::checks` (one table, one real `limactl create` per row,
//! the fake's `start` of the same lima.yaml, and the rule the reference
//! applies), and the socket-path limits of `create` and `start`.

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

/// One of Lima's checks, by the smallest change to the blank-disk
/// template that breaks it (from the enumeration of Lima v2.2.0's checks):
/// the rule's id, the fragment (its top-level keys replace the template's;
/// `~` removes a key), the words real `limactl create` must say, and the
/// field the fake must name.
struct Case {
    rule: &'static str,
    fragment: &'static str,
    real_words: &'static str,
    field: &'static str,
}

const fn case(
    rule: &'static str,
    fragment: &'static str,
    real_words: &'static str,
    field: &'static str,
) -> Case {
    Case {
        rule,
        fragment,
        real_words,
        field,
    }
}

/// Every rule of `lima_layout::checks` that a template can break.
const CASES: &[Case] = &[
    case(
        "vmtype-no-driver",
        "vmType: vz",
        "unsupported VM type",
        "vmType",
    ),
    case("os", "os: Plan9", "field `os`", "os"),
    case("arch", "arch: amd64", "field `arch`", "arch"),
    case("images-required", "images: ~", "field `images`", "images"),
    case(
        "image-arch",
        "images: [{location: /nonexistent/x.qcow2, arch: amd64}]",
        "field `arch`",
        "images[0].arch",
    ),
    case("memory-size", "memory: lots", "field `memory`", "memory"),
    case("disk-size", "disk: big", "field `disk`", "disk"),
    case(
        "user-shell-absolute",
        "user: {shell: bash}",
        "user.shell",
        "user.shell",
    ),
    case(
        "additional-disk-name",
        "additionalDisks: [\"we[1]rd\"]",
        "additionalDisks[0].name",
        "additionalDisks[0].name",
    ),
    case(
        "mount-location-absolute",
        "mounts: [{location: rel/dir}]",
        "mounts[0].location",
        "mounts[0].location",
    ),
    case(
        "mount-location-directory",
        "mounts: [{location: /etc/passwd, mountPoint: /mnt/x}]",
        "non-directory",
        "mounts[0].location",
    ),
    case(
        "mountpoint-system",
        "mounts: [{location: /srv/nonexistent, mountPoint: /etc}]",
        "mounts[0].mountPoint",
        "mounts[0].mountPoint",
    ),
    case(
        "mountpoint-tilde",
        "mounts: [{location: /srv/nonexistent, mountPoint: \"~/x\"}]",
        "mounts[0].mountPoint",
        "mounts[0].mountPoint",
    ),
    case(
        "mount-type",
        "mountType: nfs",
        "field `mountType`",
        "mountType",
    ),
    case(
        "mount-type",
        "{mountType: 9p, mountTypesUnsupported: [9p]}",
        "field `mountType`",
        "mountType",
    ),
    case(
        "ssh-local-port",
        "ssh: {localPort: 22}",
        "ssh.localPort",
        "ssh.localPort",
    ),
    case(
        "ssh-local-port",
        "ssh: {localPort: 70000}",
        "ssh.localPort",
        "ssh.localPort",
    ),
    case(
        "provision-mode",
        "provision: [{mode: weird, script: \"#!/bin/sh\"}]",
        "provision[0].mode",
        "provision[0].mode",
    ),
    case(
        "provision-script-required",
        "provision: [{mode: system}]",
        "provision[0].script",
        "provision[0].script",
    ),
    case(
        "provision-path",
        "provision: [{mode: data, path: etc/x, content: x}]",
        "provision[0].path",
        "provision[0].path",
    ),
    case(
        "probe-shebang",
        "probes: [{script: echo hi}]",
        "probe[0].script",
        "probe[0].script",
    ),
    case(
        "probe-mode",
        "probes: [{mode: liveness, script: \"#!/bin/sh\"}]",
        "probe[0].mode",
        "probe[0].mode",
    ),
    case(
        "pf-port-values",
        "portForwards: [{guestPort: 22, hostPort: 2222}]",
        "portForwards[0].guestPort",
        "portForwards[0].guestPort",
    ),
    case(
        "pf-port-values",
        "portForwards: [{guestPort: 80, hostPort: 22}]",
        "portForwards[0].hostPort",
        "portForwards[0].hostPort",
    ),
    case(
        "pf-port-range-match",
        "portForwards: [{guestPort: 80, guestPortRange: [81, 81], hostPort: 8080}]",
        "portForwards[0].guestPort",
        "portForwards[0].guestPort",
    ),
    case(
        "pf-range-order",
        "portForwards: [{guestPortRange: [90, 80], hostPortRange: [90, 80]}]",
        "portForwards[0].guestPortRange[1]",
        "portForwards[0].guestPortRange[1]",
    ),
    case(
        "pf-range-size",
        "portForwards: [{guestPortRange: [8080, 8081], hostPortRange: [9080, 9082]}]",
        "portForwards[0].hostPortRange",
        "portForwards[0].hostPortRange",
    ),
    case(
        "pf-port-with-socket",
        "portForwards: [{guestPort: 80, guestSocket: /run/x.sock, hostSocket: x.sock}]",
        "portForwards[0].guestPort",
        "portForwards[0].guestPort",
    ),
    case(
        "pf-guestsocket-absolute",
        "portForwards: [{guestSocket: run/x.sock, hostSocket: x.sock}]",
        "portForwards[0].guestSocket",
        "portForwards[0].guestSocket",
    ),
    case(
        "pf-proto",
        "portForwards: [{guestPort: 80, hostPort: 8080, proto: sctp}]",
        "portForwards[0].proto",
        "portForwards[0].proto",
    ),
    case(
        "copy-to-host-absolute",
        "copyToHost: [{guest: rel/x, host: /tmp/x}]",
        "CopyToHost[0].guest",
        "CopyToHost[0].guest",
    ),
    case(
        "dns-with-host-resolver",
        "dns: [1.1.1.1]",
        "field `dns`",
        "dns",
    ),
    case(
        "net-neither",
        "networks: [{interface: lima0}]",
        "networks[0].lima",
        "networks[0].lima",
    ),
    case(
        "net-exclusive",
        "networks: [{lima: user-v2, socket: /nonexistent.sock}]",
        "mutually exclusive",
        "networks[0].lima",
    ),
    case(
        "net-lima-macos-only",
        "networks: [{lima: shared}]",
        "networks[0].lima",
        "networks[0].lima",
    ),
    case(
        "net-interface",
        "networks: [{socket: /nonexistent.sock, interface: abcdefghijklmnop}]",
        "less than 16 bytes",
        "networks[0].interface",
    ),
    case(
        "net-interface",
        "networks: [{socket: /nonexistent.sock, interface: eth0}]",
        "reserved for slirp",
        "networks[0].interface",
    ),
    case(
        "audio-interface",
        "audio: {device: none, interface: ac97}",
        "audio.interface",
        "audio.interface",
    ),
];

/// `template` with the fragment's top-level keys set over it (`~`, a null,
/// is an absent key to Lima).
fn changed(template: &Template, fragment: &str) -> String {
    let change: serde_norway::Mapping = serde_norway::from_str(fragment).unwrap();
    change
        .into_iter()
        .fold(template.clone(), |t, (key, value)| {
            t.set(key.as_str().expect("a key is text"), value)
        })
        .to_yaml()
}

/// `limactl create --tty=false --name NAME FILE`: exit code and stderr.
fn create(
    sandbox: &Sandbox,
    limactl: &std::path::Path,
    name: &str,
    yaml: &str,
) -> (Option<i32>, String) {
    let file = sandbox.root().join("images").join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = sandbox.command(limactl);
    cmd.args(["create", "--tty=false", "--name", name])
        .arg(&file);
    let out = run(cmd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The fake's `limactl start --foreground NAME` of `yaml` written as the
/// instance's lima.yaml, as the reference writes it: exit code and stderr.
fn fake_start(sandbox: &Sandbox, name: &str, yaml: &str) -> (Option<i32>, String) {
    let vm = sandbox.lima_home().instance(name);
    std::fs::create_dir_all(&vm.dir).unwrap();
    std::fs::write(vm.lima_yaml(), yaml).unwrap();
    let mut cmd = sandbox.command(sandbox.fake_tool_path("limactl").unwrap());
    cmd.args(["start", "--foreground", "--tty=false", name]);
    let out = run(cmd);
    assert!(
        !vm.ha_pid().exists(),
        "the fake's refused start of {name} wrote ha.pid"
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn real_lima_the_fake_and_the_reference_refuse_each_template_check() {
    let Some((real, fake)) = real_and_fake() else {
        return;
    };
    let limactl = real.tool_path("limactl");
    let template = blank_template(&real);
    let base = template.to_yaml();
    let drivers = lima_layout::checks::Drivers::of_this_host_with_faked_wsl2();
    // The control: all three take the unchanged template.
    let (code, stderr) = create(&real, &limactl, "control", &base);
    assert_eq!(code, Some(0), "real limactl create of the base: {stderr}");
    assert_eq!(lima_layout::checks::check_lima_yaml(&base, drivers), Ok(()));
    for (i, case) in CASES.iter().enumerate() {
        let name = format!("c{i}");
        let yaml = changed(&template, case.fragment);
        let (code, stderr) = create(&real, &limactl, &name, &yaml);
        let what = format!("{} ({})", case.rule, case.fragment);
        assert_eq!(code, Some(1), "real limactl create, {what}: {stderr}");
        assert!(
            stderr.contains(case.real_words),
            "real limactl create, {what}: {stderr}"
        );
        assert!(
            !real.lima_home().instance(&name).dir.exists(),
            "real limactl create left {name}/ for {what}"
        );
        let (code, stderr) = fake_start(&fake, &name, &yaml);
        assert_eq!(code, Some(1), "the fake, {what}: {stderr}");
        assert!(
            stderr.contains(case.field) && stderr.contains(case.rule),
            "the fake, {what}: {stderr}"
        );
        // The reference judges with the same function.
        let refusal = lima_layout::checks::check_lima_yaml(&yaml, drivers).unwrap_err();
        assert_eq!(refusal.rule.id(), case.rule, "{what}: {refusal}");
    }
    for sandbox in [&real, &fake] {
        assert!(
            sandbox.live_processes().is_empty(),
            "a refusal left a process"
        );
    }
}

/// `limactl create` makes room in the instance directory for its longest
/// socket (rule `socket-path-create`): 81 bytes are taken, 82 refused, and
/// the reference's rule agrees at both.
#[test]
fn real_lima_and_the_reference_agree_on_the_create_socket_limit() {
    use lima_layout::checks::{Stage, check_instance_dir, max_instance_dir_len};
    let Some((real, _fake)) = real_and_fake() else {
        return;
    };
    let limactl = real.tool_path("limactl");
    let base = blank_template(&real).to_yaml();
    let home = real.lima_home();
    let room = max_instance_dir_len(Stage::Create) - home.path().as_os_str().len() - 1;
    assert!(
        (2..lima_layout::identifiers::MAX_LENGTH).contains(&room),
        "LIMA_HOME {} leaves {room} bytes for a name",
        home.path().display()
    );
    for (len, accepted) in [(room, true), (room + 1, false)] {
        let name = "n".repeat(len);
        let (code, stderr) = create(&real, &limactl, &name, &base);
        assert_eq!(code == Some(0), accepted, "{len}-byte name: {stderr}");
        if !accepted {
            assert!(stderr.contains("too long"), "{stderr}");
        }
        let dir = home.instance(&name).dir;
        assert_eq!(
            check_instance_dir(&dir, Stage::Create).is_ok(),
            accepted,
            "{}",
            dir.display()
        );
    }
}

/// The hostagent needs room for `ssh.sock` (rule `socket-path-start`): an
/// instance directory one byte over is refused at start by real Lima and
/// by the fake.
#[test]
fn real_lima_and_the_fake_refuse_a_start_without_room_for_ssh_sock() {
    use lima_layout::checks::{Stage, max_instance_dir_len};
    let Some((real, fake)) = real_and_fake() else {
        return;
    };
    for sandbox in [&real, &fake] {
        let home = sandbox.lima_home();
        let len = max_instance_dir_len(Stage::Start) + 1 - home.path().as_os_str().len() - 1;
        assert!(
            len <= lima_layout::identifiers::MAX_LENGTH,
            "{}",
            home.path().display()
        );
        let template = if std::ptr::eq(sandbox, &real) {
            blank_template(sandbox)
        } else {
            Template::blank_disk(std::path::Path::new("/unused/by/the/fake.qcow2"))
        };
        let vm = instance(sandbox, &"n".repeat(len), &template);
        let log = refused_start(sandbox, &vm);
        assert!(
            log.contains("too long") || log.contains("socket-path-start"),
            "{log}"
        );
        assert!(
            sandbox.live_processes().is_empty(),
            "a refused start left a process"
        );
    }
}
