//! Idempotent submissions: the first response to a key is kept, and a repeat of the request
//! (a double click, a browser resubmit, an API client's retry) gets that response again
//! without storing anything.
//!
//! The claim is the first statement of the submission's transaction: `INSERT … ON CONFLICT DO
//! NOTHING` on the unique (tenant, key). A concurrent twin on PostgreSQL waits on that row
//! until the first transaction ends, then finds it; on SQLite the write lock serialises them.
//! Either way exactly one transaction stores the lead. Because the saved response is written
//! in the same transaction as the lead, a key is never saved without its lead, nor the
//! reverse.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// The longest key accepted (Stripe allows 255).
pub const MAX_KEY_LEN: usize = 255;

/// A response to replay: status, an optional `Location`, and a body.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SavedResponse {
    pub status: i64,
    pub location: Option<String>,
    pub body: String,
}

/// A validated idempotency key with the fingerprint of the request that came with it.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    key: String,
    request_hash: String,
}

impl IdempotencyKey {
    /// `raw` must be 1 to 255 visible ASCII characters. `request` is what makes two requests
    /// "the same" (the normalised submission).
    pub fn new(raw: &str, request: &[u8]) -> Result<Self, String> {
        let key = raw.trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "must be 1 to {MAX_KEY_LEN} visible ASCII characters, such as a UUID"
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            request_hash: hex::encode(Sha256::digest(request)),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is new: it now holds the response given, and the caller stores its lead.
    New,
    /// The same request came before: answer with its response, store nothing.
    Replay(SavedResponse),
    /// The key was used before for a different request.
    Conflict,
}

/// Claims `key` for `response`, in the caller's transaction (see the module comment).
pub async fn claim(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    key: &IdempotencyKey,
    response: &SavedResponse,
) -> Result<Claim, sqlx::Error> {
    let inserted = on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO idempotency_keys (id, tenant_id, idempotency_key, request_hash, status,
                                       location, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
    )
    .bind(Uuid::now_v7())
    .bind(scope.id())
    .bind(&key.key)
    .bind(&key.request_hash)
    .bind(response.status)
    .bind(response.location.as_deref())
    .bind(&response.body)
    .bind(Timestamp::now())
    .execute(c).await.map(|r| r.rows_affected()))?;
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let (hash, status, location, body): (String, i64, Option<String>, String) = on_conn!(conn.reborrow(), c => sqlx::query_as(
            "SELECT request_hash, status, location, body FROM idempotency_keys
             WHERE tenant_id = $1 AND idempotency_key = $2"
        ).bind(scope.id()).bind(&key.key).fetch_one(c).await)?;
    Ok(if hash == key.request_hash {
        Claim::Replay(SavedResponse {
            status,
            location,
            body,
        })
    } else {
        Claim::Conflict
    })
}

/// Forgets keys saved before `before`: a retry comes within minutes, not days.
pub async fn purge(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    before: Timestamp,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND created_at < $2"
    ).bind(scope.id()).bind(before).execute(c).await.map(|r| r.rows_affected()))
}
