//! Every query on `media` and `media_variants`. The library's own reads and writes take a
//! [`TenantScope`] and filter by it; the variants queue ([`claim_pending`] and its finish) is
//! the one system-wide reader, like the outbox worker, and hands back the row's tenant.

use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// A file in the library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    pub id: Uuid,
    pub file_name: String,
    pub object_key: String,
    pub label: String,
    pub content_type: String,
    pub bytes: i64,
    pub sha256: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub alt_text: String,
    pub is_public: bool,
    pub variants_state: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
crate::store::from_row!(Media {
    id,
    file_name,
    object_key,
    label,
    content_type,
    bytes,
    sha256,
    width,
    height,
    alt_text,
    is_public,
    variants_state,
    created_at,
    updated_at
});

macro_rules! media_columns {
    () => {
        "id, file_name, object_key, label, content_type, bytes, sha256, width, height, alt_text, \
         is_public, variants_state, created_at, updated_at"
    };
}

/// A responsive variant of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantRow {
    pub media_id: Uuid,
    pub file_name: String,
    pub object_key: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub sha256: String,
}
crate::store::from_row!(VariantRow {
    media_id,
    file_name,
    object_key,
    width,
    height,
    bytes,
    sha256
});

macro_rules! variant_columns {
    () => {
        "media_id, file_name, object_key, width, height, bytes, sha256"
    };
}

/// An upload to record (its bytes are stored already).
pub struct NewMedia<'a> {
    pub id: Uuid,
    pub file_name: &'a str,
    pub object_key: &'a str,
    pub label: &'a str,
    pub content_type: &'a str,
    pub bytes: i64,
    pub sha256: &'a str,
    pub size: Option<(u32, u32)>,
    pub alt_text: &'a str,
    pub is_public: bool,
    /// Images wait for their variants; other files have none.
    pub wants_variants: bool,
    pub uploaded_by: Uuid,
}

pub async fn insert(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    m: &NewMedia<'_>,
) -> Result<(), sqlx::Error> {
    let now = Timestamp::now();
    let state = if m.wants_variants { "pending" } else { "none" };
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO media (id, tenant_id, file_name, object_key, label, content_type, bytes,
                            sha256, width, height, alt_text, is_public, variants_state,
                            variants_attempts, variants_lease_until, uploaded_by, created_at,
                            updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, NULL, $14, $15, $15)"
    )
    .bind(m.id).bind(scope.id()).bind(m.file_name).bind(m.object_key).bind(m.label)
    .bind(m.content_type).bind(m.bytes).bind(m.sha256)
    .bind(m.size.map(|s| i64::from(s.0))).bind(m.size.map(|s| i64::from(s.1)))
    .bind(m.alt_text).bind(m.is_public).bind(state).bind(m.uploaded_by).bind(now)
    .execute(c).await.map(|_| ()))
}

/// The newest first.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    limit: i64,
) -> Result<Vec<Media>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        media_columns!(),
        " FROM media WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
        .bind(scope.id()).bind(limit.max(0)).fetch_all(c).await)
}

pub async fn get(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<Media>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        media_columns!(),
        " FROM media WHERE tenant_id = $1 AND id = $2"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
        .bind(scope.id()).bind(id).fetch_optional(c).await)
}

/// What `/media/<file_name>` serves: an original or a variant, with its owner's visibility.
#[derive(Clone, Debug)]
pub struct Served {
    pub object_key: String,
    pub content_type: String,
    pub sha256: String,
    pub is_public: bool,
    pub label: String,
}
crate::store::from_row!(Served {
    object_key,
    content_type,
    sha256,
    is_public,
    label
});

/// The file called `file_name` in `scope` (an original or one of its variants).
pub async fn find_served(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    file_name: &str,
) -> Result<Option<Served>, sqlx::Error> {
    let original = on_conn!(conn.reborrow(), c => sqlx::query_as::<_, Served>(
        "SELECT object_key, content_type, sha256, is_public, label FROM media
         WHERE tenant_id = $1 AND file_name = $2"
    ).bind(scope.id()).bind(file_name).fetch_optional(c).await)?;
    if original.is_some() {
        return Ok(original);
    }
    on_conn!(conn.reborrow(), c => sqlx::query_as::<_, Served>(
        "SELECT v.object_key, 'image/webp' AS content_type, v.sha256, m.is_public, m.label
         FROM media_variants v JOIN media m ON m.id = v.media_id
         WHERE m.tenant_id = $1 AND v.file_name = $2"
    ).bind(scope.id()).bind(file_name).fetch_optional(c).await)
}

/// Changes the alt text and visibility; false when the tenant has no such file.
pub async fn update(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    alt_text: &str,
    is_public: bool,
) -> Result<bool, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE media SET alt_text = $3, is_public = $4, updated_at = $5
         WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(alt_text).bind(is_public).bind(Timestamp::now())
    .execute(c).await.map(|r| r.rows_affected() == 1))
}

