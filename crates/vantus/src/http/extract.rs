//! Extractors whose rejections are [`AppError`]s, so malformed input gets the same clear,
//! field-naming 400 as every other client error.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::errors::AppError;

/// Like `axum::extract::Query`, but a bad value answers 400 naming the parameter.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Query(q.0)),
            Err(rejection) => {
                // axum reports "Failed to deserialize query string: page: invalid digit ...";
                // keep the "field: reason" part.
                let text = rejection.body_text();
                let detail = text.split_once(": ").map(|(_, rest)| rest).unwrap_or(&text);
                let (field, message) = match detail.split_once(": ") {
                    Some((field, message)) if !field.contains(' ') => (field, message),
                    _ => ("query", detail),
                };
                Err(AppError::bad_request(field, message))
            }
        }
    }
}

/// The body of a request, refused with the status axum gives (413 over the body limit, 400
/// for a broken stream); the error layer names the limit.
async fn body_bytes<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<bytes::Bytes, axum::response::Response> {
    use axum::extract::FromRequest;
    use axum::response::IntoResponse;
    bytes::Bytes::from_request(req, state)
        .await
        .map_err(|rejection| rejection.status().into_response())
}

/// Whether the request says its body is `mime` (parameters such as `charset` allowed).
fn content_type_is(req: &axum::extract::Request, accept: impl Fn(&str) -> bool) -> bool {
    req.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| accept(&mime.trim().to_ascii_lowercase()))
}

/// The body, when the request's Content-Type is one `accept` takes; else a 415 saying that
/// `expected` is.
async fn typed_body<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
    accept: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<bytes::Bytes, axum::response::Response> {
    use axum::response::IntoResponse;
    if !content_type_is(&req, accept) {
        return Err(AppError::UnsupportedMediaType(format!("must be {expected}")).into_response());
    }
    body_bytes(req, state).await
}

/// A URL-encoded form body whose every name and value is valid UTF-8 once decoded: unlike
/// `axum::Form`, invalid bytes are refused (400), not replaced with U+FFFD and stored.
pub struct Form<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let form = "application/x-www-form-urlencoded";
        let body = typed_body(req, state, |m| m == form, form).await?;
        for pair in body.split(|b| *b == b'&') {
            let plus_as_space: Vec<u8> = pair
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect();
            let decoded: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
            if std::str::from_utf8(&decoded).is_err() {
                return Err(AppError::bad_request(
                    "body",
                    "the form holds bytes that are not UTF-8 text",
                )
                .into_response());
            }
        }
        serde_urlencoded::from_bytes(&body)
            .map(Form)
            .map_err(|e| AppError::bad_request("body", e.to_string()).into_response())
    }
}

/// A JSON body, with rejections that name the problem: 415 for another Content-Type, 400 for
/// broken or wrongly typed JSON (serde's message says where), 413 over the body limit.
/// Nesting is bounded by serde_json's recursion limit, so deep nesting is a 400, not a crash.
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let json = |m: &str| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        };
        let body = typed_body(req, state, json, "application/json").await?;
        serde_json::from_slice(&body).map(Json).map_err(|e| {
            AppError::bad_request("body", format!("is not the expected JSON: {e}")).into_response()
        })
    }
}
