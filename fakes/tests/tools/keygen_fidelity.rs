//! The fake ssh-keygen against the real one, where it is installed: the
//! same refusal, the same error texts, and keys each reads from the other.

use crate::sandbox::{Sandbox, stdout_of};
use assert_cmd::assert::{Assert, OutputAssertExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real tool from this machine's PATH, or `None` after saying why the
/// test is skipped (none there, or not Unix: the fake imitates OpenSSH's).
fn real_keygen(test: &str) -> Option<PathBuf> {
    match harness::Toolset::resolve_real(contract::Tool::SshKeygen) {
        Ok(real) if cfg!(unix) => Some(real),
        Ok(_) => {
            eprintln!("SKIPPED: {test}: compares with OpenSSH's ssh-keygen on Unix only");
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: {test}: {e}");
            None
        }
    }
}

/// The real tool with `args` and `path`, bounded like the fake.
fn real(sandbox: &Sandbox, real: &Path, args: &[&str], path: &Path) -> Output {
    let mut cmd = Command::new(real);
    cmd.args(args).arg(path);
    sandbox.run(cmd)
}

fn fake(sandbox: &Sandbox, args: &[&str], path: &Path) -> Assert {
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(args).arg(path);
    sandbox.assert(cmd)
}

/// Asserts the fake's run ends as the real tool's did, with the same output.
fn assert_alike(ours: Assert, theirs: &Output) {
    let ours = match theirs.status.code() {
        Some(code) => ours.code(code),
        None => ours.interrupted(),
    };
    ours.stdout(theirs.stdout.clone())
        .stderr(theirs.stderr.clone());
}

const GENERATE: &[&str] = &["-t", "ed25519", "-q", "-N", "", "-C", "lima", "-f"];
const PRINT: &[&str] = &["-y", "-f"];

#[test]
fn both_refuse_an_existing_key_alike_without_a_terminal() {
    let Some(keygen) = real_keygen("both_refuse_an_existing_key_alike") else {
        return;
    };
    let sandbox = Sandbox::new();
    let path = sandbox.home().join("user");
    fake(&sandbox, GENERATE, &path).success();
    let theirs = real(&sandbox, &keygen, GENERATE, &path);
    assert_alike(fake(&sandbox, GENERATE, &path), &theirs);
    assert!(
        stdout_of(&theirs).ends_with("Overwrite (y/n)? "),
        "{}",
        stdout_of(&theirs)
    );
}

#[test]
fn the_real_tool_derives_the_public_key_the_fake_wrote() {
    let Some(keygen) = real_keygen("the_real_tool_derives_the_public_key") else {
        return;
    };
    let sandbox = Sandbox::new();
    let path = sandbox.home().join("user");
    fake(&sandbox, GENERATE, &path).success();
    let written = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
    real(&sandbox, &keygen, PRINT, &path)
        .assert()
        .success()
        .stdout(written);
}

#[test]
fn the_fake_derives_the_public_key_the_real_tool_wrote() {
    let Some(keygen) = real_keygen("the_fake_derives_the_public_key") else {
        return;
    };
    let sandbox = Sandbox::new();
    for comment in ["lima", ""] {
        let path = sandbox.home().join(format!("user-{}", comment.len()));
        let args = ["-t", "ed25519", "-q", "-N", "", "-C", comment, "-f"];
        real(&sandbox, &keygen, &args, &path).assert().success();
        let theirs = real(&sandbox, &keygen, PRINT, &path);
        fake(&sandbox, PRINT, &path).success().stdout(theirs.stdout);
    }
}

#[test]
fn both_write_the_same_public_key_file_format_for_an_empty_comment() {
    let Some(keygen) = real_keygen("both_write_the_same_public_key_file_format") else {
        return;
    };
    let sandbox = Sandbox::new();
    let args = ["-t", "ed25519", "-q", "-N", "", "-C", "", "-f"];
    let (ours, theirs) = (sandbox.home().join("ours"), sandbox.home().join("theirs"));
    fake(&sandbox, &args, &ours).success();
    real(&sandbox, &keygen, &args, &theirs).assert().success();
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
    let Some(keygen) = real_keygen("both_fail_alike_on_missing_and_corrupt_keys") else {
        return;
    };
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
        let theirs = real(&sandbox, &keygen, PRINT, path);
        assert!(!theirs.status.success(), "{}", path.display());
        assert_alike(fake(&sandbox, PRINT, path), &theirs);
    }
}
