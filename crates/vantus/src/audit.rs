//! The audit log: who did what, when. Operations commands record here now; the portal's
//! actions will too. Details are JSON and never carry secrets (only redacted locations).
//!
//! Recording takes a [`Conn`], so an entry joins the transaction of the change it describes:
//! both are stored, or neither. Pass a write transaction (`in_write_tx!`): every entry is
//! appended to a hash chain ([`chain`]), and appending serialises audit writers on the chain
//! head until the transaction ends. The table is append-only (triggers, `store::append_only`).

pub mod chain;

use uuid::Uuid;

pub use chain::{ChainBreak, ChainHead, Verdict};

use crate::store::{Conn, Timestamp};
use crate::tenancy::TenantScope;

/// Who acted: the command line, the scheduler, later a user.
#[derive(Clone, Debug)]
pub enum Actor {
    Cli,
    Scheduler {
        instance: String,
    },
    /// A visitor of the public site or a client of the public API (not signed in).
    Public,
    /// A signed-in staff member, by account id (never by address).
    User(Uuid),
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::Cli => "cli".to_owned(),
            Actor::Scheduler { instance } => format!("scheduler:{instance}"),
            Actor::Public => "public".to_owned(),
            Actor::User(id) => format!("user:{id}"),
        }
    }
}

/// What was done. Each action is named once, here; [`AuditAction::as_str`] is the text stored
/// in `audit_log.action`, so these strings never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    BackupCreated,
    RestoreCompleted,
    DbCopied,
    LeadReceived,
    LeadsErased,
    LeadsExported,
    SpamPurged,
    /// An operator requeued outbox messages (`vantus outbox retry`).
    OutboxRequeued,
    /// A staff account was created (`vantus user create`, later an accepted invitation).
    UserCreated,
    /// A staff member signed in.
    LoginSucceeded,
    /// A sign-in was refused (wrong address or password, disabled account, no tenant).
    LoginFailed,
    /// A staff member signed out.
    Logout,
    /// Sessions were ended by their user (account page) or an owner.
    SessionsRevoked,
    /// A staff member changed their password (their other sessions ended with it).
    PasswordChanged,
    /// A staff member confirmed a TOTP authenticator (and got recovery codes).
    MfaTotpEnabled,
    /// A staff member removed their TOTP authenticator.
    MfaTotpDisabled,
    /// A staff member replaced their recovery codes.
    MfaRecoveryCodesRegenerated,
    /// A recovery code was used to sign in (one fewer is left).
    MfaRecoveryCodeUsed,
    /// A second factor was refused at sign-in.
    LoginMfaFailed,
    /// A staff member proved their factors again for a sensitive change.
    Reauthenticated,
    /// A re-authentication was refused.
    ReauthFailed,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::BackupCreated => "backup.created",
            AuditAction::RestoreCompleted => "restore.completed",
            AuditAction::DbCopied => "db.copied",
            AuditAction::LeadReceived => "lead.received",
            AuditAction::LeadsErased => "leads.erased",
            AuditAction::LeadsExported => "leads.exported",
            AuditAction::SpamPurged => "spam.purged",
            AuditAction::OutboxRequeued => "outbox.requeued",
            AuditAction::UserCreated => "user.created",
            AuditAction::LoginSucceeded => "login.succeeded",
            AuditAction::LoginFailed => "login.failed",
            AuditAction::Logout => "logout",
            AuditAction::SessionsRevoked => "sessions.revoked",
            AuditAction::PasswordChanged => "password.changed",
            AuditAction::MfaTotpEnabled => "mfa.totp_enabled",
            AuditAction::MfaTotpDisabled => "mfa.totp_disabled",
            AuditAction::MfaRecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
            AuditAction::MfaRecoveryCodeUsed => "mfa.recovery_code_used",
            AuditAction::LoginMfaFailed => "login.mfa_failed",
            AuditAction::Reauthenticated => "reauth.succeeded",
            AuditAction::ReauthFailed => "reauth.failed",
        }
    }
}

/// Records an installation-wide event (not tied to one tenant).
pub async fn record(
    conn: &mut Conn<'_>,
    actor: &Actor,
    action: AuditAction,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    insert(conn, None, actor, action, resource, detail).await
}

/// Records an event inside one tenant.
pub async fn record_for(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    actor: &Actor,
    action: AuditAction,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    insert(conn, Some(scope.id()), actor, action, resource, detail).await
}

/// An event inside one tenant, for [`record_many_for`].
pub struct TenantEvent<'a> {
    pub scope: &'a TenantScope,
    pub actor: &'a Actor,
    pub action: AuditAction,
    pub resource: String,
    pub detail: serde_json::Value,
}

/// Records several events, each inside its own tenant, in one statement (a batch of
/// changes committed together).
pub async fn record_many_for(
    conn: &mut Conn<'_>,
    events: &[TenantEvent<'_>],
) -> Result<(), sqlx::Error> {
    let rows: Vec<Row<'_>> = events
        .iter()
        .map(|e| Row {
            tenant: Some(e.scope.id()),
            actor: e.actor,
            action: e.action,
            resource: &e.resource,
            detail: &e.detail,
        })
        .collect();
    insert_rows(conn, &rows).await
}

async fn insert(
    conn: &mut Conn<'_>,
    tenant: Option<Uuid>,
    actor: &Actor,
    action: AuditAction,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let row = Row {
        tenant,
        actor,
        action,
        resource,
        detail: &detail,
    };
    insert_rows(conn, &[row]).await
}

/// One `audit_log` row to write.
struct Row<'a> {
    tenant: Option<Uuid>,
    actor: &'a Actor,
    action: AuditAction,
    resource: &'a str,
    detail: &'a serde_json::Value,
}

async fn insert_rows(conn: &mut Conn<'_>, rows: &[Row<'_>]) -> Result<(), sqlx::Error> {
    let now = Timestamp::now();
    let texts: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.actor.label(), r.detail.to_string()))
        .collect();
    let entries: Vec<chain::EntryFields<'_>> = rows
        .iter()
        .zip(&texts)
        .map(|(row, (actor, detail))| chain::EntryFields {
            id: Uuid::now_v7(),
            tenant_id: row.tenant,
            actor,
            action: row.action.as_str(),
            resource: row.resource,
            detail,
            ip: None,
            request_id: None,
            created_at: now,
        })
        .collect();
    chain::append(conn, &entries).await
}
