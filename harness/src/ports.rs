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

/// The processes holding a listening TCP socket on `port` (any address),
/// as `(pid, command line)`: what a journal of the fakes would name, found
/// from `/proc/net/tcp{,6}` and each process's file descriptors. Processes
/// this user cannot inspect are left out; empty where there is no `/proc`.
pub fn listeners(port: u16) -> Vec<(u32, String)> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .is_some_and(|inode| inodes.iter().any(|i| i == inode))
            })
        });
        if holds {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline)
                .split('\0')
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            found.push((pid, cmdline));
        }
    }
    found
}

/// Socket inodes in state LISTEN (0A) on local port `port`.
fn listening_inodes(port: u16) -> Vec<String> {
    let wanted = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    (local_port == wanted && *fields.get(3)? == "0A")
                        .then(|| fields.get(9).map(|i| (*i).to_owned()))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect()
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

    #[cfg(target_os = "linux")]
    #[test]
    fn the_listener_of_a_port_is_this_process() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let holders = listeners(port);
        assert_eq!(
            holders.iter().map(|(pid, _)| *pid).collect::<Vec<_>>(),
            [std::process::id()]
        );
        drop(listener);
        assert!(listeners(port).is_empty());
    }
}
