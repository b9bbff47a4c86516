//! Which resource names can be Lima instance names.
//!
//! What would break the layout is refused with its own reason (a name that
//! is not one path component, one that collides with Lima's
//! `_config`/`_disks`), then every name Lima itself refuses
//! ([`lima_layout::identifiers`]: brackets, spaces, a leading dash,
//! non-ASCII, over 76 bytes, a `.yaml` ending), then an instance directory
//! too long for Lima's sockets: the reference creates the instance, so
//! Lima's `create` rule applies ([`lima_layout::checks`], rule
//! `socket-path-create`: on Linux at most 81 bytes). Starting such an
//! instance could only fail, again and again.

use lima_layout::LimaHome;
use lima_layout::checks::{Refusal, Stage, check_instance_dir};
use lima_layout::identifiers::{self, InvalidIdentifier};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidName {
    #[error("the instance name is empty")]
    Empty,
    #[error("the instance name {0:?} is not a directory name")]
    DotName(String),
    #[error("the instance name {name:?} contains the path separator {separator:?}")]
    PathSeparator { name: String, separator: char },
    #[error("the instance name {0:?} contains a NUL character")]
    Nul(String),
    #[error("the instance name {0:?} starts with '_', which Lima keeps for _config and _disks")]
    LeadingUnderscore(String),
    #[error("the instance name {name:?} leaves no room for Lima's sockets")]
    SocketPathTooLong {
        name: String,
        #[source]
        refusal: Refusal,
    },
    #[error(
        "the instance name {name:?} is one Lima refuses ({reason}): Lima accepts letters and \
         digits separated by single '.', '_' or '-', at most {max} bytes, no .yml/.yaml ending",
        max = identifiers::MAX_LENGTH
    )]
    RefusedByLima {
        name: String,
        reason: InvalidIdentifier,
    },
}

/// Checks that `name` can be an instance under `lima_home`: one path
/// component not Lima's own, then Lima's rules (skipped with `lima_rules:
/// false`, the regression `invalid-lima-name`), then room for Lima's
/// sockets as `limactl create` measures it.
pub(crate) fn validate_instance_name(
    lima_home: &LimaHome,
    name: &str,
    lima_rules: bool,
) -> Result<(), InvalidName> {
    validate_component(name)?;
    if lima_rules {
        identifiers::validate_instance_name(name).map_err(|reason| InvalidName::RefusedByLima {
            name: name.to_owned(),
            reason,
        })?;
    }
    let dir = lima_home.instance(name).dir;
    check_instance_dir(&dir, Stage::Create).map_err(|refusal| InvalidName::SocketPathTooLong {
        name: name.to_owned(),
        refusal,
    })
}

/// One path component that is not Lima's own.
fn validate_component(name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty);
    }
    if name == "." || name == ".." {
        return Err(InvalidName::DotName(name.to_owned()));
    }
    if let Some(separator) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Err(InvalidName::PathSeparator {
            name: name.to_owned(),
            separator,
        });
    }
    if name.contains('\0') {
        return Err(InvalidName::Nul(name.to_owned()));
    }
    if name.starts_with('_') {
        return Err(InvalidName::LeadingUnderscore(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lima_layout::checks::max_instance_dir_len;

    /// A LIMA_HOME short enough that a 77-byte name still leaves room
    /// for Lima's sockets: only the rule under test refuses it.
    const SHORT_HOME: &str = "/l";

    fn check(name: &str) -> Result<(), InvalidName> {
        validate_instance_name(&LimaHome::new(SHORT_HOME), name, true)
    }

    fn check_layout(name: &str) -> Result<(), InvalidName> {
        validate_instance_name(&LimaHome::new(SHORT_HOME), name, false)
    }

    #[test]
    fn layout_breaking_names_are_refused_with_a_reason() {
        assert_eq!(check(""), Err(InvalidName::Empty));
        assert!(matches!(check("."), Err(InvalidName::DotName(_))));
        assert!(matches!(check(".."), Err(InvalidName::DotName(_))));
        assert!(matches!(
            check("a/b"),
            Err(InvalidName::PathSeparator { separator: '/', .. })
        ));
        assert!(matches!(
            check("a\\b"),
            Err(InvalidName::PathSeparator {
                separator: '\\',
                ..
            })
        ));
        assert!(matches!(check("a\0b"), Err(InvalidName::Nul(_))));
        assert!(matches!(
            check("_config"),
            Err(InvalidName::LeadingUnderscore(_))
        ));
        assert!(
            check("_disks")
                .unwrap_err()
                .to_string()
                .contains("_config and _disks")
        );
    }

    #[test]
    fn names_lima_refuses_are_refused_saying_what_lima_accepts() {
        let long = "a".repeat(77);
        for name in [
            "we[1]rd",
            "with space",
            "glob*?{x}",
            "ünïcødé",
            "-dash",
            "..x",
            "a_",
            "vm.yaml",
            long.as_str(),
        ] {
            // The layout alone would take them.
            assert_eq!(check_layout(name), Ok(()), "{name}");
            let err = check(name).unwrap_err();
            assert!(
                matches!(err, InvalidName::RefusedByLima { .. }),
                "{name}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains("one Lima refuses") && text.contains("letters and digits"),
                "{text}"
            );
        }
        assert!(
            check(&long)
                .unwrap_err()
                .to_string()
                .contains("maximum length (76")
        );
        for name in ["vm1", "a.b", "A-b_c.9"] {
            assert_eq!(check(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn the_socket_limit_is_checked_at_the_exact_boundary() {
        let home = LimaHome::new("/home/u/.lima/deeper/than/usual");
        // "<home>/" + name: the instance directory `limactl create` measures.
        let overhead = home.path().as_os_str().len() + 1;
        let longest = "n".repeat(max_instance_dir_len(Stage::Create) - overhead);
        assert_eq!(validate_instance_name(&home, &longest, false), Ok(()));
        let err = validate_instance_name(&home, &format!("{longest}n"), false).unwrap_err();
        assert!(matches!(err, InvalidName::SocketPathTooLong { .. }));
        let text = contract::error_chain::chain(&err);
        assert!(
            text.contains("socket-path-create") && text.contains("over the limit"),
            "{text}"
        );
    }
}
