//! Scheduled publish and unpublish: a row per request, run by the `content-schedule` job
//! (`admin::cms::scheduled`) as the user who asked for it.
//!
//! Exactly once: the job runs on one replica per tick (the scheduler's leadership and its
//! `job_runs` claim), and each schedule is claimed by one conditional update
//! (`done_at IS NULL`) in the same transaction as the publish and its audit entry, so even two
//! runs at once could not both carry it out.

use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Publish,
    Unpublish,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Unpublish => "unpublish",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "publish" => Some(Action::Publish),
            "unpublish" => Some(Action::Unpublish),
            _ => None,
        }
    }
}

/// A scheduled publish or unpublish.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub id: Uuid,
    pub item_id: Uuid,
    pub action: String,
    pub run_at: Timestamp,
    pub scheduled_by: Uuid,
    pub scheduled_by_name: Option<String>,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    pub outcome: Option<String>,
    /// For a publish: the revision it publishes (the draft when it was scheduled). `None` for
    /// unpublishes, and for publishes scheduled before revisions were pinned (they publish
    /// whatever draft is pending when they run).
    pub revision_id: Option<Uuid>,
}
crate::store::from_row!(Scheduled {
    id,
    item_id,
    action,
    run_at,
    scheduled_by,
    scheduled_by_name,
    created_at,
    done_at,
    outcome,
    revision_id
});

impl Scheduled {
    pub fn action(&self) -> Action {
        Action::parse(&self.action).unwrap_or(Action::Publish)
    }
}

macro_rules! schedule_select {
    () => {
        "SELECT s.id, s.item_id, s.action, s.run_at, s.scheduled_by, u.name AS scheduled_by_name,
                s.created_at, s.done_at, s.outcome, s.revision_id
         FROM content_schedules s LEFT JOIN users u ON u.id = s.scheduled_by "
    };
}

/// Adds a schedule; returns its id. `revision`: what a publish publishes (the pending draft
/// now, so an edit saved later is not published unseen); `None` for an unpublish.
pub async fn add(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
    action: Action,
    run_at: Timestamp,
    by: Uuid,
    revision: Option<Uuid>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO content_schedules
           (id, tenant_id, item_id, action, run_at, scheduled_by, created_at, revision_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ).bind(id).bind(scope.id()).bind(item_id).bind(action.as_str()).bind(run_at).bind(by)
    .bind(Timestamp::now()).bind(revision).execute(c).await.map(|_| ()))?;
    Ok(id)
}

/// An item's schedules, pending ones first (soonest first), then the last done ones.
pub async fn of_item(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
) -> Result<Vec<Scheduled>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        schedule_select!(),
        "WHERE s.tenant_id = $1 AND s.item_id = $2
         ORDER BY (s.done_at IS NULL) DESC, s.run_at DESC LIMIT 50"
    )).bind(scope.id()).bind(item_id).fetch_all(c).await)
}

/// An item's pending schedules.
pub async fn pending_of_item(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
) -> Result<Vec<Scheduled>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        schedule_select!(),
        "WHERE s.tenant_id = $1 AND s.item_id = $2 AND s.done_at IS NULL ORDER BY s.run_at"
    )).bind(scope.id()).bind(item_id).fetch_all(c).await)
}

/// Schedules of this tenant due at `now`, oldest first.
pub async fn due(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    now: Timestamp,
) -> Result<Vec<Scheduled>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        schedule_select!(),
        "WHERE s.tenant_id = $1 AND s.done_at IS NULL AND s.run_at <= $2
         ORDER BY s.run_at, s.id LIMIT 100"
    )).bind(scope.id()).bind(now).fetch_all(c).await)
}

/// Marks a pending schedule done with `outcome`. `false`: someone else got there first (it
/// was done or cancelled already), so the caller must not act on it.
pub async fn claim(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    outcome: &str,
) -> Result<bool, sqlx::Error> {
    let n = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_schedules SET done_at = $3, outcome = $4
         WHERE tenant_id = $1 AND id = $2 AND done_at IS NULL"
    ).bind(scope.id()).bind(id).bind(Timestamp::now()).bind(outcome).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Replaces the outcome of a claimed schedule (what actually happened).
pub async fn set_outcome(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_schedules SET outcome = $3 WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(outcome).execute(c).await.map(|_| ()))
}

/// Cancels one pending schedule of an item. `false`: none such.
pub async fn cancel(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let n = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_schedules SET done_at = $4, outcome = 'cancelled'
         WHERE tenant_id = $1 AND item_id = $2 AND id = $3 AND done_at IS NULL"
    ).bind(scope.id()).bind(item_id).bind(id).bind(Timestamp::now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Cancels every pending schedule of an item (it was deleted).
pub async fn cancel_all(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
    outcome: &str,
) -> Result<u64, sqlx::Error> {
    Ok(on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_schedules SET done_at = $3, outcome = $4
         WHERE tenant_id = $1 AND item_id = $2 AND done_at IS NULL"
    ).bind(scope.id()).bind(item_id).bind(Timestamp::now()).bind(outcome).execute(c).await.map(|r| r.rows_affected()))?)
}
