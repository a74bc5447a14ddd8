//! The CRM's pages and forms. A handler parses its input into typed values (a bad value is a
//! 422 naming the field, before anything is written), then runs the change for each lead in
//! one write transaction: the update, its timeline row, its audit entry and, for a rescued
//! lead, its notification. A lead of another tenant is not found (404), never changed.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::views::{
    self, InvalidPage, LeadView, ListPage, ListQuery, ShowPage, member_choices, stage_choices,
};
use crate::admin::layout::{Area, Shell};
use crate::audit::{AuditAction, Change, Context};
use crate::auth::Auth;
use crate::auth::memberships;
use crate::auth::permission::{Permission, perm};
use crate::auth::staff::Staff;
use crate::http::errors::AppError;
use crate::http::extract::{Form, Query};
use crate::leads::crm::{self, CrmLead, Cursor, Stage};
use crate::leads::notes::{self, ActivityKind};
use crate::leads::submit::Recipients;
use crate::leads::timeline;
use crate::outbox::LeadData;
use crate::store::Conn;
use crate::tenancy::TenantScope;

/// Leads per page of the list.
const PAGE: i64 = 50;
/// Leads per database round trip of the export.
const EXPORT_PAGE: i64 = 500;
/// The most leads one bulk action changes.
const BULK_MAX: usize = 500;
/// The longest lost reason, in characters.
const REASON_MAX_CHARS: usize = 500;
/// What a submission marked as spam by staff (rather than by the spam rules) is filed under.
const STAFF_SPAM_REASON: &str = "marked as spam by staff";

fn id_of(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// The tenant's members as `(id, name)`, by name.
async fn members(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    Ok(memberships::members(conn, scope)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.name))
        .collect())
}

/// A refused form: 422, naming the field, with a way back.
async fn invalid<P>(
    auth: &Auth,
    staff: &Staff<P>,
    field: &'static str,
    message: impl Into<String>,
    back: String,
) -> Response {
    let shell = match Shell::load(auth, staff, Area::Leads, "Not changed").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = InvalidPage {
        shell,
        field,
        message: message.into(),
        back,
    };
    crate::http::html_page(StatusCode::UNPROCESSABLE_ENTITY, page.render())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    done: String,
}

