//! Every query on `leads`. Each takes a [`TenantScope`], and each filters by it: there is no
//! function here that reads, counts, changes or deletes leads across tenants.

use serde::Serialize;
use uuid::Uuid;

use super::form::{Email, ValidLead};
use crate::store::{Conn, Timestamp, multirow, on_conn};
use crate::tenancy::TenantScope;

/// Which door a lead came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadSource {
    Form,
    Api,
}

impl LeadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadSource::Form => "form",
            LeadSource::Api => "api",
        }
    }
}

/// A stored submission: a lead, or (with `spam_reason`) one the spam defence caught.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lead {
    pub id: Uuid,
    pub stage: String,
    pub spam_reason: Option<String>,
    pub source: String,
    pub name: String,
    pub email: String,
    pub company: Option<String>,
    pub role: Option<String>,
    pub budget: String,
    pub website: Option<String>,
    pub message: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: Timestamp,
}
crate::store::from_row!(Lead {
    id,
    stage,
    spam_reason,
    source,
    name,
    email,
    company,
    role,
    budget,
    website,
    message,
    created_at,
    updated_at
});

fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_seconds())
}

/// The columns of [`Lead`], spliced into queries at compile time (`concat!`).
macro_rules! lead_columns {
    () => {
        "id, stage, spam_reason, source, name, email, company, role, budget, website, message, \
         created_at, updated_at"
    };
}

/// Leads or spam: the two lists staff look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbox {
    Leads,
    Spam,
}

impl Inbox {
    /// `spam_reason IS NULL` for leads: bound as a flag, so one statement serves both lists.
    fn wants_spam(self) -> bool {
        self == Inbox::Spam
    }
}

/// The condition [`Inbox`] binds as `$2`: true selects spam, false selects leads.
macro_rules! inbox_condition {
    () => {
        "((spam_reason IS NOT NULL) = $2)"
    };
}

/// A submission to store under `id` (chosen by the caller, so a saved response can name it).
pub struct NewLead<'a> {
    pub scope: &'a TenantScope,
    pub id: Uuid,
    pub lead: &'a ValidLead,
    pub source: LeadSource,
    pub spam_reason: Option<&'a str>,
    pub at: Timestamp,
}

impl NewLead<'_> {
    /// Roughly the bytes its values take in a statement.
    fn bytes(&self) -> usize {
        let lead = self.lead;
        let optional = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        120 + lead.name.as_str().len()
            + lead.email.as_str().len()
            + optional(&lead.company)
            + optional(&lead.role)
            + optional(&lead.website)
            + lead.message.len()
    }
}

/// Stores submissions, a few rows a statement ([`multirow`]); each row is filed under its own
/// scope's tenant.
pub async fn insert(conn: &mut Conn<'_>, rows: &[NewLead<'_>]) -> Result<(), sqlx::Error> {
    for rows in multirow::chunks(rows, NewLead::bytes) {
        let sql = format!(
            "INSERT INTO leads (id, tenant_id, stage, spam_reason, source, name, email, company,
                                role, budget, website, message, created_at, updated_at)
             VALUES {}",
            multirow::values(
                "($1, $2, 'new', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
                12,
                rows.len()
            )
        );
        on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in rows {
                let lead = row.lead;
                q = q
                    .bind(row.id)
                    .bind(row.scope.id())
                    .bind(row.spam_reason)
                    .bind(row.source.as_str())
                    .bind(lead.name.as_str())
                    .bind(lead.email.as_str())
                    .bind(lead.company.as_deref())
                    .bind(lead.role.as_deref())
                    .bind(lead.budget.as_str())
                    .bind(lead.website.as_deref())
                    .bind(&lead.message)
                    .bind(row.at);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

pub async fn get(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<Lead>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        lead_columns!(),
        " FROM leads WHERE tenant_id = $1 AND id = $2"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
        .bind(scope.id()).bind(id).fetch_optional(c).await)
}

/// The newest first.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    inbox: Inbox,
    limit: i64,
    offset: i64,
) -> Result<Vec<Lead>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        lead_columns!(),
        " FROM leads WHERE tenant_id = $1 AND ",
        inbox_condition!(),
        " ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
        .bind(scope.id()).bind(inbox.wants_spam()).bind(limit.max(0)).bind(offset.max(0))
        .fetch_all(c).await)
}

pub async fn count(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    inbox: Inbox,
) -> Result<i64, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT count(*) FROM leads WHERE tenant_id = $1 AND ",
        inbox_condition!()
    );
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(SQL)
        .bind(scope.id()).bind(inbox.wants_spam()).fetch_one(c).await)
}

/// Moves a lead to another pipeline stage; false when the tenant has no such lead.
pub async fn set_stage(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    stage: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE leads SET stage = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(stage).bind(Timestamp::now()).execute(c).await
        .map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Rescues a false positive: the submission becomes a lead. False when the tenant has no such
/// submission.
pub async fn mark_not_spam(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE leads SET spam_reason = NULL, updated_at = $3 WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(Timestamp::now()).execute(c).await
        .map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Everything stored about the person with this address (a subject-access request), oldest
/// first, spam included.
pub async fn by_email(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    email: &Email,
) -> Result<Vec<Lead>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        lead_columns!(),
        " FROM leads WHERE tenant_id = $1 AND lower(email) = lower($2) \
         ORDER BY created_at, id"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
        .bind(scope.id()).bind(email.as_str()).fetch_all(c).await)
}

/// Deletes the person's submissions and every message queued about them (a right-to-erasure
/// request). Returns (submissions, messages) deleted.
pub async fn erase_by_email(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    email: &Email,
) -> Result<(u64, u64), sqlx::Error> {
    let messages = on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM outbox WHERE tenant_id = $1 AND lead_id IN
           (SELECT id FROM leads WHERE tenant_id = $1 AND lower(email) = lower($2))"
    ).bind(scope.id()).bind(email.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
    let leads = on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM leads WHERE tenant_id = $1 AND lower(email) = lower($2)"
    ).bind(scope.id()).bind(email.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok((leads, messages))
}

/// Deletes spam that arrived before `before` (the retention setting). Returns how many.
pub async fn purge_spam(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    before: Timestamp,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM leads WHERE tenant_id = $1 AND spam_reason IS NOT NULL AND created_at < $2"
    ).bind(scope.id()).bind(before).execute(c).await.map(|r| r.rows_affected()))
}
