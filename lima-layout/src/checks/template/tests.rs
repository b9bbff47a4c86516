use super::*;

/// A template Lima accepts (the shape of `fixtures/lima/blank-disk.yaml`).
const BASE: &str = "vmType: qemu\narch: x86_64\nimages:\n- location: /x/blank.qcow2\n  arch: x86_64\n\
                    cpus: 1\nmemory: 128MiB\ndisk: 1GiB\nmounts: []\n";

/// `BASE` with the fragment's top-level keys replaced.
fn with(fragment: &str) -> String {
    let mut doc: serde_norway::Mapping = serde_norway::from_str(BASE).unwrap();
    let fragment = on_this_host(fragment);
    let change: serde_norway::Mapping = serde_norway::from_str(&fragment).unwrap();
    for (key, value) in change {
        if value.is_null() {
            doc.remove(&key);
        } else {
            doc.insert(key, value);
        }
    }
    serde_norway::to_string(&doc).unwrap()
}

fn judge(fragment: &str) -> Result<(), Refusal> {
    check_lima_yaml(&with(fragment), Drivers::of_this_host())
}

#[test]
fn the_base_and_what_lima_accepts_are_accepted() {
    for fragment in [
        "{}",
        "ssh: {localPort: 0}",
        "ssh: {localPort: 65535}",
        "portForwards: [{guestPort: 80}]",
        "portForwards: [{guestSocket: /run/x.sock, hostSocket: x.sock}]",
        "portForwards: [{guestPortRange: [8080, 8081], hostPortRange: [9080, 9081]}]",
        "portForwards: [{guestPort: 1, hostPort: 65535, proto: udp}]",
        "mounts: [{location: /nonexistent/dir}]",
        "mounts: [{location: \"~\", writable: true}]",
        "memory: 4GiB",
        "memory: \"1.5 g\"",
        "disk: 100",
        "networks: [{lima: user-v2}]",
        "networks: [{socket: /nonexistent.sock, interface: abcdefghijklmno}]",
        "provision: [{mode: data, path: /etc/x, content: x}]",
        "provision: [{mode: ansible, playbook: /p.yml}]",
        "probes: [{script: \"#!/bin/sh\"}]",
        "copyToHost: [{guest: /etc/x, host: \"{{.Dir}}/x\"}]",
        "dns: [1.1.1.1]\nhostResolver: {enabled: false}",
        "audio: {interface: hda}",
        "nestedVirtualization: true",
        "cpuz: 3",
    ] {
        assert_eq!(judge(fragment), Ok(()), "{fragment}");
    }
}

/// The smallest change that breaks each rule, and the field named.
/// `fragment` with its mount locations (host paths) absolute on this
/// host: `/d` is not absolute on Windows, for Lima (Go's `filepath.IsAbs`)
/// as for Rust, so there they start with a drive.
fn on_this_host(fragment: &str) -> String {
    if cfg!(windows) {
        fragment.replace("location: /", "location: C:/")
    } else {
        fragment.to_owned()
    }
}

