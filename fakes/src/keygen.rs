//! `ssh-keygen`: makes ed25519 key pairs and derives public keys, with the
//! real tool's texts, streams and exit codes (OpenSSH 9.2 checked), and the
//! `crash_half_way` fault.

use crate::error::{FakeError, OPENSSH_FATAL, os_error_text};
use crate::getopt::getopt;
use crate::invocation::Invocation;
use crate::journal::Record;
use crate::platform;
use contract::exit;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

const TOOL: &str = "ssh-keygen";
const OPTIONS: &str = "qyb:t:N:C:f:";
/// What a shell reports for a process killed by SIGKILL.
const CRASH_CODE: i32 = 137;

#[derive(Debug, PartialEq, Eq)]
enum Request {
    Generate {
        path: PathBuf,
        comment: String,
        quiet: bool,
    },
    PrintPublic {
        path: PathBuf,
    },
}

pub(crate) fn run(invocation: &Invocation) -> Result<i32, FakeError> {
    match parse(&invocation.args)? {
        Request::Generate {
            path,
            comment,
            quiet,
        } => generate(invocation, &path, &comment, quiet),
        Request::PrintPublic { path } => Ok(print_public(&path)),
    }
}

fn parse(args: &[String]) -> Result<Request, FakeError> {
    let usage = |m: String| FakeError::usage(TOOL, m);
    let parsed = getopt(args, OPTIONS).map_err(|e| usage(e.to_string()))?;
    if let Some(extra) = parsed.operands.first() {
        return Err(usage(format!("unexpected argument {extra:?}")));
    }
    let value = |letter: char| {
        parsed
            .options
            .iter()
            .rev()
            .find(|(l, _)| *l == letter)
            .and_then(|(_, v)| v.clone())
    };
    let flag = |letter: char| parsed.options.iter().any(|(l, _)| *l == letter);
    let path = value('f')
        .map(PathBuf::from)
        .ok_or_else(|| usage("missing -f PATH (the fake never asks for a file name)".into()))?;
    if flag('y') {
        return Ok(Request::PrintPublic { path });
    }
    match value('t').as_deref() {
        Some("ed25519") => {}
        Some(other) => {
            return Err(usage(format!(
                "-t {other}: the fake makes ed25519 keys only"
            )));
        }
        None => return Err(usage("missing -t ed25519".into())),
    }
    match value('N').as_deref() {
        Some("") => {}
        Some(_) => {
            return Err(usage(
                "-N: the fake makes unencrypted keys only (-N \"\")".into(),
            ));
        }
        None => {
            return Err(usage(
                "missing -N \"\" (the fake never asks for a passphrase)".into(),
            ));
        }
    }
    let comment = value('C')
        .unwrap_or_else(|| format!("{}@{}", platform::user_name(), platform::host_name()));
    Ok(Request::Generate {
        path,
        comment,
        quiet: flag('q'),
    })
}

fn generate(
    invocation: &Invocation,
    path: &Path,
    comment: &str,
    quiet: bool,
) -> Result<i32, FakeError> {
    let shown = path.display();
    if !quiet {
        println!("Generating public/private ed25519 key pair.");
    }
    if path.symlink_metadata().is_ok() && !confirm_overwrite(path) {
        return Ok(exit::FAILURE);
    }
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| FakeError::failed(format!("key generation failed: {e}")))?;
    key.set_comment(comment);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| FakeError::failed(format!("cannot encode the private key: {e}")))?;
    if invocation.faults.crash_half_way() {
        crash_half_way(path, private.as_bytes());
    }
    if let Err(e) = write_private(path, private.as_bytes()) {
        eprint!("Saving key \"{shown}\" failed: {}\r\n", os_error_text(&e));
        return Ok(exit::FAILURE);
    }
    let public_path = public_path(path);
    let mut public = key
        .public_key()
        .to_openssh()
        .map_err(|e| FakeError::failed(format!("cannot encode the public key: {e}")))?;
    // The real tool writes "<type> <key> <comment>", keeping the separator
    // when the comment is empty.
    if comment.is_empty() {
        public.push(' ');
    }
    public.push('\n');
    if let Err(e) = std::fs::write(&public_path, public) {
        eprint!(
            "Unable to save public key to {}: {}\r\n",
            public_path.display(),
            os_error_text(&e)
        );
        return Ok(exit::FAILURE);
    }
    invocation.journal.record(Record::KeyWritten {
        path: path.to_owned(),
        public_path: public_path.to_owned(),
    });
    if !quiet {
        println!("Your identification has been saved in {shown}");
        println!(
            "Your public key has been saved in {}",
            public_path.display()
        );
    }
    Ok(exit::OK)
}

