//! Password resets: the queries on `password_resets`.
//!
//! A reset is a single-use link, its token stored only as a SHA-256 (the row's id). Asking for
//! a new link voids the older ones of the account, and using one voids every other, so at
//! most one link of an account works at any time.

use secrecy::SecretString;
use uuid::Uuid;

use super::session::{key_of, random_token};
use crate::store::{Conn, Timestamp, on_conn};

/// A new link's token (not stored) and its end.
pub struct Created {
    pub token: SecretString,
    pub expires_at: Timestamp,
}

/// A reset link found by its token, in any state.
#[derive(Clone, Debug)]
pub struct Found {
    pub id: String,
    pub user_id: Uuid,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}
crate::store::from_row!(Found {
    id,
    user_id,
    expires_at,
    used_at
});

impl Found {
    /// Not used, not void, not expired.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.used_at.is_none() && self.expires_at > now
    }
}

/// Starts a reset of `user`'s password valid for `ttl`, voiding the account's older links.
pub async fn create(
    conn: &mut Conn<'_>,
    user: Uuid,
    ttl: std::time::Duration,
) -> Result<Created, sqlx::Error> {
    void_all(conn, user).await?;
    let token = random_token()?;
    let now = Timestamp::now();
    let expires_at = now.plus(ttl);
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO password_resets (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)"
    ).bind(key_of(&token)).bind(user).bind(now).bind(expires_at).execute(c).await.map(|_| ()))?;
    Ok(Created {
        token: SecretString::from(token),
        expires_at,
    })
}

/// The link `token` names, in any state (the page says which).
pub async fn find(conn: &mut Conn<'_>, token: &str) -> Result<Option<Found>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, user_id, expires_at, used_at FROM password_resets WHERE id = $1"
    ).bind(key_of(token)).fetch_optional(c).await)
}

/// Uses the link `id`, if it is still live, and voids every other link of its account.
/// Returns whether this call used it (a second use, even a concurrent one, gets `false`).
pub async fn consume(conn: &mut Conn<'_>, live: &Found) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    let used = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE password_resets SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2"
    ).bind(&live.id).bind(now).execute(c).await.map(|r| r.rows_affected() == 1))?;
    if used {
        void_all(conn, live.user_id).await?;
    }
    Ok(used)
}

/// Voids every outstanding link of `user`.
async fn void_all(conn: &mut Conn<'_>, user: Uuid) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL"
    ).bind(user).bind(Timestamp::now()).execute(c).await.map(|_| ()))
}
