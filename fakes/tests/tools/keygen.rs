//! `ssh-keygen`: key pairs, the overwrite refusal, `-y`, and its faults.

use crate::sandbox::{Sandbox, stderr_of, stdout_of};
use fakes::journal::{Record, event};
use serde_json::json;
use ssh_key::PrivateKey;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn generate(sandbox: &Sandbox, path: &Path, comment: &str) -> Output {
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "ed25519", "-q", "-N", "", "-C", comment, "-f"])
        .arg(path);
    sandbox.run(cmd)
}

fn print_public(sandbox: &Sandbox, path: &Path) -> Output {
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-y", "-f"]).arg(path);
    sandbox.run(cmd)
}

fn key_path(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.lima_home().config_dir();
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("user")
}

fn public_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", path.display()))
}

#[test]
fn writes_a_matching_ed25519_pair() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    let output = generate(&sandbox, &path, "lima");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(stdout_of(&output), "", "-q prints nothing");
    let private = PrivateKey::read_openssh_file(&path).unwrap();
    assert_eq!(private.algorithm(), ssh_key::Algorithm::Ed25519);
    assert_eq!(private.comment(), "lima");
    let public = std::fs::read_to_string(public_path(&path)).unwrap();
    assert_eq!(
        public,
        format!("{}\n", private.public_key().to_openssh().unwrap())
    );
    assert!(
        public.starts_with("ssh-ed25519 AAAA") && public.ends_with(" lima\n"),
        "{public}"
    );
    let written = sandbox.events(event::KEY_WRITTEN);
    assert!(
        matches!(&written[0].record, Record::KeyWritten { path: p, .. } if *p == path),
        "{written:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode {mode:o}");
    }
}

#[test]
fn refuses_an_existing_key_when_stdin_says_nothing() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    assert!(generate(&sandbox, &path, "lima").status.success());
    let before = std::fs::read(&path).unwrap();
    let output = generate(&sandbox, &path, "other");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_of(&output),
        format!("{} already exists.\nOverwrite (y/n)? ", path.display())
    );
    assert_eq!(stderr_of(&output), "");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the key changed");
}

#[test]
fn overwrites_an_existing_key_when_stdin_answers_yes() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    assert!(generate(&sandbox, &path, "lima").status.success());
    let before = std::fs::read(&path).unwrap();
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "ed25519", "-q", "-N", "", "-C", "again", "-f"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_ne!(
        std::fs::read(&path).unwrap(),
        before,
        "the key was not replaced"
    );
    assert!(
        std::fs::read_to_string(public_path(&path))
            .unwrap()
            .ends_with(" again\n")
    );
}

#[test]
fn an_empty_comment_keeps_the_separator_in_the_public_key_file() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    assert!(generate(&sandbox, &path, "").status.success());
    let public = std::fs::read_to_string(public_path(&path)).unwrap();
    assert!(
        public.ends_with(" \n") && !public.ends_with("  \n"),
        "{public:?}"
    );
}

#[test]
fn print_public_shows_the_key_with_its_comment() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    assert!(generate(&sandbox, &path, "lima").status.success());
    let output = print_public(&sandbox, &path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        stdout_of(&output),
        std::fs::read_to_string(public_path(&path)).unwrap()
    );
}

#[test]
fn print_public_fails_like_ssh_keygen_on_missing_and_corrupt_keys() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    let missing = print_public(&sandbox, &path);
    assert_eq!(missing.status.code(), Some(255));
    assert_eq!(
        stderr_of(&missing),
        format!("{}: No such file or directory\r\n", path.display())
    );
    std::fs::write(&path, "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let corrupt = print_public(&sandbox, &path);
    assert_eq!(corrupt.status.code(), Some(255));
    assert_eq!(
        stderr_of(&corrupt),
        format!("Load key \"{}\": error in libcrypto\r\n", path.display())
    );
    assert_eq!(stdout_of(&corrupt), "");
}

#[cfg(unix)]
#[test]
fn print_public_refuses_a_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    assert!(generate(&sandbox, &path, "lima").status.success());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = print_public(&sandbox, &path);
    assert_eq!(output.status.code(), Some(255));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("WARNING: UNPROTECTED PRIVATE KEY FILE!"),
        "{stderr}"
    );
    assert!(stderr.contains("Permissions 0644 for"), "{stderr}");
    assert!(stderr.ends_with("\": bad permissions\r\n"), "{stderr}");
}

#[test]
fn fault_crash_half_way_leaves_half_a_private_key_and_no_public_key() {
    let sandbox = Sandbox::new();
    let reference = sandbox.home().join("reference");
    assert!(generate(&sandbox, &reference, "lima").status.success());
    let full_length = std::fs::metadata(&reference).unwrap().len();
    sandbox
        .set_plan(json!({"rules": [{"tool": "ssh-keygen", "fault": {"kind": "crash_half_way"}}]}));
    let path = key_path(&sandbox);
    let output = generate(&sandbox, &path, "lima");
    assert_eq!(output.status.code(), Some(137));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), full_length / 2);
    assert!(
        PrivateKey::read_openssh_file(&path).is_err(),
        "half a key parsed"
    );
    assert!(
        !public_path(&path).exists(),
        "a crashed run wrote the public key"
    );
    let crashed_pid = sandbox.events(event::FAULT)[0].pid;
    assert!(
        !sandbox
            .events(event::EXIT)
            .iter()
            .any(|e| e.pid == crashed_pid),
        "an abrupt exit was journaled as a normal one"
    );
}

#[test]
fn what_the_fake_cannot_do_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "rsa", "-N", "", "-f", "k"]);
    let output = sandbox.run(cmd);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("rsa"), "{}", stderr_of(&output));
}
