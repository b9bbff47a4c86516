//! Which resource names can be Lima instance names.
//!
//! Only what would break the layout is refused: a name that is not one
//! path component, one that collides with Lima's `_config`/`_disks`, or one
//! whose `ha.sock` could not be bound. Brackets, spaces, `*?{}` and
//! non-ASCII are fine: the reconciler never treats a path as a pattern.

use lima_layout::LimaHome;
use lima_layout::paths::max_socket_path_len;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
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
    #[error(
        "the instance name {name:?} makes the socket path {socket} {len} bytes long, over the platform limit of {max}"
    )]
    SocketPathTooLong {
        name: String,
        socket: String,
        len: usize,
        max: usize,
    },
}

/// Checks that `name` can be an instance directory under `lima_home`.
pub fn validate_instance_name(lima_home: &LimaHome, name: &str) -> Result<(), InvalidName> {
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
    let socket = lima_home.instance(name).ha_sock();
    let len = socket.as_os_str().len();
    let max = max_socket_path_len();
    if len > max {
        return Err(InvalidName::SocketPathTooLong {
            name: name.to_owned(),
            socket: socket.display().to_string(),
            len,
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Result<(), InvalidName> {
        validate_instance_name(&LimaHome::new("/home/u/.lima"), name)
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
    fn hostile_but_harmless_names_are_allowed() {
        for name in [
            "vm1",
            "we[1]rd",
            "with space",
            "glob*?{x}",
            "ünïcødé",
            "-dash",
            "..x",
            "a.b",
            "a_",
        ] {
            assert_eq!(check(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn the_socket_limit_is_checked_at_the_exact_boundary() {
        let home = LimaHome::new("/home/u/.lima");
        // "/home/u/.lima/" + name + "/ha.sock"
        let overhead = "/home/u/.lima/".len() + "/ha.sock".len();
        let longest = "n".repeat(max_socket_path_len() - overhead);
        assert_eq!(validate_instance_name(&home, &longest), Ok(()));
        let err = validate_instance_name(&home, &format!("{longest}n")).unwrap_err();
        assert!(matches!(err, InvalidName::SocketPathTooLong { .. }));
        let text = err.to_string();
        assert!(
            text.contains("ha.sock") && text.contains("over the platform limit"),
            "{text}"
        );
    }
}
