//! Emails a staff member about a change to their own credentials, so a change they did not
//! make (a stolen session, a used recovery code) does not go unnoticed. Queued in the outbox
//! on the caller's connection, so the email exists exactly when the change committed. The
//! message says what changed and when, never a secret or a code.

use uuid::Uuid;

use super::users;
use crate::outbox::{self, Channel, CredentialChanged, NewMessage, Topic};
use crate::store::{Conn, Timestamp};
use crate::tenancy::TenantScope;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    PasswordChanged,
    TotpEnabled,
    TotpDisabled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    PasskeyAdded,
    PasskeyRemoved,
    MfaReset,
}

impl Change {
    /// The code stored in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::PasswordChanged => "password_changed",
            Change::TotpEnabled => "totp_enabled",
            Change::TotpDisabled => "totp_disabled",
            Change::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Change::RecoveryCodeUsed => "recovery_code_used",
            Change::PasskeyAdded => "passkey_added",
            Change::PasskeyRemoved => "passkey_removed",
            Change::MfaReset => "mfa_reset",
        }
    }

    /// The sentence the email says it with.
    pub fn sentence(self) -> &'static str {
        match self {
            Change::PasswordChanged => "Your password was changed.",
            Change::TotpEnabled => "Two-factor sign-in with an authenticator app was turned on.",
            Change::TotpDisabled => "Two-factor sign-in with an authenticator app was turned off.",
            Change::RecoveryCodesRegenerated => {
                "New recovery codes were generated; the old ones no longer work."
            }
            Change::RecoveryCodeUsed => "A recovery code was used to sign in.",
            Change::PasskeyAdded => "A passkey was added to your account.",
            Change::PasskeyRemoved => "A passkey was removed from your account.",
            Change::MfaReset => {
                "An administrator removed your two-factor sign-in (authenticator app, recovery codes and passkeys); set it up again when you next sign in."
            }
        }
    }
}

/// Queues the email telling `user` about `change`, in the caller's transaction.
pub async fn credential_changed(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    user: Uuid,
    change: Change,
) -> Result<(), sqlx::Error> {
    let Some(account) = users::find_by_id(conn, user).await? else {
        return Ok(());
    };
    let payload = CredentialChanged {
        change: change.as_str().to_owned(),
        sentence: change.sentence().to_owned(),
        name: account.name,
        tenant: scope.name().to_owned(),
        at: Timestamp::now().to_rfc3339_seconds(),
    };
    let message = NewMessage {
        channel: Channel::Email,
        topic: Topic::CredentialChanged,
        destination: account.email,
        lead_id: None,
        payload: payload.to_json(),
    };
    outbox::enqueue(conn, scope, &message).await.map(|_| ())
}