const REFUSED: &[(&str, Rule, &str)] = &[
    ("os: Plan9", Rule::Os, "os"),
    ("arch: amd64", Rule::Arch, "arch"),
    ("images: null", Rule::ImagesRequired, "images"),
    (
        "images: [{location: /x.qcow2, arch: amd64}]",
        Rule::ImageArch,
        "images[0].arch",
    ),
    ("memory: lots", Rule::MemorySize, "memory"),
    ("disk: big", Rule::DiskSize, "disk"),
    ("user: {shell: bash}", Rule::UserShellAbsolute, "user.shell"),
    (
        "additionalDisks: [\"we[1]rd\"]",
        Rule::AdditionalDiskName,
        "additionalDisks[0].name",
    ),
    (
        "mounts: [{location: rel/dir}]",
        Rule::MountLocationAbsolute,
        "mounts[0].location",
    ),
    (
        "mounts: [{location: /d, mountPoint: /etc}]",
        Rule::MountpointSystem,
        "mounts[0].mountPoint",
    ),
    (
        "mounts: [{location: /tmp}]",
        Rule::MountpointSystem,
        "mounts[0].mountPoint",
    ),
    (
        "mounts: [{location: /d, mountPoint: \"~/x\"}]",
        Rule::MountpointTilde,
        "mounts[0].mountPoint",
    ),
    ("mountType: nfs", Rule::MountType, "mountType"),
    (
        "mountType: 9p\nmountTypesUnsupported: [9p]",
        Rule::MountType,
        "mountType",
    ),
    ("ssh: {localPort: 22}", Rule::SshLocalPort, "ssh.localPort"),
    ("ssh: {localPort: -1}", Rule::SshLocalPort, "ssh.localPort"),
    (
        "ssh: {localPort: 70000}",
        Rule::SshLocalPort,
        "ssh.localPort",
    ),
    (
        "provision: [{mode: weird, script: \"#!/bin/sh\"}]",
        Rule::ProvisionMode,
        "provision[0].mode",
    ),
    (
        "provision: [{mode: system}]",
        Rule::ProvisionScriptRequired,
        "provision[0].script",
    ),
    (
        "provision: [{mode: data, content: x}]",
        Rule::ProvisionPath,
        "provision[0].path",
    ),
    (
        "provision: [{mode: data, path: etc/x, content: x}]",
        Rule::ProvisionPath,
        "provision[0].path",
    ),
    (
        "probes: [{script: echo hi}]",
        Rule::ProbeShebang,
        "probe[0].script",
    ),
    (
        "probes: [{mode: liveness, script: \"#!/bin/sh\"}]",
        Rule::ProbeMode,
        "probe[0].mode",
    ),
    (
        "portForwards: [{guestPort: 22, hostPort: 2222}]",
        Rule::PfPortValues,
        "portForwards[0].guestPort",
    ),
    (
        "portForwards: [{guestPort: 80, hostPort: 22}]",
        Rule::PfPortValues,
        "portForwards[0].hostPort",
    ),
    (
        "portForwards: [{guestPort: 80, hostPort: 70000}]",
        Rule::PfPortValues,
        "portForwards[0].hostPort",
    ),
    (
        "portForwards: [{guestPort: 80, guestPortRange: [81, 81], hostPort: 8080}]",
        Rule::PfPortRangeMatch,
        "portForwards[0].guestPort",
    ),
    (
        "portForwards: [{guestPortRange: [90, 80], hostPortRange: [90, 80]}]",
        Rule::PfRangeOrder,
        "portForwards[0].guestPortRange[1]",
    ),
    (
        "portForwards: [{guestPortRange: [8080, 8081], hostPortRange: [9080, 9082]}]",
        Rule::PfRangeSize,
        "portForwards[0].hostPortRange",
    ),
    (
        "portForwards: [{guestPort: 80, guestSocket: /run/x.sock, hostSocket: x.sock}]",
        Rule::PfPortWithSocket,
        "portForwards[0].guestPort",
    ),
    (
        "portForwards: [{guestSocket: run/x.sock, hostSocket: x.sock}]",
        Rule::PfGuestsocketAbsolute,
        "portForwards[0].guestSocket",
    ),
    (
        "portForwards: [{guestPort: 80, hostPort: 8080, proto: sctp}]",
        Rule::PfProto,
        "portForwards[0].proto",
    ),
    (
        "copyToHost: [{guest: rel/x, host: /tmp/x}]",
        Rule::CopyToHostAbsolute,
        "CopyToHost[0].guest",
    ),
    (
        "copyToHost: [{guest: /etc/x, host: rel/x}]",
        Rule::CopyToHostAbsolute,
        "CopyToHost[0].host",
    ),
    ("dns: [1.1.1.1]", Rule::DnsWithHostResolver, "dns"),
    (
        "networks: [{interface: lima0}]",
        Rule::NetNeither,
        "networks[0].lima",
    ),
    (
        "networks: [{lima: user-v2, socket: /a.sock}]",
        Rule::NetExclusive,
        "networks[0].lima",
    ),
    (
        "networks: [{socket: /a.sock, interface: abcdefghijklmnop}]",
        Rule::NetInterface,
        "networks[0].interface",
    ),
    (
        "networks: [{socket: /a.sock, interface: a/b}]",
        Rule::NetInterface,
        "networks[0].interface",
    ),
    (
        "networks: [{socket: /a.sock, interface: eth0}]",
        Rule::NetInterface,
        "networks[0].interface",
    ),
    (
        "audio: {device: none, interface: ac97}",
        Rule::AudioInterface,
        "audio.interface",
    ),
    ("cpus: [", Rule::YamlSyntax, ""),
];

#[test]
fn each_rule_refuses_the_smallest_change_naming_its_field() {
    for &(fragment, rule, field) in REFUSED {
        // A mount point defaults to its location, a host path: only a Unix
        // host's `/tmp` is also a system directory of the guest.
        if cfg!(windows) && fragment == "mounts: [{location: /tmp}]" {
            continue;
        }
        let text = if fragment == "cpus: [" {
            fragment.to_owned()
        } else {
            with(fragment)
        };
        let err = check_lima_yaml(&text, Drivers::of_this_host()).unwrap_err();
        assert_eq!(
            (err.rule, err.field.as_str()),
            (rule, field),
            "{fragment}: {err}"
        );
        assert!(err.to_string().contains(rule.id()), "{err}");
    }
}

#[cfg(not(target_os = "macos"))]
#[test]
fn vz_and_krunkit_have_no_driver_here_and_wsl2_only_where_faked() {
    for vm_type in ["vz", "krunkit"] {
        let err = judge(&format!("vmType: {vm_type}")).unwrap_err();
        assert_eq!(err.rule, Rule::VmtypeNoDriver, "{err}");
    }
    let wsl2 = with("vmType: wsl2");
    assert_eq!(
        check_lima_yaml(&wsl2, Drivers::of_this_host_with_faked_wsl2()),
        Ok(())
    );
    if !cfg!(windows) {
        assert!(check_lima_yaml(&wsl2, Drivers::of_this_host()).is_err());
    }
}

#[test]
fn a_mount_of_a_regular_file_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let location = file.path().display().to_string();
    let err = judge(&format!(
        "mounts: [{{location: {location:?}, mountPoint: /mnt/x}}]"
    ))
    .unwrap_err();
    assert_eq!(err.rule, Rule::MountLocationDirectory, "{err}");
}

#[test]
fn sizes_are_read_as_go_units_reads_them() {
    for size in ["4GiB", "128MiB", "1.5 g", "100", "2k", "3kb", "3KiB"] {
        assert!(is_size(size), "{size}");
    }
    for size in ["lots", "", "GiB", "1..5", "4 GiBs", "4  GiB", "-1"] {
        assert!(!is_size(size), "{size}");
    }
}
