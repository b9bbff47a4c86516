//! lima.yaml templates for the VMs scenarios create.

use lima_layout::config::AdditionalDisk;
use lima_layout::{LimaConfig, PortForward, VmType};

/// A template under construction; `to_yaml` gives the lima.yaml text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    config: LimaConfig,
}

impl Template {
    pub fn new(vm_type: VmType) -> Self {
        Self {
            config: LimaConfig {
                vm_type,
                ..LimaConfig::default()
            },
        }
    }

    pub fn vm_type(&self) -> VmType {
        self.config.vm_type
    }

    /// Forwards guest port `guest` to host port `host` (one `ssh` child).
    pub fn forward(mut self, guest: u16, host: u16) -> Self {
        self.config.port_forwards.push(PortForward {
            guest_port: guest,
            host_port: host,
        });
        self
    }

    /// The host port the driver binds for SSH.
    pub fn ssh_port(mut self, port: u16) -> Self {
        self.config.ssh.local_port = port;
        self
    }

    pub fn disk(mut self, name: &str) -> Self {
        self.config
            .additional_disks
            .push(AdditionalDisk::Name(name.to_owned()));
        self
    }

    pub fn host_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .config
            .port_forwards
            .iter()
            .map(|p| p.host_port)
            .collect();
        if self.config.ssh.local_port != 0 {
            ports.push(self.config.ssh.local_port);
        }
        ports
    }

    pub fn disks(&self) -> Vec<String> {
        self.config.disk_names().map(str::to_owned).collect()
    }

    pub fn to_yaml(&self) -> String {
        self.config.to_yaml()
    }
}
