//! Holding TCP ports the way ssh forwards and QEMU's hostfwd do.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

/// Binds `port` on `host` (an address or a name such as `localhost`).
pub(crate) fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addresses: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    TcpListener::bind(&addresses[..])
}
