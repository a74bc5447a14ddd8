//! Operations built in: backup, restore (and the restore drill), engine copy, doctor.
//!
//! Every command works from the live schema (see [`crate::store::schema`]) and the one
//! engine-neutral row encoding (see [`crate::store::rows`]), so all tables, present and future,
//! are covered the same way on both engines.

pub mod archive;
pub mod backup;
pub mod copy;
pub mod destination;
pub mod doctor;
pub mod generate;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod scheduled;

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::ConfigError;
use crate::store::rows::RowError;
use crate::store::schema::SchemaError;

/// How an operation failed, phrased for the operator who ran it.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("schema: {0}")]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    Rows(#[from] RowError),
    #[error("migration: {0}")]
    Migrate(#[from] crate::store::migrate::SetupError),
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("refused: {0}")]
    Refused(String),
}

impl OpsError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        OpsError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Per-table outcome of a verification: what the manifest (or source) says, what the target
/// holds.
#[derive(Clone, Debug, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected_rows: u64,
    pub actual_rows: u64,
    pub expected_sha256: String,
    pub actual_sha256: String,
}

impl TableCheck {
    pub fn ok(&self) -> bool {
        self.expected_rows == self.actual_rows && self.expected_sha256 == self.actual_sha256
    }
}

/// Prints a verification table for people.
pub fn print_checks(checks: &[TableCheck]) {
    crate::say!(
        "{:<24} {:>10} {:>10}  {:<16} verdict",
        "table",
        "expected",
        "actual",
        "sha256"
    );
    for c in checks {
        crate::say!(
            "{:<24} {:>10} {:>10}  {:<16} {}",
            c.table,
            c.expected_rows,
            c.actual_rows,
            &c.actual_sha256[..16.min(c.actual_sha256.len())],
            if c.ok() { "ok" } else { "MISMATCH" }
        );
    }
}

/// Runs blocking work (file I/O, compression) without stalling other tasks on a multi-thread
/// runtime; on a current-thread runtime (some tests) it simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A private temporary folder for a backup's staging (the SQLite snapshot, table spools, an
/// archive bound for S3), a restore drill or a download: inside the data folder when it is
/// writable (a volume, sized for data), else the system's temporary folder (often a small
/// tmpfs in containers).
///
/// Whatever a killed run left behind is swept first, so a plaintext snapshot never outlives
/// the run that made it by more than one run.
pub fn scratch_dir(config: &crate::config::Config, prefix: &str) -> Result<ScratchDir, OpsError> {
    let in_data = config.data_dir.join("tmp");
    if crate::secrets::ensure_data_dir(&in_data).is_ok() {
        sweep_stale_scratch(&in_data, true);
        if let Ok(dir) = ScratchDir::create_in(&in_data, prefix) {
            return Ok(dir);
        }
    }
    let system = std::env::temp_dir();
    sweep_stale_scratch(&system, false);
    ScratchDir::create_in(&system, prefix)
        .map_err(|e| OpsError::io(Path::new("(temporary folder)"), e))
}

/// Inside every scratch folder: a file its owner holds an exclusive `flock` on for the
/// folder's lifetime. The kernel drops the lock when the owner dies, even by SIGKILL, so a
/// lock anyone can take marks a folder whose owner is gone (a pid in the name could be reused,
/// or belong to another container sharing the volume).
const SCRATCH_LOCK: &str = ".owner.lock";

/// How old an unlocked folder must be before it counts as abandoned, when it carries no lock
/// file to ask (a crash between creating it and locking it, or an older release's leftover).
pub(crate) const UNLOCKED_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// A scratch folder (0700) owned by this process and removed, with its contents, on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    _lock: File,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Builds the folder under a hidden name, locks it, then renames it into view, so a
    /// concurrent sweep never sees a visible folder that is not locked yet.
    fn create_in(parent: &Path, prefix: &str) -> std::io::Result<Self> {
        let name = format!(
            "{prefix}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let building = parent.join(format!(".{name}.new"));
        std::fs::DirBuilder::new().mode(0o700).create(&building)?;
        let finished = (|| {
            let lock = crate::secrets::private_new_file().open(building.join(SCRATCH_LOCK))?;
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
            let path = parent.join(&name);
            std::fs::rename(&building, &path)?;
            Ok(Self { path, _lock: lock })
        })();
        if finished.is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        finished
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes scratch folders under `parent` whose owner is gone. In the system's temporary
/// folder (`owned` false) only folders carrying our lock file are touched.
fn sweep_stale_scratch(parent: &Path, owned: bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        // The entry's own type: a symlink named like ours is never followed.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        let abandoned = if name.starts_with(".vantus-") && name.ends_with(".new") {
            older_than(&path, UNLOCKED_STALE_AFTER)
        } else if name.starts_with("vantus-") {
            match std::fs::File::open(path.join(SCRATCH_LOCK)) {
                Ok(lock) => try_lock_exclusive(&lock),
                Err(_) => owned && older_than(&path, UNLOCKED_STALE_AFTER),
            }
        } else {
            false
        };
        if abandoned {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed an abandoned scratch folder")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an abandoned scratch folder")
                }
            }
        }
    }
}

/// Takes `file`'s exclusive lock if nobody holds it (kept until `file` is closed) and says
/// whether it did. An error other than "held" (a filesystem without locks) answers no: a
/// sweep never deletes on doubt.
pub(crate) fn try_lock_exclusive(file: &File) -> bool {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

pub(crate) fn older_than(path: &Path, age: std::time::Duration) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_sweep_removes_only_scratch_folders_whose_owner_is_gone() {
        let parent = tempfile::tempdir().unwrap();
        let live = ScratchDir::create_in(parent.path(), "vantus-backup-").unwrap();
        std::fs::write(live.path().join("snapshot.db"), "live").unwrap();
        // What a SIGKILLed run leaves: its folder and lock file, the lock released by the kernel.
        let dead = parent.path().join("vantus-backup-4242-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(SCRATCH_LOCK), "").unwrap();
        std::fs::write(dead.join("snapshot.db"), "plaintext").unwrap();
        // No lock file and recent: perhaps being built; not ours to judge yet.
        let young = parent.path().join("vantus-restore-young");
        std::fs::create_dir(&young).unwrap();
        let unrelated = parent.path().join("notes");
        std::fs::create_dir(&unrelated).unwrap();

        sweep_stale_scratch(parent.path(), true);

        assert!(!dead.exists(), "the dead run's folder is gone");
        assert!(
            live.path().join("snapshot.db").exists(),
            "a live run is left alone"
        );
        assert!(young.exists() && unrelated.exists());
        assert_eq!(
            std::fs::metadata(live.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let path = live.path().to_owned();
        drop(live);
        assert!(!path.exists(), "a scratch folder is removed with its owner");
    }
}
