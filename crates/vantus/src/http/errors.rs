//! Errors as the client sees them.
//!
//! Handlers return [`AppError`]; the framework and middleware produce bare status codes (an
//! unknown route, a body over the limit, a timeout, a panic). One layer, [`render_errors`],
//! gives every error response the same shape: the site's HTML error page for browsers, a JSON
//! object for everything else, naming the field or limit at fault and the request id. Internal
//! details never reach the client; they go to the log with the same request id.

use axum::body::Body;
use axum::http::header::{ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::observe::RequestId;

/// A failure a handler reports. Converted to a status plus [`ErrorDetail`]; the body is
/// rendered by [`render_errors`].
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// The client sent something unusable; `field` names the parameter or header at fault.
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    /// Well formed, but it clashes with the current state (409): restoring an item whose
    /// slug another item has taken since, say. `field` names what clashes.
    #[error("{field}: {message}")]
    Conflict { field: String, message: String },
    /// The body is in a format the route does not take (415); `message` says which it takes.
    #[error("Content-Type: {0}")]
    UnsupportedMediaType(String),
    /// Signed in, but the role does not allow this (403); the message says what is missing.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an outage. Logged in full; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, AppError::Internal(_) | AppError::Unavailable(_))
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_connection_error(&e) {
            AppError::Unavailable(format!("database unreachable: {e}"))
        } else if crate::store::is_storage_full(&e) {
            AppError::Unavailable(format!("database storage full, writes refused: {e}"))
        } else {
            AppError::Internal(format!("database: {e}"))
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(format!("template: {e}"))
    }
}

/// What the error body says. Attached to the response as an extension.
#[derive(Clone, Debug)]
pub struct ErrorDetail {
    pub title: String,
    pub message: String,
    pub field: Option<String>,
}

impl ErrorDetail {
    /// A detail about one field: its message names the field first.
    fn of_field(title: &str, field: String, message: String) -> Self {
        ErrorDetail {
            title: title.into(),
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, None),
            AppError::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                Some(ErrorDetail::of_field("Bad request", field, message)),
            ),
            AppError::Conflict { field, message } => (
                StatusCode::CONFLICT,
                Some(ErrorDetail::of_field("Conflict", field, message)),
            ),
            AppError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some(ErrorDetail {
                    title: "Unsupported media type".into(),
                    message: format!("Content-Type: {message}"),
                    field: Some("Content-Type".into()),
                }),
            ),
            AppError::Forbidden(message) => (
                StatusCode::FORBIDDEN,
                Some(ErrorDetail {
                    title: "Not allowed".into(),
                    message,
                    field: None,
                }),
            ),
            AppError::Unavailable(why) => {
                tracing::error!(error = %why, "service unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, None)
            }
            AppError::Internal(why) => {
                tracing::error!(error = %why, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        let mut res = status.into_response();
        if let Some(d) = detail {
            res.extensions_mut().insert(d);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from_static("5"));
        }
        res
    }
}

/// What an HTML error page shows.
pub struct ErrorPageView<'a> {
    pub status: StatusCode,
    pub detail: &'a ErrorDetail,
    pub request_id: Option<&'a str>,
}

/// Renders HTML error pages in the look of the site. The site provides it, so this layer
/// (below every slice) never imports one.
pub trait ErrorPages: Send + Sync + 'static {
    fn render(&self, view: &ErrorPageView<'_>) -> Result<String, String>;
}

/// Limits the generic messages quote, so a 413 can say which limit was exceeded, and the
/// renderer of HTML error pages.
#[derive(Clone)]
pub struct ErrorContext {
    pub body_limit: usize,
    pub request_timeout: std::time::Duration,
    pub pages: std::sync::Arc<dyn ErrorPages>,
}

