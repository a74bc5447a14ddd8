//! `vantus restore`: verified restore into an empty database of either engine.
//!
//! 1. The archive is read end to end and every checksum compared with its manifest before
//!    anything is written; a damaged archive is refused here, and so is one that does not
//!    cover every table of its schema version (restoring it would empty the tables left out).
//! 2. The target is migrated to the archive's schema version and must be empty, unless
//!    `--force`.
//! 3. In one transaction: with `--force` the current rows are deleted, the archive's rows are
//!    inserted, and every table is re-read and checked against the manifest. Any mismatch
//!    rolls everything back: a restore is complete and verified, or it did not happen.
//! 4. Migrations newer than the archive are applied; audit rows of an archive from before the
//!    hash chain are sealed into it; media files are written.
//!
//! The audit log is append-only (`store::append_only`); `--force` deletes it through the
//! sanctioned bypass (`audit::chain::begin_maintenance`), inside the same transaction.
//!
//! `--verify-only` restores into a scratch SQLite database (or `--scratch-url`) and reports:
//! the restore drill.

use std::path::Path;
use std::time::Instant;

use secrecy::SecretString;
use serde::Serialize;

use super::archive::{self, Manifest, RowBatch};
use super::progress::Progress;
use super::{OpsError, TableCheck};
use crate::audit;
use crate::store::append_only::audit_chain_applied;
use crate::store::rows::{self, Conn, on_conn};
use crate::store::schema::{self, Table};
use crate::store::{Db, migrate};

pub struct RestoreOptions<'a> {
    pub force: bool,
    pub passphrase: Option<&'a SecretString>,
    /// Where media files from the archive go (skipped when `None`).
    pub media_dir: Option<&'a Path>,
    /// Put media files into this media store (S3) instead, under their archive paths.
    pub media_store: Option<&'a crate::media::MediaStore>,
    pub interactive: bool,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub archive_created_at: String,
    pub archive_engine: String,
    pub schema_version: i64,
    /// The audit chain's head the archive recorded (`vantus audit verify` on the target
    /// should report a chain that contains it).
    pub audit_head: Option<audit::ChainHead>,
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
    let known = migrate::known();
    let latest = known.last().map(|(v, _)| *v).unwrap_or(0);
    if manifest.schema_version > latest {
        return Err(OpsError::Refused(format!(
            "the archive has schema version {}, newer than this release knows ({latest}); restore it with a newer vantus",
            manifest.schema_version
        )));
    }
    if !known.iter().any(|(v, _)| *v == manifest.schema_version) {
        return Err(OpsError::Archive(archive::ArchiveError::Mismatch(format!(
            "schema version {} is not a version this release knows",
            manifest.schema_version
        ))));
    }
    check_covers_schema(&manifest).await?;
    Ok(manifest)
}

/// The manifest must list exactly the application tables of its schema version: a table left
/// out would be emptied by `--force` and reported as matching. The tables of that version are
/// those the migrations create, found by applying them to a private in-memory SQLite database
/// (one migration folder serves both engines), so nothing outside is touched.
async fn check_covers_schema(manifest: &Manifest) -> Result<(), OpsError> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().in_memory(true))
        .await?;
    let reference = Db::Sqlite(pool);
    let expected = async {
        migrate::migrate_to(&reference, Some(manifest.schema_version)).await?;
        Ok::<_, OpsError>(schema::tables(&reference).await?)
    }
    .await;
    reference.close().await;
    let expected: std::collections::BTreeSet<String> =
        expected?.into_iter().map(|t| t.name).collect();
    let mut listed = std::collections::BTreeSet::new();
    for t in &manifest.tables {
        if !listed.insert(t.table.name.clone()) {
            return Err(OpsError::Archive(archive::ArchiveError::Mismatch(format!(
                "the manifest lists table {} twice",
                t.table.name
            ))));
        }
    }
    if listed != expected {
        let missing: Vec<&str> = expected.difference(&listed).map(String::as_str).collect();
        let unknown: Vec<&str> = listed.difference(&expected).map(String::as_str).collect();
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            problems.push(format!("not in the schema: {}", unknown.join(", ")));
        }
        return Err(OpsError::Archive(archive::ArchiveError::Mismatch(format!(
            "it does not cover every table of schema version {} ({}); nothing was changed",
            manifest.schema_version,
            problems.join("; ")
        ))));
    }
    Ok(())
}

