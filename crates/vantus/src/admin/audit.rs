//! The audit log viewer (`GET /admin/audit`) and its export (`GET /admin/audit/export`).
//!
//! Both show the session's tenant only. Installation-wide entries (no tenant: backups,
//! restores, copies, sign-ins refused before any account was known) are not listed, not even
//! to owners: an owner of one tenant is not necessarily the operator of the installation (who
//! reads those with database access and `vantus audit verify`), and a listing that is always
//! one tenant's cannot leak another's. Actors are shown by name; the entries themselves hold
//! only the account id. The export streams keyset pages of the same filter, so a large log is
//! never held in memory, and is itself audited (`audit.exported`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::layout::{Area, Shell, when};
use crate::audit::query::{self, Entry, Filter};
use crate::audit::{AuditAction, Change};
use crate::auth::Auth;
use crate::auth::memberships;
use crate::auth::permission::{Permission, perm};
use crate::auth::staff::Staff;
use crate::http::errors::AppError;
use crate::http::extract::Query;
use crate::store::{Conn, Db, Timestamp};
use crate::tenancy::TenantScope;

/// Entries per page of the viewer.
const PAGE: i64 = 50;
/// Entries per database round trip of the export.
const EXPORT_PAGE: i64 = 500;

/// The viewer's and the export's query string. Empty fields mean "any".
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "String::is_empty")]
    action: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    actor: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(skip_serializing_if = "String::is_empty")]
    from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(skip_serializing_if = "String::is_empty")]
    to: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    resource: String,
    /// Show entries older than this `seq` (the keyset cursor).
    #[serde(skip_serializing)]
    before: Option<i64>,
    #[serde(skip_serializing)]
    format: String,
}

pub(crate) fn day(field: &str, value: &str) -> Result<Option<time::Date>, AppError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value.trim(), &format)
        .map(Some)
        .map_err(|_| AppError::bad_request(field, "must be a date as YYYY-MM-DD"))
}

pub(crate) fn midnight(d: time::Date) -> Timestamp {
    Timestamp::from_datetime(d.midnight().assume_utc())
}

impl AuditQuery {
    fn filter(&self) -> Result<Filter, AppError> {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let from = day("from", &self.from)?;
        let to = day("to", &self.to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(AppError::bad_request("to", "must not be before from"));
        }
        Ok(Filter {
            action: text(&self.action),
            actor: text(&self.actor),
            from: from.map(midnight),
            until: to.and_then(|t| t.next_day()).map(midnight),
            resource: text(&self.resource),
        })
    }

