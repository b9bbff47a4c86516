//! Tree kills and group interrupts against real processes.
#![cfg(unix)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn kill_tree_reaches_grandchildren() {
    // sh starts a sleeping grandchild and prints its pid.
    let mut child = Command::new("sh")
        .args(["-c", "sleep 600 & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let grandchild: u32 = line.trim().parse().unwrap();
    assert!(proctree::is_alive(grandchild));
    let killed = proctree::kill_tree(child.id()).unwrap();
    assert!(killed.contains(&grandchild), "killed {killed:?}");
    child.wait().unwrap();
    wait_until("the grandchild to die", || !proctree::is_alive(grandchild));
}

#[test]
fn spawn_attributes_are_all_applied() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ps -o pgid=,nice= -p $$"])
        .stdout(Stdio::piped());
    proctree::SpawnAttributes {
        own_process_group: true,
        background_priority: true,
    }
    .apply(&mut cmd);
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[0], pid.to_string(), "pgid in {out:?}");
    assert_ne!(fields[1], "0", "nice in {out:?}");
}

#[test]
fn another_process_s_attributes_are_observed_from_outside() {
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    proctree::SpawnAttributes {
        own_process_group: true,
        background_priority: true,
    }
    .apply(&mut cmd);
    let mut grouped = cmd.spawn().unwrap();
    let mut plain = Command::new("sleep").arg("600").spawn().unwrap();
    let me = std::process::id();
    let seen = |pid| proctree::ObservedAttributes::of_process(pid, me).unwrap();
    assert_eq!(
        seen(grouped.id()),
        proctree::ObservedAttributes {
            own_process_group: true,
            background_priority: true
        }
    );
    assert_eq!(seen(plain.id()), proctree::ObservedAttributes::default());
    for child in [&mut grouped, &mut plain] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(
        proctree::ObservedAttributes::of_process(plain.id(), me),
        None
    );
}

#[test]
fn the_lineage_of_this_process_holds_it_and_its_parent() {
    let me = std::process::id();
    let table = proctree::ProcessTable::snapshot();
    let lineage = table.lineage_of(me);
    assert_eq!(lineage.first(), Some(&me));
    let parent = table.get(me).and_then(|p| p.parent).expect("a parent");
    assert!(
        lineage.contains(&parent),
        "{lineage:?} lacks parent {parent}"
    );
}

#[test]
fn this_process_and_init_are_never_signalled() {
    use proctree::SignalError::Refused;
    let me = std::process::id();
    // Were the guard missing, each call would end this test's process (or
    // be ignored by init, which takes no SIGKILL): never a pass.
    assert!(matches!(proctree::kill(me), Err(Refused { .. })));
    assert!(matches!(proctree::kill_tree(me), Err(Refused { .. })));
    assert!(matches!(
        proctree::request_shutdown(me),
        Err(Refused { .. })
    ));
    assert!(matches!(proctree::interrupt_group(me), Err(Refused { .. })));
    assert!(matches!(proctree::kill(1), Err(Refused { .. })));
}
