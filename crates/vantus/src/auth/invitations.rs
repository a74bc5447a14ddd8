//! Invitations to a tenant: the queries on `invitations`.
//!
//! An invitation is a single-use link. Its token is 256 random bits that only the email
//! carries; the row keeps the token's SHA-256, like a session. It is *pending* until it is
//! accepted, revoked or past `expires_at`, and only a pending invitation can be accepted; the
//! acceptance is a conditional update, so two clicks on one link make one account.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::permission::Role;
use super::session::{key_of, random_token};
use super::users::LoginEmail;
use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// An invitation as the users page lists it.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}
crate::store::from_row!(Pending {
    id,
    email,
    role,
    created_at,
    expires_at
});

/// An invitation found by its token, whatever its state.
#[derive(Clone, Debug)]
pub struct Found {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: String,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}
crate::store::from_row!(Found {
    id,
    tenant_id,
    email,
    role,
    expires_at,
    accepted_at,
    revoked_at
});

/// Where an invitation stands, for the page its link opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Pending,
    Used,
    Revoked,
    Expired,
}

impl Found {
    pub fn standing(&self, now: Timestamp) -> Standing {
        if self.accepted_at.is_some() {
            Standing::Used
        } else if self.revoked_at.is_some() {
            Standing::Revoked
        } else if self.expires_at <= now {
            Standing::Expired
        } else {
            Standing::Pending
        }
    }

    /// The role it grants; the CHECK constraint allows only known roles.
    pub fn role(&self) -> Option<Role> {
        self.role.parse().ok()
    }
}

/// A new invitation: its id and the token for the link (not stored).
pub struct Created {
    pub id: Uuid,
    pub token: SecretString,
    pub expires_at: Timestamp,
}

/// Invites `email` into `scope` as `role`, valid for `ttl`. A pending invitation of the same
/// address to the same tenant is revoked first, so only the newest link works.
pub async fn create(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    email: &LoginEmail,
    role: Role,
    invited_by: Uuid,
    ttl: std::time::Duration,
) -> Result<Created, sqlx::Error> {
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE invitations SET revoked_at = $3
         WHERE tenant_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL"
    ).bind(scope.id()).bind(email.as_str()).bind(now).execute(c).await.map(|_| ()))?;
    let token = random_token()?;
    let id = Uuid::now_v7();
    let expires_at = now.plus(ttl);
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, created_at,
                                  expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ).bind(id).bind(scope.id()).bind(email.as_str()).bind(role.as_str()).bind(key_of(&token))
        .bind(invited_by).bind(now).bind(expires_at).execute(c).await.map(|_| ()))?;
    Ok(Created {
        id,
        token: SecretString::from(token),
        expires_at,
    })
}

/// The tenant's pending invitations, newest first.
pub async fn list_pending(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<Vec<Pending>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, email, role, created_at, expires_at FROM invitations
         WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2
         ORDER BY created_at DESC, id"
    ).bind(scope.id()).bind(Timestamp::now()).fetch_all(c).await)
}

/// The invitation a link's token names, in any state (the page says which).
pub async fn find_by_token(conn: &mut Conn<'_>, token: &str) -> Result<Option<Found>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, tenant_id, email, role, expires_at, accepted_at, revoked_at
         FROM invitations WHERE token_hash = $1"
    ).bind(key_of(token)).fetch_optional(c).await)
}

/// Withdraws a pending invitation of `scope`; one of another tenant is left alone. Returns
/// whether it was pending.
pub async fn revoke(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE invitations SET revoked_at = $3
         WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL"
    ).bind(id).bind(scope.id()).bind(Timestamp::now()).execute(c).await.map(|r| r.rows_affected() == 1))
}

/// Marks the invitation used by `user`, if it is still pending. Returns whether this call
/// did (a second acceptance, even a concurrent one, gets `false`).
pub async fn mark_accepted(conn: &mut Conn<'_>, id: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE invitations SET accepted_at = $3, accepted_by = $2
         WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3"
    ).bind(id).bind(user).bind(now).execute(c).await.map(|r| r.rows_affected() == 1))
}

/// The token of a link, as the path carries it, if it has the shape of one (43 characters of
/// URL-safe base64): anything else is not looked up at all.
pub fn token_from_path(raw: &str) -> Option<&str> {
    (raw.len() == 43
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(raw)
}

/// The link an email carries: `public_url` + `path` + the token.
pub fn link(public_url: &url::Url, path: &str, token: &SecretString) -> String {
    format!(
        "{}{path}{}",
        public_url.as_str().trim_end_matches('/'),
        token.expose_secret()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shaped_paths_are_looked_up_and_links_join_cleanly() {
        let token = random_token().unwrap();
        assert_eq!(token_from_path(&token), Some(token.as_str()));
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}/", &token[..42]),
            &"é".repeat(22),
        ] {
            assert_eq!(token_from_path(bad), None, "{bad}");
        }
        let secret = SecretString::from("tok".to_owned());
        for base in ["https://vantus.test", "https://vantus.test/"] {
            let url = url::Url::parse(base).unwrap();
            assert_eq!(
                link(&url, "/admin/invitations/", &secret),
                "https://vantus.test/admin/invitations/tok"
            );
        }
    }
}
