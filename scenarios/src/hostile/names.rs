//! Hostile names: path components for directories and instances, instance
//! names padded up to the socket path limit, and names that cannot be
//! instance names at all.

use super::corpus::{corpus, is_file_name_here};
use lima_layout::LimaHome;
use lima_layout::checks::{Stage, max_instance_dir_len};
use lima_layout::identifiers;
use proptest::prelude::*;
use proptest::sample::select;
use std::path::{Path, PathBuf};

/// Bracket expressions: a path read as a glob pattern breaks on them (the
/// review's finding), so they get a weight of their own.
const BRACKET_PIECES: &[&str] = &["[", "[1]", "[a-z]"];
/// Other characters that glob, brace, history, home, variable or printf
/// syntax give a meaning to.
const PATTERN_PIECES: &[&str] = &["]", "*", "?", "{a,b}", "!", "~", "$", "%"];
/// Spaces, commas and non-ASCII of one to four UTF-8 bytes.
const OTHER_PIECES: &[&str] = &[" ", ",", "ü", "日本", "🦀", "1"];

/// The pieces this OS accepts inside a file name (Windows has no `*`, `?`).
fn pieces_here(pieces: &[&'static str]) -> Vec<&'static str> {
    pieces
        .iter()
        .copied()
        .filter(|piece| is_file_name_here(&format!("a{piece}a")))
        .collect()
}

/// One piece of a generated name; shrinks to `a`, a piece that matters to
/// no one.
fn piece() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        1 => Just("a"),
        2 => select(pieces_here(BRACKET_PIECES)),
        3 => select(pieces_here(PATTERN_PIECES)),
        2 => select(pieces_here(OTHER_PIECES)),
    ]
}

/// A generated name: up to eight pieces, maybe a leading dash (an option
/// to any command line it reaches), maybe a trailing dot (Unix only:
/// Windows strips it).
pub fn generated_component() -> impl Strategy<Value = String> {
    let trailing_dot = if cfg!(windows) {
        Just(false).boxed()
    } else {
        any::<bool>().boxed()
    };
    (
        any::<bool>(),
        prop::collection::vec(piece(), 1..=8),
        trailing_dot,
    )
        .prop_map(|(leading_dash, pieces, trailing_dot)| {
            let mut name = String::new();
            if leading_dash {
                name.push('-');
            }
            name.extend(pieces);
            if trailing_dot {
                name.push('.');
            }
            name
        })
        .prop_filter("a file name on this OS", |name| is_file_name_here(name))
}

/// Any hostile path component: from the corpus (shrinks to `plain`) or
/// generated (three times in four).
pub fn path_component() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(corpus()),
        3 => generated_component(),
    ]
}

/// True when `name` can be a Lima instance: Lima accepts it
/// ([`lima_layout::identifiers`]: letters and digits separated by single
/// `.`, `_` or `-`, at most 76 bytes), so it is also a file name on every
/// OS and none of Lima's own (`_config`, `_disks`).
pub fn is_usable_instance_name(name: &str) -> bool {
    is_file_name_here(name) && identifiers::validate_instance_name(name).is_ok()
}

/// An instance name: one Lima accepts (the hostile part of a property is
/// then the directories around it), maybe padded with `n` so that its
/// instance directory is `socket_slack` bytes short of the longest that
/// `limactl create` accepts (rule `socket-path-create`; or the name is as
/// long as Lima allows, when that comes first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName {
    /// A name Lima accepts, before it is fitted to a LIMA_HOME.
    pub base: String,
    /// Bytes to leave between the instance directory and Lima's create
    /// limit (0 to 4); `None` keeps the base's length.
    pub socket_slack: Option<usize>,
}

impl InstanceName {
    /// The name under `lima_home`: the base, cut where it would not fit,
    /// padded when asked for; `None` when `lima_home` leaves no room.
    pub fn resolve(&self, lima_home: &LimaHome) -> Option<String> {
        let room = name_room(lima_home)?;
        let length = match self.socket_slack {
            Some(slack) => room.checked_sub(slack)?,
            None => self.base.len().min(room),
        };
        let length = length.min(identifiers::MAX_LENGTH);
        fit(&self.base, length)
    }
}

/// Usable instance names, near the socket limit half of the time.
pub fn instance_name() -> impl Strategy<Value = InstanceName> {
    (usable_component(), prop::option::of(0usize..=4))
        .prop_map(|(base, socket_slack)| InstanceName { base, socket_slack })
}

