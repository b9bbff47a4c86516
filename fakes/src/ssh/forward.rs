//! `ssh -L`: parsing a local forward as OpenSSH's `parse_forward`
//! (readconf.c) does, and taking its host side as `ssh` does.

use crate::error::os_error_text;
use crate::journal::Record;
use std::net::TcpListener;

/// `-L [bind_address:]port:host:hostport` (or `...:remote_socket`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LocalForward {
    /// The address the host side listens on (`127.0.0.1` for none or
    /// `localhost`, `0.0.0.0` for `*` or empty).
    pub(crate) bind_address: String,
    /// The host port, never 0.
    pub(crate) port: u16,
}

impl LocalForward {
    #[cfg(test)]
    pub(crate) fn new(bind_address: &str, port: u16) -> Self {
        Self {
            bind_address: bind_address.to_owned(),
            port,
        }
    }
}

/// Takes the host side of `forward`, journaled; on failure prints
/// OpenSSH's messages and returns `None`.
pub(crate) fn bind_forward(
    forward: &LocalForward,
    journal: &crate::journal::JournalWriter,
) -> Option<TcpListener> {
    match crate::ports::bind(&forward.bind_address, forward.port) {
        Ok(listener) => {
            journal.record(Record::PortBound { port: forward.port });
            Some(listener)
        }
        Err(error) => {
            let text = os_error_text(&error);
            journal.record(Record::PortBindFailed {
                port: forward.port,
                error: text.clone(),
            });
            eprint!(
                "bind [{}]:{}: {text}\r\nchannel_setup_fwd_listener_tcpip: cannot listen to port: {}\r\n",
                forward.bind_address, forward.port, forward.port
            );
            eprint!("Could not request local forwarding.\r\n");
            None
        }
    }
}

/// Parses the spec of `-L`, or `None` when OpenSSH would refuse it.
pub(crate) fn parse_forward(spec: &str) -> Option<LocalForward> {
    let fields = split_fields(spec)?;
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let (bind, port) = match fields[..] {
        // bind:port:host:hostport
        [bind, port, _, _] => (Some(bind), port),
        // port:host:hostport, or bind:port:remote_socket
        [first, _, _] if first.parse::<u16>().is_ok() => (None, first),
        [bind, port, _] => (Some(bind), port),
        // port:remote_socket
        [port, _] => (None, port),
        _ => return None,
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let bind_address = match bind {
        None | Some("localhost") => "127.0.0.1",
        Some("" | "*") => "0.0.0.0",
        Some(address) => address,
    };
    Some(LocalForward {
        bind_address: bind_address.to_owned(),
        port,
    })
}

/// Splits on `:` outside `[...]` (IPv6 addresses), dropping the brackets.
fn split_fields(spec: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut in_brackets = false;
    for c in spec.chars() {
        match c {
            '[' if !in_brackets => in_brackets = true,
            ']' if in_brackets => in_brackets = false,
            ':' if !in_brackets => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (!in_brackets).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_specs_in_every_form() {
        let accepted = [
            ("8080:localhost:80", "127.0.0.1"),
            ("127.0.0.2:8080:localhost:80", "127.0.0.2"),
            ("*:8080:h:80", "0.0.0.0"),
            ("[::1]:8080:[::1]:80", "::1"),
            ("8080:/run/sock", "127.0.0.1"),
            ("localhost:8080:/run/s", "127.0.0.1"),
        ];
        for (spec, bind_address) in accepted {
            let expected = LocalForward::new(bind_address, 8080);
            assert_eq!(parse_forward(spec), Some(expected), "{spec}");
        }
        for refused in ["x:y", "0:h:80", "1:2:3:4:5"] {
            assert_eq!(parse_forward(refused), None, "{refused}");
        }
    }
}
