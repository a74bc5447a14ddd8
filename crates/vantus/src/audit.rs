//! The audit log: who did what, when. Operations commands and the portal record here.
//! Details are JSON and never carry secrets (only redacted locations) nor personal data
//! beyond the actor's account id.
//!
//! ## Recording from a request: [`Context`]
//!
//! A portal handler never assembles an entry by hand. `staff.audit()` (on
//! [`Staff`](crate::auth::staff::Staff)) gives a [`Context`]: the actor (the signed-in
//! account), the tenant of the session, the client's IP ([`crate::http::client_ip`]) and the
//! request id ([`crate::http::observe`]). A handler that is not signed in (sign-in itself)
//! extracts a [`RequestOrigin`] and builds one with [`Context::new`]. Then:
//!
//! ```ignore
//! staff.audit().record(conn, AuditAction::TenantRenamed, &format!("tenant:{id}"),
//!     Change::new(json!({"name": old}), json!({"name": new}))).await?;
//! ```
//!
//! The IP and the request id go into the `ip` and `request_id` columns, which the hash chain
//! already covers ([`chain`]); `before`/`after` (a summary of the changed fields, no personal
//! data) and any extra fields go into `detail`. [`Context::record_in`] records in another
//! tenant than the session's (an owner editing a tenant they do not work in at the moment).
//!
//! Recording takes a [`Conn`], so an entry joins the transaction of the change it describes:
//! both are stored, or neither. Pass a write transaction (`in_write_tx!`): every entry is
//! appended to a hash chain ([`chain`]), and appending serialises audit writers on the chain
//! head until the transaction ends. The table is append-only (triggers, `store::append_only`).

