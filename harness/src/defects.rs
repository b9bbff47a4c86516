//! Defects a run finds beyond its own scenario's check, each under its
//! own name: a finding of the catalogue (a tmp file left after a forced
//! stop is `bracketed-home-path`'s, whatever scenario saw it; what the
//! service's shutdown left running is `shutdown-fallback-skips-cleanup`'s)
//! or an invariant ([`crate::invariants`]). One run can so name two
//! defects, and neither hides the other.

use crate::invariants::Invariant;
use contract::FindingId;

/// What a defect is filed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Defect {
    /// A finding of the catalogue.
    Finding(FindingId),
    /// An invariant every scenario is held to.
    Invariant(Invariant),
}

impl Defect {
    /// The stable ID: the finding's (`bracketed-home-path`) or the
    /// invariant's (`stopped-is-true`); the two sets do not overlap.
    pub const fn id(self) -> &'static str {
        match self {
            Defect::Finding(f) => f.id(),
            Defect::Invariant(i) => i.id(),
        }
    }

    /// The defect whose ID is `id`.
    pub fn find(id: &str) -> Option<Defect> {
        FindingId::ALL
            .iter()
            .find(|f| f.id() == id)
            .map(|f| Defect::Finding(*f))
            .or_else(|| Invariant::find(id).map(Defect::Invariant))
    }
}

impl From<FindingId> for Defect {
    fn from(finding: FindingId) -> Self {
        Defect::Finding(finding)
    }
}

impl From<Invariant> for Defect {
    fn from(invariant: Invariant) -> Self {
        Defect::Invariant(invariant)
    }
}

/// One defect seen in a run, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Which defect.
    pub defect: Defect,
    /// What was seen that shows it.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_and_invariant_ids_are_apart_and_found_again() {
        for f in FindingId::ALL {
            assert!(Invariant::find(f.id()).is_none(), "{f}");
            assert_eq!(Defect::find(f.id()), Some(Defect::Finding(*f)));
        }
        for i in Invariant::ALL {
            assert_eq!(Defect::find(i.id()), Some(Defect::Invariant(*i)));
        }
        assert_eq!(Defect::find("no-such-defect"), None);
    }
}
