//! Server-side sessions: the `sessions` table is the truth, the cookie holds only a random
//! token, and the table holds only the token's SHA-256.
//!
//! A session ends when it has been idle for `VANTUS_SESSION_IDLE_TIMEOUT`, at
//! `VANTUS_SESSION_MAX_AGE` after sign-in whatever happens, or when revoked (sign-out, an
//! owner, a password change). Each has its own synchronizer token for the portal's forms.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// How often `last_seen_at` is written: a busy session would otherwise write on every request.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A 256-bit random token from the operating system, URL-safe base64. Sessions, invitations,
/// password-reset links and passkey ceremonies all use it.
pub(crate) fn random_token() -> Result<String, sqlx::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| sqlx::Error::Protocol(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The key a token is stored under: its SHA-256, hex (a leaked table opens nothing).
pub(crate) fn key_of(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The session token a request presents in its cookie, if any.
pub fn session_token(headers: &axum::http::HeaderMap, cookie: &str) -> Option<SecretString> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie)
        .map(|(_, value)| SecretString::from(value.to_owned()))
}

/// A live session, as the request that presented its token sees it: with the account's name
/// and its role in the session's tenant.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token's SHA-256: how the session is named in queries, never the token itself.
    pub id: String,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub user_name: String,
    /// As stored; [`crate::auth::permission::Role`] parses it.
    pub role: String,
    /// When the user last proved a factor in this session (sign-in, re-authentication,
    /// password change); MFA changes need it within `VANTUS_REAUTH_WINDOW`.
    pub authenticated_at: Option<Timestamp>,
    /// The user's role requires MFA and they have none: [`crate::auth::staff::Staff`] sends
    /// them to enrolment and nowhere else.
    pub must_enrol_mfa: bool,
}
crate::store::from_row!(Session {
    id,
    user_id,
    tenant_id,
    csrf_token,
    created_at,
    last_seen_at,
    expires_at,
    user_name,
    role,
    authenticated_at,
    must_enrol_mfa
});

impl Session {
    /// Whether the last proof of a factor is within `window`.
    pub fn is_fresh(&self, window: Duration) -> bool {
        self.authenticated_at
            .is_some_and(|t| t > Timestamp::now().minus(window))
    }
}

/// What signing in hands the browser: the cookie's token.
pub struct Started {
    pub token: SecretString,
    pub session_id: String,
    /// The new session's form token, for a page rendered in the same response.
    pub csrf_token: String,
}

/// Starts a session for `user` working in `scope`, on `conn` (the caller's transaction, so
/// the audit entry of the sign-in commits with it). Starting one is a proof of a factor, so
/// `authenticated_at` is now.
pub async fn start(
    conn: &mut Conn<'_>,
    user: Uuid,
    scope: &TenantScope,
    ip: Option<&str>,
    user_agent: Option<&str>,
    max_age: Duration,
) -> Result<Started, sqlx::Error> {
    let expires = Timestamp::now().plus(max_age);
    start_until(conn, user, scope, ip, user_agent, expires).await
}

/// [`start`], for a session that ends at `expires`: one that replaces another (a tenant
/// switch) keeps the replaced one's absolute limit.
pub async fn start_until(
    conn: &mut Conn<'_>,
    user: Uuid,
    scope: &TenantScope,
    ip: Option<&str>,
    user_agent: Option<&str>,
    expires: Timestamp,
) -> Result<Started, sqlx::Error> {
    let token = random_token()?;
    let id = key_of(&token);
    let now = Timestamp::now();
    // A user agent is the client's to choose: bounded before it is stored.
    let user_agent = user_agent.map(|ua| ua.chars().take(200).collect::<String>());
    let csrf_token = random_token()?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO sessions (id, user_id, tenant_id, csrf_token, ip, user_agent, created_at,
                               last_seen_at, expires_at, authenticated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $7)"
    ).bind(&id).bind(user).bind(scope.id()).bind(&csrf_token).bind(ip).bind(user_agent)
        .bind(now).bind(expires).execute(c).await.map(|_| ()))?;
    Ok(Started {
        token: SecretString::from(token),
        session_id: id,
        csrf_token,
    })
}

/// The live session `token` names: not revoked, not past its end, not idle longer than
/// `idle`, of an account that is not disabled and still belongs to the session's tenant.
/// Marks it seen (at most once a minute).
pub async fn find_live(
    conn: &mut Conn<'_>,
    token: &SecretString,
    idle: Duration,
) -> Result<Option<Session>, sqlx::Error> {
    let now = Timestamp::now();
    let idle_since = now.minus(idle);
    let found: Option<Session> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT s.id, s.user_id, s.tenant_id, s.csrf_token, s.created_at, s.last_seen_at,
                s.expires_at, u.name AS user_name, m.role, s.authenticated_at, s.must_enrol_mfa
         FROM sessions s
         JOIN users u ON u.id = s.user_id
         JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id
         WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $3
           AND u.disabled_at IS NULL"
    ).bind(key_of(token.expose_secret())).bind(now).bind(idle_since).fetch_optional(c).await)?;
    if let Some(s) = &found
        && s.last_seen_at < now.minus(TOUCH_EVERY)
    {
        on_conn!(conn.reborrow(), c => sqlx::query(
            "UPDATE sessions SET last_seen_at = $2 WHERE id = $1"
        ).bind(&s.id).bind(now).execute(c).await.map(|_| ()))?;
    }
    Ok(found)
}

