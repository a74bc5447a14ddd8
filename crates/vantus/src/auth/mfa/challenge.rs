//! The login challenge: what a browser holds between a correct password and the second
//! factor. Like a session, the cookie carries a random token and `login_challenges` only its
//! SHA-256. It lasts [`TTL`], allows [`MAX_ATTEMPTS`] codes, and is consumed by a success,
//! so it never turns into a session by itself.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::auth::session::{key_of, random_token};
use crate::store::{Conn, Timestamp, on_conn};

pub const TTL: Duration = Duration::from_secs(5 * 60);
/// Codes one challenge may try; then the person signs in with the password again (which the
/// per-client and per-account limits count).
pub const MAX_ATTEMPTS: i64 = 5;

#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: String,
    pub user_id: Uuid,
    pub next_path: String,
    pub attempts: i64,
}
crate::store::from_row!(Challenge {
    id,
    user_id,
    next_path,
    attempts
});

/// Starts a challenge for `user`, who will go to `next` once through.
pub async fn create(
    conn: &mut Conn<'_>,
    user: Uuid,
    next: &str,
) -> Result<SecretString, sqlx::Error> {
    let token = random_token()?;
    let now = Timestamp::now();
    // The user's finished challenges go when a new one starts, so the table stays as small as
    // the number of people signing in (no sweeper needed).
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM login_challenges
         WHERE user_id = $1 AND (expires_at <= $2 OR consumed_at IS NOT NULL OR attempts >= $3)"
    ).bind(user).bind(now).bind(MAX_ATTEMPTS).execute(c).await.map(|_| ()))?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO login_challenges (id, user_id, next_path, attempts, created_at, expires_at)
         VALUES ($1, $2, $3, 0, $4, $5)"
    ).bind(key_of(&token)).bind(user).bind(next).bind(now).bind(now.plus(TTL))
        .execute(c).await.map(|_| ()))?;
    Ok(SecretString::from(token))
}

/// The live challenge `token` names: not expired, not consumed, attempts left.
pub async fn find_live(
    conn: &mut Conn<'_>,
    token: &SecretString,
) -> Result<Option<Challenge>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, user_id, next_path, attempts FROM login_challenges
         WHERE id = $1 AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3"
    ).bind(key_of(token.expose_secret())).bind(Timestamp::now()).bind(MAX_ATTEMPTS)
        .fetch_optional(c).await)
}

/// Counts one attempt, before the code is checked (so a failure is counted even if what
/// follows fails). Returns false when no attempt was left (a concurrent request took it).
pub async fn count_attempt(conn: &mut Conn<'_>, id: &str) -> Result<bool, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE login_challenges SET attempts = attempts + 1
         WHERE id = $1 AND consumed_at IS NULL AND attempts < $2"
    ).bind(id).bind(MAX_ATTEMPTS).execute(c).await.map(|r| r.rows_affected() == 1))
}

/// Ends the challenge after a success.
pub async fn consume(conn: &mut Conn<'_>, id: &str) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE login_challenges SET consumed_at = $2 WHERE id = $1"
    ).bind(id).bind(Timestamp::now()).execute(c).await.map(|_| ()))
}
