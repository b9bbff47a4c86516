//! The checks of a `lima.yaml` that Lima makes before it writes or starts
//! anything: `limayaml.Validate`, `validateNetwork` and the driver lookup
//! (Lima v2.2.0, `pkg/limayaml/validate.go`, `pkg/driverutil`). Each is a
//! function of the YAML document, read as leniently as Lima reads it
//! (unknown keys are ignored; a field of the wrong type is left to the
//! parser), with Lima's defaults where a check depends on them.

use super::port_forwards::check_port_forwards;
use super::yaml::{list, port_problem, text};
use super::{Refusal, Rule};
use crate::VmType;
use crate::identifiers;
use serde_norway::Value;
use std::path::Path;

/// Lima's architectures (`limatype.ArchTypes`); `default` is the host's.
const ARCHES: &[&str] = &["x86_64", "aarch64", "armv7l", "ppc64le", "riscv64", "s390x"];
/// Lima's guest systems (`limatype.OSTypes`); `default` is Linux.
const OSES: &[&str] = &["Linux", "Darwin", "FreeBSD", "Windows"];
/// `mountType` values (`limatype.MountTypes`).
const MOUNT_TYPES: &[&str] = &["reverse-sshfs", "9p", "virtiofs", "wsl2"];
/// Guest directories a mount may not cover (`validate.go:Validate`).
const SYSTEM_MOUNT_POINTS: &[&str] = &[
    "/", "/bin", "/dev", "/etc", "/home", "/opt", "/sbin", "/tmp", "/usr", "/var",
];
/// `provision[].mode` values (`limatype.ProvisionMode*`).
const PROVISION_MODES: &[&str] = &[
    "system",
    "user",
    "boot",
    "data",
    "dependency",
    "ansible",
    "yq",
];

/// The VM types that have a driver where the instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drivers(&'static [VmType]);

impl Drivers {
    /// Lima's built-in drivers on this host: QEMU everywhere, WSL2 on
    /// Windows, vz and krunkit on macOS (`pkg/driverutil`, the drivers
    /// registered per OS).
    pub const fn of_this_host() -> Self {
        if cfg!(windows) {
            Self(&[VmType::Qemu, VmType::Wsl2])
        } else if cfg!(target_os = "macos") {
            Self(&[VmType::Qemu, VmType::Vz, VmType::Krunkit])
        } else {
            Self(&[VmType::Qemu])
        }
    }

    /// This host's drivers and WSL2: the harness's fake `wsl.exe` stands in
    /// for Windows' WSL2 on every host, so the fakes and the reference
    /// take `vmType: wsl2` anywhere (real Lima on Linux refuses it).
    pub const fn of_this_host_with_faked_wsl2() -> Self {
        if cfg!(target_os = "macos") {
            Self(&[VmType::Qemu, VmType::Vz, VmType::Krunkit, VmType::Wsl2])
        } else {
            Self(&[VmType::Qemu, VmType::Wsl2])
        }
    }

    fn have(self, vm_type: VmType) -> bool {
        self.0.contains(&vm_type)
    }
}

/// One check of the document.
type Check = fn(&Value, Drivers) -> Result<(), Refusal>;

/// Every check, in Lima's order.
const CHECKS: &[Check] = &[
    check_vm_type,
    check_os_and_arch,
    check_images,
    check_sizes,
    check_user_shell,
    check_additional_disks,
    check_mounts,
    check_ssh,
    check_provision,
    check_probes,
    |doc, _| check_port_forwards(doc),
    check_copy_to_host,
    check_dns,
    check_networks,
    check_audio,
];

/// Judges `lima.yaml` text as Lima's `create` and `start` do: the first
/// refusal, or `Ok` when Lima would go on. Text that is not a YAML mapping
/// is refused by rule `yaml-syntax`; an empty file is left to the caller.
pub fn check_lima_yaml(text: &str, drivers: Drivers) -> Result<(), Refusal> {
    let doc: Value = serde_norway::from_str(text)
        .map_err(|e| Refusal::new(Rule::YamlSyntax, "", format!("is not valid YAML: {e}")))?;
    if doc.is_null() {
        return Ok(());
    }
    if !doc.is_mapping() {
        return Err(Refusal::new(Rule::YamlSyntax, "", "must be a YAML mapping"));
    }
    CHECKS.iter().try_for_each(|check| check(&doc, drivers))
}

