//! What `wsl.exe` prints: UTF-16LE with CRLF line ends, unless `WSL_UTF8=1`
//! asks for UTF-8 (the line ends stay CRLF). Errors go to stdout as well.

use std::io::Write;

pub(crate) const UTF8_ENV: &str = "WSL_UTF8";

/// Prints `lines` the way `wsl.exe` does.
pub(crate) fn print_lines<S: AsRef<str>>(lines: &[S]) {
    let utf8 = std::env::var(UTF8_ENV).is_ok_and(|v| v == "1");
    let bytes = encode(lines, utf8);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&bytes);
    let _ = out.flush();
}

fn encode<S: AsRef<str>>(lines: &[S], utf8: bool) -> Vec<u8> {
    let text: String = lines
        .iter()
        .map(|line| format!("{}\r\n", line.as_ref()))
        .collect();
    if utf8 {
        text.into_bytes()
    } else {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }
}

/// Decodes `wsl.exe` output in either encoding: UTF-16LE when the bytes
/// look like it (a BOM, or NULs in odd places), else UTF-8. CRLF becomes LF.
pub fn decode_output(bytes: &[u8]) -> String {
    let utf16 = bytes.starts_with(&[0xFF, 0xFE])
        || (bytes.len().is_multiple_of(2)
            && bytes.len() >= 2
            && bytes.iter().skip(1).step_by(2).any(|b| *b == 0));
    let text = if utf16 {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        let text = String::from_utf16_lossy(&units);
        text.strip_prefix('\u{FEFF}')
            .map(str::to_owned)
            .unwrap_or(text)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    text.replace("\r\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_round_trip_with_crlf() {
        let utf16 = encode(&["lima-a", "lima-b"], false);
        assert_eq!(&utf16[..4], b"l\0i\0");
        assert!(utf16.ends_with(b"\r\0\n\0"));
        assert_eq!(decode_output(&utf16), "lima-a\nlima-b\n");
        let utf8 = encode(&["lima-a"], true);
        assert_eq!(utf8, b"lima-a\r\n");
        assert_eq!(decode_output(&utf8), "lima-a\n");
        assert_eq!(decode_output(b""), "");
    }
}
