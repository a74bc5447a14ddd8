//! The content list, the editor and its forms. Each change runs in one write transaction with
//! its audit entry; a refused form comes back as the editor with a 422 naming the field.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::views::{
    self, EditPage, ListPage, RevisionRow, RevisionsPage, Row, ScheduleRow, kind_label,
    kind_options,
};
use crate::admin::layout::{Area, Shell};
use crate::admin::redirect;
use crate::audit::{self, AuditAction};
use crate::auth::Auth;
use crate::auth::permission::{Permission, perm};
use crate::auth::staff::Staff;
use crate::content::editing::{self, EditError, Fields, Invalid, Seo};
use crate::content::schedule::{self, Action};
use crate::content::{ContentKind, markdown, preview, revisions};
use crate::http::errors::AppError;
use crate::http::extract::{Form, Query};
use crate::site::render;
use crate::store::Timestamp;

fn id_of(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

fn resource(id: Uuid) -> String {
    format!("content:{id}")
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    kind: String,
    bin: Option<String>,
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "The draft was created. It is not on the site until it is published.",
        "saved" => "The draft was saved. The site is unchanged until it is published.",
        "published" => "Published: the site shows it now.",
        "unpublished" => "Unpublished: the site no longer shows it.",
        "nothing" => "Nothing to publish: the site already shows the latest version.",
        "deleted" => "Moved to the bin.",
        "restored" => "Taken out of the bin, unpublished.",
        "revision" => "That revision is now the draft. Publish it to put it on the site.",
        "scheduled" => "Scheduled.",
        "cancelled" => "The schedule was cancelled.",
        _ => return None,
    })
}

pub async fn list(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewContent>,
    Query(q): Query<ListQuery>,
) -> Response {
    let kind = ContentKind::parse(&q.kind);
    let bin = q.bin.is_some();
    let items = match with_conn!(auth.store.primary(), conn =>
        editing::list(conn, &staff.scope, kind, bin).await)
    {
        Ok(i) => i,
        Err(e) => return AppError::from(e).into_response(),
    };
    let rows = items
        .into_iter()
        .map(|i| Row {
            id: i.id.to_string(),
            kind: kind_label(&i.kind),
            pending: i.draft_title.is_some(),
            title: i.draft_title.unwrap_or(i.title),
            slug: i.slug,
            status: i.status,
            changed: views::time(i.draft_saved_at.unwrap_or(i.updated_at)),
        })
        .collect();
    let shell = match Shell::load(&auth, &staff, Area::Content, "Content").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = ListPage {
        shell,
        rows,
        kinds: kind_options(kind.map(|k| k.as_str()).unwrap_or("")),
        bin,
        can_edit: staff.role.can(Permission::EditContent),
        notice: notice(q.done.as_deref()),
    };
    crate::http::html_page(StatusCode::OK, page.render())
}

/// The editor's fields as a form posts them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EditPost {
    kind: String,
    slug: String,
    title: String,
    summary: String,
    body: String,
    meta: String,
    seo_description: String,
    seo_image: String,
    seo_canonical: String,
    /// Set by the live-preview script: answer with the rendered body only.
    fragment: Option<String>,
    /// The item a live preview is for (none while creating one).
    id: String,
}

impl EditPost {
    fn fields(&self) -> Fields {
        Fields {
            slug: self.slug.clone(),
            title: self.title.clone(),
            summary: self.summary.clone(),
            body_markdown: self.body.clone(),
            meta: self.meta.clone(),
            seo: Seo {
                description: self.seo_description.clone(),
                image: self.seo_image.clone(),
                canonical: self.seo_canonical.clone(),
            },
        }
    }
}

/// What the editor shows besides the form.
struct Editor<'a> {
    item: Option<&'a editing::AdminItem>,
    kind: ContentKind,
    fields: Fields,
    notice: Option<&'static str>,
    error: Option<Invalid>,
    status: StatusCode,
}

