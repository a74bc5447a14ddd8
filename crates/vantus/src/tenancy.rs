//! Tenants, and the scope every tenant-owned query requires.
//!
//! A [`TenantScope`] can only be obtained from this module, by looking a tenant up in the
//! database. Functions that read or write tenant-owned rows take one, so there is no way to
//! express "all tenants" or "whatever tenant, if any" in business code.

use uuid::Uuid;

use crate::store::{Conn, Db, Timestamp, on_conn};

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

struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
}
crate::store::from_row!(TenantRow { id, slug, name });

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

/// The tenant with this id, if it still exists (a session or membership names it by id).
pub async fn find_by_id(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<TenantScope>, sqlx::Error> {
    let row: Option<TenantRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, slug, name FROM tenants WHERE id = $1"
    ).bind(id).fetch_optional(c).await)?;
    Ok(row.map(Into::into))
}

/// A tenant a staff member belongs to, with their role there (as stored; `auth::permission`
/// parses it).
#[derive(Clone, Debug)]
pub struct Membership {
    pub scope: TenantScope,
    pub role: String,
}

struct MembershipRow {
    tenant: TenantRow,
    role: String,
}
crate::store::from_row!(MembershipRow { role } flatten { tenant });

impl From<MembershipRow> for Membership {
    fn from(r: MembershipRow) -> Self {
        Self {
            scope: r.tenant.into(),
            role: r.role,
        }
    }
}

/// Every tenant `user` belongs to, by name, in one query (the portal's tenant switcher and
/// the tenants page).
pub async fn memberships_of(
    conn: &mut Conn<'_>,
    user: Uuid,
) -> Result<Vec<Membership>, sqlx::Error> {
    let rows: Vec<MembershipRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT t.id, t.slug, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.user_id = $1 ORDER BY t.name, t.slug"
    ).bind(user).fetch_all(c).await)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The tenant `id` if `user` belongs to it, with their role there: the only way the portal
/// reaches a tenant other than the session's (switching to it, an owner managing it).
pub async fn membership(
    conn: &mut Conn<'_>,
    user: Uuid,
    id: Uuid,
) -> Result<Option<Membership>, sqlx::Error> {
    let row: Option<MembershipRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT t.id, t.slug, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.user_id = $1 AND t.id = $2"
    ).bind(user).bind(id).fetch_optional(c).await)?;
    Ok(row.map(Into::into))
}

/// Why a tenant could not be created or renamed; each names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("name: must be 1 to 100 characters")]
    BadName,
    #[error("slug: must be 1 to 64 lowercase letters, digits and single inner hyphens")]
    BadSlug,
    #[error("slug: another tenant has this slug")]
    SlugTaken,
    #[error("host: is not a host name (letters, digits, dots and hyphens, without a port)")]
    BadHost,
    #[error("host: selects another tenant already")]
    HostTaken,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl TenantError {
    /// The form field at fault, if the client's.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TenantError::BadName => Some("name"),
            TenantError::BadSlug | TenantError::SlugTaken => Some("slug"),
            TenantError::BadHost | TenantError::HostTaken => Some("host"),
            TenantError::Database(_) => None,
        }
    }
}

fn valid_name(name: &str) -> Result<&str, TenantError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(TenantError::BadName);
    }
    Ok(name)
}

/// Creates a tenant (and its `site_state` row); a slug in use is refused, never reused.
pub async fn create(
    conn: &mut Conn<'_>,
    slug: &str,
    name: &str,
) -> Result<TenantScope, TenantError> {
    let name = valid_name(name)?;
    let slug = slug.trim();
    if !is_valid_slug(slug) {
        return Err(TenantError::BadSlug);
    }
    let now = Timestamp::now();
    let id = Uuid::now_v7();
    let inserted = on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO tenants (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (slug) DO NOTHING"
    ).bind(id).bind(slug).bind(name).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Err(TenantError::SlugTaken);
    }
    ensure(conn, slug, name, None).await.map_err(Into::into)
}

/// Renames `scope`; returns the new scope.
pub async fn rename(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    name: &str,
) -> Result<TenantScope, TenantError> {
    let name = valid_name(name)?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE tenants SET name = $2, updated_at = $3 WHERE id = $1"
    ).bind(scope.id()).bind(name).bind(Timestamp::now()).execute(c).await.map(|_| ()))?;
    Ok(TenantScope {
        name: name.to_owned(),
        ..scope.clone()
    })
}

/// The hosts that select `scope` on the public site, alphabetically.
pub async fn hosts_of(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<Vec<String>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT host FROM tenant_hosts WHERE tenant_id = $1 ORDER BY host"
    ).bind(scope.id()).fetch_all(c).await)
}

/// Makes `host` select `scope`, unless it selects another tenant (moving a host away from a
/// tenant is for whoever manages that one: remove it there first). Returns the host as
/// stored (lower-case, without port).
pub async fn claim_host(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    host: &str,
) -> Result<String, TenantError> {
    let typed = host.trim();
    let host = normalize_host(typed)
        .filter(|h| {
            // A DNS name: no port, no IPv6 literal, labels of 1 to 63 characters that neither
            // start nor end with a hyphen.
            !typed.contains(':')
                && h.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        })
        .ok_or(TenantError::BadHost)?;
    let owner: Option<Uuid> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT tenant_id FROM tenant_hosts WHERE host = $1"
    ).bind(&host).fetch_optional(c).await)?;
    match owner {
        Some(t) if t == scope.id() => Ok(host),
        Some(_) => Err(TenantError::HostTaken),
        None => {
            add_host(conn, scope, &host).await?;
            Ok(host)
        }
    }
}

