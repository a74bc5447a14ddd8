//! Data-protection requests about one person, by email address, across every tenant of the
//! installation: what is stored about them (a subject-access request) and erasing it (a
//! right-to-erasure request). Each tenant is still queried through its own scope.
//!
//! The audit log records that a request was carried out and how much it touched, never the
//! address itself: an erasure that left the address in the audit log would not be one.

use serde::Serialize;
use serde_json::json;

use super::form::Email;
use super::queries::{self, Lead};
use crate::audit::{self, Actor, AuditAction};
use crate::store::Db;
use crate::tenancy;

/// One tenant's submissions from the person.
#[derive(Debug, Serialize)]
pub struct TenantExport {
    pub tenant: String,
    pub submissions: Vec<Lead>,
}

/// Everything stored about the person, tenant by tenant (tenants without any are left out).
#[derive(Debug, Serialize)]
pub struct Export {
    pub email: String,
    pub generated_at: String,
    pub tenants: Vec<TenantExport>,
}

/// Gathers the person's data and records (without the address) that it was exported.
pub async fn export(db: &Db, email: &Email, actor: &Actor) -> Result<Export, sqlx::Error> {
    in_write_tx!(db, conn => {
        let mut tenants = Vec::new();
        for scope in tenancy::all(conn).await? {
            let submissions = queries::by_email(conn, &scope, email).await?;
            if submissions.is_empty() {
                continue;
            }
            audit::record_for(conn, &scope, actor, AuditAction::LeadsExported, "leads",
                json!({ "submissions": submissions.len() })).await?;
            tenants.push(TenantExport { tenant: scope.slug().to_owned(), submissions });
        }
        Ok::<_, sqlx::Error>(Export {
            email: email.as_str().to_owned(),
            generated_at: crate::store::Timestamp::now().to_rfc3339_seconds(),
            tenants,
        })
    })
}

/// What an erasure deleted.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub submissions: u64,
    pub messages: u64,
    pub tenants: u64,
}

/// Deletes the person's submissions and every notification queued about them, in every
/// tenant, in one transaction, and records the erasure (counts only) in each tenant's audit
/// log.
pub async fn erase(db: &Db, email: &Email, actor: &Actor) -> Result<Erased, sqlx::Error> {
    in_write_tx!(db, conn => {
        let mut erased = Erased::default();
        for scope in tenancy::all(conn).await? {
            let (submissions, messages) = queries::erase_by_email(conn, &scope, email).await?;
            if submissions == 0 && messages == 0 {
                continue;
            }
            audit::record_for(conn, &scope, actor, AuditAction::LeadsErased, "leads",
                json!({ "submissions": submissions, "messages": messages })).await?;
            erased.submissions += submissions;
            erased.messages += messages;
            erased.tenants += 1;
        }
        Ok::<_, sqlx::Error>(erased)
    })
}

/// How long an idempotency key is remembered: retries come within minutes; a day is generous.
pub const IDEMPOTENCY_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a retention run deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub spam: u64,
    pub idempotency_keys: u64,
}

/// Deletes spam older than `spam_retention` and idempotency keys older than
/// [`IDEMPOTENCY_RETENTION`], in every tenant; spam deletions are audited (counts only).
pub async fn purge_expired(
    db: &Db,
    spam_retention: std::time::Duration,
    actor: &Actor,
) -> Result<Purged, sqlx::Error> {
    let now = crate::store::Timestamp::now().as_datetime();
    let before = |d: std::time::Duration| {
        crate::store::Timestamp::from_datetime(now - time::Duration::seconds(d.as_secs() as i64))
    };
    in_write_tx!(db, conn => {
        let mut purged = Purged::default();
        for scope in tenancy::all(conn).await? {
            let spam = queries::purge_spam(conn, &scope, before(spam_retention)).await?;
            if spam > 0 {
                audit::record_for(conn, &scope, actor, AuditAction::SpamPurged, "leads",
                    json!({ "submissions": spam })).await?;
            }
            purged.spam += spam;
            purged.idempotency_keys +=
                super::idempotency::purge(conn, &scope, before(IDEMPOTENCY_RETENTION)).await?;
        }
        Ok::<_, sqlx::Error>(purged)
    })
}