/// Records that the session's user just proved a factor again (re-authentication, password).
pub async fn mark_authenticated(conn: &mut Conn<'_>, session_id: &str) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE sessions SET authenticated_at = $2 WHERE id = $1"
    ).bind(session_id).bind(Timestamp::now()).execute(c).await.map(|_| ()))
}

/// Marks (or clears) the session as one that may only enrol a second factor.
pub async fn set_must_enrol(
    conn: &mut Conn<'_>,
    session_id: &str,
    must: bool,
) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE sessions SET must_enrol_mfa = $2 WHERE id = $1"
    ).bind(session_id).bind(must).execute(c).await.map(|_| ()))
}

/// After a change to the user's credentials: ends every other session of theirs and this one,
/// and continues under a new token (a privilege change never keeps the old one). The new
/// session keeps the old one's `authenticated_at`. Returns it and how many others ended.
pub async fn renew(
    conn: &mut Conn<'_>,
    old: &Session,
    scope: &TenantScope,
    ip: Option<&str>,
    user_agent: Option<&str>,
    max_age: Duration,
) -> Result<(Started, u64), sqlx::Error> {
    let others = revoke_others(conn, old.user_id, &old.id).await?;
    revoke(conn, &old.id).await?;
    let fresh = start(conn, old.user_id, scope, ip, user_agent, max_age).await?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE sessions SET authenticated_at = $2 WHERE id = $1"
    ).bind(&fresh.session_id).bind(old.authenticated_at).execute(c).await.map(|_| ()))?;
    Ok((fresh, others))
}

/// One of a user's live sessions, as the account page lists it.
#[derive(Clone, Debug)]
pub struct Listed {
    pub id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}
crate::store::from_row!(Listed {
    id,
    ip,
    user_agent,
    created_at,
    last_seen_at
});

/// The user's live sessions, the most recently used first.
pub async fn list_live(
    conn: &mut Conn<'_>,
    user: Uuid,
    idle: Duration,
) -> Result<Vec<Listed>, sqlx::Error> {
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, ip, user_agent, created_at, last_seen_at FROM sessions
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3
         ORDER BY last_seen_at DESC, id"
    ).bind(user).bind(now).bind(now.minus(idle)).fetch_all(c).await)
}

/// Which live sessions [`end`] ends. Every way of revoking is one of these, so there is one
/// statement to get right.
#[derive(Clone, Copy, Debug)]
pub enum Ending<'a> {
    /// One session, whoever's it is (sign-out).
    One(&'a str),
    /// One session, only if it is `user`'s (the account page names sessions by id).
    OneOf { user: Uuid, session: &'a str },
    /// Every session of `user`, but `keep` if given, only in `tenant` if given (disabling a
    /// user, a password reset, a role change in one tenant, an owner's "sign out everywhere").
    AllOf {
        user: Uuid,
        keep: Option<&'a str>,
        tenant: Option<Uuid>,
    },
}

/// Ends the live sessions `which` names; returns how many ended.
pub async fn end(conn: &mut Conn<'_>, which: Ending<'_>) -> Result<u64, sqlx::Error> {
    let (id, user, keep, tenant) = match which {
        Ending::One(id) => (Some(id), None, None, None),
        Ending::OneOf { user, session } => (Some(session), Some(user), None, None),
        Ending::AllOf { user, keep, tenant } => (None, Some(user), keep, tenant),
    };
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE sessions SET revoked_at = $1
         WHERE revoked_at IS NULL
           AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR user_id = $3)
           AND ($4 IS NULL OR id <> $4) AND ($5 IS NULL OR tenant_id = $5)"
    ).bind(Timestamp::now()).bind(id).bind(user).bind(keep).bind(tenant)
        .execute(c).await.map(|r| r.rows_affected()))
}

/// Ends one of `user`'s sessions; a session of anyone else is left alone. Returns whether it
/// was live.
pub async fn revoke_own(
    conn: &mut Conn<'_>,
    user: Uuid,
    session_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(end(
        conn,
        Ending::OneOf {
            user,
            session: session_id,
        },
    )
    .await?
        == 1)
}

/// Ends every session of `user` but `keep` (sign out everywhere else; also after a password
/// or MFA change). Returns how many ended.
pub async fn revoke_others(
    conn: &mut Conn<'_>,
    user: Uuid,
    keep: &str,
) -> Result<u64, sqlx::Error> {
    end(
        conn,
        Ending::AllOf {
            user,
            keep: Some(keep),
            tenant: None,
        },
    )
    .await
}

/// Ends one session (sign-out). Returns whether it was live.
pub async fn revoke(conn: &mut Conn<'_>, session_id: &str) -> Result<bool, sqlx::Error> {
    Ok(end(conn, Ending::One(session_id)).await? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_256_bit_and_stored_only_as_their_hash() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        let key = key_of(&a);
        assert_eq!(key.len(), 64);
        assert!(!key.contains(&a));
        assert_eq!(key, key_of(&a), "the same token finds the same row");
    }
}
