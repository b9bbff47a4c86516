//! The one way the workspace prints an error: its message, then each cause
//! from [`Error::source`] after `": "`. Error types hold their cause as a
//! source and leave it out of their own message (a `thiserror` message plus
//! `#[source]`), so each cause is printed once, here, and no printer has to
//! remove repeats.

use std::error::Error;
use std::fmt;

/// Displays an error and its chain of sources on one line
/// (`cannot lock /s/.lock: Permission denied (os error 13)`).
pub struct ErrorChain<'a>(pub &'a dyn Error);

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

/// `error` and its causes as one string, as [`ErrorChain`] displays them
/// (for status messages, log fields and reports).
pub fn chain(error: &dyn Error) -> String {
    ErrorChain(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("starting the service")]
    struct Outer(#[source] Spawn);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot run ssh-keygen")]
    struct Spawn(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once_in_order() {
        let error = Outer(Spawn(std::io::Error::other("no such file")));
        assert_eq!(
            chain(&error),
            "starting the service: cannot run ssh-keygen: no such file"
        );
    }

    #[test]
    fn an_error_without_a_source_is_its_message() {
        assert_eq!(chain(&std::io::Error::other("gone")), "gone");
    }
}