/// `<lima_home>/<name>` minus the name: LIMA_HOME and a separator.
fn dir_overhead(lima_home: &LimaHome) -> usize {
    lima_home.path().as_os_str().len() + 1
}

/// How many bytes an instance name may have before its instance directory
/// leaves no room for Lima's sockets, as `limactl create` measures it
/// (`None`: not even one).
pub fn name_room(lima_home: &LimaHome) -> Option<usize> {
    max_instance_dir_len(Stage::Create)
        .checked_sub(dir_overhead(lima_home))
        .filter(|room| *room > 0)
}

/// `base` brought to exactly `length` bytes: padded with `n`, or cut at a
/// character boundary and ended with `n` (never with a dot or a space,
/// which Windows would strip).
fn fit(base: &str, length: usize) -> Option<String> {
    if length == 0 {
        return None;
    }
    if base.len() == length {
        return Some(base.to_owned());
    }
    let mut kept = String::new();
    for c in base.chars() {
        if kept.len() + c.len_utf8() >= length {
            break;
        }
        kept.push(c);
    }
    let padding = length - kept.len();
    kept.extend(std::iter::repeat_n('n', padding));
    Some(kept)
}

/// A name the reconciler must refuse: it would escape LIMA_HOME, collide
/// with Lima's own directories, or leave no room for Lima's sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnusableName {
    /// The empty name.
    Empty,
    /// `.` or `..`: LIMA_HOME itself, or its parent.
    DotName(&'static str),
    /// Components joined by `/` or `\`, such as `../x`.
    WithSeparator {
        /// The part before the separator: `..` or a hostile component.
        before: String,
        /// `/` or `\`.
        separator: char,
        /// The part after the separator: `..` or a hostile component.
        after: String,
    },
    /// `_config`, `_disks`, or any name starting with `_`.
    LimaReserved(String),
    /// One path component that Lima refuses as an instance name: brackets,
    /// spaces, a leading dash, non-ASCII, doubled separators...
    RefusedByLima(String),
    /// A usable name made `excess` bytes too long for Lima's sockets (rule
    /// `socket-path-create`).
    OverSocketLimit {
        /// The usable name it is made from.
        base: String,
        /// How many bytes (1 to 24) the name is over the limit.
        excess: usize,
    },
}

impl UnusableName {
    /// The name as the reconciler gets it, under `lima_home` (whose length
    /// sets how long an [`UnusableName::OverSocketLimit`] name is).
    pub fn resolve(&self, lima_home: &LimaHome) -> String {
        match self {
            UnusableName::Empty => String::new(),
            UnusableName::DotName(name) => (*name).to_owned(),
            UnusableName::WithSeparator {
                before,
                separator,
                after,
            } => format!("{before}{separator}{after}"),
            UnusableName::LimaReserved(name) | UnusableName::RefusedByLima(name) => name.clone(),
            UnusableName::OverSocketLimit { base, excess } => {
                let limit =
                    max_instance_dir_len(Stage::Create).saturating_sub(dir_overhead(lima_home));
                fit(base, limit + excess).expect("an excess of at least one byte")
            }
        }
    }

    /// Words the refusal of `resolved` (this name, resolved) must contain
    /// to say why it was refused.
    pub fn explained_by(&self, resolved: &str) -> Vec<String> {
        let words: &[&str] = match self {
            UnusableName::Empty => &["empty"],
            UnusableName::DotName(name) => return vec![format!("{name:?}")],
            UnusableName::WithSeparator { .. } => &["separator"],
            UnusableName::LimaReserved(_) => &["_config"],
            UnusableName::RefusedByLima(_) => &["Lima refuses"],
            // Lima's own limit comes first when the name is over it too.
            UnusableName::OverSocketLimit { .. } if resolved.len() > identifiers::MAX_LENGTH => {
                &["Lima refuses", "maximum length"]
            }
            UnusableName::OverSocketLimit { .. } => &["socket", "limit"],
        };
        words.iter().map(|w| (*w).to_owned()).collect()
    }
}

/// One side of a name with a separator: `..` (to climb out) or hostile.
fn separated_part() -> impl Strategy<Value = String> {
    prop_oneof![Just("..".to_owned()), path_component()]
}

