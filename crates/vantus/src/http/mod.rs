//! Cross-cutting HTTP rules, applied once to the whole router so no route can miss them:
//! request ids and access logs, security headers, uniform error bodies, panic containment,
//! a safe default Cache-Control, refusal of cross-site state changes, compression, timeouts
//! and body limits ([`stack`] holds them in order).

pub mod assets;
pub mod body;
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
        body_limits: body::BodyLimits {
            default: config.http.body_limit,
            // The file plus its form fields and multipart framing.
            uploads: config.media.max_bytes.saturating_add(body::UPLOAD_OVERHEAD),
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
