//! lima.yaml templates for the VMs scenarios create.

use lima_layout::config::AdditionalDisk;
use lima_layout::{LimaConfig, PortForward, VmType};
use serde_norway::{Mapping, Value};
use std::path::Path;

/// `fixtures/lima/blank-disk.yaml`: what real Lima needs besides the
/// fields the fakes read (see that file).
const BLANK_DISK_TEMPLATE: &str = include_str!("../../fixtures/lima/blank-disk.yaml");
/// `fixtures/lima/real-guest.yaml`: real Lima booting the guest of
/// `scripts/build-real-guest` (see that file).
const REAL_GUEST_TEMPLATE: &str = include_str!("../../fixtures/lima/real-guest.yaml");

/// The image location of templates for the fakes: never read.
const NO_OS_IMAGE: &str = "/nonexistent/limavm-harness/no-os.qcow2";

/// The host's architecture in Lima's terms (`x86_64`, `aarch64`...).
fn lima_arch() -> &'static str {
    match std::env::consts::ARCH {
        "arm" => "armv7l",
        other => other,
    }
}

/// A template under construction; `to_yaml` gives the lima.yaml text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    config: LimaConfig,
    /// Keys for real Lima that `LimaConfig` does not model; the fields it
    /// does model override them.
    base: Option<Mapping>,
    /// Port forwards marked `static: true`: the hostagent sets them up with
    /// `ssh -O forward -L` through its ControlMaster before it reports
    /// running, without waiting for the guest agent to see the port.
    static_forwards: bool,
    /// Lima's `copyToHost` rules, `(guest, host)` (not modelled by
    /// `LimaConfig`; the fakes do not read them).
    copy_to_host: Vec<(String, String)>,
    /// Top-level keys set as they are, over everything else (see
    /// [`Template::set`]).
    overrides: Mapping,
}

impl Template {
    /// A template of `vm_type` with no disks, forwards or mounts.
    pub fn new(vm_type: VmType) -> Self {
        Self {
            config: LimaConfig {
                vm_type,
                ..LimaConfig::default()
            },
            base: None,
            static_forwards: false,
            copy_to_host: Vec::new(),
            overrides: Mapping::new(),
        }
    }

    /// A QEMU VM for real Lima whose image is `blank_disk`, a local disk
    /// without an OS (`fixtures/lima/blank-disk.yaml`).
    pub fn blank_disk(blank_disk: &Path) -> Self {
        let mut base: Mapping =
            serde_norway::from_str(BLANK_DISK_TEMPLATE).expect("the blank-disk fixture is YAML");
        let location = blank_disk.to_string_lossy().into_owned();
        if let Some(Value::Sequence(images)) = base.get_mut("images") {
            for image in images.iter_mut() {
                if let Value::Mapping(image) = image {
                    image.insert("location".into(), location.clone().into());
                }
            }
        }
        Self {
            config: LimaConfig {
                vm_type: VmType::Qemu,
                ..LimaConfig::default()
            },
            base: Some(base),
            static_forwards: false,
            copy_to_host: Vec::new(),
            overrides: Mapping::new(),
        }
    }

    /// A QEMU VM for real Lima booting `guest` (`fixtures/lima/real-guest.yaml`):
    /// the hostagent reaches its running event, and forwards are static
    /// `ssh` forwards to ports the guest serves (see [`GUEST_SERVED_PORTS`]).
    pub fn real_guest(guest: &crate::real_lima::RealGuest) -> Self {
        let mut base: Mapping =
            serde_norway::from_str(REAL_GUEST_TEMPLATE).expect("the real-guest fixture is YAML");
        let path = |p: &Path| Value::from(p.to_string_lossy().into_owned());
        if let Some(Value::Sequence(images)) = base.get_mut("images") {
            for image in images.iter_mut() {
                let Value::Mapping(image) = image else {
                    continue;
                };
                image.insert("location".into(), path(&guest.disk));
                for (key, file) in [("kernel", &guest.kernel), ("initrd", &guest.initrd)] {
                    if let Some(Value::Mapping(entry)) = image.get_mut(key) {
                        entry.insert("location".into(), path(file));
                    }
                }
            }
        }
        Self {
            config: LimaConfig {
                vm_type: VmType::Qemu,
                ..LimaConfig::default()
            },
            base: Some(base),
            static_forwards: true,
            copy_to_host: Vec::new(),
            overrides: Mapping::new(),
        }
    }

