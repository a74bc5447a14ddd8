//! Reading the audit log back: one tenant's entries, newest first, filtered, a page at a time.
//!
//! Pages are keyset pages on `seq` (the entry's place in the chain): "the entries before seq
//! N", never OFFSET, so page 1000 costs what page 1 costs and an entry written meanwhile does
//! not shift what the next page shows. Every query takes a [`TenantScope`]: entries of
//! another tenant, and installation-wide entries (no tenant), cannot be listed here.

use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// What to list; `None` means any.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exactly this action (`tenant.created`).
    pub action: Option<String>,
    /// Exactly this actor label (`user:…`, `cli`).
    pub actor: Option<String>,
    /// At or after this time.
    pub from: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
    /// Text the resource contains, ignoring case.
    pub resource: Option<String>,
}

/// One stored entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub seq: i64,
    pub id: Uuid,
    pub actor: String,
    pub action: String,
    pub resource: String,
    /// The JSON text as stored.
    pub detail: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: Timestamp,
    pub hash: Option<String>,
}
crate::store::from_row!(Entry {
    seq,
    id,
    actor,
    action,
    resource,
    detail,
    ip,
    request_id,
    created_at,
    hash
});

impl Entry {
    /// The account that acted, when a staff member did.
    pub fn actor_user(&self) -> Option<Uuid> {
        self.actor.strip_prefix("user:")?.parse().ok()
    }
}

/// `%text%` for LIKE, with the pattern characters of `text` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Up to `limit` entries of `scope` matching `filter`, newest first, older than `before`
/// (a `seq`; `None` for the newest). The next page starts before the last entry's `seq`.
pub async fn page(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let sql = "SELECT seq, id, actor, action, resource, detail, ip, request_id, created_at, hash
               FROM audit_log
               WHERE tenant_id = $1 AND seq IS NOT NULL AND ($2 IS NULL OR seq < $2)
                 AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR actor = $4)
                 AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6)
                 AND ($7 IS NULL OR LOWER(resource) LIKE $7 ESCAPE '\\')
               ORDER BY seq DESC LIMIT $8";
    let resource = filter.resource.as_deref().map(contains_pattern);
    on_conn!(conn.reborrow(), c => sqlx::query_as(sql)
        .bind(scope.id()).bind(before).bind(filter.action.as_deref()).bind(filter.actor.as_deref())
        .bind(filter.from).bind(filter.until).bind(resource.as_deref()).bind(limit)
        .fetch_all(c).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_text_is_matched_literally() {
        assert_eq!(contains_pattern("Tenant:"), "%tenant:%");
        assert_eq!(contains_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }
}
