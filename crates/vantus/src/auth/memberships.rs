//! Who belongs to a tenant, as the tenants page manages it: listing members, changing a
//! role, removing someone, and the rule that a tenant always keeps an owner.
//!
//! Adding an existing account is [`super::users::add_membership`]; a user's own tenants are
//! [`crate::tenancy::memberships_of`].

use std::collections::HashMap;

use uuid::Uuid;

use super::permission::Role;
use crate::store::{Conn, on_conn};
use crate::tenancy::TenantScope;

/// A member of a tenant. The address is shown to the owner managing the tenant, never logged
/// or audited.
#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
}
crate::store::from_row!(Member {
    user_id,
    name,
    email,
    role
});

/// Everyone in `scope`, by name.
pub async fn members(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<Vec<Member>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT u.id AS user_id, u.name, u.email, m.role FROM memberships m
         JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY u.name, u.email"
    ).bind(scope.id()).fetch_all(c).await)
}

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("user: is not a member of this tenant")]
    NotMember,
    #[error("role: the tenant would have no owner left; make someone else owner first")]
    LastOwner,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Owners of `scope` other than `user`.
async fn other_owners(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    user: Uuid,
) -> Result<i64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner' AND user_id <> $2"
    ).bind(scope.id()).bind(user).fetch_one(c).await)
}

/// Gives `user` the role `role` in `scope` (or, with `None`, removes them), unless that
/// leaves the tenant without an owner. Returns the role they had. Run it in a write
/// transaction: the owner count and the change are one step.
pub async fn change(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    user: Uuid,
    role: Option<Role>,
) -> Result<Role, MemberError> {
    let had = super::users::role_in(conn, user, scope)
        .await?
        .ok_or(MemberError::NotMember)?;
    if had == Role::Owner
        && role != Some(Role::Owner)
        && other_owners(conn, scope, user).await? == 0
    {
        return Err(MemberError::LastOwner);
    }
    match role {
        Some(r) => super::users::add_membership(conn, user, scope, r).await?,
        None => {
            on_conn!(conn.reborrow(), c => sqlx::query(
                "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2"
            ).bind(scope.id()).bind(user).execute(c).await.map(|_| ()))?;
            // Sessions working in the tenant end with the membership (the session check
            // requires it anyway; this makes it visible on the account page too).
            on_conn!(conn.reborrow(), c => sqlx::query(
                "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND tenant_id = $2
                 AND revoked_at IS NULL"
            ).bind(user).bind(scope.id()).bind(crate::store::Timestamp::now())
                .execute(c).await.map(|_| ()))?;
        }
    }
    Ok(had)
}

/// The names of the accounts `ids`, for showing actors (one query; unknown ids are absent).
pub async fn names_of(
    conn: &mut Conn<'_>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, name FROM users WHERE id IN ({})",
        placeholders.join(", ")
    );
    let rows: Vec<(Uuid, String)> = on_conn!(conn.reborrow(), c => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(c).await
    })?;
    Ok(rows.into_iter().collect())
}
