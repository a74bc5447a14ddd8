//! `vantus restore`: verified restore into an empty database of either engine.
//!
//! 1. The archive is read end to end and every checksum compared with its manifest before
//!    anything is written; a damaged archive is refused here.
//! 2. The target is migrated to the archive's schema version and must be empty, unless
//!    `--force`.
//! 3. In one transaction: with `--force` the current rows are deleted, the archive's rows are
//!    inserted, and every table is re-read and checked against the manifest. Any mismatch
//!    rolls everything back: a restore is complete and verified, or it did not happen.
//! 4. Migrations newer than the archive are applied; media files are written.
//!
//! `--verify-only` restores into a scratch SQLite database (or `--scratch-url`) and reports:
//! the restore drill.

use std::path::Path;
use std::time::Instant;

use secrecy::SecretString;
use serde::Serialize;

use super::archive::{self, Item, Manifest};
use super::progress::Progress;
use super::{OpsError, TableCheck};
use crate::store::rows::{self, Conn, on_conn};
use crate::store::schema::{self, Table};
use crate::store::{Db, migrate};

pub struct RestoreOptions<'a> {
    pub force: bool,
    pub passphrase: Option<&'a SecretString>,
    /// Where media files from the archive go (skipped when `None`).
    pub media_dir: Option<&'a Path>,
    pub interactive: bool,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub archive_created_at: String,
    pub archive_engine: String,
    pub schema_version: i64,
    pub target_engine: String,
    pub tables: Vec<TableCheck>,
    pub rows: u64,
    pub media_files: usize,
    pub replaced_existing: bool,
    pub seconds: f64,
}

impl RestoreReport {
    pub fn verified(&self) -> bool {
        self.tables.iter().all(TableCheck::ok)
    }
}