    /// The filter as a query string, for the next page's link and the export links.
    fn query_string(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

/// An entry as a page shows it.
pub struct EntryView {
    pub seq: i64,
    pub at: String,
    pub at_iso: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub detail: String,
    pub ip: String,
    pub request_id: String,
}

/// The names of the accounts that acted in `entries`.
async fn actor_names(
    conn: &mut Conn<'_>,
    entries: &[Entry],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    let mut ids: Vec<Uuid> = entries.iter().filter_map(Entry::actor_user).collect();
    ids.sort();
    ids.dedup();
    memberships::names_of(conn, &ids).await
}

fn view(e: Entry, names: &HashMap<Uuid, String>) -> EntryView {
    let actor = match e.actor_user() {
        Some(id) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("deleted account {id}")),
        None => e.actor.clone(),
    };
    EntryView {
        seq: e.seq,
        at: when(e.created_at),
        at_iso: e.created_at.to_rfc3339_seconds(),
        actor,
        action: e.action,
        resource: e.resource,
        detail: e.detail,
        ip: e.ip.unwrap_or_default(),
        request_id: e.request_id.unwrap_or_default(),
    }
}

/// The newest `limit` entries of `scope` with actors by name (the dashboard's recent activity).
pub async fn recent(
    db: &Db,
    scope: &TenantScope,
    limit: i64,
) -> Result<Vec<EntryView>, sqlx::Error> {
    with_conn!(db, conn => {
        let entries = query::page(conn, scope, &Filter::default(), None, limit).await?;
        let names = actor_names(conn, &entries).await?;
        Ok::<_, sqlx::Error>(entries.into_iter().map(|e| view(e, &names)).collect())
    })
}

/// A choice in the actor filter.
struct ActorChoice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    shell: Shell,
    q: AuditQuery,
    actions: Vec<(&'static str, bool)>,
    actors: Vec<ActorChoice>,
    entries: Vec<EntryView>,
    /// The link to the next (older) page, when there is one.
    older: Option<String>,
    /// The filter's query string, for the export links.
    filter_query: String,
    can_export: bool,
}

pub async fn page(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewAudit>,
    Query(q): Query<AuditQuery>,
) -> Response {
    match render(&auth, &staff, q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn render(
    auth: &Auth,
    staff: &Staff<perm::ViewAudit>,
    q: AuditQuery,
) -> Result<Response, AppError> {
    let filter = q.filter()?;
    let (entries, more, members) = with_conn!(auth.store.primary(), conn => {
        let mut entries = query::page(conn, &staff.scope, &filter, q.before, PAGE + 1).await?;
        let more = entries.len() as i64 > PAGE;
        entries.truncate(PAGE as usize);
        let names = actor_names(conn, &entries).await?;
        let members = memberships::members(conn, &staff.scope).await?;
        let views: Vec<EntryView> = entries.into_iter().map(|e| view(e, &names)).collect();
        Ok::<_, sqlx::Error>((views, more, members))
    })?;
    let older = match (more, entries.last()) {
        (true, Some(last)) => {
            let qs = q.query_string();
            Some(format!(
                "/admin/audit?{qs}{}before={}",
                if qs.is_empty() { "" } else { "&" },
                last.seq
            ))
        }
        _ => None,
    };
    let chosen = q.actor.trim();
    let mut actors: Vec<ActorChoice> = members
        .into_iter()
        .map(|m| {
            let value = format!("user:{}", m.user_id);
            ActorChoice {
                selected: value == chosen,
                value,
                label: m.name,
            }
        })
        .collect();
    for fixed in ["cli", "public"] {
        actors.push(ActorChoice {
            value: fixed.into(),
            label: fixed.into(),
            selected: fixed == chosen,
        });
    }
    let actions = AuditAction::ALL
        .iter()
        .map(|a| (a.as_str(), a.as_str() == q.action.trim()))
        .collect();
    let page = AuditPage {
        shell: Shell::load(auth, staff, Area::Audit, "Audit log").await?,
        filter_query: q.query_string(),
        q,
        actions,
        actors,
        entries,
        older,
        can_export: staff.role.can(Permission::ExportAudit),
    };
    Ok(crate::http::html_page(StatusCode::OK, page.render()))
}

/// The export formats.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
}

const CSV_COLUMNS: [&str; 10] = [
    "seq",
    "created_at",
    "actor",
    "action",
    "resource",
    "detail",
    "ip",
    "request_id",
    "id",
    "hash",
];

fn csv_line(e: &Entry) -> String {
    let seq = e.seq.to_string();
    let at = e.created_at.to_rfc3339_seconds();
    let id = e.id.to_string();
    crate::http::csv::record([
        seq.as_str(),
        at.as_str(),
        &e.actor,
        &e.action,
        &e.resource,
        &e.detail,
        e.ip.as_deref().unwrap_or(""),
        e.request_id.as_deref().unwrap_or(""),
        id.as_str(),
        e.hash.as_deref().unwrap_or(""),
    ])
}

fn json_line(e: &Entry) -> String {
    // The detail is stored JSON: embedded as an object, not as a string of JSON.
    let detail: serde_json::Value =
        serde_json::from_str(&e.detail).unwrap_or_else(|_| e.detail.clone().into());
    let mut line = serde_json::json!({
        "seq": e.seq,
        "created_at": e.created_at.to_rfc3339_seconds(),
        "actor": e.actor,
        "action": e.action,
        "resource": e.resource,
        "detail": detail,
        "ip": e.ip,
        "request_id": e.request_id,
        "id": e.id,
        "hash": e.hash,
    })
    .to_string();
    line.push('\n');
    line
}

pub async fn export(
    State(auth): State<Auth>,
    staff: Staff<perm::ExportAudit>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let format = match q.format.as_str() {
        "csv" | "" => Format::Csv,
        "jsonl" => Format::Jsonl,
        _ => {
            return AppError::bad_request("format", "must be csv or jsonl").into_response();
        }
    };
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let db = auth.store.primary().clone();
    let ctx = staff.audit();
    let summary = serde_json::to_value(&q).unwrap_or_default();
    let format_name = if format == Format::Csv {
        "csv"
    } else {
        "jsonl"
    };
    let recorded = in_write_tx!(&db, conn => ctx.record(conn, AuditAction::AuditExported, "audit_log",
        Change::none().with("format", format_name).with("filter", summary)).await);
    if let Err(e) = recorded {
        return AppError::from(e).into_response();
    }
    let scope = staff.scope.clone();
    let (content_type, file, head) = match format {
        Format::Csv => (
            "text/csv; charset=utf-8",
            "audit-log.csv",
            Some(crate::http::csv::record(CSV_COLUMNS)),
        ),
        Format::Jsonl => ("application/jsonl; charset=utf-8", "audit-log.jsonl", None),
    };
    crate::http::csv::streamed(content_type, file, head, move |before: Option<i64>| {
        let (db, scope, filter) = (db.clone(), scope.clone(), filter.clone());
        async move {
            let entries = with_conn!(&db, conn =>
                query::page(conn, &scope, &filter, before, EXPORT_PAGE).await)?;
            Ok(crate::http::csv::Page::of(
                &entries,
                EXPORT_PAGE,
                |e| match format {
                    Format::Csv => csv_line(e),
                    Format::Jsonl => json_line(e),
                },
                |e| e.seq,
            ))
        }
    })
}