/// Deletes a file's rows (its variants first); returns the object keys to remove from the
/// store, or `None` when the tenant has no such file.
pub async fn delete(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<(Media, Vec<String>)>, sqlx::Error> {
    let Some(media) = get(conn, scope, id).await? else {
        return Ok(None);
    };
    let mut keys: Vec<String> = variants_of(conn, scope, &[id])
        .await?
        .into_iter()
        .map(|v| v.object_key)
        .collect();
    keys.push(media.object_key.clone());
    on_conn!(conn.reborrow(), c => sqlx::query("DELETE FROM media_variants WHERE media_id = $1")
        .bind(id).execute(c).await.map(|_| ()))?;
    on_conn!(conn.reborrow(), c => sqlx::query("DELETE FROM media WHERE tenant_id = $1 AND id = $2")
        .bind(scope.id()).bind(id).execute(c).await.map(|_| ()))?;
    Ok(Some((media, keys)))
}

/// The variants of these files of `scope`, widest first.
pub async fn variants_of(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    ids: &[Uuid],
) -> Result<Vec<VariantRow>, sqlx::Error> {
    let mut out = Vec::new();
    for id in ids {
        const SQL: &str = concat!(
            "SELECT ",
            variant_columns!(),
            " FROM media_variants WHERE media_id = $2 AND media_id IN
              (SELECT id FROM media WHERE tenant_id = $1) ORDER BY width DESC"
        );
        let rows: Vec<VariantRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
            .bind(scope.id()).bind(*id).fetch_all(c).await)?;
        out.extend(rows);
    }
    Ok(out)
}

/// The files of `scope` with these file names (for the Markdown renderer's lookup).
pub async fn by_file_names(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    names: &[String],
) -> Result<Vec<Media>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        media_columns!(),
        " FROM media WHERE tenant_id = $1 AND file_name = $2"
    );
    let mut out = Vec::new();
    for name in names {
        let row: Option<Media> = on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
            .bind(scope.id()).bind(name).fetch_optional(c).await)?;
        out.extend(row);
    }
    Ok(out)
}

/// An image whose variants a worker has claimed.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub file_name: String,
    pub object_key: String,
    pub content_type: String,
    pub variants_attempts: i64,
}
crate::store::from_row!(Claimed {
    id,
    tenant_id,
    file_name,
    object_key,
    content_type,
    variants_attempts
});

/// Claims the oldest image waiting for variants (or whose claim ran out: its worker died),
/// for `lease`. A compare-and-set on the lease, so two replicas never take the same row.
pub async fn claim_pending(
    conn: &mut Conn<'_>,
    lease: std::time::Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let now = Timestamp::now();
    let candidate: Option<Claimed> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, tenant_id, file_name, object_key, content_type, variants_attempts FROM media
         WHERE variants_state = 'pending'
           AND (variants_lease_until IS NULL OR variants_lease_until < $1)
         ORDER BY created_at LIMIT 1"
    ).bind(now).fetch_optional(c).await)?;
    let Some(mut row) = candidate else {
        return Ok(None);
    };
    let taken = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE media SET variants_lease_until = $2, variants_attempts = variants_attempts + 1
         WHERE id = $1 AND variants_state = 'pending' AND variants_attempts = $3"
    ).bind(row.id).bind(now.plus(lease)).bind(row.variants_attempts)
    .execute(c).await.map(|r| r.rows_affected() == 1))?;
    row.variants_attempts += 1;
    Ok(taken.then_some(row))
}

/// A finished variant to record.
pub struct NewVariant {
    pub file_name: String,
    pub object_key: String,
    pub width: u32,
    pub height: u32,
    pub bytes: i64,
    pub sha256: String,
}

/// Records the variants of a claimed image (replacing any from an earlier, interrupted run)
/// and marks it ready. False when the image was deleted meanwhile.
pub async fn finish_variants(
    conn: &mut Conn<'_>,
    media_id: Uuid,
    variants: &[NewVariant],
) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    let updated = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE media SET variants_state = 'ready', variants_lease_until = NULL WHERE id = $1"
    ).bind(media_id).execute(c).await.map(|r| r.rows_affected() == 1))?;
    if !updated {
        return Ok(false);
    }
    on_conn!(conn.reborrow(), c => sqlx::query("DELETE FROM media_variants WHERE media_id = $1")
        .bind(media_id).execute(c).await.map(|_| ()))?;
    for v in variants {
        on_conn!(conn.reborrow(), c => sqlx::query(
            "INSERT INTO media_variants (id, media_id, file_name, object_key, width, height, bytes,
                                         sha256, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ).bind(Uuid::now_v7()).bind(media_id).bind(&v.file_name).bind(&v.object_key)
        .bind(i64::from(v.width)).bind(i64::from(v.height)).bind(v.bytes).bind(&v.sha256).bind(now)
        .execute(c).await.map(|_| ()))?;
    }
    Ok(true)
}

/// A claimed image whose variants could not be made: tried again after `retry_after`, or
/// marked failed once it has had `max_attempts`.
pub async fn fail_variants(
    conn: &mut Conn<'_>,
    claimed: &Claimed,
    max_attempts: i64,
    retry_after: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let state = if claimed.variants_attempts >= max_attempts {
        "failed"
    } else {
        "pending"
    };
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE media SET variants_state = $2, variants_lease_until = $3 WHERE id = $1"
    ).bind(claimed.id).bind(state).bind(Timestamp::now().plus(retry_after))
    .execute(c).await.map(|_| ()))
}
