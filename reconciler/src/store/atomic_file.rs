//! Whole-file writes that a reader never sees half done: write a unique
//! temporary sibling, flush it, rename it over the target.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name no other writer (thread or process) uses at the same time.
pub(crate) fn unique_sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!(
        ".{tag}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    // The unique suffix must not push a long (but valid) name over the
    // file-name limit: the start of the name is enough to recognise it.
    let room = MAX_FILE_NAME_BYTES.saturating_sub(suffix.len() + 1);
    let mut end = file_name.len().min(room);
    while !file_name.is_char_boundary(end) {
        end -= 1;
    }
    path.with_file_name(format!(".{}{suffix}", &file_name[..end]))
}

/// The longest file name (bytes) every supported file system takes
/// (`NAME_MAX` on Linux and macOS; Windows counts 255 UTF-16 units).
pub(crate) const MAX_FILE_NAME_BYTES: usize = 255;

pub(crate) fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = unique_sibling(path, "write");
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["doc.json"]);
    }

    #[test]
    fn a_long_name_gets_a_temporary_name_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        for len in [200, 226, 240, 250] {
            let path = dir.path().join(format!("{}.json", "é".repeat(len / 2)));
            if std::fs::write(&path, b"x").is_err() {
                continue; // longer than this file system takes at all
            }
            let sibling = unique_sibling(&path, "write");
            let name = sibling.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.len() <= MAX_FILE_NAME_BYTES, "{len}: {}", name.len());
            write(&path, b"two").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"two");
        }
    }

    #[test]
    fn siblings_are_unique_and_hidden() {
        let a = unique_sibling(Path::new("/x/doc.json"), "t");
        let b = unique_sibling(Path::new("/x/doc.json"), "t");
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".doc.json.t-")
        );
    }
}
