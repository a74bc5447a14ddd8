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
