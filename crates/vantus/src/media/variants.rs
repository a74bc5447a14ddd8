//! The variants job: responsive WebP copies of every image, made in the background.
//!
//! The queue is the `media` table itself (`variants_state = 'pending'`), so an upload and its
//! job commit together and a restart loses nothing: a worker claims a row with a lease
//! ([`queries::claim_pending`]); a worker that dies leaves a lease that runs out, and the row
//! is claimed again. Making variants is idempotent: their names are derived from the
//! original's, so a second run overwrites the same objects and replaces the same rows. Every
//! `serve` runs a worker; the lease keeps two from doing the same image.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::process::{self, Limits};
use super::queries::{self, Claimed, NewVariant};
use super::sniff::Kind;
use super::{MediaStore, object_key, sha256_hex, variant_file_name};
use crate::store::Db;

/// How long a claim lasts: far longer than a 24-megapixel image takes.
const LEASE: Duration = Duration::from_secs(300);
/// How often an idle worker looks for work.
const POLL: Duration = Duration::from_secs(1);
/// Attempts before an image is marked failed (it is then shown without variants).
const MAX_ATTEMPTS: i64 = 3;
const RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] super::storage::StorageError),
}

/// Claims and processes one waiting image; false when none was waiting.
pub async fn run_once(db: &Db, store: &MediaStore, limits: Limits) -> Result<bool, JobError> {
    let Some(claimed) = with_conn!(db, conn => queries::claim_pending(conn, LEASE).await)? else {
        return Ok(false);
    };
    match make(db, store, limits, &claimed).await {
        Ok(()) => {}
        Err(why) => {
            tracing::warn!(media = %claimed.id, attempt = claimed.variants_attempts, error = %why, "media variants failed");
            with_conn!(db, conn => queries::fail_variants(conn, &claimed, MAX_ATTEMPTS, RETRY_AFTER).await)?;
        }
    }
    Ok(true)
}

/// Processes every waiting image (tests, and the bench, call this to finish the queue).
pub async fn drain(db: &Db, store: &MediaStore, limits: Limits) -> Result<usize, JobError> {
    let mut done = 0;
    while run_once(db, store, limits).await? {
        done += 1;
    }
    Ok(done)
}

async fn make(
    db: &Db,
    store: &MediaStore,
    limits: Limits,
    claimed: &Claimed,
) -> Result<(), String> {
    let kind = Kind::from_content_type(&claimed.content_type)
        .ok_or_else(|| format!("{} has no variants", claimed.content_type))?;
    let original = store
        .get(&claimed.object_key)
        .await
        .map_err(|e| e.to_string())?;
    let made = process::run_blocking(move || process::variants(&original, kind, limits))
        .await
        .ok_or("the variant maker panicked")?
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::with_capacity(made.len());
    for v in made {
        let file_name = variant_file_name(&claimed.file_name, v.width);
        let key = object_key(claimed.tenant_id, &file_name);
        let sha256 = sha256_hex(&v.bytes);
        let bytes = v.bytes.len() as i64;
        store.put(&key, v.bytes).await.map_err(|e| e.to_string())?;
        rows.push(NewVariant {
            file_name,
            object_key: key,
            width: v.width,
            height: v.height,
            bytes,
            sha256,
        });
    }
    let kept = in_write_tx!(db, conn => queries::finish_variants(conn, claimed.id, &rows).await)
        .map_err(|e: sqlx::Error| e.to_string())?;
    if !kept {
        // Deleted while its variants were being made: take them away again.
        for row in &rows {
            let _ = store.delete(&row.object_key).await;
        }
    }
    Ok(())
}

/// The worker `serve` runs until `stop`.
pub fn spawn(db: Db, store: MediaStore, limits: Limits, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let worked = match run_once(&db, &store, limits).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::debug!(error = %e, "media variants queue unavailable");
                    false
                }
            };
            if worked {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return,
            }
        }
    })
}
