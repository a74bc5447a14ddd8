//! The portal's synchronizer token, checked once for every state-changing portal request.
//!
//! Each session has its own random form token (`sessions.csrf_token`), which every portal form
//! carries as `csrf_token` (a script may send it as `X-CSRF-Token`). [`verify`] is a layer on
//! the portal's whole router: for a signed-in request that is not GET/HEAD/OPTIONS, it reads
//! the token from the header or the form body and compares it with the session's. A match is
//! recorded in the request ([`Verified`]); [`Staff`](super::staff::Staff) refuses a
//! state-changing request without that record. So a portal route added later is protected
//! without anyone remembering to, and one mounted outside the layer fails closed.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Auth;
use super::session;
use super::session::session_token;
use crate::http::errors::AppError;

/// The request's form token matched this session's: the session as the layer loaded it, so
/// [`Staff`](super::staff::Staff) does not look it up a second time.
#[derive(Clone, Debug)]
pub struct Verified(pub session::Session);

/// Whether `method` can change state (and so needs the token).
pub fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn expired() -> Response {
    AppError::Forbidden("This form has expired. Reload the page and try again.".into())
        .into_response()
}

/// The most body read to find the token; portal forms are far smaller (uploads will send the
/// token as a header).
const MAX_FORM_BYTES: usize = 1024 * 1024;

pub async fn verify(State(auth): State<Auth>, req: Request<Body>, next: Next) -> Response {
    if !changes_state(req.method()) {
        return next.run(req).await;
    }
    let Some(token) = session_token(req.headers(), auth.cookie.name) else {
        // Not signed in: the handler's Staff extractor answers (sign-in, or the login form).
        return next.run(req).await;
    };
    let idle = auth.config.auth.session_idle;
    let found =
        with_conn!(auth.store.primary(), conn => session::find_live(conn, &token, idle).await);
    let session = match found {
        Ok(Some(s)) => s,
        Ok(None) => return next.run(req).await,
        Err(e) => return AppError::from(e).into_response(),
    };
    let (mut parts, body) = req.into_parts();
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let from_form = || {
        is_form
            .then(|| {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                    .ok()?
                    .into_iter()
                    .find(|(k, _)| k == "csrf_token")
                    .map(|(_, v)| v)
            })
            .flatten()
    };
    let presented = from_header.or_else(from_form);
    if !presented.is_some_and(|t| same_token(&t, &session.csrf_token)) {
        return expired();
    }
    parts.extensions.insert(Verified(session));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(changes_state(&Method::POST) && changes_state(&Method::DELETE));
        assert!(!changes_state(&Method::GET) && !changes_state(&Method::HEAD));
    }
}
