//! Additional disks: `_disks/<disk>/in_use_by` marks a disk as held by this
//! instance while the hostagent runs.

use crate::platform;
use lima_layout::{InstancePaths, LimaHome};
use std::path::PathBuf;

#[derive(Debug, Default)]
pub(crate) struct DiskClaims {
    markers: Vec<PathBuf>,
}

impl DiskClaims {
    /// Marks `disk` as used by `instance`. A marker this instance left
    /// behind is taken over; one naming another instance is refused.
    pub(crate) fn claim(
        &mut self,
        home: &LimaHome,
        instance: &InstancePaths,
        disk: &str,
    ) -> Result<(), String> {
        let dir = home.disk_dir(disk);
        if !dir.is_dir() {
            return Err(format!(
                "additional disk {disk:?} not found: {} is not a directory",
                dir.display()
            ));
        }
        let marker = home.disk_in_use_by(disk);
        if marker.symlink_metadata().is_ok() {
            match platform::disk_user(&marker) {
                Some(user) if user == instance.dir => {
                    std::fs::remove_file(&marker)
                        .map_err(|e| format!("cannot replace stale {}: {e}", marker.display()))?;
                }
                user => {
                    return Err(format!(
                        "additional disk {disk:?} is already in use by {}",
                        user.map_or_else(
                            || "an unreadable marker".to_owned(),
                            |u| u.display().to_string()
                        )
                    ));
                }
            }
        }
        platform::mark_disk_in_use(&marker, &instance.dir)
            .map_err(|e| format!("cannot create {}: {e}", marker.display()))?;
        self.markers.push(marker);
        Ok(())
    }

    /// Removes every marker this hostagent made; returns what failed.
    pub(crate) fn release(&mut self) -> Vec<String> {
        self.markers
            .drain(..)
            .filter_map(|marker| {
                std::fs::remove_file(&marker)
                    .err()
                    .map(|e| format!("cannot remove {}: {e}", marker.display()))
            })
            .collect()
    }
}