/// Names the reconciler must refuse, of every [`UnusableName`] kind.
pub fn unusable_name() -> impl Strategy<Value = UnusableName> {
    prop_oneof![
        Just(UnusableName::Empty),
        select(vec![".", ".."]).prop_map(UnusableName::DotName),
        (separated_part(), select(vec!['/', '\\']), separated_part()).prop_map(
            |(before, separator, after)| UnusableName::WithSeparator {
                before,
                separator,
                after,
            }
        ),
        prop_oneof![
            select(vec!["_config".to_owned(), "_disks".to_owned()]),
            usable_component().prop_map(|n| format!("_{n}")),
        ]
        .prop_map(UnusableName::LimaReserved),
        (usable_component(), 1usize..=24)
            .prop_map(|(base, excess)| UnusableName::OverSocketLimit { base, excess }),
        path_component()
            .prop_filter("a component Lima refuses, and for that alone", |n| {
                !n.starts_with('_')
                    && !n.contains(['/', '\\'])
                    && n != "."
                    && n != ".."
                    && identifiers::validate_instance_name(n).is_err()
            })
            .prop_map(UnusableName::RefusedByLima),
    ]
}

/// A name Lima accepts, so that a name built from it has only the one
/// defect it is made to have: runs of letters and digits joined by single
/// separators.
fn usable_component() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{1,8}([._-][a-zA-Z0-9]{1,8}){0,3}"
        .prop_filter("a usable instance name", |n| is_usable_instance_name(n))
}

/// A directory named by a hostile component, inside a fresh temporary
/// directory of its own; dropping it removes both and all they hold.
pub struct HostileDir {
    outer: tempfile::TempDir,
    path: PathBuf,
}

impl HostileDir {
    /// Creates the directory `component` in a fresh temporary directory.
    ///
    /// # Errors
    ///
    /// The I/O error of creating either directory.
    pub fn create(component: &str) -> std::io::Result<Self> {
        // A short prefix leaves room for names near the socket limit.
        let outer = tempfile::Builder::new().prefix("lv").tempdir()?;
        let path = outer.path().join(component);
        std::fs::create_dir(&path)?;
        Ok(Self { outer, path })
    }

    /// The hostile directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary directory around it: anything a test created, even by
    /// climbing out of the hostile one with `..`, is below this.
    pub fn outer(&self) -> &Path {
        self.outer.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn fitted_names_have_the_exact_length_and_end_safely() {
        assert_eq!(fit("abc", 3).as_deref(), Some("abc"));
        assert_eq!(fit("ab", 5).as_deref(), Some("abnnn"));
        assert_eq!(fit("日本", 4).as_deref(), Some("日n"));
        assert_eq!(fit("x. ", 2).as_deref(), Some("xn"));
        assert_eq!(fit("abc", 0), None);
    }

    #[test]
    fn padded_names_put_the_instance_directory_exactly_at_the_limit() {
        // Deep enough that the socket limit comes before Lima's 76 bytes.
        let home = LimaHome::new(
            std::env::temp_dir()
                .join("lv[1]")
                .join("d".repeat(8))
                .join(".lima"),
        );
        let name = InstanceName {
            base: "r-f.1".into(),
            socket_slack: Some(0),
        }
        .resolve(&home)
        .unwrap();
        let dir = home.instance(&name).dir;
        assert_eq!(dir.as_os_str().len(), max_instance_dir_len(Stage::Create));
        let over = UnusableName::OverSocketLimit {
            base: "x".into(),
            excess: 1,
        }
        .resolve(&home);
        let dir = home.instance(&over).dir;
        assert_eq!(
            dir.as_os_str().len(),
            max_instance_dir_len(Stage::Create) + 1
        );
        // Where the socket leaves more room, Lima's limit comes first.
        let name = InstanceName {
            base: "r".into(),
            socket_slack: Some(0),
        }
        .resolve(&LimaHome::new("/l"))
        .unwrap();
        assert_eq!(name.len(), identifiers::MAX_LENGTH);
        assert!(is_usable_instance_name(&name), "{name}");
    }

    #[test]
    fn most_components_hold_a_bracket() {
        // So that a property over a directory and an instance name meets
        // a bracketed path in nearly every case.
        let mut runner = TestRunner::deterministic();
        let total = 2000;
        let bracketed = (0..total)
            .filter(|_| {
                let name = path_component().new_tree(&mut runner).unwrap().current();
                name.contains('[')
            })
            .count();
        assert!(bracketed * 2 > total, "{bracketed} of {total}");
    }

    #[test]
    fn generated_names_are_valid_here_and_usable_ones_usable() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..500 {
            let name = path_component().new_tree(&mut runner).unwrap().current();
            assert!(is_file_name_here(&name), "{name:?}");
            let instance = instance_name().new_tree(&mut runner).unwrap().current();
            assert!(is_usable_instance_name(&instance.base), "{instance:?}");
        }
    }
}
