//! Renders an instance's `lima.yaml` from the resource's spec.

use crate::store::resource::Spec;
use serde_norway::{Mapping, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("spec.template is not valid YAML: {0}")]
    Parse(String),
    #[error("spec.template must be a YAML mapping, not {0}")]
    NotAMapping(&'static str),
    /// Lima refuses the template (a disk name that is not an identifier).
    #[error("spec.template is one Lima refuses: {0}")]
    RefusedByLima(String),
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
        let config = lima_layout::LimaConfig::parse(&text).map_err(TemplateError::Parse)?;
        config
            .validate_disk_names()
            .map_err(TemplateError::RefusedByLima)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lima_layout::{LimaConfig, VmType};

    fn render_lima_yaml_checked(spec: &Spec) -> Result<String, TemplateError> {
        render_lima_yaml(spec, true)
    }

    #[test]
    fn a_disk_name_lima_refuses_is_refused_unless_the_regression_is_on() {
        let bad = spec("additionalDisks: [\"with space\"]\n", VmType::Qemu);
        let err = render_lima_yaml(&bad, true).unwrap_err();
        assert!(matches!(err, TemplateError::RefusedByLima(_)), "{err}");
        assert!(err.to_string().contains("additionalDisks[0]"), "{err}");
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
            "vmType: qemu\nadditionalDisks: [data]\nportForwards:\n- guestPort: 80\n  hostPort: 8080\n",
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
        let text = render_lima_yaml_checked(&spec("  \n", VmType::Qemu)).unwrap();
        assert_eq!(LimaConfig::parse(&text).unwrap().vm_type, VmType::Qemu);
        let text = render_lima_yaml_checked(&spec("# only a comment\n", VmType::Vz)).unwrap();
        assert_eq!(LimaConfig::parse(&text).unwrap().vm_type, VmType::Vz);
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
