//! Content that waits for someone: drafts awaiting review, and (once the CMS schedules
//! publishing) items due to go live. For the portal's dashboard.

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// One item waiting, as the dashboard lists it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingItem {
    pub kind: String,
    pub slug: String,
    pub title: String,
    pub updated_at: Timestamp,
}

/// How many items the dashboard lists per section (the count covers all of them).
pub const LISTED: i64 = 5;

/// Drafts awaiting review (not deleted): how many, and the most recently changed few.
pub async fn awaiting_review(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<(i64, Vec<PendingItem>), sqlx::Error> {
    let total: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM content_items
         WHERE tenant_id = $1 AND status = 'draft' AND deleted_at IS NULL"
    ).bind(scope.id()).fetch_one(c).await)?;
    let items = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT kind, slug, title, updated_at FROM content_items
         WHERE tenant_id = $1 AND status = 'draft' AND deleted_at IS NULL
         ORDER BY updated_at DESC, slug
         LIMIT $2"
    ).bind(scope.id()).bind(LISTED).fetch_all(c).await)?;
    Ok((total, items))
}

/// Items scheduled to be published or unpublished: a hook for the CMS's scheduling (issue 12,
/// part 2), which adds the schedule table. Until then nothing can be scheduled, so this is
/// empty; the dashboard already shows the section.
pub async fn scheduled(
    _conn: &mut Conn<'_>,
    _scope: &TenantScope,
) -> Result<(i64, Vec<PendingItem>), sqlx::Error> {
    Ok((0, Vec::new()))
}
