//! What staff did to a lead, kept for its timeline (`lead_activity`): notes, stage changes,
//! assignment and spam decisions. Each row is written in the transaction of the change it
//! records, beside the change's audit entry; the audit log proves who did what, this table
//! is what the lead's page reads back (and it goes with the lead when the lead is erased).

use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// The longest note, in characters.
pub const NOTE_MAX_CHARS: usize = 5000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivityKind {
    Note,
    Stage,
    Assigned,
    Unassigned,
    Spam,
    NotSpam,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Note => "note",
            ActivityKind::Stage => "stage",
            ActivityKind::Assigned => "assigned",
            ActivityKind::Unassigned => "unassigned",
            ActivityKind::Spam => "spam",
            ActivityKind::NotSpam => "not_spam",
        }
    }
}

/// One stored activity.
#[derive(Clone, Debug)]
pub struct Activity {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub kind: String,
    pub body: String,
    pub created_at: Timestamp,
}
crate::store::from_row!(Activity {
    id,
    actor_id,
    kind,
    body,
    created_at
});

/// Records `kind` on the lead `lead` of `scope` by `actor`; `body` is the note's text, the
/// new stage, or the assignee's id. Returns the row's id.
pub async fn record(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    lead: Uuid,
    actor: Uuid,
    kind: ActivityKind,
    body: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO lead_activity (id, tenant_id, lead_id, actor_id, kind, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ).bind(id).bind(scope.id()).bind(lead).bind(actor).bind(kind.as_str()).bind(body)
        .bind(Timestamp::now()).execute(c).await.map(|_| ()))?;
    Ok(id)
}

/// A note's text, trimmed: `Err` says what is wrong with it (for the `note` field).
pub fn parse_note(raw: &str) -> Result<String, &'static str> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.chars().count() > NOTE_MAX_CHARS {
        return Err("must be at most 5000 characters");
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters");
    }
    Ok(text.replace("\r\n", "\n"))
}

/// Everything recorded on the lead `lead` of `scope`, oldest first.
pub async fn of_lead(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    lead: Uuid,
) -> Result<Vec<Activity>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, actor_id, kind, body, created_at FROM lead_activity
         WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at, id"
    ).bind(scope.id()).bind(lead).fetch_all(c).await)
}
