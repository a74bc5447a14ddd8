//! The `content-schedule` job: every tick (`VANTUS_CONTENT_SCHEDULE_TICK`), carries out the
//! scheduled publishes and unpublishes that are due, each as the user who scheduled it.
//!
//! One replica runs each tick (the scheduler's leadership and `job_runs` claim); on top of
//! that, each schedule is claimed by a conditional update in the same transaction as the
//! change and its audit entry, so it happens exactly once even if two runs overlapped. The
//! audit entry's actor is the user who scheduled it (detail: `"scheduled": true` and the
//! schedule's id). If that user can no longer publish in the tenant (removed, role changed),
//! the schedule is not carried out; its outcome says why.

use std::sync::Arc;

use crate::audit::{self, Actor, AuditAction, RequestOrigin};
use crate::auth::permission::Permission;
use crate::auth::users;
use crate::content::editing::{self, EditError};
use crate::content::schedule::{self, Action, Scheduled};
use crate::jobs::{JobFn, Ran, Scheduler};
use crate::state::App;
use crate::store::{Db, Timestamp};
use crate::tenancy::{self, TenantScope};

/// The job's name in `job_runs`.
pub const JOB: &str = "content-schedule";

/// Registers the job on `scheduler` with the configured tick.
pub fn register(scheduler: &mut Scheduler, app: &App) {
    let db = app.store.primary().clone();
    let run: JobFn = Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { run_due(&db).await.map_err(|e| e.to_string()) })
    });
    scheduler.add(JOB, app.config.content.schedule_tick.clone(), run);
}

/// Carries out every due schedule of every tenant; a summary for `job_runs`, or `Idle` when
/// nothing was due (most ticks).
pub async fn run_due(db: &Db) -> Result<Ran, sqlx::Error> {
    let now = Timestamp::now();
    let tenants = with_conn!(db, conn => tenancy::all(conn).await)?;
    let (mut done, mut refused) = (0, 0);
    for scope in &tenants {
        let due = with_conn!(db, conn => schedule::due(conn, scope, now).await)?;
        for s in due {
            match carry_out(db, scope, &s).await? {
                true => done += 1,
                false => refused += 1,
            }
        }
    }
    Ok(Ran::counted(done + refused, || {
        format!("{done} scheduled change(s) carried out, {refused} not")
    }))
}

/// One schedule, in one transaction: claim it, check the scheduler may still publish, do it,
/// audit it as them. Returns whether it was carried out.
async fn carry_out(db: &Db, scope: &TenantScope, s: &Scheduled) -> Result<bool, sqlx::Error> {
    let ctx = audit::Context::new(
        Actor::User(s.scheduled_by),
        Some(scope.clone()),
        RequestOrigin::default(),
    );
    in_write_tx!(db, conn => {
        let may = users::role_in(conn, s.scheduled_by, scope)
            .await?
            .is_some_and(|r| r.can(Permission::PublishContent));
        if !may {
            let claimed = schedule::claim(conn, scope, s.id,
                "not done: the user who scheduled it may no longer publish").await?;
            if claimed {
                tracing::warn!(schedule = %s.id, "scheduled change dropped: its user may no longer publish");
            }
            return Ok::<_, sqlx::Error>(false);
        }
        // Claimed first: a second run that reaches this schedule finds it done and stops.
        if !schedule::claim(conn, scope, s.id, "done").await? {
            return Ok(false);
        }
        let resource = format!("content:{}", s.item_id);
        let base = audit::Change::none()
            .with("scheduled", true)
            .with("schedule_id", s.id.to_string());
        let outcome = match s.action() {
            Action::Publish => match editing::publish_revision(conn, scope, s.item_id, s.revision_id).await {
                Ok(Some(p)) => {
                    let mut change = base.with("slug", p.slug.clone());
                    if let Some(old) = &p.moved_from {
                        change = change.with("redirect_from", old.clone());
                    }
                    ctx.record(conn, AuditAction::ContentPublished, &resource, change).await?;
                    None
                }
                Ok(None) => Some("done: nothing was pending"),
                Err(EditError::Database(e)) => return Err(e),
                Err(EditError::NotFound) => Some("not done: the item is gone"),
                Err(EditError::Invalid(_)) => Some("not done: the draft's slug is taken"),
            },
            Action::Unpublish => match editing::unpublish(conn, scope, s.item_id).await {
                Ok(true) => {
                    ctx.record(conn, AuditAction::ContentUnpublished, &resource, base).await?;
                    None
                }
                Ok(false) => Some("done: it was not published"),
                Err(EditError::Database(e)) => return Err(e),
                Err(_) => Some("not done: the item is gone"),
            },
        };
        if let Some(outcome) = outcome {
            schedule::set_outcome(conn, scope, s.id, outcome).await?;
        }
        Ok(true)
    })
}