fn check_vm_type(doc: &Value, drivers: Drivers) -> Result<(), Refusal> {
    // An unregistered name is left to the parser (`vmtype-unregistered`).
    let Some(vm_type) = text(doc, "vmType").and_then(|t| t.parse::<VmType>().ok()) else {
        return Ok(());
    };
    if drivers.have(vm_type) {
        return Ok(());
    }
    Err(Refusal::new(
        Rule::VmtypeNoDriver,
        "vmType",
        format!("{vm_type:?} is an unknown or unsupported VM type on this host"),
    ))
}

fn check_os_and_arch(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    if let Some(os) = text(doc, "os").filter(|os| *os != "default" && !OSES.contains(os)) {
        return Err(Refusal::new(
            Rule::Os,
            "os",
            format!("must be one of {OSES:?}; got {os:?}"),
        ));
    }
    if let Some(arch) = text(doc, "arch").filter(|a| *a != "default" && !ARCHES.contains(a)) {
        return Err(arch_refusal(Rule::Arch, "arch", arch));
    }
    Ok(())
}

fn arch_refusal(rule: Rule, field: &str, arch: &str) -> Refusal {
    Refusal::new(
        rule,
        field,
        format!("must be one of {ARCHES:?}; got {arch:?}"),
    )
}

fn check_images(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    let images = list(doc, "images");
    if images.is_empty() {
        return Err(Refusal::new(Rule::ImagesRequired, "images", "must be set"));
    }
    for (i, image) in images.iter().enumerate() {
        for (part, file) in [("", Some(image)), (".kernel", image.get("kernel"))] {
            if let Some(arch) = file
                .and_then(|f| text(f, "arch"))
                .filter(|a| !a.is_empty() && !ARCHES.contains(a))
            {
                return Err(arch_refusal(
                    Rule::ImageArch,
                    &format!("images[{i}]{part}.arch"),
                    arch,
                ));
            }
        }
    }
    Ok(())
}

/// A size as go-units' `RAMInBytes` reads it: a decimal number, an
/// optional space, then an optional `k`/`m`/`g`/`t`/`p`, `i` and `b` (any
/// case).
fn is_size(value: &str) -> bool {
    let digits_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let number_ok = number
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    let mut unit = unit.strip_prefix(' ').unwrap_or(unit).chars().peekable();
    for allowed in ["kmgtp", "i", "b"] {
        unit.next_if(|c| allowed.contains(c.to_ascii_lowercase()));
    }
    number_ok && unit.next().is_none()
}

fn check_sizes(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (key, rule) in [("memory", Rule::MemorySize), ("disk", Rule::DiskSize)] {
        let Some(value) = doc.get(key) else {
            continue;
        };
        let size = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if !is_size(&size) {
            return Err(Refusal::new(
                rule,
                key,
                format!("has an invalid value {size:?}"),
            ));
        }
    }
    Ok(())
}

fn check_user_shell(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    // A Windows guest has rules of its own (not judged here).
    if text(doc, "os") == Some("Windows") {
        return Ok(());
    }
    match doc.get("user").and_then(|u| text(u, "shell")) {
        Some(shell) if !shell.is_empty() && !shell.starts_with('/') => Err(Refusal::new(
            Rule::UserShellAbsolute,
            "user.shell",
            format!("must be an absolute path, got {shell:?}"),
        )),
        _ => Ok(()),
    }
}

fn check_additional_disks(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (i, disk) in list(doc, "additionalDisks").iter().enumerate() {
        let name = disk.as_str().or_else(|| text(disk, "name")).unwrap_or("");
        identifiers::validate(name).map_err(|e| {
            Refusal::new(
                Rule::AdditionalDiskName,
                format!("additionalDisks[{i}].name"),
                format!("is invalid: {e}"),
            )
        })?;
    }
    Ok(())
}

