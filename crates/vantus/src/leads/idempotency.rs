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

use crate::store::{Conn, Timestamp, multirow, on_conn};
use crate::tenancy::TenantScope;

/// The longest key accepted (Stripe allows 255).
pub const MAX_KEY_LEN: usize = 255;

/// A response to replay: status, an optional `Location`, and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedResponse {
    pub status: i64,
    pub location: Option<String>,
    pub body: String,
}
crate::store::from_row!(SavedResponse {
    status,
    location,
    body
});

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

    /// The SHA-256 (hex) of the request the key was first used for.
    pub fn request_hash(&self) -> &str {
        &self.request_hash
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

/// A key to claim for a response, in a tenant.
pub struct ClaimRequest<'a> {
    pub scope: &'a TenantScope,
    pub key: &'a IdempotencyKey,
    pub response: &'a SavedResponse,
}

/// Claims each key for its response, in the caller's transaction (see the module comment),
/// a few keys a statement ([`multirow`]). Returns what each claim found, in order. When the
/// same key comes twice in `requests`, the first claims it and the second finds it (a replay
/// or a conflict), as if they had come one after the other.
pub async fn claim(
    conn: &mut Conn<'_>,
    requests: &[ClaimRequest<'_>],
) -> Result<Vec<Claim>, sqlx::Error> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = requests.iter().map(|_| Uuid::now_v7()).collect();
    // Rows are inserted (and their keys locked) in a fixed order, so two batches on
    // PostgreSQL that share keys wait for each other instead of deadlocking. The sort is
    // stable: of two equal keys, the earlier request still comes first.
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&requests[a], &requests[b]);
        (a.scope.id(), &a.key.key).cmp(&(b.scope.id(), &b.key.key))
    });
    let now = Timestamp::now();
    let bytes = |&i: &usize| {
        let r = &requests[i];
        120 + r.key.key.len()
            + r.key.request_hash.len()
            + r.response.body.len()
            + r.response.location.as_ref().map_or(0, String::len)
    };
    let mut inserted: Vec<Uuid> = Vec::with_capacity(requests.len());
    for order in multirow::chunks(&order, bytes) {
        let sql = format!(
            "INSERT INTO idempotency_keys (id, tenant_id, idempotency_key, request_hash, status,
                                           location, body, created_at)
             VALUES {}
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
             RETURNING id",
            multirow::values("($1, $2, $3, $4, $5, $6, $7, $8)", 8, order.len())
        );
        let returned: Vec<Uuid> = on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for &i in order {
                let (id, r) = (ids[i], &requests[i]);
                q = q
                    .bind(id)
                    .bind(r.scope.id())
                    .bind(&r.key.key)
                    .bind(&r.key.request_hash)
                    .bind(r.response.status)
                    .bind(r.response.location.as_deref())
                    .bind(&r.response.body)
                    .bind(now);
            }
            q.fetch_all(c).await
        })?;
        inserted.extend(returned);
    }
    let mut claims = Vec::with_capacity(requests.len());
    for (id, r) in ids.iter().zip(requests) {
        if inserted.contains(id) {
            claims.push(Claim::New);
            continue;
        }
        // The key was there before, or an earlier request of this batch took it.
        let (hash, status, location, body): (String, i64, Option<String>, String) = on_conn!(conn.reborrow(), c => sqlx::query_as(
                "SELECT request_hash, status, location, body FROM idempotency_keys
                 WHERE tenant_id = $1 AND idempotency_key = $2"
            ).bind(r.scope.id()).bind(&r.key.key).fetch_one(c).await)?;
        claims.push(if hash == r.key.request_hash {
            Claim::Replay(SavedResponse {
                status,
                location,
                body,
            })
        } else {
            Claim::Conflict
        });
    }
    Ok(claims)
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
