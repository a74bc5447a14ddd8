//! Static files (the stylesheet, the icon and the passkey script), embedded in the binary and served under
//! fingerprinted URLs (`/static/site.3f9a0c1e.css`), so they can be cached forever: a new
//! release changes the URL, never the bytes behind one.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::caching::{CachePolicy, CachedPage, content_hash};
use super::errors::AppError;

pub struct Asset {
    /// The fingerprinted URL path, e.g. `/static/site.3f9a0c1e.css`.
    pub url: String,
    page: Arc<CachedPage>,
}

pub struct Assets {
    pub stylesheet: Asset,
    pub icon: Asset,
    /// The passkey ceremonies' browser half (`navigator.credentials`), on the sign-in and
    /// account pages only; an external file because the CSP allows no inline script.
    pub passkeys_js: Asset,
    /// The content editor's live preview (optional: the editor works without it).
    pub cms_editor_js: Asset,
}

fn asset(stem: &str, ext: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    let fingerprint = &content_hash(bytes)[..10];
    Asset {
        url: format!("/static/{stem}.{fingerprint}.{ext}"),
        page: Arc::new(CachedPage::new(
            0,
            StatusCode::OK,
            content_type,
            CachePolicy::Immutable,
            bytes,
        )),
    }
}

pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    stylesheet: asset(
        "site",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../static/site.css"),
    ),
    icon: asset(
        "icon",
        "svg",
        "image/svg+xml",
        include_bytes!("../../../../static/icon.svg"),
    ),
    passkeys_js: asset(
        "passkeys",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../static/js/passkeys.js"),
    ),
    cms_editor_js: asset(
        "cms-editor",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../static/js/cms-editor.js"),
    ),
});

/// `GET /static/{file}`: only current fingerprints exist; anything else is a 404.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let wanted = format!("/static/{file}");
    [
        &ASSETS.stylesheet,
        &ASSETS.icon,
        &ASSETS.passkeys_js,
        &ASSETS.cms_editor_js,
    ]
    .into_iter()
    .find(|a| a.url == wanted)
    .map(|a| a.page.respond(&headers))
    .unwrap_or_else(|| AppError::NotFound.into_response())
}