async fn render_editor<P>(auth: &Auth, staff: &Staff<P>, e: Editor<'_>) -> Response {
    let mut schedules = Vec::new();
    let mut preview_link = None;
    let ttl = auth.config.content.preview_ttl;
    let expires = Timestamp::now().plus(ttl);
    if let Some(item) = e.item {
        let read = with_conn!(auth.store.primary(), conn =>
            schedule::of_item(conn, &staff.scope, item.id).await);
        schedules = match read {
            Ok(s) => s
                .into_iter()
                .map(|s| ScheduleRow {
                    id: s.id.to_string(),
                    action: s.action.clone(),
                    run_at: views::time(s.run_at),
                    by: s.scheduled_by_name.clone().unwrap_or_default(),
                    pending: s.done_at.is_none(),
                    outcome: s.outcome.clone().unwrap_or_default(),
                })
                .collect(),
            Err(e) => return AppError::from(e).into_response(),
        };
        // The link shows the draft if there is one, else what was last published.
        if let Some(revision) = item.draft_revision_id.or(item.published_revision_id) {
            let token = preview::sign(
                &auth.secret,
                &preview::PreviewTarget {
                    tenant: staff.scope.id(),
                    item: item.id,
                    revision,
                    expires: expires.unix_micros() / 1_000_000,
                },
            );
            preview_link = Some(auth.config.public_url_of(&format!("/preview/{token}")));
        }
    }
    let heading = match e.item {
        Some(_) => format!("Edit: {}", e.fields.title),
        None => format!("New {}", kind_label(e.kind.as_str()).to_lowercase()),
    };
    let shell = match Shell::load(auth, staff, Area::Content, &heading).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = EditPage {
        shell,
        id: e.item.map(|i| i.id.to_string()),
        kind: e.kind.as_str().to_owned(),
        kind_label: kind_label(e.kind.as_str()),
        kinds: kind_options(e.kind.as_str()),
        status: e
            .item
            .map(|i| i.status.clone())
            .unwrap_or_else(|| "new".into()),
        deleted: e.item.is_some_and(|i| i.deleted_at.is_some()),
        has_draft: e.item.is_some_and(|i| i.draft_revision_id.is_some()),
        public_path: e
            .item
            .filter(|i| i.is_published())
            .map(|i| e.kind.path_of(&i.slug)),
        preview_link,
        preview_expires: views::time(expires),
        schedules,
        can_edit: staff.role.can(Permission::EditContent),
        can_publish: staff.role.can(Permission::PublishContent),
        notice: e.notice,
        error_field: e.error.as_ref().map(|i| i.field),
        error: e.error.map(|i| format!("{}: {}", i.field, i.message)),
        fields: e.fields,
        editor_script: &crate::http::assets::ASSETS.cms_editor_js.url,
    };
    crate::http::html_page(e.status, page.render())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewQuery {
    kind: String,
}

pub async fn new_page(
    State(auth): State<Auth>,
    staff: Staff<perm::EditContent>,
    Query(q): Query<NewQuery>,
) -> Response {
    let kind = ContentKind::parse(&q.kind).unwrap_or(ContentKind::Insight);
    render_editor(
        &auth,
        &staff,
        Editor {
            item: None,
            kind,
            fields: Fields {
                meta: "{}".into(),
                ..Fields::default()
            },
            notice: None,
            error: None,
            status: StatusCode::OK,
        },
    )
    .await
}

/// Loads an item of the staff member's tenant, or answers 404.
async fn load<P>(auth: &Auth, staff: &Staff<P>, raw: &str) -> Result<editing::AdminItem, Response> {
    let Some(id) = id_of(raw) else {
        return Err(AppError::NotFound.into_response());
    };
    match with_conn!(auth.store.primary(), conn => editing::find(conn, &staff.scope, id).await) {
        Ok(Some(item)) => Ok(item),
        Ok(None) => Err(AppError::NotFound.into_response()),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

/// The fields the editor shows for an item: its pending draft, else what it has.
async fn current_fields(
    auth: &Auth,
    scope: &crate::tenancy::TenantScope,
    item: &editing::AdminItem,
) -> Result<Fields, AppError> {
    let Some(rev) = item.draft_revision_id else {
        return Ok(item.fields());
    };
    let found = with_conn!(auth.store.primary(), conn =>
        revisions::find(conn, scope, item.id, rev).await)?;
    Ok(found.map(|r| r.fields()).unwrap_or_else(|| item.fields()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn edit_page(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewContent>,
    Path(raw): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let fields = match current_fields(&auth, &staff.scope, &item).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    render_editor(
        &auth,
        &staff,
        Editor {
            item: Some(&item),
            kind: item.kind(),
            fields,
            notice: notice(q.done.as_deref()),
            error: None,
            status: StatusCode::OK,
        },
    )
    .await
}

/// The answer to a refused or failed edit: the editor again with the posted fields (422), or
/// the error.
async fn refused<P>(
    auth: &Auth,
    staff: &Staff<P>,
    item: Option<&editing::AdminItem>,
    kind: ContentKind,
    fields: Fields,
    e: EditError,
) -> Response {
    match e {
        EditError::Invalid(invalid) => {
            render_editor(
                auth,
                staff,
                Editor {
                    item,
                    kind,
                    fields,
                    notice: None,
                    error: Some(invalid),
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                },
            )
            .await
        }
        EditError::NotFound => AppError::NotFound.into_response(),
        EditError::Database(e) => AppError::from(e).into_response(),
    }
}

pub async fn create(
    State(auth): State<Auth>,
    staff: Staff<perm::EditContent>,
    Form(post): Form<EditPost>,
) -> Response {
    let Some(kind) = ContentKind::parse(&post.kind) else {
        let invalid = Invalid::new("kind", "choose case study, insight or page");
        return refused(
            &auth,
            &staff,
            None,
            ContentKind::Insight,
            post.fields(),
            invalid.into(),
        )
        .await;
    };
    let fields = post.fields();
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let (id, rev) = editing::create(conn, &staff.scope, kind, fields.clone(), me).await?;
        staff.audit().record(conn, AuditAction::ContentCreated, &resource(id),
            audit::Change::new(serde_json::Value::Null,
                json!({"kind": kind.as_str(), "slug": rev.slug, "revision": rev.number}))).await?;
        Ok::<_, EditError>(id)
    });
    match done {
        Ok(id) => redirect(&format!("/admin/content/{id}?done=created")),
        Err(e) => refused(&auth, &staff, None, kind, post.fields(), e).await,
    }
}

pub async fn save(
    State(auth): State<Auth>,
    staff: Staff<perm::EditContent>,
    Path(raw): Path<String>,
    Form(post): Form<EditPost>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let fields = post.fields();
    let me = staff.user_id;
    let id = item.id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let rev = editing::save_draft(conn, &staff.scope, id, fields.clone(), me, "saved").await?;
        staff.audit().record(conn, AuditAction::ContentSaved, &resource(id),
            audit::Change::none().with("revision", rev.number).with("slug", rev.slug.clone())).await?;
        Ok::<_, EditError>(())
    });
    match done {
        Ok(()) => redirect(&format!("/admin/content/{id}?done=saved")),
        Err(e) => refused(&auth, &staff, Some(&item), item.kind(), fields, e).await,
    }
}

/// The editor's preview: the posted (unsaved) fields rendered as the public page would show
/// them, by the same function; or, for the live-preview script (`fragment`), the rendered
/// body alone.
pub async fn live_preview(
    State(auth): State<Auth>,
    staff: Staff<perm::EditContent>,
    Form(post): Form<EditPost>,
) -> Response {
    let item = match post.id.trim() {
        "" => None,
        raw => match load(&auth, &staff, raw).await {
            Ok(i) => Some(i),
            Err(res) => return res,
        },
    };
    let kind = match &item {
        Some(i) => i.kind(),
        None => ContentKind::parse(&post.kind).unwrap_or(ContentKind::Insight),
    };
    let mut res = if post.fragment.is_some() {
        // The live preview: the same renderer as the page, with the library's images.
        let media = with_conn!(auth.store.primary(), conn =>
            crate::media::catalog::for_markdown(conn, &staff.scope, &post.body).await);
        let media = match media {
            Ok(m) => m,
            Err(e) => return AppError::from(e).into_response(),
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            markdown::render_with_media(&post.body, &media).to_string(),
        )
            .into_response()
    } else {
        let fields = match post.fields().validate(kind) {
            Ok(f) => f,
            Err(invalid) => {
                return AppError::bad_request(invalid.field, invalid.message).into_response();
            }
        };
        let now = Timestamp::now();
        let shown = editing::as_published(
            item.as_ref().map(|i| i.id).unwrap_or(Uuid::nil()),
            item.as_ref().and_then(|i| i.published_at),
            &fields,
            now,
        );
        let read = with_conn!(auth.store.primary(), conn => {
            let related = render::load_related(conn, &staff.scope, kind, &fields.slug).await?;
            related.with_media(conn, &staff.scope, &fields.body_markdown).await
        });
        let related = match read {
            Ok(r) => r,
            Err(e) => return AppError::from(e).into_response(),
        };
        match render::render_page(&auth.config, kind, &shown, related, true) {
            Ok(r) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, r.content_type)],
                r.body,
            )
                .into_response(),
            Err(e) => return e.into_response(),
        }
    };
    let h = res.headers_mut();
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub async fn publish(
    State(auth): State<Auth>,
    staff: Staff<perm::PublishContent>,
    Path(raw): Path<String>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let id = item.id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(p) = editing::publish(conn, &staff.scope, id).await? else {
            return Ok::<_, EditError>(false);
        };
        staff.audit().record(conn, AuditAction::ContentPublished, &resource(id),
            published_change(&p)).await?;
        Ok(true)
    });
    match done {
        Ok(true) => redirect(&format!("/admin/content/{id}?done=published")),
        Ok(false) => redirect(&format!("/admin/content/{id}?done=nothing")),
        Err(e) => {
            let fields = current_fields(&auth, &staff.scope, &item)
                .await
                .unwrap_or_else(|_| item.fields());
            refused(&auth, &staff, Some(&item), item.kind(), fields, e).await
        }
    }
}

