//! The audit log: who did what, when. Operations commands record here now; the portal's
//! actions will too. Details are JSON and never carry secrets (only redacted locations).

use uuid::Uuid;

use crate::store::{Db, Timestamp};
use crate::tenancy::TenantScope;

/// Who acted: the command line, the scheduler, later a user.
#[derive(Clone, Debug)]
pub enum Actor {
    Cli,
    Scheduler { instance: String },
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::Cli => "cli".to_owned(),
            Actor::Scheduler { instance } => format!("scheduler:{instance}"),
        }
    }
}

/// Records an installation-wide event (not tied to one tenant).
pub async fn record(
    db: &Db,
    actor: &Actor,
    action: &str,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    insert(db, None, actor, action, resource, detail).await
}

/// Records an event inside one tenant.
pub async fn record_for(
    db: &Db,
    scope: &TenantScope,
    actor: &Actor,
    action: &str,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    insert(db, Some(scope.id()), actor, action, resource, detail).await
}

async fn insert(
    db: &Db,
    tenant: Option<Uuid>,
    actor: &Actor,
    action: &str,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, actor, action, resource, detail, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(actor.label())
    .bind(action)
    .bind(resource)
    .bind(detail.to_string())
    .bind(Timestamp::now())
    .execute(pool).await.map(|_| ()))
}