/// Stops `host` selecting `scope`; returns whether it did.
pub async fn remove_host(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    host: &str,
) -> Result<bool, sqlx::Error> {
    let Some(host) = normalize_host(host) else {
        return Ok(false);
    };
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM tenant_hosts WHERE host = $1 AND tenant_id = $2"
    ).bind(host).bind(scope.id()).execute(c).await.map(|r| r.rows_affected() == 1))
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

/// `tenant_hosts` held in memory for the public site, so resolving a request's tenant costs
/// no query. The copy is kept until a change notice ([`crate::store::notify`]) says hosts
/// changed, from this replica or any other; while notices are down it is re-read (one query
/// for the whole table) when older than [`HOSTS_TTL`]. Lookups of unknown hosts never reach
/// the database, however many a client makes up.
pub struct HostDirectory {
    loaded: tokio::sync::RwLock<Option<LoadedHosts>>,
    /// Whether notices flow (then the copy never expires by age); `None` means never.
    notices: Option<crate::store::notify::Notices>,
}

/// How long a loaded copy of `tenant_hosts` is used while change notices are down.
pub const HOSTS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

struct LoadedHosts {
    at: std::time::Instant,
    hosts: std::collections::HashMap<String, TenantScope>,
}

impl Default for HostDirectory {
    fn default() -> Self {
        Self {
            loaded: tokio::sync::RwLock::new(None),
            notices: None,
        }
    }
}

impl HostDirectory {
    /// A directory whose copy lives as long as `notices` keep flowing.
    pub fn new(notices: crate::store::notify::Notices) -> Self {
        Self {
            loaded: tokio::sync::RwLock::new(None),
            notices: Some(notices),
        }
    }

    /// Drops the loaded copy, so the next lookup reads `tenant_hosts` again: on a change
    /// notice, and after a host changes here (so this replica shows it before the notice).
    pub async fn invalidate(&self) {
        *self.loaded.write().await = None;
    }

    /// The tenant `host` (as sent; port and case ignored) selects, if any.
    pub async fn find(&self, db: &Db, host: &str) -> Result<Option<TenantScope>, sqlx::Error> {
        let Some(host) = normalize_host(host) else {
            return Ok(None);
        };
        let pushed = self.notices.as_ref().is_some_and(|n| n.push_is_up());
        let fresh = |loaded: &Option<LoadedHosts>| {
            loaded
                .as_ref()
                .filter(|l| pushed || l.at.elapsed() < HOSTS_TTL)
                .is_some()
        };
        {
            let loaded = self.loaded.read().await;
            if fresh(&loaded) {
                return Ok(loaded.as_ref().and_then(|l| l.hosts.get(&host).cloned()));
            }
        }
        let mut loaded = self.loaded.write().await;
        // Another request may have reloaded while this one waited.
        if !fresh(&loaded) {
            let rows: Vec<(String, Uuid, String, String)> = crate::on_db!(db, pool => sqlx::query_as(
                "SELECT h.host, t.id, t.slug, t.name FROM tenant_hosts h
                 JOIN tenants t ON t.id = h.tenant_id"
            ).fetch_all(pool).await)?;
            let hosts = rows
                .into_iter()
                .map(|(host, id, slug, name)| (host, TenantScope { id, slug, name }))
                .collect();
            *loaded = Some(LoadedHosts {
                at: std::time::Instant::now(),
                hosts,
            });
        }
        Ok(loaded.as_ref().and_then(|l| l.hosts.get(&host).cloned()))
    }
}

/// Makes `host` select `scope` on the public site (replacing any tenant it selected before).
pub async fn add_host(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    host: &str,
) -> Result<(), sqlx::Error> {
    let host = normalize_host(host)
        .ok_or_else(|| sqlx::Error::Protocol(format!("\"{host}\" is not a host name")))?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO tenant_hosts (host, tenant_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (host) DO UPDATE SET tenant_id = excluded.tenant_id"
    ).bind(host).bind(scope.id()).bind(Timestamp::now()).execute(c).await.map(|_| ()))
}

/// The host part of a `Host` header, lower-cased and without the port; `None` for anything
/// that is not a plausible host name or address.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [::1]:8080
        &raw[..rest.find(']')? + 2]
    } else {
        raw.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(raw, |(h, _)| h)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    plausible.then_some(host)
}

/// Every tenant, for operations that must cover the whole installation (a right-to-erasure
/// request). Each one is still a scope: queries stay per tenant.
pub async fn all(conn: &mut Conn<'_>) -> Result<Vec<TenantScope>, sqlx::Error> {
    let rows: Vec<TenantRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, slug, name FROM tenants ORDER BY slug"
    ).fetch_all(c).await)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Where the tenant wants to hear about new leads when nobody else is configured.
pub async fn contact_email(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<Option<String>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT contact_email FROM tenants WHERE id = $1"
    ).bind(scope.id()).fetch_one(c).await)
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(
            normalize_host("Example.COM:8080").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(normalize_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host("evil.com/../x"), None);
        assert_eq!(normalize_host("a b"), None);
    }
}
