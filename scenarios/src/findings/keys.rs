//! The user's SSH key pair: generated once, under a lock, atomically, and
//! repaired when half of it is missing.

use crate::context::{Ctx, ScenarioError, ScenarioResult, ensure};
use crate::key_pair::{exactly_one_valid_pair, valid_pair};
use crate::steps::{self, SETTLE, first_error_line};
use crate::symptom;
use contract::error_chain::chain;
use contract::plan::{Fault, Tool};
use harness::{FaultPlanBuilder, ReconcilerDriver, eventually, waits};
use std::time::{Duration, Instant};

/// Services racing for one config directory.
const RACERS: usize = 4;

/// How long each racing `ssh-keygen -t` takes (a fault delay): the window
/// in which the others start.
const KEYGEN_DELAY: Duration = Duration::from_millis(300);

fn config_dir(ctx: &Ctx) -> std::path::PathBuf {
    ctx.sandbox.lima_home().config_dir()
}

pub(crate) fn concurrent_keygen_race(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox.set_faults(&FaultPlanBuilder::new().always(
        Tool::SshKeygen,
        &["-t"],
        Fault::Delay {
            ms: KEYGEN_DELAY.as_millis() as u64,
        },
    ))?;
    let mut services: Vec<Box<dyn ReconcilerDriver + '_>> = (0..RACERS)
        .map(|i| ctx.service_with_state(ctx.sandbox.root().join(format!("state-{i}"))))
        .collect();
    // The others start while the first one's (slow) ssh-keygen runs: the
    // window in which "key missing?" is answered wrongly without a lock.
    services[0].spawn_service()?;
    eventually(SETTLE, "the first service to run ssh-keygen", || {
        let runs = ctx.sandbox.journal().pids_invoked_with("ssh-keygen", "-t");
        if runs.is_empty() {
            Err("no ssh-keygen yet".to_owned())
        } else {
            Ok(())
        }
    })?;
    let first_keygen = Instant::now();
    for svc in &mut services[1..] {
        svc.spawn_service()?;
    }
    waits::timed(KEYGEN_DELAY.saturating_sub(first_keygen.elapsed()), || {
        steps::all_ready(&mut services)
    })?;
    Ok(exactly_one_valid_pair(&config_dir(ctx))?)
}

pub(crate) fn partial_key_after_crash(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox.set_faults(&FaultPlanBuilder::new().times(
        Tool::SshKeygen,
        &["-t"],
        1,
        Fault::CrashHalfWay,
    ))?;
    // The first start may fail: its ssh-keygen died. What matters is what
    // the second start accepts.
    {
        let mut first = ctx.service();
        let _ = first.start_service();
    }
    let mut second = ctx.service();
    let started = second.start_service();
    let pair = valid_pair(&config_dir(ctx));
    match (started, pair) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(pair)) => Err(symptom!("after the second start: {}", chain(&pair))),
        (Err(_), pair) => Err(symptom!(
            "the second start failed after a crashed ssh-keygen ({}): {}",
            pair.err()
                .map_or_else(|| "the key pair is valid".into(), |e| chain(&e)),
            first_error_line(second.as_ref())
        )),
    }
}

pub(crate) fn missing_public_key(ctx: &Ctx) -> ScenarioResult {
    let dir = config_dir(ctx);
    std::fs::create_dir_all(&dir).map_err(|e| ScenarioError::Harness(e.to_string()))?;
    let mut keygen = ctx.sandbox.command(ctx.sandbox.tool_path("ssh-keygen"));
    keygen
        .args(["-t", "ed25519", "-q", "-N", "", "-C", "lima", "-f"])
        .arg(dir.join("user"));
    harness::commands::run_cli(
        keygen,
        None,
        "pre-generating the key with ssh-keygen",
        harness::commands::TOOL_TIMEOUT,
    )?;
    std::fs::remove_file(dir.join("user.pub"))
        .map_err(|e| ScenarioError::Harness(e.to_string()))?;
    let private_before = std::fs::read(dir.join("user")).unwrap_or_default();
    let mut svc = ctx.service();
    svc.start_service()?;
    let mut vm_start = String::new();
    if !dir.join("user.pub").exists() {
        // A reconciler may make its keys when the first VM starts (as
        // Lima itself does), not when the service starts.
        // A start that failed is as telling as one that worked: the key
        // must exist before the hostagent reads it.
        vm_start = match steps::try_bring_up(ctx, svc.as_mut(), &ctx.qemu_vm("vm", 0)?) {
            Ok(view) if view.start_failed() => {
                format!("the VM's start failed: {}", view.running_summary())
            }
            Ok(_) => "the service and a VM started".into(),
            Err(ScenarioError::Symptom(e)) => format!("the VM did not come up: {e}"),
            Err(e) => return Err(e),
        };
    }
    ensure(dir.join("user.pub").exists(), || {
        format!(
            "public key {} still missing after start ({vm_start})",
            dir.join("user.pub").display()
        )
    })?;
    valid_pair(&dir)?;
    ensure(
        std::fs::read(dir.join("user")).unwrap_or_default() == private_before,
        || "the private key was replaced instead of deriving the public key".into(),
    )
}

