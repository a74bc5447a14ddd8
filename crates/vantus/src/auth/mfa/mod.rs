//! The second factor: TOTP authenticators ([`totp`]) whose secrets are encrypted at rest
//! ([`secret_box`]), single-use recovery codes ([`recovery`]), and the login challenge between
//! the password and the code ([`challenge`]).
//!
//! The queries here own `mfa_totp` and `mfa_recovery_codes`. Every check that accepts a code
//! also burns it in the same statement (a TOTP step no later than the last accepted one, a
//! recovery code already used, match no row), so two requests racing with one code cannot
//! both succeed.

pub mod challenge;
pub mod recovery;
pub mod secret_box;
pub mod totp;

use uuid::Uuid;

use crate::secrets::MfaKey;
use crate::store::{Conn, Timestamp, on_conn};

/// Which second factor a code proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
}

/// Whether `user` has a second factor that sign-in must ask for: a confirmed TOTP
/// authenticator or a passkey (either satisfies `VANTUS_MFA_REQUIRED_ROLES`).
pub async fn is_enrolled(conn: &mut Conn<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(has_totp(conn, user_id).await? || super::passkeys::count_for(conn, user_id).await? > 0)
}

/// Whether `user` has a confirmed TOTP authenticator (what the enrolment page shows).
pub async fn has_totp(conn: &mut Conn<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let n: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT count(*) FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL"
    ).bind(user_id).fetch_one(c).await)?;
    Ok(n > 0)
}

/// The secret an enrolment shows: the pending one if the user already has one (a reload
/// shows the same QR code), else a new one, stored sealed. `None` when TOTP is already
/// confirmed (disable it first).
pub async fn pending_secret(
    conn: &mut Conn<'_>,
    key: &MfaKey,
    user: Uuid,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row: Option<(String, Option<Timestamp>)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT secret_sealed, confirmed_at FROM mfa_totp WHERE user_id = $1"
    ).bind(user).fetch_optional(c).await)?;
    match row {
        Some((_, Some(_))) => Ok(None),
        Some((sealed, None)) => match secret_box::open(key, user, &sealed) {
            Ok(secret) => Ok(Some(secret)),
            // Sealed under an older key: start the enrolment again with a new secret.
            Err(_) => replace_pending(conn, key, user).await.map(Some),
        },
        None => replace_pending(conn, key, user).await.map(Some),
    }
}

async fn replace_pending(
    conn: &mut Conn<'_>,
    key: &MfaKey,
    user: Uuid,
) -> Result<Vec<u8>, sqlx::Error> {
    let secret = totp::new_secret()?;
    let sealed = secret_box::seal(key, user, &secret)?;
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO mfa_totp (user_id, secret_sealed, created_at, updated_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed,
             updated_at = excluded.updated_at, last_step = NULL
         WHERE mfa_totp.confirmed_at IS NULL"
    ).bind(user).bind(sealed).bind(now).execute(c).await.map(|_| ()))?;
    Ok(secret)
}

/// Confirms a pending enrolment with `code`, and gives the user their first recovery codes.
/// `None` when the code is not right (or nothing is pending).
pub async fn confirm(
    conn: &mut Conn<'_>,
    key: &MfaKey,
    user: Uuid,
    code: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let sealed: Option<String> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT secret_sealed FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NULL"
    ).bind(user).fetch_optional(c).await)?;
    let Some(secret) = sealed.and_then(|s| secret_box::open(key, user, &s).ok()) else {
        return Ok(None);
    };
    let Some(step) = totp::check(&secret, code.trim(), totp::now_seconds()) else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let done = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE mfa_totp SET confirmed_at = $2, last_step = $3, updated_at = $2
         WHERE user_id = $1 AND confirmed_at IS NULL"
    ).bind(user).bind(now).bind(step as i64).execute(c).await.map(|r| r.rows_affected() == 1))?;
    if !done {
        return Ok(None);
    }
    replace_recovery_codes(conn, user).await.map(Some)
}

/// New recovery codes for `user`; the old ones stop working. Returns the codes to show once.
pub async fn replace_recovery_codes(
    conn: &mut Conn<'_>,
    user: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1"
    ).bind(user).execute(c).await.map(|_| ()))?;
    let codes = recovery::new_codes()?;
    let now = Timestamp::now();
    for code in &codes {
        let hash = recovery::normalise(code)
            .map(|n| recovery::hash(&n))
            .ok_or_else(|| sqlx::Error::Protocol("a recovery code that does not parse".into()))?;
        on_conn!(conn.reborrow(), c => sqlx::query(
            "INSERT INTO mfa_recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)"
        ).bind(Uuid::now_v7()).bind(user).bind(hash).bind(now).execute(c).await.map(|_| ()))?;
    }
    Ok(codes)
}

/// Unused recovery codes left.
pub async fn recovery_codes_left(conn: &mut Conn<'_>, user: Uuid) -> Result<i64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL"
    ).bind(user).fetch_one(c).await)
}

/// Removes the authenticator and the recovery codes. Returns whether TOTP was on.
pub async fn disable(conn: &mut Conn<'_>, user: Uuid) -> Result<bool, sqlx::Error> {
    let was = has_totp(conn, user).await?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1"
    ).bind(user).execute(c).await.map(|_| ()))?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM mfa_totp WHERE user_id = $1"
    ).bind(user).execute(c).await.map(|_| ()))?;
    Ok(was)
}

/// Checks a typed second factor and burns it: six digits are a TOTP code (accepted only for a
/// time step later than the last accepted one), anything else a recovery code (accepted once).
pub async fn verify(
    conn: &mut Conn<'_>,
    key: &MfaKey,
    user: Uuid,
    typed: &str,
) -> Result<Option<Factor>, sqlx::Error> {
    let compact: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(verify_totp(conn, key, user, &compact)
            .await?
            .then_some(Factor::Totp));
    }
    let Some(normalised) = recovery::normalise(typed) else {
        return Ok(None);
    };
    let used = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE mfa_recovery_codes SET used_at = $3
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL"
    ).bind(user).bind(recovery::hash(&normalised)).bind(Timestamp::now())
        .execute(c).await.map(|r| r.rows_affected() == 1))?;
    Ok(used.then_some(Factor::RecoveryCode))
}

async fn verify_totp(
    conn: &mut Conn<'_>,
    key: &MfaKey,
    user: Uuid,
    code: &str,
) -> Result<bool, sqlx::Error> {
    let sealed: Option<String> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT secret_sealed FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL"
    ).bind(user).fetch_optional(c).await)?;
    let Some(sealed) = sealed else {
        return Ok(false);
    };
    let secret = match secret_box::open(key, user, &sealed) {
        Ok(s) => s,
        Err(e) => {
            // The key changed or the row was damaged: no code can match; say why in the log
            // (without the user's address), the person uses a recovery code.
            tracing::warn!(user = %user, "{e}");
            return Ok(false);
        }
    };
    let Some(step) = totp::check(&secret, code, totp::now_seconds()) else {
        return Ok(false);
    };
    // The replay guard: the step is accepted only if it is later than the last one, in the
    // same statement that records it.
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE mfa_totp SET last_step = $2, updated_at = $3
         WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)"
    ).bind(user).bind(step as i64).bind(Timestamp::now())
        .execute(c).await.map(|r| r.rows_affected() == 1))
}
