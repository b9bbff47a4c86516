//! Lima's own checks of an instance, one named rule each: what `limactl
//! create` and `limactl start` (Lima v2.2.0) refuse before they write or
//! start anything. The fake `limactl` and the reference reconciler both
//! judge through here, so they refuse what Lima refuses, with the rule's id
//! and the field in the message.
//!
//! The ids are kebab case and stable: tests and documents name them.
//! Each rule's doc says where Lima makes the check (file and function at
//! v2.2.0).
//! [`Rule::ALL`] lists the rules judged here; README.md says which of
//! Lima's checks are left out and why.

mod port_forwards;
mod sockets;
mod template;
mod yaml;

pub use sockets::{
    LONGEST_SOCKET_NAME, SSH_SOCKET_NAME, Stage, UNIX_PATH_MAX, check_instance_dir,
    max_instance_dir_len,
};
pub use template::{Drivers, check_lima_yaml};

use crate::identifiers::{self, InvalidIdentifier};

/// One of Lima's checks; [`Rule::id`] is its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// An instance name is an identifier (`pkg/identifiers:Validate`,
    /// called by `pkg/limatype/dirnames:ValidateInstName`).
    NameIdentifier,
    /// An identifier has at most 76 bytes (`pkg/identifiers:Validate`).
    NameLength,
    /// An instance name does not end in `.yml`/`.yaml`
    /// (`dirnames:ValidateInstName`).
    NameYamlSuffix,
    /// `create`: the instance directory leaves room for Lima's longest
    /// socket name (`pkg/instance/create.go:Create`).
    SocketPathCreate,
    /// `start`: the instance directory leaves room for `ssh.sock`
    /// (`pkg/sshutil/sshutil.go:SSHOpts`, from the hostagent).
    SocketPathStart,
    /// `lima.yaml` is YAML of Lima's shape (`pkg/limayaml/marshal.go:Unmarshal`).
    YamlSyntax,
    /// `vmType` has a driver on this host (`pkg/driverutil/instance.go:
    /// CreateConfiguredDriver`; on Linux only `qemu`).
    VmtypeNoDriver,
    /// `os` is Linux, Darwin, FreeBSD or Windows (`limayaml/validate.go:Validate`).
    Os,
    /// `arch` is one of Lima's architectures (`validate.go:Validate`).
    Arch,
    /// `images` is not empty (`validate.go:Validate`).
    ImagesRequired,
    /// Each image's `arch` is one of Lima's architectures
    /// (`validate.go:validateFileObject`).
    ImageArch,
    /// `memory` is a size go-units reads (`validate.go:Validate`, `units.RAMInBytes`).
    MemorySize,
    /// `disk` is a size go-units reads (`validate.go:Validate`).
    DiskSize,
    /// `user.shell` is an absolute path (`validate.go:Validate`).
    UserShellAbsolute,
    /// Each `additionalDisks` name is an identifier (`validate.go:Validate`).
    AdditionalDiskName,
    /// `mounts[].location` is absolute after `~` expansion (`validate.go:Validate`).
    MountLocationAbsolute,
    /// An existing `mounts[].location` is a directory (`validate.go:Validate`).
    MountLocationDirectory,
    /// `mounts[].mountPoint` is not one of the guest's system directories
    /// (`validate.go:Validate`; it defaults to the location).
    MountpointSystem,
    /// `mounts[].mountPoint` does not start with `~` (`validate.go:Validate`).
    MountpointTilde,
    /// `mountType` is reverse-sshfs, 9p, virtiofs or wsl2, and not one the
    /// template lists in `mountTypesUnsupported` (`validate.go:Validate`).
    MountType,
    /// `ssh.localPort` is 0 (pick one) or a port other than 22
    /// (`validate.go:validatePort`).
    SshLocalPort,
    /// `provision[].mode` is one Lima knows (`validate.go:Validate`).
    ProvisionMode,
    /// `provision[].script` is set except in modes data, yq and ansible
    /// (`validate.go:Validate`).
    ProvisionScriptRequired,
    /// `provision[].path` is set, and absolute, in modes data and yq
    /// (`validate.go:Validate`).
    ProvisionPath,
    /// `probes[].script` starts with `#!` (`validate.go:Validate`).
    ProbeShebang,
    /// `probes[].mode` is `readiness` (`validate.go:Validate`).
    ProbeMode,
    /// Each port of a `portForwards` rule is 1-65535 and not 22
    /// (`validate.go:Validate` → `validatePort`).
    PfPortValues,
    /// `guestPort`/`hostPort` match the start of their range
    /// (`validate.go:Validate`).
    PfPortRangeMatch,
    /// A port range does not end before it starts (`validate.go:Validate`).
    PfRangeOrder,
    /// The host range has as many ports as the guest range (`validate.go:Validate`).
    PfRangeSize,
    /// A port and a socket are not both set on one side (`validate.go:Validate`).
    PfPortWithSocket,
    /// `guestSocket` is absolute (`validate.go:Validate`).
    PfGuestsocketAbsolute,
    /// `proto` is tcp, udp or any (`validate.go:Validate`).
    PfProto,
    /// `copyToHost[].guest` and `.host` are absolute (`validate.go:Validate`).
    CopyToHostAbsolute,
    /// `dns` is empty while the host resolver is on (`validate.go:Validate`).
    DnsWithHostResolver,
    /// Each `networks` entry sets `lima` or `socket` (`validate.go:validateNetwork`).
    NetNeither,
    /// `networks[].lima` and `.socket` are not both set (`validate.go:validateNetwork`).
    NetExclusive,
    /// `networks[].lima` other than `user-v2` is macOS only
    /// (`validate.go:validateNetwork`).
    NetLimaMacosOnly,
    /// `networks[].interface` is under 16 bytes, without whitespace or `/`,
    /// and not `eth0` (`validate.go:validateNetwork`).
    NetInterface,
    /// `audio.interface` is hda or virtio (`validate.go:Validate`).
    AudioInterface,
}