/// Refuses a database that holds any table at all (the application's or anyone else's): the
/// restore drill only ever restores into an empty scratch database, so it can never wipe or
/// change one that matters.
pub async fn ensure_empty_database(db: &Db, what: &str) -> Result<(), OpsError> {
    let tables: Vec<String> = on_db!(db, pool => sqlx::query_scalar(match db {
        Db::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        Db::Postgres(_) => "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
    }).fetch_all(pool).await)?;
    if tables.is_empty() {
        return Ok(());
    }
    Err(OpsError::Refused(format!(
        "{what} is not empty (it has tables {}); the restore drill only restores into an empty database",
        tables.join(", ")
    )))
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

    let mut tx = target.begin_write().await?;
    let checks = load_and_verify(
        &mut tx.conn(),
        archive_path,
        &manifest,
        &tables,
        &opts,
        replacing,
    )
    .await;
    let checks = finish_tx(tx, checks).await?;

    migrate::migrate_to(target, None).await?;
    schema::reset_sequences(target).await?;
    // An archive from before the hash chain brings audit rows without a place in it.
    audit::chain::seal_unchained(target).await?;
    let media_files = match (opts.media_store, opts.media_dir) {
        _ if manifest.media.is_empty() => 0,
        (Some(store), _) => {
            restore_media_to_store(archive_path, &manifest, opts.passphrase, store).await?
        }
        (None, Some(dir)) => restore_media(archive_path, &manifest, opts.passphrase, dir).await?,
        (None, None) => 0,
    };
    Ok(RestoreReport {
        archive_created_at: manifest.created_at.clone(),
        archive_engine: manifest.engine.clone(),
        schema_version: manifest.schema_version,
        audit_head: manifest.audit_head.clone(),
        target_engine: target.engine().as_str().to_owned(),
        rows: manifest.total_rows(),
        tables: checks,
        media_files,
        replaced_existing: replacing,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Commits when every table verified; rolls back otherwise.
async fn finish_tx(
    tx: crate::store::WriteTx,
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
        // The audit log is append-only; replacing it is the one sanctioned exception, opened
        // and closed inside this transaction (an older schema has neither guard nor chain).
        let bypass = if audit_chain_applied(conn).await? {
            Some(audit::chain::begin_maintenance(conn, "restore --force").await?)
        } else {
            None
        };
        for t in tables.iter().rev() {
            rows::delete_all(conn.reborrow(), t).await?;
        }
        if let Some(bypass) = bypass {
            audit::chain::end_maintenance(conn, bypass).await?;
        }
    }

    // The archive is read on a blocking thread and handed over in batches.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RowBatch>(4);
    let path = archive_path.to_owned();
    let pass = opts.passphrase.cloned();
    let for_reader = manifest.clone();
    let reader = tokio::task::spawn_blocking(move || {
        archive::read_rows(&path, pass.as_ref(), &for_reader, |batch| {
            tx.blocking_send(batch)
                .map_err(|_| archive::ArchiveError::Mismatch("the restore stopped".into()))
        })
    });

    let mut progress = Progress::new("restore", manifest.total_rows(), opts.interactive);
    let mut stage = String::new();
    while let Some(RowBatch { table, rows: batch }) = rx.recv().await {
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
    manifest: &Manifest,
    passphrase: Option<&SecretString>,
    dir: &Path,
) -> Result<usize, OpsError> {
    let path = archive_path.to_owned();
    let pass = passphrase.cloned();
    let dir = dir.to_owned();
    let listed = manifest.media.clone();
    tokio::task::spawn_blocking(move || -> Result<usize, OpsError> {
        let mut n = 0;
        archive::read_media(&path, pass.as_ref(), |rel, _, body| {
            // verify checked every path already; the archive is read again here, so again.
            archive::check_media_path(rel)?;
            let expected = listed.iter().find(|m| m.path == rel).ok_or_else(|| {
                archive::ArchiveError::Mismatch(format!("media file {rel} is not in the manifest"))
            })?;
            write_media_file(&dir, rel, expected, body)?;
            n += 1;
            Ok::<_, OpsError>(())
        })?;
        Ok(n)
    })
    .await
    .map_err(|e| OpsError::Integrity(format!("media restore failed: {e}")))?
}

/// Restores media into a (remote) media store: each file is written and checked in a private
/// scratch folder as for a local restore, then uploaded under its archive path.
async fn restore_media_to_store(
    archive_path: &Path,
    manifest: &Manifest,
    passphrase: Option<&SecretString>,
    store: &crate::media::MediaStore,
) -> Result<usize, OpsError> {
    let staging = tempfile::Builder::new()
        .prefix("vantus-media-restore-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| OpsError::io(&std::env::temp_dir(), e))?;
    let n = restore_media(archive_path, manifest, passphrase, staging.path()).await?;
    for entry in &manifest.media {
        archive::check_media_path(&entry.path)?;
        let file = staging.path().join(&entry.path);
        let bytes = tokio::fs::read(&file)
            .await
            .map_err(|e| OpsError::io(&file, e))?;
        store
            .put(&entry.path, bytes)
            .await
            .map_err(|e| OpsError::Storage(e.to_string()))?;
    }
    Ok(n)
}

/// Streams one media file to a temporary file beside its place (memory stays flat however
/// large it is), checks it against the manifest, and only then renames it into place.
fn write_media_file(
    dir: &Path,
    rel: &str,
    expected: &archive::MediaEntry,
    body: &mut dyn std::io::Read,
) -> Result<(), OpsError> {
    use sha2::Digest;
    let target = dir.join(rel);
    let parent = target.parent().expect("joined path has a parent");
    std::fs::create_dir_all(parent).map_err(|e| OpsError::io(parent, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".restoring-")
        .tempfile_in(parent)
        .map_err(|e| OpsError::io(parent, e))?;
    let (bytes, sha256) = {
        let mut hashing = HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut()),
            hasher: sha2::Sha256::new(),
        };
        let bytes = std::io::copy(body, &mut hashing)
            .and_then(|n| std::io::Write::flush(&mut hashing.inner).map(|_| n))
            .map_err(|e| OpsError::io(&target, e))?;
        (bytes, hex::encode(hashing.hasher.finalize()))
    };
    if bytes != expected.bytes || sha256 != expected.sha256 {
        return Err(OpsError::Integrity(format!(
            "media file {rel} differs from the manifest; it was not written"
        )));
    }
    tmp.persist(&target)
        .map_err(|e| OpsError::io(&target, e.error))?;
    Ok(())
}

struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
