//! The one way this crate prints an error: its message, then the message
//! of each cause, so that an error whose message leaves its cause out (the
//! workspace's style: `thiserror` message plus `#[source]`) loses nothing.

use std::error::Error;

/// `error`'s message followed by each [`Error::source`]'s, joined by `": "`
/// (`starting the service: spawning reconciler: No such file`).
pub(crate) fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("starting the service")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_printed_once_in_order() {
        let error = Outer(std::io::Error::other("no such file"));
        assert_eq!(chain(&error), "starting the service: no such file");
    }
}
