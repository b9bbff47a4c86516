//! The hostile-name corpus, `fixtures/hostile-names.txt`, and what the
//! running OS accepts as a file name.

/// The corpus file, compiled in so tests need no path to it.
const CORPUS_TEXT: &str = include_str!("../../../fixtures/hostile-names.txt");

/// The corpus names this OS can have as file names, in file order (the
/// first, `plain`, is where shrinking ends). Windows cannot hold the
/// Unix-only ones (`*`, `?`, `a:b`, `x.`...): they are skipped rather than
/// mangled, so a test never runs on a name other than the one it printed.
pub fn corpus() -> Vec<String> {
    CORPUS_TEXT
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter(|name| is_file_name_here(name))
        .map(str::to_owned)
        .collect()
}

/// The longest file name (bytes) common file systems accept.
const NAME_MAX: usize = 255;

/// True when `name` can be one path component, a file or directory name,
/// on the running OS.
pub fn is_file_name_here(name: &str) -> bool {
    let ordinary = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= NAME_MAX
        && !name.contains(['/', '\0']);
    ordinary && (!cfg!(windows) || windows_accepts(name))
}

/// Windows refuses `<>:"\|?*` and control characters in a name, drops a
/// trailing dot or space (so `x.` would silently become `x`), and keeps
/// CON, PRN, AUX, NUL, COM1-9 and LPT1-9 (with any extension) for devices.
fn windows_accepts(name: &str) -> bool {
    let forbidden = |c: char| matches!(c, '<' | '>' | ':' | '"' | '\\' | '|' | '?' | '*');
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    let upper = stem.to_ascii_uppercase();
    let device = matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit());
    !name.chars().any(|c| forbidden(c) || c.is_control()) && !name.ends_with(['.', ' ']) && !device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_starts_plain_and_holds_the_classic_offenders() {
        let names = corpus();
        assert_eq!(names[0], "plain");
        for expected in ["[1]", "[a-z]", "{a,b}", "$HOME", "%PATH%", "-rf", "日本"] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        assert!(names.iter().all(|n| is_file_name_here(n)));
    }

    #[test]
    fn only_names_this_os_accepts_pass() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!is_file_name_here(bad), "{bad:?}");
        }
        assert!(is_file_name_here("[1] x"));
        assert!(!is_file_name_here(&"n".repeat(NAME_MAX + 1)));
        for windows_only_bad in ["*", "a?", "x.", "x ", "a:b", "con", "LPT1.txt"] {
            assert_eq!(
                is_file_name_here(windows_only_bad),
                !cfg!(windows),
                "{windows_only_bad:?}"
            );
        }
    }
}
