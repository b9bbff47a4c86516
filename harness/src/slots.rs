//! Instance slots: a reconciler whose instance owns fixed resources (ports,
//! well-known paths) can run once per slot at a time, as rancher-desktop-
//! daemon runs once per `RDD_INSTANCE`. A target file lists its slots
//! (`[harness] slots`); each sandbox holds one for its whole life, and its
//! number is the `{slot}` placeholder, so that scenarios of one such target
//! run in parallel, in one harness process or in several.
//!
//! A slot is held by an exclusive lock on a file in the machine's temporary
//! directory (`limavm-harness-slots/<target>/slot-<n>.lock`): the kernel
//! releases it when the holder exits, also when it is killed.

use crate::eventually::eventually;
use serde::Deserialize;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The slots a target's instances may use: the numbers `first` to
/// `first + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    /// The first slot number.
    pub first: u32,
    /// How many slots (at least one).
    pub count: u32,
}

/// How long a sandbox waits for one of its target's slots to be free (other
/// runs hold them all): a scenario's length, several times over.
pub const SLOT_WAIT: Duration = Duration::from_secs(600);

/// A slot held until drop.
#[derive(Debug)]
pub struct SlotLease {
    /// The slot's number (`{slot}`).
    pub number: u32,
    /// Holds the lock; closing it releases the slot.
    _file: File,
}

impl Slots {
    /// Checks the numbers: at least one slot, and no overflow.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("harness.slots.count is 0: at least one slot is needed".into());
        }
        if self.first.checked_add(self.count - 1).is_none() {
            return Err(format!(
                "harness.slots: first {} + count {} overflows",
                self.first, self.count
            ));
        }
        Ok(())
    }

    /// The slot numbers, in order.
    fn numbers(&self) -> impl Iterator<Item = u32> {
        (0..self.count).map(move |i| self.first + i)
    }

    /// Takes the first free slot of `target`, waiting up to `wait` while
    /// every one is held. Fails naming the slots when none frees up, or
    /// when the lock directory cannot be made.
    pub fn take(&self, target: &str, wait: Duration) -> Result<SlotLease, String> {
        let dir = lock_dir(target);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the slot directory {}: {e}", dir.display()))?;
        eventually(wait, "a free instance slot", || {
            for number in self.numbers() {
                if let Some(file) = try_hold(&dir, number)? {
                    return Ok(SlotLease {
                        number,
                        _file: file,
                    });
                }
            }
            Err(format!(
                "slots {}..={} of target {target} are all held (locks in {})",
                self.first,
                self.first + self.count - 1,
                dir.display()
            ))
        })
        .map_err(|e| e.to_string())
    }
}

/// `<temp>/limavm-harness-slots/<target>`, the target's name kept to
/// characters every file system takes.
fn lock_dir(target: &str) -> PathBuf {
    let name: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir().join("limavm-harness-slots").join(name)
}

/// The lock of slot `number`, when nobody else holds it.
fn try_hold(dir: &std::path::Path, number: u32) -> Result<Option<File>, String> {
    let path = dir.join(format!("slot-{number}.lock"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            // Who holds it, for a person looking at the directory.
            let _ = file.set_len(0);
            let _ = writeln!(file, "{}", std::process::id());
            Ok(Some(file))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lease_is_a_slot_of_its_own_and_a_dropped_one_is_free_again() {
        let target = format!("slots-test-{}", std::process::id());
        let slots = Slots { first: 7, count: 2 };
        let a = slots.take(&target, Duration::ZERO).unwrap();
        let b = slots.take(&target, Duration::ZERO).unwrap();
        assert_eq!((a.number, b.number), (7, 8));
        let none = slots.take(&target, Duration::from_millis(50)).unwrap_err();
        assert!(
            none.contains("slots 7..=8") && none.contains("all held"),
            "{none}"
        );
        drop(a);
        assert_eq!(slots.take(&target, Duration::ZERO).unwrap().number, 7);
        let _ = std::fs::remove_dir_all(lock_dir(&target));
    }

    #[test]
    fn no_slot_or_an_overflow_is_refused() {
        assert!(Slots { first: 1, count: 0 }.validate().is_err());
        assert!(
            Slots {
                first: u32::MAX,
                count: 2
            }
            .validate()
            .is_err()
        );
        assert!(Slots { first: 5, count: 4 }.validate().is_ok());
    }
}