/// Reads and checks the archive without writing anything.
pub async fn verify_archive(
    archive: &Path,
    passphrase: Option<&SecretString>,
) -> Result<Manifest, OpsError> {
    let path = archive.to_owned();
    let pass = passphrase.cloned();
    let manifest = tokio::task::spawn_blocking(move || archive::verify(&path, pass.as_ref()))
        .await
        .map_err(|e| OpsError::Integrity(format!("verification task failed: {e}")))??;
    let latest = migrate::known().last().map(|(v, _)| *v).unwrap_or(0);
    if manifest.schema_version > latest {
        return Err(OpsError::Refused(format!(
            "the archive has schema version {}, newer than this release knows ({latest}); restore it with a newer vantus",
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

pub async fn run(
    archive_path: &Path,
    target: &Db,
    opts: RestoreOptions<'_>,
) -> Result<RestoreReport, OpsError> {
    let started = Instant::now();
    let manifest = verify_archive(archive_path, opts.passphrase).await?;

    migrate::migrate_to(target, Some(manifest.schema_version)).await?;
    let tables = schema::tables(target).await?;
    check_compatible(&manifest, &tables)?;

    let mut occupied = Vec::new();
    for t in &tables {
        let n = on_db!(target, pool => {
            let mut c = pool.acquire().await?;
            rows::count(rows::conn(&mut c), t).await
        })?;
        if n > 0 {
            occupied.push(format!("{} ({n} rows)", t.name));
        }
    }
    if !occupied.is_empty() && !opts.force {
        return Err(OpsError::Refused(format!(
            "the target database is not empty: {}. Restore into an empty database, or pass --force to replace its contents",
            occupied.join(", ")
        )));
    }
    let replacing = !occupied.is_empty();

    let checks = match target {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let checks = load_and_verify(
                &mut Conn::Sqlite(&mut tx),
                archive_path,
                &manifest,
                &tables,
                &opts,
                replacing,
            )
            .await;
            finish_tx(tx, checks).await?
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let checks = load_and_verify(
                &mut Conn::Postgres(&mut tx),
                archive_path,
                &manifest,
                &tables,
                &opts,
                replacing,
            )
            .await;
            finish_tx(tx, checks).await?
        }
    };

    migrate::migrate_to(target, None).await?;
    schema::reset_sequences(target).await?;
    let media_files = match opts.media_dir {
        Some(dir) if !manifest.media.is_empty() => {
            restore_media(archive_path, opts.passphrase, dir).await?
        }
        _ => 0,
    };
    Ok(RestoreReport {
        archive_created_at: manifest.created_at.clone(),
        archive_engine: manifest.engine.clone(),
        schema_version: manifest.schema_version,
        target_engine: target.engine().as_str().to_owned(),
        rows: manifest.total_rows(),
        tables: checks,
        media_files,
        replaced_existing: replacing,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Commits when every table verified; rolls back otherwise.
async fn finish_tx<DB: sqlx::Database>(
    tx: sqlx::Transaction<'_, DB>,
    checks: Result<Vec<TableCheck>, OpsError>,
) -> Result<Vec<TableCheck>, OpsError> {
    match checks {
        Ok(checks) if checks.iter().all(TableCheck::ok) => {
            tx.commit().await?;
            Ok(checks)
        }
        Ok(checks) => {
            tx.rollback().await?;
            let bad: Vec<String> = checks
                .iter()
                .filter(|c| !c.ok())
                .map(|c| {
                    format!(
                        "{} ({} rows, expected {})",
                        c.table, c.actual_rows, c.expected_rows
                    )
                })
                .collect();
            Err(OpsError::Integrity(format!(
                "restored data does not match the manifest for {}; nothing was changed",
                bad.join(", ")
            )))
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Every table in the archive must exist in the target with the archive's columns (newer
/// columns in the target must be nullable: they stay empty).
fn check_compatible(manifest: &Manifest, tables: &[Table]) -> Result<(), OpsError> {
    for entry in &manifest.tables {
        let Some(target) = tables.iter().find(|t| t.name == entry.table.name) else {
            return Err(OpsError::Refused(format!(
                "the target has no table {} (schema version mismatch)",
                entry.table.name
            )));
        };
        for col in &entry.table.columns {
            match target.column(&col.name) {
                Some(c) if c.ty == col.ty => {}
                Some(c) => {
                    return Err(OpsError::Refused(format!(
                        "table {} column {} is {:?} in the target but {:?} in the archive",
                        entry.table.name, col.name, c.ty, col.ty
                    )));
                }
                None => {
                    return Err(OpsError::Refused(format!(
                        "the target's table {} has no column {}",
                        entry.table.name, col.name
                    )));
                }
            }
        }
    }
    Ok(())
}

async fn load_and_verify(
    conn: &mut Conn<'_>,
    archive_path: &Path,
    manifest: &Manifest,
    tables: &[Table],
    opts: &RestoreOptions<'_>,
    replacing: bool,
) -> Result<Vec<TableCheck>, OpsError> {
    let previous_generation = if replacing {
        current_generation(conn).await?
    } else {
        0
    };
    if replacing {
        for t in tables.iter().rev() {
            rows::delete_all(conn.reborrow(), t).await?;
        }
    }

    // The archive is read on a blocking thread and handed over in batches.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(4);
    let path = archive_path.to_owned();
    let pass = opts.passphrase.cloned();
    let batch_of: std::collections::HashMap<String, usize> = manifest
        .tables
        .iter()
        .map(|t| {
            (
                t.table.name.clone(),
                rows::batch_size(t.table.columns.len()),
            )
        })
        .collect();
    let reader = tokio::task::spawn_blocking(move || {
        archive::read_items(
            &path,
            pass.as_ref(),
            |table| batch_of.get(table).copied().unwrap_or(500),
            |item| {
                if matches!(item, Item::Media { .. }) {
                    return Ok(());
                }
                tx.blocking_send(item)
                    .map_err(|_| "the restore stopped".to_owned())
            },
        )
    });

    let mut progress = Progress::new("restore", manifest.total_rows(), opts.interactive);
    let mut stage = String::new();
    while let Some(item) = rx.recv().await {
        let Item::Rows { table, rows: batch } = item else {
            continue;
        };
        let entry = manifest
            .tables
            .iter()
            .find(|t| t.table.name == table)
            .ok_or_else(|| OpsError::Integrity(format!("table {table} is not in the manifest")))?;
        let target = tables
            .iter()
            .find(|t| t.name == table)
            .expect("check_compatible found every table");
        if stage != table {
            progress.stage(&table);
            stage = table.clone();
        }
        let n = batch.len() as u64;
        rows::insert(conn.reborrow(), target, &entry.table.columns, &batch).await?;
        progress.add(n);
    }
    reader
        .await
        .map_err(|e| OpsError::Integrity(format!("archive reader failed: {e}")))??;
    progress.stage("verifying");

    let mut checks = Vec::new();
    for entry in &manifest.tables {
        // Re-read with the archive's column list so the checksum covers the same columns.
        let as_archived = Table {
            columns: entry.table.columns.clone(),
            ..tables
                .iter()
                .find(|t| t.name == entry.table.name)
                .expect("exists")
                .clone()
        };
        let digest = rows::digest(conn.reborrow(), &as_archived).await?;
        checks.push(TableCheck {
            table: entry.table.name.clone(),
            expected_rows: entry.rows,
            actual_rows: digest.rows,
            expected_sha256: entry.sha256.clone(),
            actual_sha256: digest.sha256(),
        });
    }
    progress.finish();

    if replacing && checks.iter().all(TableCheck::ok) {
        // The restored content generation may be older than one a running server has cached
        // pages for; move it past that so every cache refreshes.
        bump_generation(conn, previous_generation + 1).await?;
    }
    Ok(checks)
}

async fn current_generation(conn: &mut Conn<'_>) -> Result<i64, sqlx::Error> {
    let sql = "SELECT COALESCE(MAX(content_generation), 0) FROM site_state";
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(sql).fetch_one(c).await)
}

async fn bump_generation(conn: &mut Conn<'_>, by: i64) -> Result<(), sqlx::Error> {
    let sql = "UPDATE site_state SET content_generation = content_generation + $1";
    on_conn!(conn.reborrow(), c => sqlx::query(sql).bind(by).execute(c).await.map(|_| ()))
}

async fn restore_media(
    archive_path: &Path,
    passphrase: Option<&SecretString>,
    dir: &Path,
) -> Result<usize, OpsError> {
    let path = archive_path.to_owned();
    let pass = passphrase.cloned();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || -> Result<usize, OpsError> {
        let mut n = 0;
        let mut failure = None;
        archive::read_items(
            &path,
            pass.as_ref(),
            |_| 1000,
            |item| {
                if let Item::Media { path: rel, bytes } = item {
                    if rel
                        .split('/')
                        .any(|part| part.is_empty() || part == "." || part == "..")
                    {
                        failure = Some(OpsError::Integrity(format!(
                            "media path {rel:?} is not a plain relative path"
                        )));
                        return Err("unsafe media path".into());
                    }
                    let target = dir.join(&rel);
                    let result = (|| {
                        std::fs::create_dir_all(
                            target.parent().expect("joined path has a parent"),
                        )?;
                        let tmp = target.with_extension("restoring");
                        std::fs::write(&tmp, &bytes)?;
                        std::fs::rename(&tmp, &target)
                    })();
                    if let Err(e) = result {
                        failure = Some(OpsError::io(&target, e));
                        return Err("cannot write media".into());
                    }
                    n += 1;
                }
                Ok(())
            },
        )
        .map_err(|e| failure.take().unwrap_or(OpsError::Archive(e)))?;
        Ok(n)
    })
    .await
    .map_err(|e| OpsError::Integrity(format!("media restore failed: {e}")))?
}
