//! `vantus backup`: an online, consistent backup of every table (and optionally media).
//!
//! * SQLite: `VACUUM INTO` a snapshot file (consistent, does not block writers for long),
//!   `PRAGMA integrity_check` on the snapshot, then the tables are read from the snapshot.
//! * PostgreSQL: every table is read inside one `REPEATABLE READ READ ONLY` transaction, so
//!   all tables come from the same instant while the site keeps serving and writing.
//!
//! The archive is written as `<name>.partial` and renamed when complete; a crash never leaves a
//! file that looks like a backup. A `<name>.sha256` beside a local archive lets operators check
//! it with `sha256sum -c`.
//!
//! Everything in plaintext on the way (the SQLite snapshot, the table spools) is staged in the
//! caller's private scratch folder (see [`super::scratch_dir`]), never in the destination: only
//! the archive itself, encrypted when a passphrase is set, is ever written there. Files are
//! created 0600 and folders 0700 whatever the umask.

use std::path::{Path, PathBuf};
use std::time::Instant;

use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::archive::{ArchiveWriter, FORMAT, FORMAT_VERSION, Manifest};
use super::destination::{Destination, archive_name};
use super::progress::Progress;
use super::retention;
use super::{OpsError, blocking};
use crate::audit::{self, Actor, AuditAction, ChainHead};
use crate::jobs::{self, Outcome};
use crate::store::rows::{self, Conn};
use crate::store::schema::{self, Table};
use crate::store::{Db, Timestamp};

pub struct BackupOptions<'a> {
    pub destination: &'a Destination,
    /// Where an archive bound for S3 is staged (see [`super::scratch_dir`]).
    pub scratch: &'a Path,
    pub passphrase: Option<&'a SecretString>,
    /// Include files under this folder as `media/…`.
    pub media_dir: Option<&'a Path>,
    /// Include the objects of this media store (S3) as `media/<key>`, as well.
    pub media_store: Option<&'a crate::media::MediaStore>,
    /// Prune older backups afterwards (daily, weekly); `None` keeps everything.
    pub keep: Option<(u32, u32)>,
    pub interactive: bool,
}

#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub location: String,
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
    pub tables: usize,
    pub rows: u64,
    pub media_files: usize,
    pub pruned: Vec<String>,
    /// The audit chain's head recorded in the manifest (see [`Manifest::audit_head`]).
    pub audit_head: Option<ChainHead>,
    #[serde(skip)]
    pub manifest: Manifest,
}

/// Who journals a backup run in `job_runs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// [`run_recorded`] records the run, start to end (`vantus backup`).
    Here,
    /// The scheduler claimed the run and records its end (`vantus serve`'s backup job).
    ClaimedByScheduler,
}

/// Runs a backup and records it the one way every caller does: the journal entry
/// (`job_runs`, unless the scheduler keeps it), and on success the audit entry (with the
/// journal entry, in one transaction) and the last-success metric. Failing to record never
/// hides the backup's own result: an archive that was written is reported either way.
pub async fn run_recorded(
    db: &Db,
    opts: BackupOptions<'_>,
    actor: &Actor,
    journal: Journal,
) -> Result<BackupReport, OpsError> {
    let started = Timestamp::now();
    let encrypted = opts.passphrase.is_some();
    let result = run(db, opts).await;
    let (outcome, summary) = match &result {
        Ok(r) => (
            Outcome::Succeeded,
            format!("{} ({} bytes)", r.location, r.bytes),
        ),
        Err(e) => (Outcome::Failed, e.to_string()),
    };
    let recorded = in_write_tx!(db, conn => {
        if journal == Journal::Here {
            jobs::record_manual(conn, jobs::BACKUP, started, outcome, &summary).await?;
        }
        if let Ok(report) = &result {
            let detail = serde_json::json!({
                "bytes": report.bytes,
                "sha256": report.sha256,
                "rows": report.rows,
                "encrypted": encrypted,
                "pruned": report.pruned.len(),
            });
            audit::record(conn, actor, AuditAction::BackupCreated, &report.location, detail)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    });
    // The journal feeds `doctor` and the metrics; failing to write it must not hide the result.
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "cannot record the backup in job_runs and the audit log");
    }
    if result.is_ok() {
        crate::telemetry::metrics::backup_succeeded(Timestamp::now());
    }
    result
}