/// ssh-keygen hangs: the service must give up within its keygen timeout
/// (and a margin), naming ssh-keygen; then, with ssh-keygen missing from
/// PATH, it must fail naming it.
pub(crate) fn keygen_unbounded(ctx: &Ctx) -> ScenarioResult {
    ctx.sandbox.set_faults(&FaultPlanBuilder::new().always(
        Tool::SshKeygen,
        &["-t"],
        Fault::Hang,
    ))?;
    let mut settings = ctx.settings.clone();
    settings.keygen_timeout = Duration::from_millis(500);
    let hung = ctx.with_settings(settings);
    // A target's fixed keygen timeout wins over the short one asked for.
    let settings = hung.settings.clone();
    let mut svc = hung.service();
    let pid = svc.spawn_service()?;
    // The keygen timeout runs from the hung ssh-keygen's start, which the
    // journal shows; the service may also give up (exit) before it.
    let keygens = eventually(SETTLE, "the service to run ssh-keygen", || {
        let keygens = ctx.sandbox.journal().pids_invoked_with("ssh-keygen", "-t");
        match ctx.sandbox.try_reap(pid) {
            Some(code) => Ok((keygens, Some(code))),
            None if !keygens.is_empty() => Ok((keygens, None)),
            None => Err(format!("service pid {pid} runs no ssh-keygen yet")),
        }
    })?;
    let invoked = Instant::now();
    // A service that never gives up is told apart from one that kills its
    // ssh-keygen at the timeout and exits by a margin of two more timeouts
    // (a loaded machine delays the kill and the exit).
    let margin = settings.keygen_timeout * 2;
    let exited = match keygens {
        (_, Some(code)) => Ok(code),
        (_, None) => waits::timed(settings.keygen_timeout, || {
            eventually(
                settings.keygen_timeout + margin,
                "the service to give up",
                || {
                    ctx.sandbox
                        .try_reap(pid)
                        .ok_or_else(|| format!("service pid {pid} still starting"))
                },
            )
        }),
    };
    let code = exited.map_err(|_| {
        symptom!(
            "service still starting {:?} after its ssh-keygen (pid {:?}) started: the hung \
             ssh-keygen is awaited without a bound (keygen timeout {:?})",
            invoked.elapsed(),
            keygens.0,
            settings.keygen_timeout
        )
    })?;
    let output = svc.log_text();
    ensure(code != Some(0) && output.contains("ssh-keygen"), || {
        format!("the service exited with {code:?} without naming ssh-keygen: {output}")
    })?;
    drop(svc);
    keygen_missing_named(ctx, settings)
}

/// With ssh-keygen missing from PATH (`settings` with an isolated PATH),
/// the service fails to start and its error names the missing tool.
fn keygen_missing_named(ctx: &Ctx, mut settings: harness::DriverSettings) -> ScenarioResult {
    ctx.sandbox.remove_tool(Tool::SshKeygen)?;
    settings.isolated_path = true;
    let isolated = ctx.with_settings(settings);
    let mut svc = isolated.service_with_state(ctx.sandbox.root().join("state-no-keygen"));
    let result = svc.start_service();
    let output = svc.log_text();
    ensure(
        result.is_err() && output.contains("ssh-keygen") && output.contains("not found"),
        || {
            format!(
                "with ssh-keygen missing from PATH the service did not fail naming it: {output}"
            )
        },
    )
}

/// A valid private key with mode 0644: OpenSSH ignores it ("UNPROTECTED
/// PRIVATE KEY FILE!"), so every connection to the guest would fail. The
/// reconciler must make it owner-only (or replace it) before using it.
pub(crate) fn key_mode_unprotected(ctx: &Ctx) -> ScenarioResult {
    let dir = config_dir(ctx);
    std::fs::create_dir_all(&dir).map_err(|e| ScenarioError::Harness(e.to_string()))?;
    let private = dir.join("user");
    let status = ctx
        .sandbox
        .command(ctx.sandbox.tool_path("ssh-keygen"))
        .args(["-t", "ed25519", "-q", "-N", "", "-C", "lima", "-f"])
        .arg(&private)
        .status()
        .map_err(|e| ScenarioError::Harness(format!("pre-generating the key: {e}")))?;
    if !status.success() {
        return Err(ScenarioError::Harness(format!(
            "ssh-keygen exited with {status}"
        )));
    }
    set_mode(&private, 0o644)?;
    let mut svc = ctx.started_service()?;
    let vm = ctx.qemu_vm("vm", 1)?;
    svc.apply(&vm)?;
    let view = steps::wait_up(ctx, svc.as_mut(), "vm", "the VM to be up")?;
    let mode = mode_of(&private)?;
    ensure(mode & 0o077 == 0, || {
        format!(
            "private key {} is still mode 0{mode:o} after start: OpenSSH refuses it as an \
             UNPROTECTED PRIVATE KEY FILE",
            private.display()
        )
    })?;
    valid_pair(&dir)?;
    let refused = ctx
        .sandbox
        .journal()
        .events(Some("ssh"), contract::journal::event::KEY_REFUSED);
    ensure(refused.is_empty(), || {
        format!(
            "ssh refused the private key {} time(s) (bad permissions); the VM reports {}",
            refused.len(),
            view.running_summary()
        )
    })
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> ScenarioResult {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ScenarioError::Harness(format!("chmod {}: {e}", path.display())))
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> Result<u32, ScenarioError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .map_err(|e| symptom!("private key {} unreadable after start: {e}", path.display()))
}

/// Windows has no mode bits (the catalogue marks the finding unsupported).
#[cfg(windows)]
fn set_mode(_path: &std::path::Path, _mode: u32) -> ScenarioResult {
    Ok(())
}

#[cfg(windows)]
fn mode_of(_path: &std::path::Path) -> Result<u32, ScenarioError> {
    Ok(0o600)
}
