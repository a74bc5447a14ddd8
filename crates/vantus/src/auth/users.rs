//! Staff accounts and their memberships: the queries on `users` and `memberships`.
//!
//! An account is global (one per address); what it may do is per tenant, through its
//! membership's [`Role`]. Accounts are staff, not tenant data, so these queries take a
//! [`TenantScope`] only where a membership is concerned.

use uuid::Uuid;

use super::permission::Role;
use crate::mail::address::Email;
use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// A staff member's sign-in address: valid syntax, stored and compared lower-cased, so
/// `Ada@Example.com` and `ada@example.com` are one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginEmail(String);

impl LoginEmail {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        Email::parse(raw).map(|e| LoginEmail(e.as_str().to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A staff member's display name: 1 to 120 characters, no control characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffName(String);

impl StaffName {
    pub const RULE: &'static str = "must be 1 to 120 characters without control characters";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let n = raw.trim();
        if n.is_empty() || n.chars().any(char::is_control) || n.chars().count() > 120 {
            return Err(Self::RULE);
        }
        Ok(StaffName(n.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored account.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
}
crate::store::from_row!(User {
    id,
    email,
    name,
    password_hash,
    disabled_at,
    created_at
});

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("an account with this email address exists already")]
    EmailTaken,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Creates an account with `password_hash` and its membership of `scope` as `role`, on
/// `conn` (join the caller's transaction, so the audit entry commits with it).
pub async fn create(
    conn: &mut Conn<'_>,
    email: &LoginEmail,
    name: &str,
    password_hash: Option<&str>,
    scope: &TenantScope,
    role: Role,
) -> Result<Uuid, CreateError> {
    let id = Uuid::now_v7();
    let now = Timestamp::now();
    let inserted = on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (email) DO NOTHING"
    ).bind(id).bind(email.as_str()).bind(name).bind(password_hash).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Err(CreateError::EmailTaken);
    }
    add_membership(conn, id, scope, role).await?;
    Ok(id)
}

/// Makes `user` a member of `scope` as `role` (or changes the role it has there).
pub async fn add_membership(
    conn: &mut Conn<'_>,
    user: Uuid,
    scope: &TenantScope,
    role: Role,
) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO memberships (id, user_id, tenant_id, role, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = excluded.role"
    ).bind(Uuid::now_v7()).bind(user).bind(scope.id()).bind(role.as_str()).bind(Timestamp::now())
        .execute(c).await.map(|_| ()))
}

pub async fn find_by_id(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, email, name, password_hash, disabled_at, created_at FROM users WHERE id = $1"
    ).bind(id).fetch_optional(c).await)
}

/// Replaces the user's password hash.
pub async fn set_password(conn: &mut Conn<'_>, id: Uuid, hash: &str) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1"
    ).bind(id).bind(hash).bind(Timestamp::now()).execute(c).await.map(|_| ()))
}

pub async fn find_by_email(
    conn: &mut Conn<'_>,
    email: &LoginEmail,
) -> Result<Option<User>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, email, name, password_hash, disabled_at, created_at FROM users WHERE email = $1"
    ).bind(email.as_str()).fetch_optional(c).await)
}

/// The tenant a user works in after signing in: the first they joined.
pub async fn first_tenant(conn: &mut Conn<'_>, user: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT tenant_id FROM memberships WHERE user_id = $1 ORDER BY created_at, id LIMIT 1"
    ).bind(user).fetch_optional(c).await)
}

/// The tenant a user works in after signing in ([`first_tenant`]), loaded.
pub async fn first_scope(
    conn: &mut Conn<'_>,
    user: Uuid,
) -> Result<Option<TenantScope>, sqlx::Error> {
    match first_tenant(conn, user).await? {
        Some(t) => crate::tenancy::find_by_id(conn, t).await,
        None => Ok(None),
    }
}

/// The user's role in `scope`, if they belong to it.
pub async fn role_in(
    conn: &mut Conn<'_>,
    user: Uuid,
    scope: &TenantScope,
) -> Result<Option<Role>, sqlx::Error> {
    let role: Option<String> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = $2"
    ).bind(user).bind(scope.id()).fetch_optional(c).await)?;
    // The CHECK constraint allows only known roles; anything else is treated as no access.
    Ok(role.and_then(|r| r.parse().ok()))
}

/// A member of a tenant, as the users page lists them.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// As stored; [`Member::role`] parses it.
    pub role: String,
    pub disabled_at: Option<Timestamp>,
    /// When the account last signed in (anywhere), if ever.
    pub last_sign_in: Option<Timestamp>,
}
crate::store::from_row!(Member {
    id,
    email,
    name,
    role,
    disabled_at,
    last_sign_in
});

impl Member {
    pub fn role(&self) -> Option<Role> {
        self.role.parse().ok()
    }
}

const MEMBER_COLUMNS: &str = "SELECT u.id, u.email, u.name, m.role, u.disabled_at,
        (SELECT MAX(s.created_at) FROM sessions s WHERE s.user_id = u.id) AS last_sign_in
     FROM memberships m JOIN users u ON u.id = m.user_id
     WHERE m.tenant_id = $1";

/// The members of `scope`, by name.
pub async fn members(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<Vec<Member>, sqlx::Error> {
    let sql = format!("{MEMBER_COLUMNS} ORDER BY u.name, u.id");
    on_conn!(conn.reborrow(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(scope.id()).fetch_all(c).await)
}

/// One member of `scope`; `None` for an account that is not a member of it (whatever other
/// tenant it belongs to).
pub async fn member(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    user: Uuid,
) -> Result<Option<Member>, sqlx::Error> {
    let sql = format!("{MEMBER_COLUMNS} AND u.id = $2");
    on_conn!(conn.reborrow(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(scope.id()).bind(user).fetch_optional(c).await)
}

/// How many members of `scope` are owners with an account that is not disabled.
pub async fn active_owners(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<i64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND m.role = 'owner' AND u.disabled_at IS NULL"
    ).bind(scope.id()).fetch_one(c).await)
}

/// Sets the member's role in `scope` (the membership must exist).
pub async fn set_role(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    user: Uuid,
    role: Role,
) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE memberships SET role = $3 WHERE user_id = $1 AND tenant_id = $2"
    ).bind(user).bind(scope.id()).bind(role.as_str()).execute(c).await.map(|_| ()))
}

/// Disables the account (`disabled: true`) or enables it again. Disabling is account-wide:
/// sign-in and every session check refuse a disabled account, in every tenant.
pub async fn set_disabled(
    conn: &mut Conn<'_>,
    user: Uuid,
    disabled: bool,
) -> Result<(), sqlx::Error> {
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE users SET disabled_at = CASE WHEN $2 THEN $3 ELSE NULL END, updated_at = $3
         WHERE id = $1"
    ).bind(user).bind(disabled).bind(now).execute(c).await.map(|_| ()))
}
