//! What the unit tests of several modules share.

/// Owned copies of `list`, as a command line arrives.
pub(crate) fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