pub async fn list(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewLeads>,
    Query(q): Query<ListQuery>,
    Query(done): Query<DoneQuery>,
) -> Response {
    match render_list(&auth, &staff, q, &done.done).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn render_list(
    auth: &Auth,
    staff: &Staff<perm::ViewLeads>,
    q: ListQuery,
    done: &str,
) -> Result<Response, AppError> {
    let filter = q.filter()?;
    let after = q.cursor()?;
    let (mut leads, members) = with_conn!(auth.store.primary(), conn => {
        let leads = crm::page(conn, &staff.scope, &filter, after.as_ref(), PAGE + 1).await?;
        let members = members(conn, &staff.scope).await?;
        Ok::<_, sqlx::Error>((leads, members))
    })?;
    let more = leads.len() as i64 > PAGE;
    leads.truncate(PAGE as usize);
    let names: HashMap<Uuid, String> = members.iter().cloned().collect();
    let filter_query = q.query_string();
    let next = match (more, leads.last()) {
        (true, Some(last)) => Some(format!(
            "/admin/leads?{filter_query}{}after={}",
            if filter_query.is_empty() { "" } else { "&" },
            Cursor::of(last).encode()
        )),
        _ => None,
    };
    let here = match after {
        Some(c) => format!(
            "/admin/leads?{filter_query}{}after={}",
            if filter_query.is_empty() { "" } else { "&" },
            c.encode()
        ),
        None if filter_query.is_empty() => "/admin/leads".into(),
        None => format!("/admin/leads?{filter_query}"),
    };
    let mut owners = vec![views::Choice {
        value: "none".into(),
        label: "Nobody".into(),
        selected: q.owner == "none",
    }];
    owners.extend(member_choices(&members, q.owner.trim()));
    let page = ListPage {
        shell: Shell::load(
            auth,
            staff,
            Area::Leads,
            if filter.spam { "Spam" } else { "Leads" },
        )
        .await?,
        spam: filter.spam,
        stages: stage_choices(q.stage.trim()),
        owners,
        bulk_stages: stage_choices(""),
        bulk_owners: member_choices(&members, ""),
        rows: leads.iter().map(|l| views::row(l, &names)).collect(),
        next,
        filter_query,
        can_edit: staff.role.can(Permission::EditLeads),
        can_export: staff.role.can(Permission::ExportLeads),
        notice: views::notice(done),
        here,
        q,
    };
    Ok(crate::http::html_page(StatusCode::OK, page.render()))
}

pub async fn show(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewLeads>,
    Path(raw): Path<String>,
    Query(done): Query<DoneQuery>,
) -> Response {
    let Some(id) = id_of(&raw) else {
        return AppError::NotFound.into_response();
    };
    let read = with_conn!(auth.store.primary(), conn => {
        let Some(lead) = crm::get(conn, &staff.scope, id).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        let events = timeline::of_lead(conn, &staff.scope, &lead).await?;
        let members = members(conn, &staff.scope).await?;
        Ok(Some((lead, events, members)))
    });
    let (lead, events, members) = match read {
        Ok(Some(found)) => found,
        Ok(None) => return AppError::NotFound.into_response(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(&auth, &staff, Area::Leads, &lead.name).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut names: HashMap<Uuid, String> = members.iter().cloned().collect();
    if let Some(a) = lead.assignee_id
        && !names.contains_key(&a)
    {
        // Assigned to someone who has left the tenant: still shown by name.
        if let Ok(more) =
            with_conn!(auth.store.primary(), conn => memberships::names_of(conn, &[a]).await)
        {
            names.extend(more);
        }
    }
    let current_owner = lead.assignee_id.map(|a| a.to_string()).unwrap_or_default();
    let page = ShowPage {
        shell,
        is_spam: lead.spam_reason.is_some(),
        stages: stage_choices(&lead.stage),
        owners: member_choices(&members, &current_owner),
        lead: LeadView::of(&lead, &names),
        timeline: events.into_iter().map(Into::into).collect(),
        can_edit: staff.role.can(Permission::EditLeads),
        notice: views::notice(&done.done),
    };
    crate::http::html_page(StatusCode::OK, page.render())
}

/// A change to one lead, parsed and checked.
#[derive(Clone, Debug)]
enum Action {
    Stage {
        stage: Stage,
        lost_reason: Option<String>,
    },
    /// To a member (checked), or to nobody.
    Assign(Option<Uuid>),
    Spam,
    NotSpam,
}

impl Action {
    fn done(&self) -> &'static str {
        match self {
            Action::Stage { .. } => "stage",
            Action::Assign(_) => "assigned",
            Action::Spam => "spam",
            Action::NotSpam => "rescued",
        }
    }
}

/// A field at fault and why.
type Refusal = (&'static str, String);

fn parse_stage(stage: &str, lost_reason: &str) -> Result<Action, Refusal> {
    let stage = Stage::parse(stage.trim()).ok_or((
        "stage",
        "must be one of new, contacted, qualified, proposal, won, lost".to_owned(),
    ))?;
    let reason = lost_reason.trim();
    if stage == Stage::Lost && reason.is_empty() {
        return Err((
            "lost_reason",
            "is required when a lead is lost: say why".to_owned(),
        ));
    }
    if reason.chars().count() > REASON_MAX_CHARS || reason.chars().any(char::is_control) {
        return Err((
            "lost_reason",
            "must be one line of at most 500 characters".to_owned(),
        ));
    }
    Ok(Action::Stage {
        stage,
        lost_reason: (stage == Stage::Lost).then(|| reason.to_owned()),
    })
}

/// The assignee of a form: nobody when empty, else a member of `scope`.
async fn parse_assignee(
    auth: &Auth,
    scope: &TenantScope,
    raw: &str,
) -> Result<Result<Action, Refusal>, AppError> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "none" {
        return Ok(Ok(Action::Assign(None)));
    }
    let not_member = || Err(("assignee", "is not a member of this tenant".to_owned()));
    let Some(id) = id_of(raw) else {
        return Ok(not_member());
    };
    let members = with_conn!(auth.store.primary(), conn => members(conn, scope).await)?;
    if members.iter().any(|(m, _)| *m == id) {
        Ok(Ok(Action::Assign(Some(id))))
    } else {
        Ok(not_member())
    }
}

fn lead_data(lead: &CrmLead) -> LeadData {
    LeadData {
        id: lead.id,
        name: lead.name.clone(),
        email: lead.email.clone(),
        company: lead.company.clone(),
        role: lead.role.clone(),
        budget: lead.budget.clone(),
        budget_label: crate::leads::form::Budget::parse(&lead.budget)
            .map_or_else(|| lead.budget.clone(), |b| b.label().to_owned()),
        website: lead.website.clone(),
        message: lead.message.clone(),
        source: lead.source.clone(),
        created_at: lead.created_at.to_rfc3339_seconds(),
        spam: false,
    }
}

/// Applies `action` to `lead` on `conn` (inside the caller's write transaction): the update,
/// its timeline row and its audit entry; for a rescue, the lead's notification too. A change
/// that changes nothing (the stage it has, spam that is spam) records nothing. Returns whether
/// notifications were queued.
async fn apply(
    conn: &mut Conn<'_>,
    ctx: &Context,
    scope: &TenantScope,
    actor: Uuid,
    recipients: &Recipients<'_>,
    lead: &CrmLead,
    action: &Action,
) -> Result<bool, sqlx::Error> {
    let resource = format!("lead:{}", lead.id);
    match action {
        Action::Stage { stage, lost_reason } => {
            if lead.stage == stage.as_str() && lead.lost_reason == *lost_reason {
                return Ok(false);
            }
            crm::set_stage(conn, scope, lead.id, *stage, lost_reason.as_deref()).await?;
            let body = match lost_reason {
                Some(r) => format!("{}\n{r}", stage.as_str()),
                None => stage.as_str().to_owned(),
            };
            notes::record(conn, scope, lead.id, actor, ActivityKind::Stage, &body).await?;
            let change = Change::new(
                json!({"stage": lead.stage, "lost_reason": lead.lost_reason}),
                json!({"stage": stage.as_str(), "lost_reason": lost_reason}),
            );
            ctx.record(conn, AuditAction::LeadStageChanged, &resource, change)
                .await?;
        }
        Action::Assign(to) => {
            if lead.assignee_id == *to {
                return Ok(false);
            }
            crm::assign(conn, scope, lead.id, *to).await?;
            let (kind, body) = match to {
                Some(id) => (ActivityKind::Assigned, id.to_string()),
                None => (ActivityKind::Unassigned, String::new()),
            };
            notes::record(conn, scope, lead.id, actor, kind, &body).await?;
            let change = Change::new(
                json!({"assignee": lead.assignee_id}),
                json!({"assignee": to}),
            );
            ctx.record(conn, AuditAction::LeadAssigned, &resource, change)
                .await?;
        }
        Action::Spam => {
            if lead.spam_reason.is_some() {
                return Ok(false);
            }
            crm::set_spam(conn, scope, lead.id, Some(STAFF_SPAM_REASON)).await?;
            notes::record(conn, scope, lead.id, actor, ActivityKind::Spam, "").await?;
            ctx.record(conn, AuditAction::LeadMarkedSpam, &resource, Change::none())
                .await?;
        }
        Action::NotSpam => {
            let Some(reason) = &lead.spam_reason else {
                return Ok(false);
            };
            crm::set_spam(conn, scope, lead.id, None).await?;
            notes::record(conn, scope, lead.id, actor, ActivityKind::NotSpam, "").await?;
            let queued = recipients
                .notify_rescued(conn, scope, lead_data(lead))
                .await?;
            let change = Change::new(json!({"spam_reason": reason}), json!({"spam_reason": null}))
                .with("notifications", queued.len());
            ctx.record(conn, AuditAction::LeadRescued, &resource, change)
                .await?;
            return Ok(!queued.is_empty());
        }
    }
    Ok(false)
}

/// Runs `action` on the lead `raw` of the staff member's tenant; 404 when it has none.
async fn change_one(
    auth: &Auth,
    staff: &Staff<perm::EditLeads>,
    raw: &str,
    action: Action,
) -> Response {
    let Some(id) = id_of(raw) else {
        return AppError::NotFound.into_response();
    };
    let ctx = staff.audit();
    let recipients = Recipients::of(&auth.config);
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(lead) = crm::get(conn, &staff.scope, id).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        apply(conn, &ctx, &staff.scope, staff.user_id, &recipients, &lead, &action).await.map(Some)
    });
    match done {
        Ok(Some(queued)) => {
            if queued {
                crate::outbox::wake();
            }
            crate::admin::redirect(&format!("/admin/leads/{id}?done={}", action.done()))
        }
        Ok(None) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StagePost {
    stage: String,
    lost_reason: String,
}

pub async fn stage(
    State(auth): State<Auth>,
    staff: Staff<perm::EditLeads>,
    Path(raw): Path<String>,
    Form(post): Form<StagePost>,
) -> Response {
    match parse_stage(&post.stage, &post.lost_reason) {
        Ok(action) => change_one(&auth, &staff, &raw, action).await,
        Err((field, why)) => {
            invalid(&auth, &staff, field, why, format!("/admin/leads/{raw}")).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AssignPost {
    assignee: String,
}

pub async fn assign(
    State(auth): State<Auth>,
    staff: Staff<perm::EditLeads>,
    Path(raw): Path<String>,
    Form(post): Form<AssignPost>,
) -> Response {
    match parse_assignee(&auth, &staff.scope, &post.assignee).await {
        Ok(Ok(action)) => change_one(&auth, &staff, &raw, action).await,
        Ok(Err((field, why))) => {
            invalid(&auth, &staff, field, why, format!("/admin/leads/{raw}")).await
        }
        Err(e) => e.into_response(),
    }
}

pub async fn mark_spam(
    State(auth): State<Auth>,
    staff: Staff<perm::EditLeads>,
    Path(raw): Path<String>,
) -> Response {
    change_one(&auth, &staff, &raw, Action::Spam).await
}

/// Spam review: a false positive becomes a lead, and gets the notification a fresh lead gets.
pub async fn rescue(
    State(auth): State<Auth>,
    staff: Staff<perm::EditLeads>,
    Path(raw): Path<String>,
) -> Response {
    change_one(&auth, &staff, &raw, Action::NotSpam).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NotePost {
    note: String,
}

pub async fn note(
    State(auth): State<Auth>,
    staff: Staff<perm::EditLeads>,
    Path(raw): Path<String>,
    Form(post): Form<NotePost>,
) -> Response {
    let Some(id) = id_of(&raw) else {
        return AppError::NotFound.into_response();
    };
    let text = match notes::parse_note(&post.note) {
        Ok(t) => t,
        Err(why) => return invalid(&auth, &staff, "note", why, format!("/admin/leads/{id}")).await,
    };
    let ctx = staff.audit();
    let done = in_write_tx!(auth.store.primary(), conn => {
        if crm::get(conn, &staff.scope, id).await?.is_none() {
            return Ok::<_, sqlx::Error>(false);
        }
        let note = notes::record(conn, &staff.scope, id, staff.user_id, ActivityKind::Note, &text).await?;
        ctx.record(conn, AuditAction::LeadNoteAdded, &format!("lead:{id}"),
            Change::none().with("note", note.to_string())).await?;
        Ok(true)
    });
    match done {
        Ok(true) => crate::admin::redirect(&format!("/admin/leads/{id}?done=note")),
        Ok(false) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// A bulk action: `lead` (repeated) names the selected leads, `action` is `assign`, `stage`,
/// `spam` or `not_spam`, with `assignee` or `stage` and `lost_reason` as for one lead.
/// `return_to` is the list page it came from.
pub async fn bulk(
    State(auth): State<Auth>,
    staff: Staff<perm::EditLeads>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let back = match field("return_to") {
        r if r.starts_with("/admin/leads") && !r.starts_with("/admin/leads/") => r.to_owned(),
        _ => "/admin/leads".to_owned(),
    };
    let mut ids = Vec::new();
    for (_, v) in fields.iter().filter(|(k, _)| k == "lead") {
        match id_of(v) {
            Some(id) => ids.push(id),
            None => return invalid(&auth, &staff, "lead", "names no lead", back).await,
        }
    }
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return invalid(&auth, &staff, "lead", "select at least one lead", back).await;
    }
    if ids.len() > BULK_MAX {
        return invalid(
            &auth,
            &staff,
            "lead",
            "select at most 500 leads at once",
            back,
        )
        .await;
    }
    let action = match field("action") {
        "stage" => parse_stage(field("stage"), field("lost_reason")),
        "assign" => match parse_assignee(&auth, &staff.scope, field("assignee")).await {
            Ok(a) => a,
            Err(e) => return e.into_response(),
        },
        "spam" => Ok(Action::Spam),
        "not_spam" => Ok(Action::NotSpam),
        _ => Err((
            "action",
            "must be one of assign, stage, spam, not_spam".to_owned(),
        )),
    };
    let action = match action {
        Ok(a) => a,
        Err((field, why)) => return invalid(&auth, &staff, field, why, back).await,
    };
    let ctx = staff.audit();
    let recipients = Recipients::of(&auth.config);
    let done = in_write_tx!(auth.store.primary(), conn => {
        // Leads of another tenant (or gone) are not among these: nothing happens to them.
        let leads = crm::get_many(conn, &staff.scope, &ids).await?;
        let mut queued = false;
        for lead in &leads {
            queued |= apply(conn, &ctx, &staff.scope, staff.user_id, &recipients, lead, &action).await?;
        }
        Ok::<_, sqlx::Error>(queued)
    });
    match done {
        Ok(queued) => {
            if queued {
                crate::outbox::wake();
            }
            let sep = if back.contains('?') { '&' } else { '?' };
            crate::admin::redirect(&format!("{back}{sep}done=bulk"))
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

const CSV_COLUMNS: [&str; 14] = [
    "id",
    "created_at",
    "stage",
    "name",
    "email",
    "company",
    "role",
    "budget",
    "website",
    "message",
    "source",
    "assignee",
    "lost_reason",
    "spam_reason",
];

fn csv_line(lead: &CrmLead, names: &HashMap<Uuid, String>) -> String {
    let id = lead.id.to_string();
    let at = lead.created_at.to_rfc3339_seconds();
    let owner = views::owner_name(lead.assignee_id, names);
    crate::http::csv::record([
        id.as_str(),
        at.as_str(),
        &lead.stage,
        &lead.name,
        &lead.email,
        lead.company.as_deref().unwrap_or(""),
        lead.role.as_deref().unwrap_or(""),
        &lead.budget,
        lead.website.as_deref().unwrap_or(""),
        &lead.message,
        &lead.source,
        &owner,
        lead.lost_reason.as_deref().unwrap_or(""),
        lead.spam_reason.as_deref().unwrap_or(""),
    ])
}

/// The export stream's place: the last lead written, and whether the last page was short.
/// The leads of the current filter as CSV, streamed in keyset pages (never held in memory),
/// spreadsheet-safe ([`crate::http::csv`]); the export itself is audited first.
pub async fn export(
    State(auth): State<Auth>,
    staff: Staff<perm::ExportLeads>,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let db = auth.store.primary().clone();
    let ctx = staff.audit();
    let summary = serde_json::to_value(&q).unwrap_or_default();
    let recorded = in_write_tx!(&db, conn => {
        ctx.record(conn, AuditAction::LeadsExported, "leads",
            Change::none().with("format", "csv").with("filter", summary)).await?;
        members(conn, &staff.scope).await
    });
    let names: HashMap<Uuid, String> = match recorded {
        Ok(m) => m.into_iter().collect(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let scope = staff.scope.clone();
    crate::http::csv::streamed(
        "text/csv; charset=utf-8",
        "leads.csv",
        Some(crate::http::csv::record(CSV_COLUMNS)),
        move |after: Option<Cursor>| {
            let (db, scope, filter, names) =
                (db.clone(), scope.clone(), filter.clone(), names.clone());
            async move {
                let leads = with_conn!(&db, conn =>
                    crm::page(conn, &scope, &filter, after.as_ref(), EXPORT_PAGE).await)?;
                Ok(crate::http::csv::Page::of(
                    &leads,
                    EXPORT_PAGE,
                    |l| csv_line(l, &names),
                    Cursor::of,
                ))
            }
        },
    )
}
