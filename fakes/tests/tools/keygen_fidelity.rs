//! The fake ssh-keygen against the real one, where it is installed: the
//! same refusal, the same error texts, and keys each reads from the other.

use crate::sandbox::{Sandbox, stderr_of, stdout_of};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const REAL: &str = "/usr/bin/ssh-keygen";

/// The real tool, or `None` after saying why the test is skipped.
fn real_keygen() -> Option<PathBuf> {
    let real = PathBuf::from(REAL);
    if cfg!(unix) && real.is_file() {
        Some(real)
    } else {
        println!("skipped: no real ssh-keygen at {REAL}");
        None
    }
}

fn run_with(program: Command, args: &[&str], path: &Path) -> Output {
    let mut cmd = program;
    cmd.args(args).arg(path).stdin(Stdio::null());
    cmd.output().unwrap()
}

fn fake(sandbox: &Sandbox, args: &[&str], path: &Path) -> Output {
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(args).arg(path);
    sandbox.run(cmd)
}

const GENERATE: &[&str] = &["-t", "ed25519", "-q", "-N", "", "-C", "lima", "-f"];
const PRINT: &[&str] = &["-y", "-f"];

#[test]
fn both_refuse_an_existing_key_alike_without_a_terminal() {
    let Some(real) = real_keygen() else { return };
    let sandbox = Sandbox::new();
    let path = sandbox.home().join("user");
    assert!(fake(&sandbox, GENERATE, &path).status.success());
    let theirs = run_with(Command::new(&real), GENERATE, &path);
    let ours = fake(&sandbox, GENERATE, &path);
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(stdout_of(&ours), stdout_of(&theirs));
    assert_eq!(stderr_of(&ours), stderr_of(&theirs));
    assert!(
        stdout_of(&theirs).ends_with("Overwrite (y/n)? "),
        "{}",
        stdout_of(&theirs)
    );
}

#[test]
fn the_real_tool_derives_the_public_key_the_fake_wrote() {
    let Some(real) = real_keygen() else { return };
    let sandbox = Sandbox::new();
    let path = sandbox.home().join("user");
    assert!(fake(&sandbox, GENERATE, &path).status.success());
    let theirs = run_with(Command::new(&real), PRINT, &path);
    assert_eq!(theirs.status.code(), Some(0), "{}", stderr_of(&theirs));
    let written = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
    assert_eq!(stdout_of(&theirs), written);
}

#[test]
fn the_fake_derives_the_public_key_the_real_tool_wrote() {
    let Some(real) = real_keygen() else { return };
    let sandbox = Sandbox::new();
    for comment in ["lima", ""] {
        let path = sandbox.home().join(format!("user-{}", comment.len()));
        let args = ["-t", "ed25519", "-q", "-N", "", "-C", comment, "-f"];
        assert!(run_with(Command::new(&real), &args, &path).status.success());
        let ours = fake(&sandbox, PRINT, &path);
        let theirs = run_with(Command::new(&real), PRINT, &path);
        assert_eq!(ours.status.code(), Some(0), "{}", stderr_of(&ours));
        assert_eq!(stdout_of(&ours), stdout_of(&theirs), "comment {comment:?}");
    }
}

#[test]
fn both_write_the_same_public_key_file_format_for_an_empty_comment() {
    let Some(real) = real_keygen() else { return };
    let sandbox = Sandbox::new();
    let args = ["-t", "ed25519", "-q", "-N", "", "-C", "", "-f"];
    let (ours, theirs) = (sandbox.home().join("ours"), sandbox.home().join("theirs"));
    assert!(fake(&sandbox, &args, &ours).status.success());
    assert!(
        run_with(Command::new(&real), &args, &theirs)
            .status
            .success()
    );
    let shape = |path: &Path| {
        let text = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
        let fields: Vec<&str> = text.split(' ').collect();
        (
            fields.len(),
            fields[0].to_owned(),
            fields[1].len(),
            fields[2].to_owned(),
        )
    };
    assert_eq!(shape(&ours), shape(&theirs));
}

#[test]
fn both_fail_alike_on_missing_and_corrupt_keys() {
    let Some(real) = real_keygen() else { return };
    let sandbox = Sandbox::new();
    let missing = sandbox.home().join("missing");
    let corrupt = sandbox.home().join("corrupt");
    std::fs::write(&corrupt, "not a key\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&corrupt, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for path in [&missing, &corrupt] {
        let ours = fake(&sandbox, PRINT, path);
        let theirs = run_with(Command::new(&real), PRINT, path);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{}",
            path.display()
        );
        assert_eq!(stderr_of(&ours), stderr_of(&theirs));
        assert_eq!(stdout_of(&ours), stdout_of(&theirs));
    }
}