    /// True for [`Template::real_guest`]: the guest boots and the
    /// hostagent reports running.
    pub fn boots_real_guest(&self) -> bool {
        self.static_forwards
    }

    /// The template's `vmType`.
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

    /// Adds a Lima `copyToHost` rule: once its requirements pass, the real
    /// hostagent copies guest file `guest` to `host` over ssh (`host` may
    /// use Lima's `{{.Dir}}`, the instance directory). A copy that fails
    /// (a guest file that does not exist) makes its running event
    /// `degraded`, with the error (Lima v2.2.0,
    /// `pkg/hostagent/hostagent.go`). The fakes ignore it.
    pub fn copy_to_host(mut self, guest: &str, host: &str) -> Self {
        self.copy_to_host.push((guest.to_owned(), host.to_owned()));
        self
    }

    /// Sets top-level key `key` of the lima.yaml to `value` as it is, over
    /// what the other methods set: for values the model cannot hold (a
    /// port of 70000, a field the fakes do not read).
    pub fn set(mut self, key: &str, value: Value) -> Self {
        self.overrides.insert(key.into(), value);
        self
    }

    /// The host port the driver binds for SSH.
    pub fn ssh_port(mut self, port: u16) -> Self {
        self.config.ssh.local_port = port;
        self
    }

    /// The template with additional disk `name` attached.
    pub fn disk(mut self, name: &str) -> Self {
        self.config
            .additional_disks
            .push(AdditionalDisk::Name(name.to_owned()));
        self
    }

    /// The host ports of the port forwards (not the SSH port).
    pub fn forwarded_host_ports(&self) -> Vec<u16> {
        self.config
            .port_forwards
            .iter()
            .map(|p| p.host_port)
            .collect()
    }

    /// The host ports its port forwards listen on.
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

    /// The names of its additional disks.
    pub fn disks(&self) -> Vec<String> {
        self.config.disk_names().map(str::to_owned).collect()
    }

    /// The lima.yaml text. Every template is valid by Lima's own rules (a
    /// reconciler may validate it before anything runs): one without a
    /// base gets an `images` entry for the host's architecture, a local
    /// location that is never read (Lima does not require it to exist; the
    /// fakes boot no image).
    pub fn to_yaml(&self) -> String {
        let Some(base) = &self.base else {
            let mut doc: Mapping =
                serde_norway::from_str(&self.config.to_yaml()).expect("a LimaConfig is a mapping");
            let mut image = Mapping::new();
            image.insert("location".into(), NO_OS_IMAGE.into());
            image.insert("arch".into(), lima_arch().into());
            doc.insert(
                "images".into(),
                Value::Sequence(vec![Value::Mapping(image)]),
            );
            self.insert_copy_to_host(&mut doc);
            doc.extend(self.overrides.clone());
            return serde_norway::to_string(&doc).expect("a YAML mapping serialises");
        };
        let mut merged = base.clone();
        let modelled: Mapping =
            serde_norway::from_str(&self.config.to_yaml()).expect("a LimaConfig is a mapping");
        for (key, mut value) in modelled {
            if self.static_forwards && key.as_str() == Some("portForwards") {
                mark_static(&mut value);
            }
            merged.insert(key, value);
        }
        self.insert_copy_to_host(&mut merged);
        merged.extend(self.overrides.clone());
        serde_norway::to_string(&merged).expect("a YAML mapping serialises")
    }

