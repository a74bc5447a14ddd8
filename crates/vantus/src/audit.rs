//! The audit log: who did what, when. Operations commands record here now; the portal's
//! actions will too. Details are JSON and never carry secrets (only redacted locations).
//!
//! Recording takes a [`Conn`], so an entry joins the transaction of the change it describes:
//! both are stored, or neither.

use uuid::Uuid;

use crate::store::{Conn, Timestamp, multirow, on_conn};
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
    let details: Vec<String> = rows.iter().map(|r| r.detail.to_string()).collect();
    let rows: Vec<(&Row<'_>, String)> = rows.iter().zip(details).collect();
    let bytes = |(row, detail): &(&Row<'_>, String)| 120 + row.resource.len() + detail.len();
    for rows in multirow::chunks(&rows, bytes) {
        let sql = format!(
            "INSERT INTO audit_log (id, tenant_id, actor, action, resource, detail, created_at)
             VALUES {}",
            multirow::values("($1, $2, $3, $4, $5, $6, $7)", 7, rows.len())
        );
        on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (row, detail) in rows {
                q = q
                    .bind(Uuid::now_v7())
                    .bind(row.tenant)
                    .bind(row.actor.label())
                    .bind(row.action.as_str())
                    .bind(row.resource)
                    .bind(detail)
                    .bind(now);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}
