//! Reading a lima.yaml document as Lima's checks do: leniently (a key of
//! the wrong type reads as absent; the parser's own rules judge types), and
//! the port rule several fields share.

use serde_norway::Value;

/// `doc[key]` as text, when it is a string.
pub(super) fn text<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

/// `doc[key]` as a list (empty when absent or not a list).
pub(super) fn list<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc.get(key)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// Lima's `validatePort`: 1 to 65535, not 22.
pub(super) fn port_problem(port: i64) -> Option<&'static str> {
    match port {
        ..0 => Some("must be > 0"),
        0 => Some("must be set"),
        22 => Some("must not be 22"),
        65536.. => Some("must be < 65536"),
        _ => None,
    }
}
