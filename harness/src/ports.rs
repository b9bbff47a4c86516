//! Port probes: pick free ports, and check that a port can be bound again.

use std::net::{Ipv4Addr, TcpListener};

/// A port that was free when asked (`portpicker`), for a forward to use.
pub fn pick_free_port() -> u16 {
    portpicker::pick_unused_port().expect("the machine has free TCP ports")
}

/// True when a listener can bind 127.0.0.1:`port` right now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_not_free_and_is_free_again_after_release() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free(port));
        drop(listener);
        assert!(is_free(port));
    }
}
