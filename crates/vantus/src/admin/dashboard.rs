//! The portal's front page (`/admin`): what needs attention in this tenant, section by section,
//! each shown only to roles that may see what it summarises:
//!
//! | section | permission |
//! | --- | --- |
//! | new and open leads, leads by stage | `ViewLeads` |
//! | content awaiting review, scheduled content | `ViewContent` |
//! | recent activity (the audit log's last entries) | `ViewAudit` |
//! | system health: outbox backlog, last backup, rate limiter, change notices | `ManageUsers` (owners and admins: the people who run the installation for the tenant) |
//!
//! Every figure is the tenant's own (the outbox backlog included); the last backup, the
//! limiter and change notices are facts of the installation, not of any tenant's data.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::audit;
use super::layout::{Area, Shell};
use crate::auth::Auth;
use crate::auth::permission::{Permission, perm};
use crate::auth::staff::Staff;
use crate::content::editing::{self, Awaiting};
use crate::http::errors::AppError;
use crate::leads::stats::{self, PipelineFigures};
use crate::outbox::{self, Backlog};

/// Entries in the dashboard's recent activity.
const RECENT: i64 = 10;
/// Content items listed per section (the count covers all of them).
const LISTED: usize = 5;

/// A list of content items waiting, with how many there are in all.
pub struct PendingSection {
    pub total: i64,
    pub items: Vec<PendingView>,
}

pub struct PendingView {
    pub title: String,
    pub kind: String,
    pub updated: String,
    pub updated_iso: String,
}

impl PendingSection {
    /// The first of the `total` pending entries.
    fn of(items: impl Iterator<Item = Awaiting>, total: i64) -> Self {
        let items: Vec<PendingView> = items
            .map(|i| PendingView {
                title: i.title,
                kind: i.kind.replace('_', " "),
                updated: i.at.to_long_date(),
                updated_iso: i.at.to_rfc3339_seconds(),
            })
            .collect();
        PendingSection { total, items }
    }
}

pub struct Health {
    pub outbox: Backlog,
    /// When the last backup succeeded (scheduled or `vantus backup`), if ever.
    pub last_backup: Option<String>,
    pub last_backup_iso: Option<String>,
    /// `redis`, `local` or `local-fallback`.
    pub limiter: &'static str,
    /// Whether content changes reach this replica pushed (else it polls).
    pub notices_pushed: bool,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard {
    shell: Shell,
    leads: Option<PipelineFigures>,
    awaiting_review: Option<PendingSection>,
    scheduled: Option<PendingSection>,
    activity: Option<Vec<audit::EntryView>>,
    health: Option<Health>,
}

pub async fn page(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
    match render(&auth, &staff).await {
        Ok(page) => crate::http::html_page(StatusCode::OK, page.render()),
        Err(e) => e.into_response(),
    }
}

async fn render(auth: &Auth, staff: &Staff<perm::ViewDashboard>) -> Result<Dashboard, AppError> {
    let db = auth.store.primary();
    let may = |p: Permission| staff.role.can(p);
    let scope = &staff.scope;
    let (leads, awaiting_review, scheduled, health) = with_conn!(db, conn => {
        let leads = match may(Permission::ViewLeads) {
            true => Some(stats::pipeline(conn, scope).await?),
            false => None,
        };
        let (awaiting_review, scheduled) = match may(Permission::ViewContent) {
            true => {
                let (drafts, schedules): (Vec<_>, Vec<_>) =
                    editing::awaiting(conn, scope, LISTED as i64)
                        .await?
                        .into_iter()
                        .partition(|a| a.what == "draft");
                let (draft_count, schedule_count) = editing::awaiting_counts(conn, scope).await?;
                (
                    Some(PendingSection::of(drafts.into_iter(), draft_count)),
                    Some(PendingSection::of(schedules.into_iter(), schedule_count)),
                )
            }
            false => (None, None),
        };
        let health = match may(Permission::ManageUsers) {
            true => {
                let last = crate::jobs::last_success(conn, crate::jobs::BACKUP).await?;
                Some(Health {
                    outbox: outbox::backlog_of(conn, scope).await?,
                    last_backup: last.map(|t| t.to_string()),
                    last_backup_iso: last.map(|t| t.to_rfc3339_seconds()),
                    limiter: auth.limiter.backend().as_str(),
                    notices_pushed: auth.store.notices().push_is_up(),
                })
            }
            false => None,
        };
        Ok::<_, sqlx::Error>((leads, awaiting_review, scheduled, health))
    })?;
    let activity = match may(Permission::ViewAudit) {
        true => Some(audit::recent(db, scope, RECENT).await?),
        false => None,
    };
    let shell = Shell::load(auth, staff, Area::Dashboard, "Dashboard").await?;
    Ok(Dashboard {
        shell,
        leads,
        awaiting_review,
        scheduled,
        activity,
        health,
    })
}