impl Rule {
    /// Every rule judged here, in the order of the enumeration.
    pub const ALL: &[Rule] = &[
        Rule::NameIdentifier,
        Rule::NameLength,
        Rule::NameYamlSuffix,
        Rule::SocketPathCreate,
        Rule::SocketPathStart,
        Rule::YamlSyntax,
        Rule::VmtypeNoDriver,
        Rule::Os,
        Rule::Arch,
        Rule::ImagesRequired,
        Rule::ImageArch,
        Rule::MemorySize,
        Rule::DiskSize,
        Rule::UserShellAbsolute,
        Rule::AdditionalDiskName,
        Rule::MountLocationAbsolute,
        Rule::MountLocationDirectory,
        Rule::MountpointSystem,
        Rule::MountpointTilde,
        Rule::MountType,
        Rule::SshLocalPort,
        Rule::ProvisionMode,
        Rule::ProvisionScriptRequired,
        Rule::ProvisionPath,
        Rule::ProbeShebang,
        Rule::ProbeMode,
        Rule::PfPortValues,
        Rule::PfPortRangeMatch,
        Rule::PfRangeOrder,
        Rule::PfRangeSize,
        Rule::PfPortWithSocket,
        Rule::PfGuestsocketAbsolute,
        Rule::PfProto,
        Rule::CopyToHostAbsolute,
        Rule::DnsWithHostResolver,
        Rule::NetNeither,
        Rule::NetExclusive,
        Rule::NetLimaMacosOnly,
        Rule::NetInterface,
        Rule::AudioInterface,
    ];

