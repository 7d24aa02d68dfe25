//! Files that hold secrets (CRAM secrets, private keys): created readable
//! by the owner alone from their first byte, and replaced whole, so a crash
//! or a reader never sees a half-written secret or a moment of 0644.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every secret file: read and write for the owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Writes `bytes` to `path` through a sibling temporary file created with
/// [`PRIVATE_FILE_MODE`], synced, then renamed over `path`.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let temporary = path.with_file_name(name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&temporary)?;
        // An existing temporary file keeps its mode through `open`.
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Whether only the owner may read `path` (no group or other bits).
pub fn is_private(path: &Path) -> std::io::Result<bool> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    Ok(mode & 0o077 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_owner_only_and_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(!is_private(&path).expect("mode"));
        write_private(&path, b"new").expect("write_private");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert!(is_private(&path).expect("mode"));
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