fn check_mounts(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (i, mount) in list(doc, "mounts").iter().enumerate() {
        let location = text(mount, "location").unwrap_or("");
        check_mount_location(i, location)?;
        // The mount point defaults to the (expanded) location.
        let mount_point = text(mount, "mountPoint")
            .or_else(|| (!location.starts_with('~')).then_some(location))
            .unwrap_or("");
        let field = format!("mounts[{i}].mountPoint");
        if SYSTEM_MOUNT_POINTS.contains(&mount_point) {
            return Err(Refusal::new(
                Rule::MountpointSystem,
                field,
                "must not be a system path such as /etc or /usr",
            ));
        }
        if mount_point.starts_with('~') {
            return Err(Refusal::new(
                Rule::MountpointTilde,
                field,
                "must not start with `~`",
            ));
        }
    }
    let Some(mount_type) = text(doc, "mountType") else {
        return Ok(());
    };
    if !MOUNT_TYPES.contains(&mount_type) {
        return Err(Refusal::new(
            Rule::MountType,
            "mountType",
            format!("must be one of {MOUNT_TYPES:?}; got {mount_type:?}"),
        ));
    }
    if list(doc, "mountTypesUnsupported")
        .iter()
        .any(|t| t.as_str() == Some(mount_type))
    {
        return Err(Refusal::new(
            Rule::MountType,
            "mountType",
            format!("must not be one of `mountTypesUnsupported`, got {mount_type:?}"),
        ));
    }
    Ok(())
}

/// The host side of a mount: absolute (or `~`-relative), and a directory
/// when it exists (a missing one is only a warning in Lima).
fn check_mount_location(i: usize, location: &str) -> Result<(), Refusal> {
    let field = format!("mounts[{i}].location");
    if location.starts_with('~') {
        return Ok(());
    }
    if !Path::new(location).is_absolute() {
        return Err(Refusal::new(
            Rule::MountLocationAbsolute,
            field,
            format!("must be an absolute path, got {location:?}"),
        ));
    }
    match std::fs::metadata(location) {
        Ok(meta) if !meta.is_dir() => Err(Refusal::new(
            Rule::MountLocationDirectory,
            field,
            format!("refers to a non-directory path: {location:?}"),
        )),
        _ => Ok(()),
    }
}

fn check_ssh(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    let port = doc
        .get("ssh")
        .and_then(|s| s.get("localPort"))
        .and_then(Value::as_i64);
    // 0 (or absent) means "pick one".
    match port.filter(|p| *p != 0).and_then(port_problem) {
        Some(problem) => Err(Refusal::new(Rule::SshLocalPort, "ssh.localPort", problem)),
        None => Ok(()),
    }
}

fn check_provision(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (i, step) in list(doc, "provision").iter().enumerate() {
        let mode = text(step, "mode").unwrap_or("system");
        if !PROVISION_MODES.contains(&mode) {
            return Err(Refusal::new(
                Rule::ProvisionMode,
                format!("provision[{i}].mode"),
                format!("must be one of {PROVISION_MODES:?}; got {mode:?}"),
            ));
        }
        if matches!(mode, "data" | "yq") {
            let field = format!("provision[{i}].path");
            match text(step, "path").unwrap_or("") {
                "" => {
                    return Err(Refusal::new(
                        Rule::ProvisionPath,
                        field,
                        "must not be empty",
                    ));
                }
                path if !path.starts_with('/') => {
                    return Err(Refusal::new(
                        Rule::ProvisionPath,
                        field,
                        format!("must be an absolute path, got {path:?}"),
                    ));
                }
                _ => {}
            }
        } else if mode != "ansible" && text(step, "script").unwrap_or("").is_empty() {
            return Err(Refusal::new(
                Rule::ProvisionScriptRequired,
                format!("provision[{i}].script"),
                "must not be empty",
            ));
        }
    }
    Ok(())
}

