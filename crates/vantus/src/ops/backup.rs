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
    #[serde(skip)]
    pub manifest: Manifest,
}

pub async fn run(db: &Db, opts: BackupOptions<'_>) -> Result<BackupReport, OpsError> {
    let started = Instant::now();
    let created_at = Timestamp::now();
    let name = archive_name(created_at.as_datetime());
    let staging = opts.destination.staging_dir(opts.scratch)?;
    let final_path = staging.join(&name);
    let partial = staging.join(format!("{name}.partial"));

    let written = write(db, &partial, &opts, created_at).await;
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &final_path).map_err(|e| OpsError::io(&final_path, e))?;
    let (bytes, sha256) = blocking(|| file_sha256(&final_path))?;
    if let Destination::Local(_) = opts.destination {
        let sidecar = final_path.with_file_name(format!("{name}.sha256"));
        std::fs::write(&sidecar, format!("{sha256}  {name}\n"))
            .map_err(|e| OpsError::io(&sidecar, e))?;
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
        manifest,
    })
}

async fn write(
    db: &Db,
    path: &Path,
    opts: &BackupOptions<'_>,
    created_at: Timestamp,
) -> Result<Manifest, OpsError> {
    let mut archive = ArchiveWriter::create(path, opts.passphrase)?;
    let engine = db.engine();
    let schema_version = match db {
        Db::Sqlite(pool) => {
            // Snapshot next to the archive (same filesystem), checked, then read.
            let snapshot_dir = tempfile::Builder::new()
                .prefix(".vantus-snapshot-")
                .tempdir_in(path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| OpsError::io(path, e))?;
            let snapshot = snapshot_dir.path().join("snapshot.db");
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
            dump_all(
                &mut Conn::Sqlite(&mut conn),
                &tables,
                &counts,
                &mut archive,
                opts.interactive,
            )
            .await?;
            drop(conn);
            snap.close().await;
            version
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
            dump_all(
                &mut Conn::Postgres(&mut tx),
                &tables,
                &counts,
                &mut archive,
                opts.interactive,
            )
            .await?;
            tx.rollback().await?;
            version.unwrap_or(0)
        }
    };
    if let Some(dir) = opts.media_dir {
        for (relative, file) in media_files(dir)? {
            blocking(|| archive.add_media(&relative, &file))?;
        }
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: created_at.to_fixed_string(),
        engine: engine.as_str().to_owned(),
        schema_version,
        tables: Vec::new(),
        media: Vec::new(),
    };
    Ok(blocking(|| archive.finish(manifest))?)
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
) -> Result<(), OpsError> {
    let mut progress = Progress::new("backup", counts.iter().sum(), interactive);
    for table in tables {
        progress.stage(&table.name);
        let mut spool = archive.spool(table)?;
        let mut io_error = None;
        rows::dump(conn.reborrow(), table, None, &mut |row| {
            if let Err(e) = spool.push(&row) {
                io_error = Some(e);
                return Err(rows::RowError::Sink("cannot write the backup".into()));
            }
            progress.add(1);
            Ok(())
        })
        .await
        .map_err(|e| match io_error.take() {
            Some(io) => OpsError::io(Path::new(&table.name), io),
            None => e.into(),
        })?;
        blocking(|| archive.add_table(table.clone(), spool))?;
    }
    progress.finish();
    Ok(())
}

/// Files under `dir`, with their path relative to it (always `/`-separated), sorted.
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
