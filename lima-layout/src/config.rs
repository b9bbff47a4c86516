//! The subset of `lima.yaml` that the fakes and the reconciler read.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmType {
    #[default]
    Qemu,
    Vz,
    Wsl2,
    Krunkit,
}

impl VmType {
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
    #[serde(default)]
    pub guest_port: u16,
    pub host_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshConfig {
    #[serde(default)]
    pub local_port: u16,
}

/// An `additionalDisks` entry: a bare name or `{name: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdditionalDisk {
    Name(String),
    Entry { name: String },
}

impl AdditionalDisk {
    pub fn name(&self) -> &str {
        match self {
            AdditionalDisk::Name(name) | AdditionalDisk::Entry { name } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimaConfig {
    #[serde(default)]
    pub vm_type: VmType,
    #[serde(default)]
    pub additional_disks: Vec<AdditionalDisk>,
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
    #[serde(default)]
    pub ssh: SshConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid lima.yaml: {message}")]
    Parse { path: String, message: String },
}

impl LimaConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

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

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("a LimaConfig serialises")
    }

    pub fn disk_names(&self) -> impl Iterator<Item = &str> {
        self.additional_disks.iter().map(AdditionalDisk::name)
    }

    /// Lima's check of the disk names (`limayaml.Validate`: each must be an
    /// identifier, see [`crate::identifiers`]); the first bad one, in words
    /// close to Lima's.
    pub fn validate_disk_names(&self) -> Result<(), String> {
        for (i, name) in self.disk_names().enumerate() {
            crate::identifiers::validate(name)
                .map_err(|e| format!("field `additionalDisks[{i}].name` is invalid: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_lima_refuses_are_named_by_index() {
        let ok = LimaConfig::parse("additionalDisks: [data, {name: logs.1}]\n").unwrap();
        assert_eq!(ok.validate_disk_names(), Ok(()));
        let bad = LimaConfig::parse("additionalDisks: [data, \"we[1]rd\"]\n").unwrap();
        let err = bad.validate_disk_names().unwrap_err();
        assert!(
            err.starts_with("field `additionalDisks[1].name` is invalid"),
            "{err}"
        );
        assert!(err.contains("we[1]rd"), "{err}");
    }

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
    fn rejects_an_unknown_vm_type_with_its_name() {
        let err = LimaConfig::parse("vmType: hyperv\n").unwrap_err();
        assert!(err.contains("hyperv"), "{err}");
    }
}