/// The audit detail of a publish.
pub fn published_change(p: &editing::Published) -> audit::Change {
    let mut change = audit::Change::none().with("slug", p.slug.clone());
    if let Some(rev) = p.revision {
        change = change.with("revision_id", rev.to_string());
    }
    if let Some(old) = &p.moved_from {
        change = change.with("redirect_from", old.clone());
    }
    change
}

pub async fn unpublish(
    State(auth): State<Auth>,
    staff: Staff<perm::PublishContent>,
    Path(raw): Path<String>,
) -> Response {
    simple_change(&auth, &staff, &raw, |conn, scope, id| {
        Box::pin(async move {
            Ok(editing::unpublish(conn, scope, id)
                .await?
                .then_some((AuditAction::ContentUnpublished, "unpublished")))
        })
    })
    .await
}

pub async fn delete(
    State(auth): State<Auth>,
    staff: Staff<perm::PublishContent>,
    Path(raw): Path<String>,
) -> Response {
    simple_change(&auth, &staff, &raw, |conn, scope, id| {
        Box::pin(async move {
            Ok(editing::delete(conn, scope, id)
                .await?
                .then_some((AuditAction::ContentDeleted, "deleted")))
        })
    })
    .await
}

pub async fn restore(
    State(auth): State<Auth>,
    staff: Staff<perm::PublishContent>,
    Path(raw): Path<String>,
) -> Response {
    simple_change(&auth, &staff, &raw, |conn, scope, id| {
        Box::pin(async move {
            Ok(editing::restore(conn, scope, id)
                .await?
                .then_some((AuditAction::ContentRestored, "restored")))
        })
    })
    .await
}

type ChangeFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Option<(AuditAction, &'static str)>, EditError>>
            + Send
            + 'a,
    >,
>;

/// A change with no form: run `change`; if it did something, audit it and go back to the
/// editor saying so (else back with nothing said).
async fn simple_change<P>(
    auth: &Auth,
    staff: &Staff<P>,
    raw: &str,
    change: for<'a> fn(
        &'a mut crate::store::Conn<'_>,
        &'a crate::tenancy::TenantScope,
        Uuid,
    ) -> ChangeFuture<'a>,
) -> Response {
    let item = match load(auth, staff, raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let id = item.id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some((action, done)) = change(conn, &staff.scope, id).await? else {
            return Ok::<_, EditError>(None);
        };
        staff.audit().record(conn, action, &resource(id),
            audit::Change::new(json!({"status": item.status}), serde_json::Value::Null)).await?;
        Ok(Some(done))
    });
    match done {
        Ok(Some(done)) => redirect(&format!("/admin/content/{id}?done={done}")),
        Ok(None) => redirect(&format!("/admin/content/{id}")),
        Err(EditError::NotFound) => AppError::NotFound.into_response(),
        Err(EditError::Invalid(i)) => AppError::bad_request(i.field, i.message).into_response(),
        Err(EditError::Database(e)) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SchedulePost {
    publish_at: String,
    unpublish_at: String,
}

/// A time from the form: RFC 3339, or a `datetime-local` value (read as UTC).
fn parse_time(field: &'static str, raw: &str) -> Result<Option<Timestamp>, Invalid> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let candidates = [raw.to_owned(), format!("{raw}Z"), format!("{raw}:00Z")];
    candidates
        .iter()
        .find_map(|c| Timestamp::parse_rfc3339(c))
        .map(Some)
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!("\"{raw}\" is not a date and time such as 2026-12-24T09:00 (UTC)"),
            )
        })
}

