//! Renders an instance's `lima.yaml` from the resource's spec.

use crate::store::resource::Spec;
use lima_layout::checks::{Drivers, check_lima_yaml};
use serde_norway::{Mapping, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("spec.template is not valid YAML: {0}")]
    Parse(String),
    #[error("spec.template must be a YAML mapping, not {0}")]
    NotAMapping(&'static str),
    /// Lima refuses the template: one of its checks
    /// ([`lima_layout::checks`]) fails, named in the source.
    #[error("spec.template is one Lima refuses")]
    RefusedByLima(#[source] lima_layout::checks::Refusal),
}

/// `spec.template` with `vmType` set from `spec.vmType`, refused when Lima
/// would refuse it (checked with `lima_rules`; off under the regression
/// `invalid-lima-name`).
pub(crate) fn render_lima_yaml(spec: &Spec, lima_rules: bool) -> Result<String, TemplateError> {
    let document: Value = if spec.template.trim().is_empty() {
        Value::Null
    } else {
        serde_norway::from_str(&spec.template).map_err(|e| TemplateError::Parse(e.to_string()))?
    };
    let mut mapping = match document {
        Value::Null => Mapping::new(),
        Value::Mapping(mapping) => mapping,
        Value::Sequence(_) => return Err(TemplateError::NotAMapping("a sequence")),
        Value::Tagged(_) => return Err(TemplateError::NotAMapping("a tagged value")),
        _ => return Err(TemplateError::NotAMapping("a scalar")),
    };
    mapping.insert("vmType".into(), spec.vm_type.as_str().into());
    let text =
        serde_norway::to_string(&Value::Mapping(mapping)).expect("a YAML mapping serialises");
    if lima_rules {
        // The fake wsl.exe stands in for WSL2 wherever the reference runs.
        let drivers = Drivers::of_this_host_with_faked_wsl2();
        check_lima_yaml(&text, drivers).map_err(TemplateError::RefusedByLima)?;
        lima_layout::LimaConfig::parse(&text).map_err(TemplateError::Parse)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lima_layout::checks::Rule;
    use lima_layout::{LimaConfig, VmType};

    fn render_lima_yaml_checked(spec: &Spec) -> Result<String, TemplateError> {
        render_lima_yaml(spec, true)
    }

    #[test]
    fn a_disk_name_lima_refuses_is_refused_unless_the_regression_is_on() {
        let bad = spec(
            "images: [{location: /x.qcow2}]\nadditionalDisks: [\"with space\"]\n",
            VmType::Qemu,
        );
        let err = render_lima_yaml(&bad, true).unwrap_err();
        assert!(matches!(err, TemplateError::RefusedByLima(_)), "{err}");
        let text = contract::error_chain::chain(&err);
        assert!(text.contains("additionalDisks[0]"), "{text}");
        assert!(render_lima_yaml(&bad, false).is_ok());
    }

    fn spec(template: &str, vm_type: VmType) -> Spec {
        Spec {
            running: true,
            vm_type,
            template: template.into(),
        }
    }

    #[test]
    fn the_spec_vm_type_wins_and_other_keys_stay() {
        let text = render_lima_yaml_checked(&spec(
            "vmType: qemu\nimages: [{location: /x.qcow2}]\nadditionalDisks: [data]\n\
             portForwards:\n- guestPort: 80\n  hostPort: 8080\n",
            VmType::Wsl2,
        ))
        .unwrap();
        let config = LimaConfig::parse(&text).unwrap();
        assert_eq!(config.vm_type, VmType::Wsl2);
        assert_eq!(config.disk_names().collect::<Vec<_>>(), ["data"]);
        assert_eq!(config.port_forwards[0].host_port, 8080);
    }

    #[test]
    fn an_empty_template_is_just_the_vm_type() {
        // Rendered without Lima's checks: Lima itself wants `images`.
        let text = render_lima_yaml(&spec("  \n", VmType::Qemu), false).unwrap();
        assert_eq!(LimaConfig::parse(&text).unwrap().vm_type, VmType::Qemu);
        let text = render_lima_yaml(&spec("# only a comment\n", VmType::Vz), false).unwrap();
        assert_eq!(LimaConfig::parse(&text).unwrap().vm_type, VmType::Vz);
        let err = render_lima_yaml_checked(&spec("  \n", VmType::Qemu)).unwrap_err();
        assert!(matches!(&err, TemplateError::RefusedByLima(r) if r.rule == Rule::ImagesRequired));
    }

    #[test]
    fn a_field_lima_refuses_is_refused_naming_the_field_and_the_check() {
        let image = "images: [{location: /x.qcow2}]\n";
        for (template, vm_type, words) in [
            ("ssh: {localPort: 22}\n", VmType::Qemu, "ssh.localPort"),
            (
                "portForwards: [{guestPort: 22}]\n",
                VmType::Qemu,
                "pf-port-values",
            ),
            (
                "mounts: [{location: /tmp}]\n",
                VmType::Qemu,
                // A Windows host's paths start with a drive, for Lima too.
                if cfg!(windows) {
                    "mount-location-absolute"
                } else {
                    "mountpoint-system"
                },
            ),
        ] {
            let err = render_lima_yaml_checked(&spec(&format!("{image}{template}"), vm_type))
                .unwrap_err();
            let text = contract::error_chain::chain(&err);
            assert!(text.contains(words), "{template}: {text}");
        }
        if !cfg!(target_os = "macos") {
            let err = render_lima_yaml_checked(&spec(image, VmType::Vz)).unwrap_err();
            assert!(
                matches!(&err, TemplateError::RefusedByLima(r) if r.rule == Rule::VmtypeNoDriver)
            );
        }
    }

    #[test]
    fn bad_templates_are_explained() {
        let err = render_lima_yaml_checked(&spec("a: [", VmType::Qemu)).unwrap_err();
        assert!(matches!(err, TemplateError::Parse(_)));
        let err = render_lima_yaml_checked(&spec("- 1\n", VmType::Qemu)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.template must be a YAML mapping, not a sequence"
        );
    }
}
