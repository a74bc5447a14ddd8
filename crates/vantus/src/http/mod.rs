//! Cross-cutting HTTP rules, applied once to the whole router so no route can miss them:
//! request ids and access logs, security headers, uniform error bodies, panic containment,
//! a safe default Cache-Control, refusal of cross-site state changes, compression, timeouts
//! and body limits ([`stack`] holds them in order).

pub mod assets;
pub mod caching;
pub mod client_ip;
pub mod csv;
pub mod errors;
pub mod extract;
pub mod observe;
pub mod origin;
pub mod rate_limit;
pub mod security_headers;
pub mod serve;
pub mod stack;

/// An HTML page rendered for one request, or the error its template raised. Cache-Control is
/// left to the default layer (`no-store`), so a page holding a form token or a session's
/// data is never kept by a cache.
pub fn html_page(
    status: axum::http::StatusCode,
    rendered: Result<String, askama::Error>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match rendered {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(e) => errors::AppError::from(e).into_response(),
    }
}

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;

/// Wraps `router` in the standard stack (see [`stack`] for what runs in which order).
/// `error_pages` renders the HTML error pages browsers get (the site provides it).
pub fn with_standard_layers(
    router: Router,
    config: &Config,
    error_pages: std::sync::Arc<dyn errors::ErrorPages>,
) -> Router {
    let guard = stack::Guard {
        errors: errors::ErrorContext {
            body_limit: config.http.body_limit,
            request_timeout: config.http.request_timeout,
            pages: error_pages,
        },
        origin: origin::AllowedOrigin::new(&config.public_url, config.public_url_is_default),
        body_limits: BodyLimits {
            default: config.http.body_limit,
            // The file plus its form fields and multipart framing.
            uploads: config.media.max_bytes.saturating_add(UPLOAD_OVERHEAD),
        },
    };
    router.layer(
        ServiceBuilder::new()
            .layer(stack::RulesLayer::new(stack::Edge {
                security: security_headers::SecurityHeaders::new(config.is_production()),
            }))
            .layer(CompressionLayer::new())
            .layer(stack::RulesLayer::new(guard))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                config.http.request_timeout,
            ))
            .layer(DefaultBodyLimit::max(config.http.body_limit)),
    )
}

/// The routes that take a file upload: their bodies may be as large as
/// `VANTUS_MEDIA_MAX_BYTES` (plus [`UPLOAD_OVERHEAD`]); every other body is held to
/// `VANTUS_BODY_LIMIT`.
pub const UPLOAD_PATHS: &[&str] = &["/admin/media"];

/// Room for an upload's form fields and multipart framing beside the file itself.
pub const UPLOAD_OVERHEAD: usize = 256 * 1024;

#[derive(Clone, Copy)]
pub struct BodyLimits {
    default: usize,
    uploads: usize,
}

impl BodyLimits {
    /// Holds the request's body to its limit (larger for a POST to one of the
    /// [`UPLOAD_PATHS`]), or answers the 413 for a body declared larger. An upload over its
    /// limit is answered by the upload handler's own check, which names the media setting.
    fn apply(&self, req: &mut axum::extract::Request) -> Option<axum::response::Response> {
        let is_upload =
            req.method() == axum::http::Method::POST && UPLOAD_PATHS.contains(&req.uri().path());
        let limit = if is_upload {
            self.uploads
        } else {
            self.default
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            use axum::response::IntoResponse;
            let mut res = StatusCode::PAYLOAD_TOO_LARGE.into_response();
            if is_upload {
                res.extensions_mut().insert(errors::ErrorDetail {
                    title: "File too large".into(),
                    message: format!(
                        "file: the file is larger than the {} limit (VANTUS_MEDIA_MAX_BYTES)",
                        crate::config::format_byte_size(limit - UPLOAD_OVERHEAD)
                    ),
                    field: Some("file".into()),
                });
            }
            return Some(res);
        }
        // A body without a length (chunked) is cut off at the limit while it is read; axum's
        // extractors answer that with 413.
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = axum::body::Body::new(http_body_util::Limited::new(body, limit));
        None
    }
}