/// Checks a schedule request against the item and its pending schedules.
fn check_schedule(
    item: &editing::AdminItem,
    pending: &[schedule::Scheduled],
    publish_at: Option<Timestamp>,
    unpublish_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), Invalid> {
    if publish_at.is_none() && unpublish_at.is_none() {
        return Err(Invalid::new(
            "publish_at",
            "give a time to publish, to unpublish, or both",
        ));
    }
    if let Some(t) = publish_at
        && t <= now
    {
        return Err(Invalid::new(
            "publish_at",
            "is in the past; publish now instead, or choose a later time",
        ));
    }
    if let Some(t) = unpublish_at {
        if t <= now {
            return Err(Invalid::new("unpublish_at", "is in the past"));
        }
        // The publish it follows: the one asked for now, else the latest pending one.
        let publish = publish_at.or_else(|| {
            pending
                .iter()
                .filter(|s| s.action() == Action::Publish)
                .map(|s| s.run_at)
                .max()
        });
        match publish {
            Some(p) if t <= p => {
                return Err(Invalid::new(
                    "unpublish_at",
                    "is before the scheduled publish; unpublish after it is published",
                ));
            }
            None if !item.is_published() => {
                return Err(Invalid::new(
                    "unpublish_at",
                    "the item is not published and no publish is scheduled before it",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

pub async fn schedule(
    State(auth): State<Auth>,
    staff: Staff<perm::PublishContent>,
    Path(raw): Path<String>,
    Form(post): Form<SchedulePost>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let id = item.id;
    let me = staff.user_id;
    let now = Timestamp::now();
    let done = in_write_tx!(auth.store.primary(), conn => {
        let publish_at = parse_time("publish_at", &post.publish_at)?;
        let unpublish_at = parse_time("unpublish_at", &post.unpublish_at)?;
        // The item as it is in this transaction: the checks see its current state, and a
        // publish pins the draft as it is now (an edit saved after scheduling stays a draft
        // until it is published or scheduled itself).
        let current = editing::find(conn, &staff.scope, id).await?
            .filter(|i| i.deleted_at.is_none())
            .ok_or(EditError::NotFound)?;
        let pending = schedule::pending_of_item(conn, &staff.scope, id).await?;
        check_schedule(&current, &pending, publish_at, unpublish_at, now)?;
        let draft = current.draft_revision_id;
        for (action, at) in [(Action::Publish, publish_at), (Action::Unpublish, unpublish_at)] {
            let Some(at) = at else { continue };
            let revision = (action == Action::Publish).then_some(draft).flatten();
            let sid = schedule::add(conn, &staff.scope, id, action, at, me, revision).await?;
            staff.audit().record(conn, AuditAction::ContentScheduled, &resource(id),
                audit::Change::none()
                    .with("action", action.as_str())
                    .with("run_at", at.to_rfc3339_seconds())
                    .with("schedule_id", sid.to_string())).await?;
        }
        Ok::<_, EditError>(())
    });
    match done {
        Ok(()) => redirect(&format!("/admin/content/{id}?done=scheduled")),
        Err(e) => {
            let fields = current_fields(&auth, &staff.scope, &item)
                .await
                .unwrap_or_else(|_| item.fields());
            refused(&auth, &staff, Some(&item), item.kind(), fields, e).await
        }
    }
}

pub async fn cancel_schedule(
    State(auth): State<Auth>,
    staff: Staff<perm::PublishContent>,
    Path((raw, raw_schedule)): Path<(String, String)>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let Some(sid) = id_of(&raw_schedule) else {
        return AppError::NotFound.into_response();
    };
    let id = item.id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        if !schedule::cancel(conn, &staff.scope, id, sid).await? {
            return Ok::<_, sqlx::Error>(false);
        }
        staff.audit().record(conn, AuditAction::ContentScheduleCancelled, &resource(id),
            audit::Change::none().with("schedule_id", sid.to_string())).await?;
        Ok(true)
    });
    match done {
        Ok(true) => redirect(&format!("/admin/content/{id}?done=cancelled")),
        Ok(false) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CompareQuery {
    from: String,
    to: String,
}

pub async fn revisions_page(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewContent>,
    Path(raw): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let all = match with_conn!(auth.store.primary(), conn =>
        revisions::list(conn, &staff.scope, item.id).await)
    {
        Ok(r) => r,
        Err(e) => return AppError::from(e).into_response(),
    };
    let pick = |raw: &str| id_of(raw).and_then(|id| all.iter().find(|r| r.id == id));
    let (compared, diff) = match (pick(&q.from), pick(&q.to)) {
        (Some(a), Some(b)) => (Some((a.number, b.number)), revisions::diff(a, b)),
        _ if !q.from.is_empty() || !q.to.is_empty() => {
            return AppError::bad_request("from", "choose two revisions of this item to compare")
                .into_response();
        }
        _ => (None, Vec::new()),
    };
    let rows = all
        .iter()
        .map(|r| RevisionRow {
            id: r.id.to_string(),
            number: r.number,
            author: r
                .author_name
                .clone()
                .unwrap_or_else(|| "(seed files)".into()),
            saved: views::time(r.created_at),
            note: r.note.clone(),
            title: r.title.clone(),
            is_draft: item.draft_revision_id == Some(r.id),
            is_published: item.published_revision_id == Some(r.id),
        })
        .collect();
    let shell = match Shell::load(
        &auth,
        &staff,
        Area::Content,
        &format!("History: {}", item.title),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = RevisionsPage {
        shell,
        id: item.id.to_string(),
        title: item.title.clone(),
        rows,
        compared,
        diff,
        can_edit: staff.role.can(Permission::EditContent),
    };
    crate::http::html_page(StatusCode::OK, page.render())
}

pub async fn restore_revision(
    State(auth): State<Auth>,
    staff: Staff<perm::EditContent>,
    Path((raw, raw_revision)): Path<(String, String)>,
) -> Response {
    let item = match load(&auth, &staff, &raw).await {
        Ok(i) => i,
        Err(res) => return res,
    };
    let Some(rid) = id_of(&raw_revision) else {
        return AppError::NotFound.into_response();
    };
    let id = item.id;
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(old) = revisions::find(conn, &staff.scope, id, rid).await? else {
            return Err(EditError::NotFound);
        };
        let note = format!("restored from revision {}", old.number);
        let rev = editing::save_draft(conn, &staff.scope, id, old.fields(), me, &note).await?;
        staff.audit().record(conn, AuditAction::ContentRevisionRestored, &resource(id),
            audit::Change::none().with("from_revision", old.number).with("revision", rev.number)).await?;
        Ok::<_, EditError>(())
    });
    match done {
        Ok(()) => redirect(&format!("/admin/content/{id}?done=revision")),
        Err(EditError::Invalid(i)) => {
            // The old revision no longer fits (its slug was taken since, say).
            AppError::Conflict {
                field: i.field.into(),
                message: i.message,
            }
            .into_response()
        }
        Err(EditError::NotFound) => AppError::NotFound.into_response(),
        Err(EditError::Database(e)) => AppError::from(e).into_response(),
    }
}
