//! One scenario per finding, grouped by the part of the lifecycle it probes.

pub(crate) mod crash;
pub(crate) mod delete;
pub(crate) mod keys;
pub(crate) mod leftovers;
pub(crate) mod orphan;
pub(crate) mod real_lima;
pub(crate) mod stop;
pub(crate) mod strict;
pub(crate) mod wsl;

use harness::{Template, VmSpec, ports::pick_free_port};
use lima_layout::VmType;

/// A QEMU VM forwarding `forwards` guest ports to freshly picked host ports.
pub fn qemu_vm(name: &str, forwards: usize) -> VmSpec {
    let template = (0..forwards).fold(Template::new(VmType::Qemu), |t, i| {
        t.forward(8000 + i as u16, pick_free_port())
    });
    VmSpec::new(name, template)
}

/// A WSL2 VM (its distro is `lima-<name>`).
pub fn wsl_vm(name: &str) -> VmSpec {
    VmSpec::new(name, Template::new(VmType::Wsl2))
}
