//! Cross-cutting HTTP rules, applied once to the whole router so no route can miss them:
//! request ids and access logs, security headers, uniform error bodies, panic containment,
//! a safe default Cache-Control, refusal of cross-site state changes, compression, timeouts
//! and body limits.

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
use axum::middleware::{from_fn, from_fn_with_state};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;

/// Wraps `router` in the standard stack. Outermost first: the access log sees the final
/// status of everything, including errors produced by the layers below it.
/// `error_pages` renders the HTML error pages browsers get (the site provides it).
pub fn with_standard_layers(
    router: Router,
    config: &Config,
    error_pages: std::sync::Arc<dyn errors::ErrorPages>,
) -> Router {
    let error_context = errors::ErrorContext {
        body_limit: config.http.body_limit,
        request_timeout: config.http.request_timeout,
        pages: error_pages,
    };
    router.layer(
        ServiceBuilder::new()
            .layer(from_fn(observe::observe))
            .layer(from_fn(crate::telemetry::metrics::record))
            .layer(from_fn_with_state(
                security_headers::SecurityHeaders::new(config.is_production()),
                security_headers::apply,
            ))
            // Pre-compressed cached pages carry Content-Encoding and are passed through.
            .layer(CompressionLayer::new())
            .layer(from_fn_with_state(error_context, errors::render_errors))
            .layer(CatchPanicLayer::custom(errors::on_panic))
            .layer(from_fn(caching::default_no_store))
            .layer(from_fn_with_state(
                origin::AllowedOrigin::new(&config.public_url, config.public_url_is_default),
                origin::refuse_cross_site,
            ))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                config.http.request_timeout,
            ))
            .layer(from_fn_with_state(
                BodyLimits {
                    default: config.http.body_limit,
                    // The file plus its form fields and multipart framing.
                    uploads: config.media.max_bytes.saturating_add(UPLOAD_OVERHEAD),
                },
                limit_body,
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
struct BodyLimits {
    default: usize,
    uploads: usize,
}

/// The body limit, larger for a POST to one of the [`UPLOAD_PATHS`]. An upload over its
/// limit is answered by the upload handler's own check, which names the media setting.
async fn limit_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_upload =
        req.method() == axum::http::Method::POST && UPLOAD_PATHS.contains(&req.uri().path());
    let limit = if is_upload {
        limits.uploads
    } else {
        limits.default
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
        return res;
    }
    // A body without a length (chunked) is cut off at the limit while it is read; axum's
    // extractors answer that with 413.
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}
