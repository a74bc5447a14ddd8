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

use std::path::Path;

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

    pub fn is_config(&self) -> bool {
        matches!(self, OpsError::Config(_))
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
    println!(
        "{:<24} {:>10} {:>10}  {:<16} verdict",
        "table", "expected", "actual", "sha256"
    );
    for c in checks {
        println!(
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

/// A temporary folder for a restore drill or a download: inside the data folder when it is
/// writable (a volume, sized for data), else the system's temporary folder (often a small
/// tmpfs in containers).
pub fn scratch_dir(
    config: &crate::config::Config,
    prefix: &str,
) -> Result<tempfile::TempDir, OpsError> {
    let in_data = config.data_dir.join("tmp");
    if crate::secrets::ensure_data_dir(&in_data).is_ok()
        && let Ok(dir) = tempfile::Builder::new().prefix(prefix).tempdir_in(&in_data)
    {
        return Ok(dir);
    }
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| OpsError::io(Path::new("(temporary folder)"), e))
}
