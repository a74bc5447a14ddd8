//! `GET /media/<file name>`: the library's files, as the public site and the portal use them.
//!
//! A public file of the request host's tenant is served to anyone, with
//! `Cache-Control: public, max-age=31536000, immutable` (a file's bytes never change under
//! its name: an edit that changed them would be a new upload) and its SHA-256 as ETag. A
//! private file, or one of another tenant, is served only to that tenant's signed-in staff
//! who may view content, and never cached by shared caches; to everyone else it does not
//! exist (404, so its name is not confirmed). Every answer says `nosniff`; a PDF is an
//! attachment, sandboxed, so it is never rendered as a page of this site.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Auth;
use crate::auth::permission::perm;
use crate::auth::staff::Staff;
use crate::http::caching::if_none_match_hits;
use crate::http::errors::AppError;
use crate::media::queries::{self, Served};
use crate::state::PublicTenant;

const PUBLIC_CACHE: &str = "public, max-age=31536000, immutable";
const PRIVATE_CACHE: &str = "private, no-cache";

pub async fn file(
    State(auth): State<Auth>,
    Path(file): Path<String>,
    PublicTenant(site): PublicTenant,
    staff: Result<Staff<perm::ViewContent>, Response>,
    headers: HeaderMap,
) -> Response {
    if !crate::media::is_file_name(&file) {
        return AppError::NotFound.into_response();
    }
    let db = auth.store.primary();
    let public = with_conn!(db, conn => queries::find_served(conn, &site, &file).await);
    let found = match public {
        Ok(Some(s)) if s.is_public => Some((s, PUBLIC_CACHE)),
        Ok(_) => None,
        Err(e) => return AppError::from(e).into_response(),
    };
    let found = match (found, staff) {
        (Some(f), _) => Some(f),
        (None, Ok(staff)) => {
            match with_conn!(db, conn => queries::find_served(conn, &staff.scope, &file).await) {
                Ok(s) => s.map(|s| (s, PRIVATE_CACHE)),
                Err(e) => return AppError::from(e).into_response(),
            }
        }
        (None, Err(_)) => None,
    };
    let Some((served, cache)) = found else {
        return AppError::NotFound.into_response();
    };
    let etag = format!("\"{}\"", served.sha256);
    if if_none_match_hits(&headers, &served.sha256) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        set_headers(res.headers_mut(), &served, &etag, cache);
        return res;
    }
    let bytes = match auth.media.get(&served.object_key).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            tracing::warn!(file = %file, "a media row whose object is missing");
            return AppError::NotFound.into_response();
        }
        Err(e) => return AppError::Unavailable(e.to_string()).into_response(),
    };
    let mut res = bytes.into_response();
    set_headers(res.headers_mut(), &served, &etag, cache);
    res
}

fn set_headers(h: &mut HeaderMap, served: &Served, etag: &str, cache: &'static str) {
    let content_type = HeaderValue::from_str(&served.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if served.content_type == "application/pdf" {
        h.insert(header::CONTENT_DISPOSITION, attachment(&served.label));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
}

/// `attachment; filename="<label>"`, the label reduced to safe ASCII.
fn attachment(label: &str) -> HeaderValue {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let name = if safe.to_ascii_lowercase().ends_with(".pdf") {
        safe
    } else {
        format!("{safe}.pdf")
    };
    HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"))
}