pub mod chain;
pub mod query;

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
    /// The text stored in `audit_log.actor`.
    pub fn label(&self) -> String {
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
    /// A staff member added a passkey (their other sessions ended with it).
    PasskeyRegistered,
    /// A staff member removed one of their passkeys (their other sessions ended with it).
    PasskeyRemoved,
    /// A staff member switched the tenant their session works in (a new session token).
    TenantSwitched,
    /// An owner created a tenant (and became its owner).
    TenantCreated,
    /// An owner renamed a tenant.
    TenantUpdated,
    /// A host now selects a tenant on the public site.
    TenantHostAdded,
    /// A host no longer selects a tenant.
    TenantHostRemoved,
    /// An existing account was made a member of a tenant.
    MembershipAdded,
    /// A member's role in a tenant changed.
    MembershipChanged,
    /// A member was removed from a tenant.
    MembershipRemoved,
    /// The audit log (a filtered part of it) was exported.
    AuditExported,
    /// An owner or admin invited someone to the tenant (detail: the role, the invitation id;
    /// never the address).
    InvitationSent,
    /// A pending invitation was withdrawn from the users page.
    InvitationRevoked,
    /// An invitation was accepted: a new account, or an existing one joining the tenant.
    InvitationAccepted,
    /// A member's role in the tenant changed (detail: before and after).
    RoleChanged,
    /// An account was disabled (every session ended with it).
    UserDisabled,
    /// A disabled account was enabled again.
    UserEnabled,
    /// Someone asked for a password-reset link for an existing account.
    PasswordResetRequested,
    /// A password was set through a reset link (every session ended with it).
    PasswordReset,
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
    /// An owner or admin removed a member's second factors (lost phone and codes).
    MfaReset,
    /// A file was added to the media library (detail: its name, type, size, visibility).
    MediaUploaded,
    /// A media file's alt text or visibility changed.
    MediaUpdated,
    /// A media file and its variants were deleted.
    MediaDeleted,
    /// A lead moved to another pipeline stage (detail: before, after, lost reason).
    LeadStageChanged,
    /// A note was added to a lead (detail: the note's id; never its text).
    LeadNoteAdded,
    /// A lead was assigned to a member, or unassigned (detail: before and after).
    LeadAssigned,
    /// Staff marked a submission as spam.
    LeadMarkedSpam,
    /// Staff rescued a false positive: it became a lead and its notification was queued.
    LeadRescued,
    /// An item was created in the portal (as a draft).
    ContentCreated,
    /// A draft of an item was saved (a new revision).
    ContentSaved,
    /// An item's draft went live (by hand, or by a schedule as the user who set it).
    ContentPublished,
    /// An item was taken off the site (by hand, or by a schedule).
    ContentUnpublished,
    /// An item was moved to the bin.
    ContentDeleted,
    /// An item was taken out of the bin.
    ContentRestored,
    /// An older revision was made the item's draft again.
    ContentRevisionRestored,
    /// A publish or unpublish was scheduled.
    ContentScheduled,
    /// A scheduled publish or unpublish was cancelled.
    ContentScheduleCancelled,
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
            AuditAction::PasskeyRegistered => "passkey.registered",
            AuditAction::PasskeyRemoved => "passkey.removed",
            AuditAction::TenantSwitched => "tenant.switched",
            AuditAction::TenantCreated => "tenant.created",
            AuditAction::TenantUpdated => "tenant.updated",
            AuditAction::TenantHostAdded => "tenant.host_added",
            AuditAction::TenantHostRemoved => "tenant.host_removed",
            AuditAction::MembershipAdded => "membership.added",
            AuditAction::MembershipChanged => "membership.changed",
            AuditAction::MembershipRemoved => "membership.removed",
            AuditAction::AuditExported => "audit.exported",
            AuditAction::InvitationSent => "invitation.sent",
            AuditAction::InvitationRevoked => "invitation.revoked",
            AuditAction::InvitationAccepted => "invitation.accepted",
            AuditAction::RoleChanged => "member.role_changed",
            AuditAction::UserDisabled => "user.disabled",
            AuditAction::UserEnabled => "user.enabled",
            AuditAction::PasswordResetRequested => "password.reset_requested",
            AuditAction::PasswordReset => "password.reset",
            AuditAction::MfaTotpEnabled => "mfa.totp_enabled",
            AuditAction::MfaTotpDisabled => "mfa.totp_disabled",
            AuditAction::MfaRecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
            AuditAction::MfaRecoveryCodeUsed => "mfa.recovery_code_used",
            AuditAction::LoginMfaFailed => "login.mfa_failed",
            AuditAction::Reauthenticated => "reauth.succeeded",
            AuditAction::ReauthFailed => "reauth.failed",
            AuditAction::MfaReset => "mfa.reset",
            AuditAction::MediaUploaded => "media.uploaded",
            AuditAction::MediaUpdated => "media.updated",
            AuditAction::MediaDeleted => "media.deleted",
            AuditAction::LeadStageChanged => "lead.stage_changed",
            AuditAction::LeadNoteAdded => "lead.note_added",
            AuditAction::LeadAssigned => "lead.assigned",
            AuditAction::LeadMarkedSpam => "lead.marked_spam",
            AuditAction::LeadRescued => "lead.rescued",
            AuditAction::ContentCreated => "content.created",
            AuditAction::ContentSaved => "content.saved",
            AuditAction::ContentPublished => "content.published",
            AuditAction::ContentUnpublished => "content.unpublished",
            AuditAction::ContentDeleted => "content.deleted",
            AuditAction::ContentRestored => "content.restored",
            AuditAction::ContentRevisionRestored => "content.revision_restored",
            AuditAction::ContentScheduled => "content.scheduled",
            AuditAction::ContentScheduleCancelled => "content.schedule_cancelled",
        }
    }

    /// Every action, for the audit viewer's filter (a new variant goes here too).
    pub const ALL: &'static [AuditAction] = &[
        AuditAction::BackupCreated,
        AuditAction::RestoreCompleted,
        AuditAction::DbCopied,
        AuditAction::LeadReceived,
        AuditAction::LeadsErased,
        AuditAction::LeadsExported,
        AuditAction::SpamPurged,
        AuditAction::OutboxRequeued,
        AuditAction::UserCreated,
        AuditAction::LoginSucceeded,
        AuditAction::LoginFailed,
        AuditAction::Logout,
        AuditAction::SessionsRevoked,
        AuditAction::PasswordChanged,
        AuditAction::TenantSwitched,
        AuditAction::TenantCreated,
        AuditAction::TenantUpdated,
        AuditAction::TenantHostAdded,
        AuditAction::TenantHostRemoved,
        AuditAction::MembershipAdded,
        AuditAction::MembershipChanged,
        AuditAction::MembershipRemoved,
        AuditAction::AuditExported,
        AuditAction::PasskeyRegistered,
        AuditAction::PasskeyRemoved,
        AuditAction::InvitationSent,
        AuditAction::InvitationRevoked,
        AuditAction::InvitationAccepted,
        AuditAction::RoleChanged,
        AuditAction::UserDisabled,
        AuditAction::UserEnabled,
        AuditAction::PasswordResetRequested,
        AuditAction::PasswordReset,
        AuditAction::MfaTotpEnabled,
        AuditAction::MfaTotpDisabled,
        AuditAction::MfaRecoveryCodesRegenerated,
        AuditAction::MfaRecoveryCodeUsed,
        AuditAction::LoginMfaFailed,
        AuditAction::Reauthenticated,
        AuditAction::ReauthFailed,
        AuditAction::MfaReset,
        AuditAction::MediaUploaded,
        AuditAction::MediaUpdated,
        AuditAction::MediaDeleted,
        AuditAction::LeadStageChanged,
        AuditAction::LeadNoteAdded,
        AuditAction::LeadAssigned,
        AuditAction::LeadMarkedSpam,
        AuditAction::LeadRescued,
        AuditAction::ContentCreated,
        AuditAction::ContentSaved,
        AuditAction::ContentPublished,
        AuditAction::ContentUnpublished,
        AuditAction::ContentDeleted,
        AuditAction::ContentRestored,
        AuditAction::ContentRevisionRestored,
        AuditAction::ContentScheduled,
        AuditAction::ContentScheduleCancelled,
    ];
}

