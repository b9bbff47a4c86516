//! Lima's checks of `portForwards` rules (`limayaml/validate.go:Validate`),
//! after the defaults Lima fills in first (`limayaml/defaults.go:
//! FillPortForwardDefaults`: a missing guest range is the guest port, or
//! every port; a missing host range is the host port, or the guest range).

use super::yaml::{list, port_problem, text};
use super::{Refusal, Rule};
use serde_norway::Value;

/// One rule's fields, with Lima's defaults filled in.
struct Forward<'a> {
    field: String,
    guest_port: i64,
    host_port: i64,
    guest_range: [i64; 2],
    host_range: [i64; 2],
    guest_socket: &'a str,
    host_socket: &'a str,
    proto: &'a str,
}

impl<'a> Forward<'a> {
    fn read(i: usize, rule: &'a Value) -> Self {
        let port = |key: &str| rule.get(key).and_then(Value::as_i64).unwrap_or(0);
        let range = |key: &str| match rule.get(key).and_then(Value::as_sequence) {
            Some(pair) if pair.len() == 2 => [0, 1].map(|j| pair[j].as_i64().unwrap_or(0)),
            _ => [0, 0],
        };
        let (guest_port, host_port) = (port("guestPort"), port("hostPort"));
        let host_socket = text(rule, "hostSocket").unwrap_or("");
        let mut guest_range = range("guestPortRange");
        if guest_range == [0, 0] {
            guest_range = if guest_port == 0 {
                [1, 65535]
            } else {
                [guest_port, guest_port]
            };
        }
        let mut host_range = range("hostPortRange");
        if host_socket.is_empty() && host_range == [0, 0] {
            host_range = if host_port == 0 {
                guest_range
            } else {
                [host_port, host_port]
            };
        }
        Self {
            field: format!("portForwards[{i}]"),
            guest_port,
            host_port,
            guest_range,
            host_range,
            guest_socket: text(rule, "guestSocket").unwrap_or(""),
            host_socket,
            proto: text(rule, "proto").unwrap_or("any"),
        }
    }

    fn refuse(&self, rule: Rule, key: &str, problem: impl Into<String>) -> Refusal {
        Refusal::new(rule, format!("{}.{key}", self.field), problem)
    }

    /// The ports Lima judges with `validatePort`, by field.
    fn ports(&self) -> Vec<(String, i64)> {
        let mut ports = Vec::new();
        if self.guest_port != 0 {
            ports.push(("guestPort".to_owned(), self.guest_port));
        }
        if self.host_port != 0 {
            ports.push(("hostPort".to_owned(), self.host_port));
        }
        for j in 0..2 {
            ports.push((format!("guestPortRange[{j}]"), self.guest_range[j]));
            if self.host_socket.is_empty() {
                ports.push((format!("hostPortRange[{j}]"), self.host_range[j]));
            }
        }
        ports
    }

    fn check_sides(&self) -> Result<(), Refusal> {
        for (key, port, socket, socket_key, range) in [
            (
                "guestPort",
                self.guest_port,
                self.guest_socket,
                "guestSocket",
                self.guest_range,
            ),
            (
                "hostPort",
                self.host_port,
                self.host_socket,
                "hostSocket",
                self.host_range,
            ),
        ] {
            if port == 0 {
                continue;
            }
            if !socket.is_empty() {
                return Err(self.refuse(
                    Rule::PfPortWithSocket,
                    key,
                    format!("must be 0 when field `{}.{socket_key}` is set", self.field),
                ));
            }
            if port != range[0] {
                return Err(self.refuse(
                    Rule::PfPortRangeMatch,
                    key,
                    format!("must match field `{}.{key}Range[0]`", self.field),
                ));
            }
        }
        Ok(())
    }

    fn check_ranges(&self) -> Result<(), Refusal> {
        if let Some((key, problem)) = self
            .ports()
            .into_iter()
            .find_map(|(key, port)| port_problem(port).map(|p| (key, p)))
        {
            return Err(self.refuse(Rule::PfPortValues, &key, problem));
        }
        for (key, range) in [
            ("guestPortRange", self.guest_range),
            ("hostPortRange", self.host_range),
        ] {
            if range[0] > range[1] {
                return Err(self.refuse(
                    Rule::PfRangeOrder,
                    &format!("{key}[1]"),
                    format!("must be greater than or equal to field `{key}[0]`"),
                ));
            }
        }
        let span = |r: [i64; 2]| r[1] - r[0];
        if self.host_socket.is_empty() && span(self.guest_range) != span(self.host_range) {
            return Err(self.refuse(
                Rule::PfRangeSize,
                "hostPortRange",
                "must specify the same number of ports as field `guestPortRange`",
            ));
        }
        Ok(())
    }

    fn check_rest(&self) -> Result<(), Refusal> {
        if !self.guest_socket.is_empty() && !self.guest_socket.starts_with('/') {
            return Err(self.refuse(
                Rule::PfGuestsocketAbsolute,
                "guestSocket",
                format!("must be an absolute path, but is {:?}", self.guest_socket),
            ));
        }
        if !matches!(self.proto, "tcp" | "udp" | "any") {
            return Err(self.refuse(Rule::PfProto, "proto", "must be tcp, udp, or any"));
        }
        Ok(())
    }
}

/// Lima's checks of every `portForwards` rule; the first refusal.
pub(super) fn check_port_forwards(doc: &Value) -> Result<(), Refusal> {
    for (i, rule) in list(doc, "portForwards").iter().enumerate() {
        let forward = Forward::read(i, rule);
        forward.check_sides()?;
        forward.check_ranges()?;
        forward.check_rest()?;
    }
    Ok(())
}
