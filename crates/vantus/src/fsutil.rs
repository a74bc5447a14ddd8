//! Private folders and files, and the data-folder check.
//!
//! A leaf module: it imports nothing from the crate, so `config`, `secrets` and `store` can all
//! use it without importing each other.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents owner-only (0700), whatever the umask: cron and
/// shells usually run with 022, and these folders hold the database, backups and the audit
/// log's IP addresses. Folders that already exist keep the mode the operator gave them.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Options that create a new file only the owner can read and write (0600), refusing any
/// existing file or planted symlink at that path (`O_EXCL`).
pub fn private_new_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    options
}

/// Creates the folder if needed and proves it is writable, so a read-only volume is reported
/// at start-up instead of as a failed write much later. The error is one sentence naming the
/// folder; callers say which setting it came from.
pub fn ensure_writable_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} exists but is not a folder", dir.display()));
    }
    create_private_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    let _ = fs::remove_file(&probe);
    let result = private_new_file()
        .open(&probe)
        .and_then(|mut f| f.write_all(b"ok"));
    let _ = fs::remove_file(&probe);
    result.map_err(|e| format!("{} is not writable: {e}", dir.display()))
}
