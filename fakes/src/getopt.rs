//! POSIX-style short-option parsing, as OpenSSH's tools do it: options come
//! first, may be grouped (`-qN ""`), values may be joined (`-p2222`), and the
//! first operand or `--` ends them.

/// `spec` lists the option letters; a letter followed by `:` takes a value.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) options: Vec<(char, Option<String>)>,
    pub(crate) operands: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GetoptError {
    #[error("unknown option -- {0}")]
    Unknown(char),
    #[error("option requires an argument -- {0}")]
    MissingValue(char),
}

pub(crate) fn getopt(args: &[String], spec: &str) -> Result<Parsed, GetoptError> {
    let mut parsed = Parsed::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        let Some(letters) = arg.strip_prefix('-').filter(|l| !l.is_empty()) else {
            parsed.operands.push(arg.clone());
            break;
        };
        for (index, letter) in letters.char_indices() {
            match takes_value(spec, letter) {
                None => return Err(GetoptError::Unknown(letter)),
                Some(false) => parsed.options.push((letter, None)),
                Some(true) => {
                    let joined = &letters[index + letter.len_utf8()..];
                    let value = if joined.is_empty() {
                        rest.next()
                            .cloned()
                            .ok_or(GetoptError::MissingValue(letter))?
                    } else {
                        joined.to_owned()
                    };
                    parsed.options.push((letter, Some(value)));
                    break;
                }
            }
        }
    }
    parsed.operands.extend(rest.cloned());
    Ok(parsed)
}

fn takes_value(spec: &str, letter: char) -> Option<bool> {
    if letter == ':' {
        return None;
    }
    let at = spec.find(letter)?;
    Some(spec[at + letter.len_utf8()..].starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings;

    #[test]
    fn groups_joined_values_and_operands() {
        let parsed = getopt(
            &strings(&["-qN", "", "-p2222", "-L", "1:h:2", "dest", "-x", "cmd"]),
            "qN:p:L:",
        )
        .unwrap();
        assert_eq!(
            parsed.options,
            [
                ('q', None),
                ('N', Some(String::new())),
                ('p', Some("2222".into())),
                ('L', Some("1:h:2".into()))
            ]
        );
        assert_eq!(parsed.operands, strings(&["dest", "-x", "cmd"]));
    }

    #[test]
    fn unknown_and_valueless_options_are_named() {
        assert_eq!(
            getopt(&strings(&["-z"]), "q"),
            Err(GetoptError::Unknown('z'))
        );
        assert_eq!(
            getopt(&strings(&["-f"]), "f:"),
            Err(GetoptError::MissingValue('f'))
        );
    }
}
