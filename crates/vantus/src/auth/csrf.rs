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

/// The most body read to find the token; portal forms are far smaller (an upload's file is
/// not read here: see [`token_from_multipart`]).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// How far into a multipart body its first part (the token) must have ended.
const MAX_MULTIPART_PREFIX: usize = 16 * 1024;

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
    let boundary = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("multipart/form-data"))
        .and_then(|v| multer::parse_boundary(v).ok());
    if let Some(boundary) = boundary {
        // An upload: the file is streamed on to the handler, never buffered here.
        let (from_body, body) = token_from_multipart(body, &boundary).await;
        let presented = from_header.or(from_body);
        if !presented.is_some_and(|t| same_token(&t, &session.csrf_token)) {
            return expired();
        }
        parts.extensions.insert(Verified(session));
        return next.run(Request::from_parts(parts, body)).await;
    }
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

/// The token of a multipart body, which portal upload forms send as their first field
/// (browsers send fields in document order), and the body to pass on: the part read so far
/// followed by the rest of the stream. Only the first part is looked at, within
/// [`MAX_MULTIPART_PREFIX`]; a body whose first part is anything else carries no token.
async fn token_from_multipart(body: Body, boundary: &str) -> (Option<String>, Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut prefix = Vec::new();
    let mut token = None;
    let mut failed = None;
    while prefix.len() < MAX_MULTIPART_PREFIX {
        match first_part_token(&prefix, boundary) {
            FirstPart::Incomplete => {}
            FirstPart::Token(t) => {
                token = Some(t);
                break;
            }
            FirstPart::Other => break,
        }
        match stream.next().await {
            Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => break,
        }
    }
    let head = futures_util::stream::iter(
        std::iter::once(Ok::<_, axum::Error>(bytes::Bytes::from(prefix))).chain(failed.map(Err)),
    );
    (token, Body::from_stream(head.chain(stream)))
}

enum FirstPart {
    Incomplete,
    Token(String),
    Other,
}

/// Reads `--boundary CRLF headers CRLF CRLF value CRLF --boundary` at the start of `buf`.
fn first_part_token(buf: &[u8], boundary: &str) -> FirstPart {
    let opening = format!("--{boundary}\r\n");
    if buf.len() < opening.len() {
        return FirstPart::Incomplete;
    }
    let Some(rest) = buf.strip_prefix(opening.as_bytes()) else {
        return FirstPart::Other;
    };
    let Some(end_of_headers) = find(rest, b"\r\n\r\n") else {
        return FirstPart::Incomplete;
    };
    let headers = String::from_utf8_lossy(&rest[..end_of_headers]).to_ascii_lowercase();
    let names_token = headers.lines().any(|line| {
        line.starts_with("content-disposition:")
            && line.split(';').any(|p| p.trim() == "name=\"csrf_token\"")
    });
    if !names_token {
        return FirstPart::Other;
    }
    let value = &rest[end_of_headers + 4..];
    let closing = format!("\r\n--{boundary}");
    match find(value, closing.as_bytes()) {
        Some(end) => match std::str::from_utf8(&value[..end]) {
            Ok(t) => FirstPart::Token(t.to_owned()),
            Err(_) => FirstPart::Other,
        },
        None => FirstPart::Incomplete,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_is_read_from_a_multipart_bodys_first_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nabc123\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n...";
        assert!(matches!(first_part_token(body, "XyZ"), FirstPart::Token(t) if t == "abc123"));
        assert!(matches!(
            first_part_token(&body[..30], "XyZ"),
            FirstPart::Incomplete
        ));
        let other = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(first_part_token(other, "XyZ"), FirstPart::Other));
        assert!(matches!(
            first_part_token(b"garbage-garbage", "XyZ"),
            FirstPart::Other
        ));
    }

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
