//! The hourly sweep of credentials that can no longer be used: without it every sign-in,
//! password reset and invitation would add a row that stays for ever.
//!
//! A dead credential is kept for [`KEEP`] after it stopped working, so a link clicked late is
//! still told "expired" or "already used" rather than "unknown", and the account page's and
//! the audit's recent past stays readable. Each account's newest session is never deleted: the
//! users page shows it as the last sign-in. Accepted invitations are kept (they say who
//! brought whom in); pending ones go once they have been expired for [`KEEP`].

use std::time::Duration;

use crate::store::{Conn, Timestamp, on_conn};

/// How long a dead credential is kept before the sweep deletes it.
pub const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many rows of each kind a sweep deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub password_resets: u64,
    pub invitations: u64,
    pub login_challenges: u64,
    pub passkey_ceremonies: u64,
}

impl Swept {
    pub fn total(&self) -> u64 {
        self.sessions
            + self.password_resets
            + self.invitations
            + self.login_challenges
            + self.passkey_ceremonies
    }

    /// One line for the job journal.
    pub fn summary(&self) -> String {
        format!(
            "{} session(s), {} password reset(s), {} invitation(s), {} sign-in challenge(s), \
             {} passkey ceremony(ies) deleted",
            self.sessions,
            self.password_resets,
            self.invitations,
            self.login_challenges,
            self.passkey_ceremonies
        )
    }
}

/// Deletes what stopped working more than [`KEEP`] before `now` (passkey ceremonies and
/// sign-in challenges, which nobody is shown, as soon as they expire). `idle` is the sessions'
/// idle timeout: a session unseen for longer ended then.
pub async fn sweep(
    conn: &mut Conn<'_>,
    now: Timestamp,
    idle: Duration,
) -> Result<Swept, sqlx::Error> {
    let cutoff = now.minus(KEEP);
    let idle_cutoff = cutoff.minus(idle);
    let sessions = on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM sessions
         WHERE (revoked_at <= $1 OR expires_at <= $1 OR last_seen_at <= $2)
           AND created_at < (SELECT MAX(newest.created_at) FROM sessions AS newest
                             WHERE newest.user_id = sessions.user_id)"
    ).bind(cutoff).bind(idle_cutoff).execute(c).await.map(|r| r.rows_affected()))?;
    let password_resets = on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM password_resets WHERE expires_at <= $1"
    ).bind(cutoff).execute(c).await.map(|r| r.rows_affected()))?;
    let invitations = on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM invitations
         WHERE accepted_at IS NULL AND (expires_at <= $1 OR revoked_at <= $1)"
    ).bind(cutoff).execute(c).await.map(|r| r.rows_affected()))?;
    let login_challenges = on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM login_challenges WHERE expires_at <= $1"
    ).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    let passkey_ceremonies = super::passkeys::purge_expired_ceremonies(conn).await?;
    Ok(Swept {
        sessions,
        password_resets,
        invitations,
        login_challenges,
        passkey_ceremonies,
    })
}
