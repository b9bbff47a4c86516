//! The one way the reconciler prints an error: its message, then each
//! cause from [`Error::source`] after `": "`. Error types hold their cause
//! as a source and leave it out of their own message, so each cause is
//! printed once, by this printer.

use std::error::Error;
use std::fmt;

/// Displays `error` and its chain of sources on one line
/// (`cannot lock /s/.lock: Permission denied (os error 13)`).
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

/// `error` and its causes as one string (for status messages and log
/// fields).
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    ErrorChain(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot run ssh-keygen")]
    struct Spawn(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once_in_order() {
        let error = Spawn(std::io::Error::other("no such file"));
        assert_eq!(chain(&error), "cannot run ssh-keygen: no such file");
    }
}