pub async fn run(db: &Db, opts: BackupOptions<'_>) -> Result<BackupReport, OpsError> {
    let started = Instant::now();
    let created_at = Timestamp::now();
    let name = archive_name(created_at.as_datetime());
    let staging = opts.destination.staging_dir(opts.scratch)?;
    if opts.destination.is_local() {
        sweep_abandoned(&staging);
    }
    let final_path = staging.join(&name);
    let partial = staging.join(format!("{name}{PARTIAL}"));

    let written = write(db, &partial, &opts, created_at).await;
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    if let Err(e) = rename_no_replace(&partial, &final_path) {
        let _ = std::fs::remove_file(&partial);
        return Err(OpsError::io(&final_path, e));
    }
    let (bytes, sha256) = blocking(|| file_sha256(&final_path))?;
    if let Destination::Local(_) = opts.destination {
        write_sidecar(&staging, &name, &sha256)?;
    }
    opts.destination.store(&final_path, &name).await?;

    let pruned = match opts.keep {
        Some((daily, weekly)) => {
            let names = opts.destination.list().await?;
            let doomed = retention::to_delete(&names, daily, weekly, &name);
            for old in &doomed {
                opts.destination.delete(old).await?;
            }
            doomed
        }
        None => Vec::new(),
    };
    Ok(BackupReport {
        location: opts.destination.describe(&name),
        name,
        bytes,
        sha256,
        seconds: started.elapsed().as_secs_f64(),
        tables: manifest.tables.len(),
        rows: manifest.total_rows(),
        media_files: manifest.media.len(),
        pruned,
        audit_head: manifest.audit_head.clone(),
        manifest,
    })
}

async fn write(
    db: &Db,
    path: &Path,
    opts: &BackupOptions<'_>,
    created_at: Timestamp,
) -> Result<Manifest, OpsError> {
    let mut archive = ArchiveWriter::create(path, opts.passphrase, opts.scratch)?;
    // Held until the archive is complete: tells a later run's sweep that this `.partial` is
    // being written. Taken before the first byte reaches the disk (the writer buffers), so a
    // non-empty partial whose lock is free is always abandoned.
    let partial_lock = std::fs::File::open(path).map_err(|e| OpsError::io(path, e))?;
    if !super::try_lock_exclusive(&partial_lock) {
        tracing::warn!(path = %path.display(), "cannot lock the partial archive; a concurrent sweep may not recognise it");
    }
    let engine = db.engine();
    let (schema_version, audit_head) = match db {
        Db::Sqlite(pool) => {
            // Snapshot in the private scratch folder, checked, then read.
            let snapshot_dir = tempfile::Builder::new()
                .prefix("snapshot-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir_in(opts.scratch)
                .map_err(|e| OpsError::io(opts.scratch, e))?;
            let snapshot = snapshot_dir.path().join("snapshot.db");
            // VACUUM INTO accepts an empty file and keeps its mode: 0600, not SQLite's 0644.
            crate::secrets::private_new_file()
                .open(&snapshot)
                .map_err(|e| OpsError::io(&snapshot, e))?;
            let literal = snapshot.display().to_string().replace('\'', "''");
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{literal}'")))
                .execute(pool)
                .await?;
            let snap = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&snapshot)
                        .read_only(true),
                )
                .await?;
            let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&snap)
                .await?;
            if verdict != "ok" {
                return Err(OpsError::Integrity(format!(
                    "the SQLite snapshot failed integrity_check: {verdict}"
                )));
            }
            let snap_db = Db::Sqlite(snap.clone());
            let tables = schema::tables(&snap_db).await?;
            let version = schema_version(&snap_db).await?;
            let mut conn = snap.acquire().await?;
            let counts = count_all(&mut Conn::Sqlite(&mut conn), &tables).await?;
            let audit_head = dump_all(
                &mut Conn::Sqlite(&mut conn),
                &tables,
                &counts,
                &mut archive,
                opts.interactive,
            )
            .await?;
            drop(conn);
            snap.close().await;
            (version, audit_head)
        }
        Db::Postgres(pool) => {
            let tables = schema::tables(db).await?;
            let mut tx = pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let version: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&mut *tx)
                    .await?;
            let counts = count_all(&mut Conn::Postgres(&mut tx), &tables).await?;
            let audit_head = dump_all(
                &mut Conn::Postgres(&mut tx),
                &tables,
                &counts,
                &mut archive,
                opts.interactive,
            )
            .await?;
            tx.rollback().await?;
            (version.unwrap_or(0), audit_head)
        }
    };
    if let Some(dir) = opts.media_dir {
        for (relative, file) in media_files(dir)? {
            blocking(|| archive.add_media(&relative, &file))?;
        }
    }
    if let Some(store) = opts.media_store {
        add_stored_media(&mut archive, store, opts.scratch).await?;
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: created_at.to_fixed_string(),
        engine: engine.as_str().to_owned(),
        schema_version,
        audit_head,
        tables: Vec::new(),
        media: Vec::new(),
    };
    let manifest = blocking(|| archive.finish(manifest))?;
    drop(partial_lock);
    Ok(manifest)
}