/// Where a request came from, as the audit log records it: the client's address (as far as
/// trusted proxies vouch for it) and the request id of the access log, so an entry can be
/// matched with the log lines of the same request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl RequestOrigin {
    /// Reads both from a request (the request-id layer's extension, the [`ClientIp`] rules).
    pub fn from_parts(
        parts: &axum::http::request::Parts,
        trusted: &crate::http::client_ip::TrustedProxies,
    ) -> Self {
        use axum::extract::ConnectInfo;
        let ip = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(peer)| {
                crate::http::client_ip::resolve(peer.ip().to_canonical(), &parts.headers, trusted)
                    .to_string()
            });
        let request_id = parts
            .extensions
            .get::<crate::http::observe::RequestId>()
            .map(|r| r.0.clone());
        Self { ip, request_id }
    }
}

impl<S> axum::extract::FromRequestParts<S> for RequestOrigin
where
    crate::http::client_ip::TrustedProxies: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRef;
        let trusted = crate::http::client_ip::TrustedProxies::from_ref(state);
        Ok(Self::from_parts(parts, &trusted))
    }
}

/// What a change did to a record: a summary of the fields before and after (`null` for a
/// record created or deleted), plus any other facts worth keeping. Stored in `detail` as
/// `{"before": …, "after": …, …}`. Never personal data: ids, roles, names of tenants.
#[derive(Clone, Debug, Default)]
pub struct Change {
    before: serde_json::Value,
    after: serde_json::Value,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Change {
    pub fn new(before: serde_json::Value, after: serde_json::Value) -> Self {
        Self {
            before,
            after,
            extra: Default::default(),
        }
    }

    /// An event that changed no record's fields (a sign-in, an export): only facts.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds a fact (`"sessions": 3`).
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// A detail already written as a JSON object (its keys kept as they are).
    pub fn from_detail(detail: serde_json::Value) -> Self {
        match detail {
            serde_json::Value::Object(extra) => Self {
                extra,
                ..Self::default()
            },
            serde_json::Value::Null => Self::default(),
            other => Self::none().with("detail", other),
        }
    }

    fn into_detail(self) -> serde_json::Value {
        let mut detail = self.extra;
        if !self.before.is_null() || !self.after.is_null() {
            detail.insert("before".into(), self.before);
            detail.insert("after".into(), self.after);
        }
        serde_json::Value::Object(detail)
    }
}

/// Who acts, in which tenant, from where: everything an entry needs besides what happened.
/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    /// The tenant entries go to; `None` for an installation-wide event (a refused sign-in).
    pub scope: Option<TenantScope>,
    pub origin: RequestOrigin,
}

impl Context {
    pub fn new(actor: Actor, scope: Option<TenantScope>, origin: RequestOrigin) -> Self {
        Self {
            actor,
            scope,
            origin,
        }
    }

    /// Records `action` on `resource` (`"user:…"`, `"tenant:…"`) in the context's tenant.
    pub async fn record(
        &self,
        conn: &mut Conn<'_>,
        action: AuditAction,
        resource: &str,
        change: Change,
    ) -> Result<(), sqlx::Error> {
        let tenant = self.scope.as_ref().map(TenantScope::id);
        self.write(conn, tenant, action, resource, change).await
    }

    /// Records in `scope` rather than the session's tenant.
    pub async fn record_in(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        action: AuditAction,
        resource: &str,
        change: Change,
    ) -> Result<(), sqlx::Error> {
        self.write(conn, Some(scope.id()), action, resource, change)
            .await
    }

    async fn write(
        &self,
        conn: &mut Conn<'_>,
        tenant: Option<Uuid>,
        action: AuditAction,
        resource: &str,
        change: Change,
    ) -> Result<(), sqlx::Error> {
        let detail = change.into_detail();
        let row = Row {
            tenant,
            actor: &self.actor,
            action,
            resource,
            detail: &detail,
            ip: self.origin.ip.as_deref(),
            request_id: self.origin.request_id.as_deref(),
        };
        insert_rows(conn, &[row]).await
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
            ip: None,
            request_id: None,
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
        ip: None,
        request_id: None,
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
    ip: Option<&'a str>,
    request_id: Option<&'a str>,
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
            ip: row.ip,
            request_id: row.request_id,
            created_at: now,
        })
        .collect();
    chain::append(conn, &entries).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_keeps_before_after_and_facts_side_by_side() {
        let d = Change::new(json!({"role": "editor"}), json!({"role": "owner"}))
            .with("sessions", 2)
            .into_detail();
        assert_eq!(
            d,
            json!({"before": {"role": "editor"}, "after": {"role": "owner"}, "sessions": 2})
        );
        let created = Change::new(serde_json::Value::Null, json!({"slug": "acme"})).into_detail();
        assert_eq!(created, json!({"before": null, "after": {"slug": "acme"}}));
        assert_eq!(
            Change::none().with("format", "csv").into_detail(),
            json!({"format": "csv"})
        );
        assert_eq!(Change::none().into_detail(), json!({}));
    }

    #[test]
    fn action_names_are_listed_once_and_unique() {
        let mut names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all);
        assert!(names.contains(&"audit.exported") && names.contains(&"tenant.switched"));
    }
}
