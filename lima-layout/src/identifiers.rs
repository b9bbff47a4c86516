//! Which names Lima accepts for an instance (and an additional disk).
//!
//! Facts from Lima v2.2.0 (`pkg/identifiers` and
//! `pkg/limatype/dirnames.ValidateInstName`): an identifier is one or more
//! ASCII letters or digits, in runs joined by single `.`, `_` or `-`
//! (`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`), at most 76 bytes; an
//! instance name must in addition not end in `.yml` or `.yaml` (in any
//! case). `limactl hostagent NAME` and `limactl start NAME` refuse any
//! other name before they touch the instance.

/// The longest identifier Lima accepts, in bytes.
pub const MAX_LENGTH: usize = 76;

/// Why Lima refuses a name, in words close to Lima's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdentifier {
    /// The name is empty.
    #[error("identifier must not be empty")]
    Empty,
    /// The name is longer than [`MAX_LENGTH`] bytes.
    #[error("identifier {0:?} is greater than maximum length ({MAX_LENGTH} characters)")]
    TooLong(String),
    /// The name has a character or a separator run Lima refuses.
    #[error(
        "identifier {0:?} is not letters and digits separated by single '.', '_' or '-' \
         (must match ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$)"
    )]
    Characters(String),
    /// An instance name ends in `.yml` or `.yaml`.
    #[error("instance name {0:?} must not end with .yml or .yaml suffix")]
    YamlSuffix(String),
}

/// Checks `name` as Lima checks an identifier (a disk name).
pub fn validate(name: &str) -> Result<(), InvalidIdentifier> {
    if name.is_empty() {
        return Err(InvalidIdentifier::Empty);
    }
    if name.len() > MAX_LENGTH {
        return Err(InvalidIdentifier::TooLong(name.to_owned()));
    }
    if !is_identifier_text(name) {
        return Err(InvalidIdentifier::Characters(name.to_owned()));
    }
    Ok(())
}

/// Checks `name` as Lima checks an instance name: an identifier that does
/// not end in `.yml` or `.yaml`.
pub fn validate_instance_name(name: &str) -> Result<(), InvalidIdentifier> {
    validate(name)?;
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".yml") || lower.ends_with(".yaml") {
        return Err(InvalidIdentifier::YamlSuffix(name.to_owned()));
    }
    Ok(())
}

/// Runs of ASCII letters and digits, joined by single separators.
fn is_identifier_text(name: &str) -> bool {
    name.split(['.', '_', '-'])
        .all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_digits_joined_by_single_separators_are_accepted() {
        for name in [
            "vm",
            "vm2",
            "A-b_c.d",
            "1",
            "default",
            "x.1",
            &"a".repeat(76),
        ] {
            assert_eq!(validate_instance_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn what_lima_refuses_is_refused_with_its_reason() {
        assert_eq!(validate_instance_name(""), Err(InvalidIdentifier::Empty));
        for name in [
            "we[1]rd",
            "with space",
            "-dash",
            "dash-",
            "a--b",
            "a._b",
            "_config",
            ".hidden",
            "ünïcødé",
            "a/b",
            "..",
        ] {
            assert!(
                matches!(
                    validate_instance_name(name),
                    Err(InvalidIdentifier::Characters(_))
                ),
                "{name}"
            );
        }
        let long = "a".repeat(77);
        assert_eq!(
            validate_instance_name(&long),
            Err(InvalidIdentifier::TooLong(long.clone()))
        );
        assert!(
            validate_instance_name(&long)
                .unwrap_err()
                .to_string()
                .contains("maximum length (76")
        );
        for name in ["vm.yaml", "vm.YML", "a.Yaml"] {
            assert!(
                matches!(
                    validate_instance_name(name),
                    Err(InvalidIdentifier::YamlSuffix(_))
                ),
                "{name}"
            );
            assert_eq!(validate(name), Ok(()), "a disk may be called {name}");
        }
    }
}
