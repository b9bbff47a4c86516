//! The hostagent's HTTP API on `ha.sock`, reduced to `GET /v1/info`.
//!
//! One request per connection, `Connection: close`: that is all a status
//! probe needs, so a few lines of HTTP/1.1 replace an HTTP stack.

use crate::socket::{UnixListener, UnixStream};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

/// The body of `GET /v1/info` (Lima's `pkg/hostagent/api` `Info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// `sshLocalPort`: the host port of the guest's sshd.
    pub ssh_local_port: u16,
}

/// Why [`query_info`] got no `Info`; the I/O error, when there is one, is
/// the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// Nothing accepted the connection (no hostagent, or a stale socket).
    #[error("cannot connect to {path}")]
    Connect {
        /// The socket, as displayed.
        path: String,
        /// The connect's error.
        source: std::io::Error,
    },
    /// The request or the answer failed or timed out.
    #[error("no answer from {path}")]
    Io {
        /// The socket, as displayed.
        path: String,
        /// The read's or write's error.
        source: std::io::Error,
    },
    /// The answer was not `200` with an `Info` body.
    #[error("bad answer from {path}: {message}")]
    BadAnswer {
        /// The socket, as displayed.
        path: String,
        /// What was wrong with it.
        message: String,
    },
}

/// Asks a hostagent for `/v1/info`, waiting at most `timeout` for each read.
pub fn query_info(socket: &Path, timeout: Duration) -> Result<Info, InfoError> {
    let path = socket.display().to_string();
    let io = |source| InfoError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| InfoError::Connect {
        path: path.clone(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream
        .write_all(b"GET /v1/info HTTP/1.1\r\nHost: lima-hostagent\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    let (status_line, body) = read_answer(BufReader::new(stream)).map_err(io)?;
    let bad = |message: String| InfoError::BadAnswer {
        path: path.clone(),
        message,
    };
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(bad(format!("status line {status_line:?}")));
    }
    serde_json::from_str(&body).map_err(|e| bad(format!("body {body:?}: {e}")))
}

/// The status line and body of an HTTP/1.1 answer. The body is read by its
/// `Content-Length`, not to the end of the stream: a server that resets the
/// connection after a complete answer (as Windows does when a socket is
/// closed with unread data) still gives a good one. Without the header the
/// body is whatever comes until the peer closes.
fn read_answer(mut reader: impl BufRead) -> std::io::Result<(String, String)> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let mut content_length = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the answer ended inside its headers (status line {status_line:?})"),
            ));
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    match content_length {
        Some(len) => {
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    let body = String::from_utf8(body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((status_line.trim_end().to_owned(), body))
}

/// Serves `/v1/info` on `listener` until the listener fails (it is closed
/// when the process exits). Runs on the calling thread.
pub fn serve_info(listener: UnixListener, info: &Info) {
    let body = serde_json::to_string(info).expect("Info serialises");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { break };
        let _ = answer_one(stream, &body);
    }
}

fn answer_one(stream: UnixStream, info_body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees a clean close.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let (status, body) = match request_line.split_whitespace().collect::<Vec<_>>()[..] {
        ["GET", "/v1/info", ..] => ("200 OK", info_body.to_owned()),
        _ => ("404 Not Found", "{\"message\":\"not found\"}".to_owned()),
    };
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Binds the socket, reporting a path beyond the platform's limit clearly.
pub fn bind(socket: &Path) -> std::io::Result<UnixListener> {
    let len = socket.as_os_str().len();
    if len > crate::paths::max_socket_path_len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "socket path {} is {len} bytes, over the platform limit of {}",
                socket.display(),
                crate::paths::max_socket_path_len()
            ),
        ));
    }
    UnixListener::bind(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_info_is_read_back() {
        if proctree::skip_under_wine(proctree::wine_lacks::AF_UNIX) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ha.sock");
        let listener = bind(&sock).unwrap();
        std::thread::spawn(move || {
            serve_info(
                listener,
                &Info {
                    ssh_local_port: 60022,
                },
            )
        });
        let info = query_info(&sock, Duration::from_secs(2)).unwrap();
        assert_eq!(info.ssh_local_port, 60022);
    }

    #[test]
    fn an_answer_is_read_by_its_content_length_and_an_error_after_it_is_ignored() {
        /// Gives `data`, then fails as a reset connection does.
        struct ThenReset(std::io::Cursor<Vec<u8>>);
        impl std::io::Read for ThenReset {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(std::io::ErrorKind::ConnectionReset.into()),
                    n => Ok(n),
                }
            }
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 22\r\n\r\n{\"sshLocalPort\":60022}";
        let (status, body) = read_answer(BufReader::new(ThenReset(std::io::Cursor::new(
            answer.to_vec(),
        ))))
        .unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "{\"sshLocalPort\":60022}");

        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}";
        let err = read_answer(BufReader::new(std::io::Cursor::new(cut.to_vec()))).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        let headless = b"HTTP/1.1 200 OK\r\nContent-Type: x";
        let err = read_answer(BufReader::new(std::io::Cursor::new(headless.to_vec()))).unwrap_err();
        assert!(err.to_string().contains("inside its headers"), "{err}");
    }

    #[test]
    fn a_missing_socket_is_a_connect_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = query_info(&dir.path().join("none.sock"), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, InfoError::Connect { .. }));
        assert!(err.to_string().contains("none.sock"));
    }

    #[test]
    fn an_over_long_socket_path_is_refused_with_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("x".repeat(120)).with_extension("sock");
        let err = bind(&sock).unwrap_err();
        assert!(err.to_string().contains("over the platform limit"), "{err}");
    }
}
