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
use tower_http::limit::RequestBodyLimitLayer;
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
            .layer(RequestBodyLimitLayer::new(config.http.body_limit))
            .layer(DefaultBodyLimit::max(config.http.body_limit)),
    )
}
