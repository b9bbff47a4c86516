//! `ssh-keygen`: key pairs, the overwrite refusal, `-y`, and its faults.

use crate::sandbox::Sandbox;
use assert_cmd::assert::Assert;
use fakes::journal::{Record, event};
use predicates::str::contains;
use serde_json::json;
use ssh_key::PrivateKey;
use std::path::{Path, PathBuf};

fn generate(sandbox: &Sandbox, path: &Path, comment: &str) -> Assert {
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "ed25519", "-q", "-N", "", "-C", comment, "-f"])
        .arg(path);
    sandbox.assert(cmd)
}

fn print_public(sandbox: &Sandbox, path: &Path) -> Assert {
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-y", "-f"]).arg(path);
    sandbox.assert(cmd)
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
    // -q prints nothing.
    generate(&sandbox, &path, "lima").success().stdout("");
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
    generate(&sandbox, &path, "lima").success();
    let before = std::fs::read(&path).unwrap();
    generate(&sandbox, &path, "other")
        .code(1)
        .stdout(format!(
            "{} already exists.\nOverwrite (y/n)? ",
            path.display()
        ))
        .stderr("");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the key changed");
}

#[test]
fn overwrites_an_existing_key_when_stdin_answers_yes() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    generate(&sandbox, &path, "lima").success();
    let before = std::fs::read(&path).unwrap();
    let mut cmd = sandbox.command("ssh-keygen");
    cmd.args(["-t", "ed25519", "-q", "-N", "", "-C", "again", "-f"])
        .arg(&path);
    sandbox.assert_with_stdin(cmd, "y\n").success();
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
    generate(&sandbox, &path, "").success();
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
    generate(&sandbox, &path, "lima").success();
    print_public(&sandbox, &path)
        .success()
        .stdout(std::fs::read_to_string(public_path(&path)).unwrap());
}

#[test]
fn print_public_fails_like_ssh_keygen_on_missing_and_corrupt_keys() {
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    print_public(&sandbox, &path)
        .code(255)
        .stderr(format!("{}: No such file or directory\r\n", path.display()));
    std::fs::write(&path, "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    print_public(&sandbox, &path)
        .code(255)
        .stderr(format!(
            "Load key \"{}\": error in libcrypto\r\n",
            path.display()
        ))
        .stdout("");
}

#[cfg(unix)]
#[test]
fn print_public_refuses_a_key_others_can_read() {
    use predicates::prelude::*;
    use predicates::str::ends_with;
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let path = key_path(&sandbox);
    generate(&sandbox, &path, "lima").success();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    print_public(&sandbox, &path).code(255).stderr(
        contains("WARNING: UNPROTECTED PRIVATE KEY FILE!")
            .and(contains("Permissions 0644 for"))
            .and(ends_with("\": bad permissions\r\n")),
    );
}

#[test]
fn fault_crash_half_way_leaves_half_a_private_key_and_no_public_key() {
    let sandbox = Sandbox::new();
    let reference = sandbox.home().join("reference");
    generate(&sandbox, &reference, "lima").success();
    let full_length = std::fs::metadata(&reference).unwrap().len();
    sandbox
        .set_plan(json!({"rules": [{"tool": "ssh-keygen", "fault": {"kind": "crash_half_way"}}]}));
    let path = key_path(&sandbox);
    generate(&sandbox, &path, "lima").code(137);
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
    sandbox.assert(cmd).code(2).stderr(contains("rsa"));
}