impl ErrorContext {
    fn detail_for(&self, status: StatusCode) -> ErrorDetail {
        let (title, message) = match status {
            StatusCode::BAD_REQUEST => (
                "Bad request",
                "The request could not be understood.".to_owned(),
            ),
            StatusCode::NOT_FOUND => (
                "Page not found",
                "There is no page at this address. It may have moved, or the link may be mistyped."
                    .to_owned(),
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "Method not allowed",
                "This address does not accept that request method.".to_owned(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "Request too large",
                format!(
                    "The request body is larger than the {} limit.",
                    crate::config::format_byte_size(self.body_limit)
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "Unsupported media type",
                "The request body is not in a format this address accepts.".to_owned(),
            ),
            StatusCode::SERVICE_UNAVAILABLE => (
                "Temporarily unavailable",
                "The site cannot answer this request right now. Please try again in a moment."
                    .to_owned(),
            ),
            StatusCode::GATEWAY_TIMEOUT => (
                "Request timed out",
                format!(
                    "The request took longer than the {} limit.",
                    humantime::format_duration(self.request_timeout)
                ),
            ),
            StatusCode::REQUEST_TIMEOUT => (
                "Request timed out",
                format!(
                    "The request body arrived too slowly: it was not complete within the {} \
                     limit (VANTUS_REQUEST_TIMEOUT).",
                    humantime::format_duration(self.request_timeout)
                ),
            ),
            s if s.is_server_error() => (
                "Something went wrong",
                "The error has been logged and will be looked at. Please try again in a moment."
                    .to_owned(),
            ),
            _ => (
                "Request not accepted",
                "The request could not be processed.".to_owned(),
            ),
        };
        ErrorDetail {
            title: title.to_owned(),
            message,
            field: None,
        }
    }
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: ErrorJsonBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorJsonBody<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

fn wants_html(req: &Request<Body>) -> bool {
    req.headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// What error rendering needs to know of a request, read before the request is handled.
pub struct ErrorRendering {
    html: bool,
    request_id: Option<String>,
}

impl ErrorRendering {
    pub fn of(req: &Request<Body>) -> Self {
        ErrorRendering {
            html: wants_html(req),
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        }
    }
}

/// Every 4xx/5xx leaves with a uniform body (HTML for browsers, JSON otherwise).
/// Headers the inner response set (Retry-After, Allow, security headers) are kept.
pub fn render_errors(ctx: &ErrorContext, asked: ErrorRendering, res: Response) -> Response {
    let ErrorRendering { html, request_id } = asked;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // A handler that wrote a structured body on purpose (the readiness report) keeps it;
    // empty bodies and the frameworks' plain-text ones are replaced.
    let deliberate = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| !ct.starts_with("text/plain"));
    if deliberate && res.extensions().get::<ErrorDetail>().is_none() {
        return res;
    }
    let (mut parts, _discarded_body) = res.into_parts();
    let detail = parts
        .extensions
        .get::<ErrorDetail>()
        .cloned()
        .unwrap_or_else(|| ctx.detail_for(status));
    let (content_type, body) = if html {
        let view = ErrorPageView {
            status,
            detail: &detail,
            request_id: request_id.as_deref(),
        };
        match ctx.pages.render(&view) {
            Ok(html) => ("text/html; charset=utf-8", html),
            Err(e) => {
                tracing::error!(error = %e, "error page template failed");
                ("text/plain; charset=utf-8", detail.message.clone())
            }
        }
    } else {
        let json = ErrorJson {
            error: ErrorJsonBody {
                status: status.as_u16(),
                title: &detail.title,
                message: &detail.message,
                field: detail.field.as_deref(),
            },
            request_id: request_id.as_deref(),
        };
        (
            "application/json",
            serde_json::to_string(&json).expect("error JSON serializes"),
        )
    };
    for h in [CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING, ETAG] {
        parts.headers.remove(h);
    }
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::from(body))
}

/// A panic becomes a bare 500 (rendered by [`render_errors`]) and a log line. The panic
/// message is logged, never sent.
pub fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic payload)");
    tracing::error!(panic = message, "request handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}