const PARTIAL: &str = ".partial";

/// A writer locks its `.partial` right after creating it, before the first byte reaches the
/// disk; an empty, unlocked partial younger than this may be in that instant.
const EMPTY_PARTIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Renames without replacing whatever is at `to` (a planted file or symlink makes it fail):
/// a backup never overwrites anything.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_NOREPLACE: check, then rename (a narrow race only).
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes `<name>.sha256` through a new private temporary file renamed over the target: a
/// symlink planted under the sidecar's name is replaced, never followed.
fn write_sidecar(dir: &Path, name: &str, sha256: &str) -> Result<(), OpsError> {
    use std::io::Write;
    let sidecar = dir.join(format!("{name}.sha256"));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.sha256."))
        .tempfile_in(dir)
        .map_err(|e| OpsError::io(&sidecar, e))?;
    tmp.write_all(format!("{sha256}  {name}\n").as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| OpsError::io(&sidecar, e))?;
    tmp.persist(&sidecar)
        .map_err(|e| OpsError::io(&sidecar, e.error))?;
    Ok(())
}

/// Removes what killed runs left in a local destination folder: `.partial` archives nobody
/// is writing, and the plaintext staging folders older releases kept there
/// (`.vantus-snapshot-*`, `.vantus-backup-*`).
fn sweep_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        let removed = if kind.is_file()
            && name.starts_with(super::destination::PREFIX)
            && name.ends_with(PARTIAL)
        {
            let abandoned = match std::fs::File::open(&path) {
                // Empty and new: possibly created a moment ago, its writer not locked yet.
                Ok(f) if f.metadata().is_ok_and(|m| m.len() == 0) => {
                    super::older_than(&path, EMPTY_PARTIAL_GRACE) && super::try_lock_exclusive(&f)
                }
                Ok(f) => super::try_lock_exclusive(&f),
                Err(_) => false,
            };
            abandoned && std::fs::remove_file(&path).is_ok()
        } else if kind.is_dir()
            && (name.starts_with(".vantus-snapshot-") || name.starts_with(".vantus-backup-"))
            && super::older_than(&path, super::UNLOCKED_STALE_AFTER)
        {
            std::fs::remove_dir_all(&path).is_ok()
        } else {
            false
        };
        if removed {
            tracing::info!(path = %path.display(), "removed what an interrupted backup left behind");
        }
    }
}

/// Highest migration version applied.
pub async fn schema_version(db: &Db) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = on_db!(db, pool => sqlx::query_scalar(
        "SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE"
    ).fetch_one(pool).await)?;
    Ok(v.unwrap_or(0))
}

async fn count_all(conn: &mut Conn<'_>, tables: &[Table]) -> Result<Vec<u64>, OpsError> {
    let mut counts = Vec::with_capacity(tables.len());
    for t in tables {
        counts.push(rows::count(conn.reborrow(), t).await? as u64);
    }
    Ok(counts)
}

async fn dump_all(
    conn: &mut Conn<'_>,
    tables: &[Table],
    counts: &[u64],
    archive: &mut ArchiveWriter,
    interactive: bool,
) -> Result<Option<ChainHead>, OpsError> {
    let mut progress = Progress::new("backup", counts.iter().sum(), interactive);
    let mut audit_head = None;
    for table in tables {
        progress.stage(&table.name);
        let mut spool = archive.spool(table)?;
        let mut io_error = None;
        let mut head_of_this = AuditHeadFinder::for_table(table);
        rows::dump(conn.reborrow(), table, None, &mut |row| {
            if let Err(e) = spool.push(&row) {
                io_error = Some(e);
                return Err(rows::RowError::Sink("cannot write the backup".into()));
            }
            if let Some(finder) = head_of_this.as_mut() {
                finder.see(&row);
            }
            progress.add(1);
            Ok(())
        })
        .await
        .map_err(|e| match io_error.take() {
            Some(io) => OpsError::io(Path::new(&table.name), io),
            None => e.into(),
        })?;
        if let Some(finder) = head_of_this {
            audit_head = finder.head;
        }
        blocking(|| archive.add_table(table.clone(), spool))?;
    }
    progress.finish();
    Ok(audit_head)
}