/// The real tool asks on stdout and reads one line of stdin, terminal or
/// not: a line starting with `y` or `Y` overwrites, anything else (end of
/// input included) gives up with exit code 1.
fn confirm_overwrite(path: &Path) -> bool {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{} already exists.\nOverwrite (y/n)? ", path.display());
    let _ = out.flush();
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(0) | Err(_) => false,
        Ok(_) => answer.starts_with(['y', 'Y']),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = platform::create_private_file(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Fault `crash_half_way`: the first half of the private key lands on the
/// final path, then the process dies without a word and without `.pub`.
fn crash_half_way(path: &Path, private: &[u8]) -> ! {
    let _ = write_private(path, &private[..private.len() / 2]);
    std::process::exit(CRASH_CODE);
}

fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// `-y -f PATH`: the public key of a private key, comment appended when the
/// key has one. Errors are `fatal()` lines (CRLF) with exit code 255.
fn print_public(path: &Path) -> i32 {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprint!("{shown}: {}\r\n", os_error_text(&e));
            return OPENSSH_FATAL;
        }
    };
    if let Some(mode) = platform::too_open_key_mode(path) {
        warn_unprotected(path, mode);
        return OPENSSH_FATAL;
    }
    let public = PrivateKey::from_openssh(&bytes)
        .ok()
        .filter(|key| !key.is_encrypted())
        .and_then(|key| key.public_key().to_openssh().ok());
    match public {
        Some(line) => {
            println!("{line}");
            0
        }
        None => {
            eprint!("Load key \"{shown}\": error in libcrypto\r\n");
            OPENSSH_FATAL
        }
    }
}

/// OpenSSH's refusal of a private key whose mode lets others read it.
pub(crate) fn warn_unprotected(path: &Path, mode: u32) {
    let border = "@".repeat(59);
    eprint!(
        "{border}\r\n@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\r\n{border}\r\n\
         Permissions 0{mode:o} for '{shown}' are too open.\r\n\
         It is required that your private key files are NOT accessible by others.\r\n\
         This private key will be ignored.\r\n\
         Load key \"{shown}\": bad permissions\r\n",
        shown = path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::strings;

    #[test]
    fn lima_s_command_line_parses() {
        let request = parse(&strings(&[
            "-t", "ed25519", "-q", "-N", "", "-C", "lima", "-f", "/k/user",
        ]))
        .unwrap();
        assert_eq!(
            request,
            Request::Generate {
                path: "/k/user".into(),
                comment: "lima".into(),
                quiet: true
            }
        );
        assert_eq!(
            parse(&strings(&["-y", "-f", "/k/user"])).unwrap(),
            Request::PrintPublic {
                path: "/k/user".into()
            }
        );
    }

    #[test]
    fn what_the_fake_cannot_do_is_refused_by_name() {
        let err = parse(&strings(&["-t", "rsa", "-N", "", "-f", "k"])).unwrap_err();
        assert!(err.to_string().contains("rsa"), "{err}");
        let err = parse(&strings(&["-t", "ed25519", "-f", "k"])).unwrap_err();
        assert!(err.to_string().contains("-N"), "{err}");
        let err = parse(&strings(&["-t", "ed25519", "-N", ""])).unwrap_err();
        assert!(err.to_string().contains("-f"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
