//! The media pages: the list (with the upload form), a file's page, and its edit and delete
//! forms. Each change and its audit entry commit in one transaction; a deleted file's objects
//! are removed from the store after the commit (a crash in between leaves an unreferenced
//! object, never a row pointing at nothing).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::views::{ListPage, MediaRow, ShowPage, VariantView};
use crate::admin::layout::{Area, Shell};
use crate::audit::{AuditAction, Change};
use crate::auth::Auth;
use crate::auth::permission::perm;
use crate::auth::staff::Staff;
use crate::http::errors::AppError;
use crate::http::extract::{Form, Query};
use crate::media::queries;

/// How many files the list shows (newest first).
const PAGE: i64 = 200;

type Manage = Staff<perm::ManageMedia>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "uploaded" => "The file was uploaded. Its smaller sizes are made in the background.",
        "saved" => "The changes were saved.",
        "deleted" => "The file was deleted.",
        _ => return None,
    })
}

pub async fn list(State(auth): State<Auth>, staff: Manage, Query(q): Query<DoneQuery>) -> Response {
    render_list(
        &auth,
        &staff,
        notice(q.done.as_deref()),
        None,
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// The list page, with the upload form holding what was sent (after a refusal).
pub async fn render_list(
    auth: &Auth,
    staff: &Manage,
    notice: Option<&'static str>,
    error: Option<String>,
    alt_text: String,
    status: StatusCode,
) -> Response {
    let files = match with_conn!(auth.store.primary(), conn => queries::list(conn, &staff.scope, PAGE).await)
    {
        Ok(f) => f,
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(auth, staff, Area::Media, "Media").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = ListPage {
        shell,
        files: files.iter().map(MediaRow::from).collect(),
        max_size: crate::config::format_byte_size(auth.config.media.max_bytes),
        alt_text,
        notice,
        error,
    };
    crate::http::html_page(status, askama::Template::render(&page))
}

fn id_of(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

pub async fn show(
    State(auth): State<Auth>,
    staff: Manage,
    Path(raw): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let Some(id) = id_of(&raw) else {
        return AppError::NotFound.into_response();
    };
    render_show(
        &auth,
        &staff,
        id,
        notice(q.done.as_deref()),
        None,
        StatusCode::OK,
    )
    .await
}

async fn render_show(
    auth: &Auth,
    staff: &Manage,
    id: Uuid,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let found = with_conn!(auth.store.primary(), conn => {
        let Some(m) = queries::get(conn, &staff.scope, id).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        let variants = queries::variants_of(conn, &staff.scope, &[id]).await?;
        Ok(Some((m, variants)))
    });
    let (media, variants) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return AppError::NotFound.into_response(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(auth, staff, Area::Media, "Media file").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let file = MediaRow::from(&media);
    let markdown = if file.is_image {
        format!(
            "![{}]({})",
            media.alt_text.replace(['[', ']'], ""),
            file.url
        )
    } else {
        format!("[{}]({})", media.label.replace(['[', ']'], ""), file.url)
    };
    let page = ShowPage {
        shell,
        file,
        variants: variants.iter().map(VariantView::from).collect(),
        markdown,
        notice,
        error,
    };
    crate::http::html_page(status, askama::Template::render(&page))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdatePost {
    alt_text: String,
    visibility: String,
}

/// The visibility field of the upload and edit forms: `public` or `private`.
pub fn parse_visibility(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "public" | "" => Ok(true),
        "private" => Ok(false),
        _ => Err("visibility: choose public or private".into()),
    }
}

/// The alt text as stored: trimmed, at most [`MAX_ALT`] characters.
pub fn clean_alt(raw: &str) -> Result<String, String> {
    let alt: String = raw.trim().chars().filter(|c| !c.is_control()).collect();
    if alt.chars().count() > MAX_ALT {
        return Err(format!(
            "alt: the alt text is too long (at most {MAX_ALT} characters)"
        ));
    }
    Ok(alt)
}

pub const MAX_ALT: usize = 500;

/// The message when an image comes without alt text.
pub const ALT_REQUIRED: &str =
    "alt: describe the image for people who cannot see it (alt text is required for images)";

pub async fn update(
    State(auth): State<Auth>,
    staff: Manage,
    Path(raw): Path<String>,
    Form(form): Form<UpdatePost>,
) -> Response {
    let Some(id) = id_of(&raw) else {
        return AppError::NotFound.into_response();
    };
    let checked = clean_alt(&form.alt_text)
        .and_then(|alt| parse_visibility(&form.visibility).map(|public| (alt, public)));
    let (alt, public) = match checked {
        Ok(v) => v,
        Err(why) => {
            return render_show(
                &auth,
                &staff,
                id,
                None,
                Some(why),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(before) = queries::get(conn, &staff.scope, id).await? else {
            return Ok::<_, sqlx::Error>(Some(false));
        };
        let is_image = crate::media::sniff::Kind::from_content_type(&before.content_type)
            .is_some_and(|k| k.is_image());
        if is_image && alt.is_empty() {
            return Ok(None);
        }
        queries::update(conn, &staff.scope, id, &alt, public).await?;
        staff.audit().record(conn, AuditAction::MediaUpdated, &format!("media:{id}"),
            Change::new(
                json!({"alt_length": before.alt_text.chars().count(), "public": before.is_public}),
                json!({"alt_length": alt.chars().count(), "public": public}),
            )).await?;
        Ok(Some(true))
    });
    match done {
        Ok(Some(true)) => crate::admin::redirect(&format!("/admin/media/{id}?done=saved")),
        Ok(Some(false)) => AppError::NotFound.into_response(),
        Ok(None) => {
            render_show(
                &auth,
                &staff,
                id,
                None,
                Some(ALT_REQUIRED.into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

pub async fn delete(State(auth): State<Auth>, staff: Manage, Path(raw): Path<String>) -> Response {
    let Some(id) = id_of(&raw) else {
        return AppError::NotFound.into_response();
    };
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some((media, keys)) = queries::delete(conn, &staff.scope, id).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        staff.audit().record(conn, AuditAction::MediaDeleted, &format!("media:{id}"),
            Change::new(json!({"file": media.file_name, "type": media.content_type,
                               "bytes": media.bytes}), json!(null))).await?;
        Ok(Some(keys))
    });
    match done {
        Ok(Some(keys)) => {
            for key in keys {
                if let Err(e) = auth.media.delete(&key).await {
                    tracing::warn!(error = %e, "a deleted media file's object was not removed");
                }
            }
            crate::admin::redirect("/admin/media?done=deleted")
        }
        Ok(None) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