/// Finds the audit chain's head among the `audit_log` rows a backup reads anyway, so the head
/// in the manifest comes from the same snapshot as the rows (rows are read in id order, the
/// head is the row with the largest seq).
struct AuditHeadFinder {
    /// Positions of `seq` and `hash` in the row.
    seq_at: usize,
    hash_at: usize,
    head: Option<ChainHead>,
}

impl AuditHeadFinder {
    /// A finder for `table` if it is the chained audit log (an older schema has no chain).
    fn for_table(table: &Table) -> Option<Self> {
        if table.name != "audit_log" {
            return None;
        }
        let at = |name: &str| table.columns.iter().position(|c| c.name == name);
        Some(Self {
            seq_at: at("seq")?,
            hash_at: at("hash")?,
            head: None,
        })
    }

    fn see(&mut self, row: &rows::Row) {
        let (seq_at, hash_at) = (self.seq_at, self.hash_at);
        let seq = row.get(seq_at).and_then(serde_json::Value::as_i64);
        let hash = row.get(hash_at).and_then(serde_json::Value::as_str);
        if let (Some(seq), Some(hash)) = (seq, hash)
            && self.head.as_ref().is_none_or(|h| seq > h.seq)
        {
            self.head = Some(ChainHead {
                seq,
                hash: hash.to_owned(),
            });
        }
    }
}

/// Files under `dir`, with their path relative to it (always `/`-separated), sorted.
/// Adds every object of a (remote) media store under its key, one at a time through a file
/// in the private scratch folder, so memory holds one object at most.
async fn add_stored_media(
    archive: &mut ArchiveWriter,
    store: &crate::media::MediaStore,
    scratch: &Path,
) -> Result<(), OpsError> {
    let storage = |e: crate::media::storage::StorageError| OpsError::Storage(e.to_string());
    let mut keys = store.list().await.map_err(storage)?;
    keys.sort();
    for (key, _) in keys {
        let bytes = store.get(&key).await.map_err(storage)?;
        let tmp = tempfile::Builder::new()
            .prefix("media-")
            .tempfile_in(scratch)
            .map_err(|e| OpsError::io(scratch, e))?;
        std::fs::write(tmp.path(), &bytes).map_err(|e| OpsError::io(tmp.path(), e))?;
        drop(bytes);
        blocking(|| archive.add_media(&key, tmp.path()))?;
    }
    Ok(())
}

fn media_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, OpsError> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| OpsError::io(&d, e))? {
            let entry = entry.map_err(|e| OpsError::io(&d, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| OpsError::io(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .expect("walked from dir")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn file_sha256(path: &Path) -> Result<(u64, String), OpsError> {
    let mut f = std::fs::File::open(path).map_err(|e| OpsError::io(path, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| OpsError::io(path, e))?;
    Ok((n, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_only_partials_nobody_is_writing() {
        let dir = tempfile::tempdir().unwrap();
        let partial = |n: &str| dir.path().join(format!("vantus-{n}.vbak{PARTIAL}"));
        std::fs::write(partial("20261101T000000.000Z"), "abandoned").unwrap();
        std::fs::write(partial("20261102T000000.000Z"), "being written").unwrap();
        let writer = std::fs::File::open(partial("20261102T000000.000Z")).unwrap();
        assert!(super::super::try_lock_exclusive(&writer));
        // Empty and new: a writer may be about to lock it.
        std::fs::write(partial("20261103T000000.000Z"), "").unwrap();
        std::fs::write(dir.path().join("vantus-20261101T000000.000Z.vbak"), "done").unwrap();

        sweep_abandoned(dir.path());

        assert!(!partial("20261101T000000.000Z").exists());
        assert!(partial("20261102T000000.000Z").exists());
        assert!(partial("20261103T000000.000Z").exists());
        assert!(dir.path().join("vantus-20261101T000000.000Z.vbak").exists());
    }

    #[test]
    fn the_finished_archive_never_replaces_what_sits_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let partial = dir.path().join("vantus-x.vbak.partial");
        std::fs::write(&partial, "archive").unwrap();
        let planted = dir.path().join("vantus-x.vbak");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        let e = rename_no_replace(&partial, &planted).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(
            std::fs::symlink_metadata(&planted)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

        let free = dir.path().join("vantus-y.vbak");
        rename_no_replace(&partial, &free).unwrap();
        assert_eq!(std::fs::read_to_string(&free).unwrap(), "archive");
    }
}