fn check_probes(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (i, probe) in list(doc, "probes").iter().enumerate() {
        if !text(probe, "script").unwrap_or("").starts_with("#!") {
            return Err(Refusal::new(
                Rule::ProbeShebang,
                format!("probe[{i}].script"),
                "must start with a '#!' line",
            ));
        }
        if let Some(mode) = text(probe, "mode").filter(|m| *m != "readiness") {
            return Err(Refusal::new(
                Rule::ProbeMode,
                format!("probe[{i}].mode"),
                format!("can only be \"readiness\", got {mode:?}"),
            ));
        }
    }
    Ok(())
}

fn check_copy_to_host(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (i, rule) in list(doc, "copyToHost").iter().enumerate() {
        for (side, absolute) in [
            ("guest", (|p: &str| p.starts_with('/')) as fn(&str) -> bool),
            ("host", |p: &str| Path::new(p).is_absolute()),
        ] {
            // Lima expands templates (`{{.Dir}}/x`) before it judges.
            let path = text(rule, side).unwrap_or("");
            if !path.starts_with("{{") && !absolute(path) {
                return Err(Refusal::new(
                    Rule::CopyToHostAbsolute,
                    format!("CopyToHost[{i}].{side}"),
                    format!("must be an absolute path, got {path:?}"),
                ));
            }
        }
    }
    Ok(())
}

fn check_dns(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    let host_resolver_on = doc
        .get("hostResolver")
        .and_then(|h| h.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if host_resolver_on && !list(doc, "dns").is_empty() {
        return Err(Refusal::new(
            Rule::DnsWithHostResolver,
            "dns",
            "must be empty when field `HostResolver.Enabled` is true",
        ));
    }
    Ok(())
}

fn check_networks(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    for (i, network) in list(doc, "networks").iter().enumerate() {
        let field = |key: &str| format!("networks[{i}].{key}");
        let lima = text(network, "lima").unwrap_or("");
        let socket = text(network, "socket").unwrap_or("");
        let vz_nat = network.get("vzNAT").and_then(Value::as_bool) == Some(true);
        if lima.is_empty() && socket.is_empty() && !vz_nat {
            return Err(Refusal::new(
                Rule::NetNeither,
                field("lima"),
                "or `socket` must be set",
            ));
        }
        if !lima.is_empty() && !socket.is_empty() {
            return Err(Refusal::new(
                Rule::NetExclusive,
                field("lima"),
                "and field `socket` are mutually exclusive",
            ));
        }
        // Only `user-v2` is a user-mode network out of the box.
        if !lima.is_empty() && lima != "user-v2" && !cfg!(target_os = "macos") {
            return Err(Refusal::new(
                Rule::NetLimaMacosOnly,
                field("lima"),
                "is only supported on macOS right now",
            ));
        }
        check_interface(
            &field("interface"),
            text(network, "interface").unwrap_or(""),
        )?;
    }
    Ok(())
}

/// A guest network interface name (`validate.go:validateNetwork`): under
/// 16 bytes (`IFNAMSIZ`), no whitespace or `/`, not slirp's `eth0`.
fn check_interface(field: &str, name: &str) -> Result<(), Refusal> {
    let problem = if name.len() >= 16 {
        "must be less than 16 bytes"
    } else if name.contains(|c: char| c.is_whitespace() || c == '/') {
        "must not contain whitespace or slashes"
    } else if name == "eth0" {
        "is reserved for slirp"
    } else {
        return Ok(());
    };
    Err(Refusal::new(Rule::NetInterface, field, problem))
}

fn check_audio(doc: &Value, _: Drivers) -> Result<(), Refusal> {
    match doc.get("audio").and_then(|a| text(a, "interface")) {
        Some(interface) if !matches!(interface, "" | "hda" | "virtio") => Err(Refusal::new(
            Rule::AudioInterface,
            "audio.interface",
            format!("is invalid: {interface:?}, must be \"hda\" or \"virtio\""),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
