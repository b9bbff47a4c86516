//! Regression switches: each one puts back exactly one defect from the
//! findings catalogue (`shared/design/findings.md`), under that row's ID.

use std::collections::BTreeSet;
use std::fmt;

/// A regression switch: one per finding, under the finding's ID
/// (declared in [`contract::finding`]).
pub(crate) use contract::FindingId as Regression;
/// An ID that names no regression switch.
pub(crate) use contract::UnknownFinding as UnknownRegression;

/// The switches a service runs with (empty: the fixed reconciler).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Regressions(BTreeSet<Regression>);

impl Regressions {
    pub(crate) fn none() -> Self {
        Self::default()
    }

    pub(crate) fn of(switches: impl IntoIterator<Item = Regression>) -> Self {
        Self(switches.into_iter().collect())
    }

    /// Parses a comma-separated list (`LIMAVM_REGRESS`); blanks are ignored.
    pub(crate) fn parse_list(list: &str) -> Result<Self, UnknownRegression> {
        list.split(',')
            .filter(|id| !id.trim().is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub(crate) fn extend(&mut self, other: &Regressions) {
        self.0.extend(other.0.iter().copied());
    }

    pub(crate) fn is_on(&self, regression: Regression) -> bool {
        self.0.contains(&regression)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Regression> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Regressions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let ids: Vec<&str> = self.iter().map(Regression::id).collect();
        f.write_str(&ids.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_with_blanks_and_spaces() {
        let set = Regressions::parse_list(" disk-lock-leak,,recycled-pid-kill ").unwrap();
        assert!(set.is_on(Regression::DiskLockLeak));
        assert!(set.is_on(Regression::RecycledPidKill));
        assert!(!set.is_on(Regression::WslHangUnbounded));
        assert!(Regressions::parse_list("").unwrap().is_empty());
        assert!(Regressions::parse_list("disk-lock-leak,nope").is_err());
        assert_eq!(set.to_string(), "disk-lock-leak,recycled-pid-kill");
    }
}