    /// The rule's stable kebab-case id (`name-identifier`, ...).
    pub fn id(self) -> &'static str {
        match self {
            Rule::NameIdentifier => "name-identifier",
            Rule::NameLength => "name-length",
            Rule::NameYamlSuffix => "name-yaml-suffix",
            Rule::SocketPathCreate => "socket-path-create",
            Rule::SocketPathStart => "socket-path-start",
            Rule::YamlSyntax => "yaml-syntax",
            Rule::VmtypeNoDriver => "vmtype-no-driver",
            Rule::Os => "os",
            Rule::Arch => "arch",
            Rule::ImagesRequired => "images-required",
            Rule::ImageArch => "image-arch",
            Rule::MemorySize => "memory-size",
            Rule::DiskSize => "disk-size",
            Rule::UserShellAbsolute => "user-shell-absolute",
            Rule::AdditionalDiskName => "additional-disk-name",
            Rule::MountLocationAbsolute => "mount-location-absolute",
            Rule::MountLocationDirectory => "mount-location-directory",
            Rule::MountpointSystem => "mountpoint-system",
            Rule::MountpointTilde => "mountpoint-tilde",
            Rule::MountType => "mount-type",
            Rule::SshLocalPort => "ssh-local-port",
            Rule::ProvisionMode => "provision-mode",
            Rule::ProvisionScriptRequired => "provision-script-required",
            Rule::ProvisionPath => "provision-path",
            Rule::ProbeShebang => "probe-shebang",
            Rule::ProbeMode => "probe-mode",
            Rule::PfPortValues => "pf-port-values",
            Rule::PfPortRangeMatch => "pf-port-range-match",
            Rule::PfRangeOrder => "pf-range-order",
            Rule::PfRangeSize => "pf-range-size",
            Rule::PfPortWithSocket => "pf-port-with-socket",
            Rule::PfGuestsocketAbsolute => "pf-guestsocket-absolute",
            Rule::PfProto => "pf-proto",
            Rule::CopyToHostAbsolute => "copy-to-host-absolute",
            Rule::DnsWithHostResolver => "dns-with-host-resolver",
            Rule::NetNeither => "net-neither",
            Rule::NetExclusive => "net-exclusive",
            Rule::NetLimaMacosOnly => "net-lima-macos-only",
            Rule::NetInterface => "net-interface",
            Rule::AudioInterface => "audio-interface",
        }
    }

    /// The rule an instance name broke.
    pub fn of_name(reason: &InvalidIdentifier) -> Rule {
        match reason {
            InvalidIdentifier::TooLong(_) => Rule::NameLength,
            InvalidIdentifier::YamlSuffix(_) => Rule::NameYamlSuffix,
            InvalidIdentifier::Empty | InvalidIdentifier::Characters(_) => Rule::NameIdentifier,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// What Lima refuses and why: the rule, the field (Lima's spelling, with
/// indices: `portForwards[0].guestPort`; `name` or `instanceDir` outside
/// `lima.yaml`) and the problem, in words close to Lima's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {problem} (Lima's check {rule})")]
pub struct Refusal {
    /// The rule broken.
    pub rule: Rule,
    /// The field that breaks it.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Refusal {
    /// A refusal of `field` by `rule`.
    pub fn new(rule: Rule, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            rule,
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Checks an instance name as Lima does (the three name rules); the
/// refusal keeps [`identifiers`]' words.
pub fn check_instance_name(name: &str) -> Result<(), Refusal> {
    identifiers::validate_instance_name(name)
        .map_err(|reason| Refusal::new(Rule::of_name(&reason), "name", reason.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_kebab_names() {
        let ids: std::collections::BTreeSet<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), Rule::ALL.len());
        for id in ids {
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{id}"
            );
        }
    }

    #[test]
    fn a_name_refusal_names_its_rule() {
        let err = check_instance_name(&"a".repeat(77)).unwrap_err();
        assert_eq!(err.rule, Rule::NameLength);
        assert!(err.to_string().contains("name-length"), "{err}");
        assert_eq!(
            check_instance_name("vm.YML").unwrap_err().rule,
            Rule::NameYamlSuffix
        );
        assert_eq!(
            check_instance_name("a--b").unwrap_err().rule,
            Rule::NameIdentifier
        );
        assert_eq!(check_instance_name("vm1"), Ok(()));
    }
}