    fn insert_copy_to_host(&self, doc: &mut Mapping) {
        if self.copy_to_host.is_empty() {
            return;
        }
        let rules = self
            .copy_to_host
            .iter()
            .map(|(guest, host)| {
                let mut rule = Mapping::new();
                rule.insert("guest".into(), guest.as_str().into());
                rule.insert("host".into(), host.as_str().into());
                Value::Mapping(rule)
            })
            .collect();
        doc.insert("copyToHost".into(), Value::Sequence(rules));
    }
}

/// The guest ports the real guest serves (busybox httpd, started by its
/// boot; `fixtures/lima/real-guest/rcS`), for forwards it really serves.
pub const GUEST_SERVED_PORTS: std::ops::Range<u16> = 8000..8004;

fn mark_static(forwards: &mut Value) {
    if let Value::Sequence(rules) = forwards {
        for rule in rules.iter_mut() {
            if let Value::Mapping(rule) = rule {
                rule.insert("static".into(), true.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_an_image_as_lima_requires() {
        let yaml = Template::new(VmType::Qemu).forward(80, 8080).to_yaml();
        let doc: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(doc["images"][0]["location"], NO_OS_IMAGE);
        assert_eq!(doc["images"][0]["arch"], lima_arch());
        let config = LimaConfig::parse(&yaml).unwrap();
        assert_eq!(config.port_forwards[0].host_port, 8080);
    }

    #[test]
    fn copy_to_host_rules_are_lima_s() {
        let yaml = Template::new(VmType::Qemu)
            .copy_to_host("/missing", "{{.Dir}}/copied")
            .to_yaml();
        let doc: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(doc["copyToHost"][0]["guest"], "/missing");
        assert_eq!(doc["copyToHost"][0]["host"], "{{.Dir}}/copied");
    }

    #[test]
    fn the_blank_disk_template_keeps_lima_s_keys_and_takes_the_modelled_ones() {
        let yaml = Template::blank_disk(Path::new("/d [1]/blank.qcow2"))
            .ssh_port(60022)
            .disk("data")
            .to_yaml();
        let doc: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(doc["images"][0]["location"], "/d [1]/blank.qcow2");
        assert_eq!(doc["firmware"]["legacyBIOS"], true);
        assert_eq!(doc["ssh"]["localPort"], 60022);
        let config = LimaConfig::parse(&yaml).unwrap();
        assert_eq!(config.vm_type, VmType::Qemu);
        assert_eq!(config.disk_names().collect::<Vec<_>>(), ["data"]);
    }

    #[test]
    fn the_real_guest_template_points_at_the_built_files_and_forwards_statically() {
        let guest = crate::real_lima::RealGuest {
            disk: "/t/real-guest/disk.qcow2".into(),
            kernel: "/t/real-guest/vmlinuz".into(),
            initrd: "/t/real-guest/initrd.img".into(),
            tcg_wrapper: None,
        };
        let yaml = Template::real_guest(&guest)
            .forward(8000, 41000)
            .ssh_port(60022)
            .to_yaml();
        let doc: Value = serde_norway::from_str(&yaml).unwrap();
        let image = &doc["images"][0];
        assert_eq!(image["location"], "/t/real-guest/disk.qcow2");
        assert_eq!(image["kernel"]["location"], "/t/real-guest/vmlinuz");
        assert_eq!(image["initrd"]["location"], "/t/real-guest/initrd.img");
        assert!(
            image["kernel"]["cmdline"]
                .as_str()
                .unwrap()
                .contains("console=ttyS0")
        );
        assert_eq!(doc["portForwards"][0]["guestPort"], 8000);
        assert_eq!(doc["portForwards"][0]["hostPort"], 41000);
        assert_eq!(doc["portForwards"][0]["static"], true);
        let config = LimaConfig::parse(&yaml).unwrap();
        assert_eq!(config.port_forwards.len(), 1);
    }
}
