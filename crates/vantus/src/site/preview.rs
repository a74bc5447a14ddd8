//! `GET /preview/{token}`: one revision of an item, as its public page will look, for whoever
//! holds a signed link ([`crate::content::preview`]) until it expires. Rendered by
//! [`super::render::render_page`], never cached, and marked `noindex` (header and meta tag).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Site;
use super::render;
use crate::content::preview::{self, Refused};
use crate::content::{editing, revisions};
use crate::http::errors::{AppError, ErrorDetail};
use crate::store::Timestamp;
use crate::tenancy;

/// An error page with its own words (the generic 404 would not say why).
fn refused(status: StatusCode, title: &str, message: String) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(ErrorDetail {
        title: title.to_owned(),
        message,
        field: None,
    });
    mark_noindex(&mut res);
    res
}

fn mark_noindex(res: &mut Response) {
    let h = res.headers_mut();
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub async fn page(State(site): State<Site>, Path(token): Path<String>) -> Response {
    let target = match preview::verify(&site.secret, &token, Timestamp::now()) {
        Ok(t) => t,
        Err(Refused::Invalid) => {
            return refused(
                StatusCode::NOT_FOUND,
                "Preview link not valid",
                "This preview link is not valid: it is incomplete or was altered. Ask for a new one in the portal."
                    .into(),
            );
        }
        Err(Refused::Expired(at)) => {
            let when = Timestamp::from_unix_micros(at.saturating_mul(1_000_000))
                .map(|t| t.to_rfc3339_seconds())
                .unwrap_or_default();
            return refused(
                StatusCode::FORBIDDEN,
                "Preview link expired",
                format!("This preview link expired at {when}. Ask for a new one in the portal."),
            );
        }
    };
    let db = site.store.primary();
    let read = with_conn!(db, conn => {
        let Some(scope) = tenancy::find_by_id(conn, target.tenant).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        let Some(item) = editing::find(conn, &scope, target.item).await? else {
            return Ok(None);
        };
        let Some(rev) = revisions::find(conn, &scope, target.item, target.revision).await? else {
            return Ok(None);
        };
        let kind = item.kind();
        let related = render::load_related(conn, &scope, kind, &rev.slug)
            .await?
            .with_media(conn, &scope, &rev.body_markdown)
            .await?;
        Ok(Some((item, rev, related)))
    });
    let (item, rev, related) = match read {
        Ok(Some(found)) => found,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                "Preview not found",
                "What this preview link shows no longer exists.".into(),
            );
        }
        Err(e) => return AppError::from(e).into_response(),
    };
    if item.deleted_at.is_some() {
        return refused(
            StatusCode::NOT_FOUND,
            "Preview not found",
            "This item was deleted.".into(),
        );
    }
    let shown = editing::as_published(item.id, item.published_at, &rev.fields(), rev.created_at);
    match render::render_page(&site.config, item.kind(), &shown, related, true) {
        Ok(r) => {
            let mut res = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, r.content_type)],
                r.body,
            )
                .into_response();
            mark_noindex(&mut res);
            res
        }
        Err(e) => e.into_response(),
    }
}
