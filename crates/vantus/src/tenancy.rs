//! Tenants, and the scope every tenant-owned query requires.
//!
//! A [`TenantScope`] can only be obtained from this module, by looking a tenant up in the
//! database. Functions that read or write tenant-owned rows take one, so there is no way to
//! express "all tenants" or "whatever tenant, if any" in business code.

use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};

/// Proof that a tenant exists, carried by every tenant-owned query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantScope {
    id: Uuid,
    slug: String,
    name: String,
}

impl TenantScope {
    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn slug(&self) -> &str {
        &self.slug
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

// Moved to a leaf module so `config` need not import `tenancy`; re-exported for callers.
pub use crate::slug::is_valid_slug;

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
}

impl From<TenantRow> for TenantScope {
    fn from(r: TenantRow) -> Self {
        Self {
            id: r.id,
            slug: r.slug,
            name: r.name,
        }
    }
}

pub async fn find_by_slug(
    conn: &mut Conn<'_>,
    slug: &str,
) -> Result<Option<TenantScope>, sqlx::Error> {
    let row: Option<TenantRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, slug, name FROM tenants WHERE slug = $1"
    ).bind(slug).fetch_optional(c).await)?;
    Ok(row.map(Into::into))
}

/// Creates the tenant unless it exists (idempotent; safe for concurrent starts), and its
/// `site_state` row, then returns its scope.
pub async fn ensure(
    conn: &mut Conn<'_>,
    slug: &str,
    name: &str,
    contact_email: Option<&str>,
) -> Result<TenantScope, sqlx::Error> {
    let now = Timestamp::now();
    let id = Uuid::now_v7();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO tenants (id, slug, name, contact_email, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (slug) DO NOTHING"
    ).bind(id).bind(slug).bind(name).bind(contact_email).bind(now).execute(c).await.map(|_| ()))?;
    let scope = find_by_slug(conn, slug)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO site_state (tenant_id, content_generation, updated_at)
         VALUES ($1, 1, $2)
         ON CONFLICT (tenant_id) DO NOTHING"
    ).bind(scope.id()).bind(now).execute(c).await.map(|_| ()))?;
    Ok(scope)
}
