//! The subset of `lima.yaml` that the fakes and the reconciler read.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// `vmType`: the driver that runs the VM (Lima's `pkg/limatype`
/// `VMType`); the default when absent is QEMU, as in Lima on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmType {
    /// `qemu`: QEMU, the only driver the fakes run as a process of its own.
    #[default]
    Qemu,
    /// `vz`: Apple's Virtualization.framework (macOS), inside the hostagent.
    Vz,
    /// `wsl2`: a WSL2 distro (Windows), driven through `wsl.exe`.
    Wsl2,
    /// `krunkit`: libkrun's `krunkit` (macOS).
    Krunkit,
}

impl VmType {
    /// The `vmType` value as `lima.yaml` spells it (`qemu`, `vz`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            VmType::Qemu => "qemu",
            VmType::Vz => "vz",
            VmType::Wsl2 => "wsl2",
            VmType::Krunkit => "krunkit",
        }
    }
}

impl std::fmt::Display for VmType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VmType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qemu" => Ok(VmType::Qemu),
            "vz" => Ok(VmType::Vz),
            "wsl2" => Ok(VmType::Wsl2),
            "krunkit" => Ok(VmType::Krunkit),
            other => Err(format!(
                "unknown vmType {other:?} (expected qemu, vz, wsl2 or krunkit)"
            )),
        }
    }
}

/// One `portForwards` entry: the hostagent forwards `guestPort` to `hostPort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForward {
    /// `guestPort`: the port inside the VM (0 when absent).
    #[serde(default)]
    pub guest_port: u16,
    /// `hostPort`: the host port the hostagent's `ssh -L` listens on (0
    /// when absent: a rule by range or socket, which Lima accepts and the
    /// fakes do not forward).
    #[serde(default)]
    pub host_port: u16,
}

/// The `ssh` section of `lima.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshConfig {
    /// `ssh.localPort`: the host port forwarded to the guest's sshd (0:
    /// Lima picks one).
    #[serde(default)]
    pub local_port: u16,
}

/// An `additionalDisks` entry: a bare name or `{name: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdditionalDisk {
    /// `- NAME`.
    Name(String),
    /// `- name: NAME` (other keys are ignored).
    Entry {
        /// The disk's name, a directory under `_disks/`.
        name: String,
    },
}

impl AdditionalDisk {
    /// The disk's name, whichever form the entry has.
    pub fn name(&self) -> &str {
        match self {
            AdditionalDisk::Name(name) | AdditionalDisk::Entry { name } => name,
        }
    }
}

/// An instance's `lima.yaml`, reduced to the keys read here (Lima's
/// `pkg/limatype` `LimaYAML`); other keys are ignored, absent ones default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimaConfig {
    /// `vmType`.
    #[serde(default)]
    pub vm_type: VmType,
    /// `additionalDisks`: the disks the hostagent holds while it runs.
    #[serde(default)]
    pub additional_disks: Vec<AdditionalDisk>,
    /// `portForwards`.
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
    /// `ssh`.
    #[serde(default)]
    pub ssh: SshConfig,
}

/// Why [`LimaConfig::load`] failed; the I/O error, when there is one, is
/// the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file, as displayed.
        path: String,
        /// The read's error.
        source: std::io::Error,
    },
    /// The file is not YAML of this shape.
    #[error("{path} is not a valid lima.yaml: {message}")]
    Parse {
        /// The file, as displayed.
        path: String,
        /// The YAML parser's message.
        message: String,
    },
}

impl LimaConfig {
    /// Parses `lima.yaml` text; an empty file is the default config.
    /// Errors are the YAML parser's message.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads and parses the `lima.yaml` at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// This config as YAML, with Lima's key names.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("a LimaConfig serialises")
    }

    /// The names of the additional disks, in file order.
    pub fn disk_names(&self) -> impl Iterator<Item = &str> {
        self.additional_disks.iter().map(AdditionalDisk::name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_it_knows_and_ignores_the_rest() {
        let cfg = LimaConfig::parse(
            "vmType: wsl2\nimages: [{location: x}]\nadditionalDisks: [data, {name: logs}]\n\
             portForwards:\n- guestPort: 80\n  hostPort: 8080\nssh:\n  localPort: 60022\n",
        )
        .unwrap();
        assert_eq!(cfg.vm_type, VmType::Wsl2);
        assert_eq!(cfg.disk_names().collect::<Vec<_>>(), ["data", "logs"]);
        assert_eq!(cfg.port_forwards[0].host_port, 8080);
        assert_eq!(cfg.ssh.local_port, 60022);
    }

    #[test]
    fn forwards_without_a_host_port_parse_as_lima_reads_them() {
        let cfg = LimaConfig::parse(
            "portForwards:\n- guestSocket: /run/x.sock\n  hostSocket: x.sock\n\
             - guestPortRange: [8080, 8081]\n",
        )
        .unwrap();
        assert_eq!(cfg.port_forwards.len(), 2);
        assert!(cfg.port_forwards.iter().all(|f| f.host_port == 0));
    }

    #[test]
    fn rejects_an_unknown_vm_type_with_its_name() {
        let err = LimaConfig::parse("vmType: hyperv\n").unwrap_err();
        assert!(err.contains("hyperv"), "{err}");
    }
}
