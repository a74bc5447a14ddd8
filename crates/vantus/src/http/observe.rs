//! Request identity and the access log.
//!
//! Each request gets an id (the caller's `x-request-id` when it is well-formed, so a load
//! balancer's id carries through; a new UUID otherwise). The id is echoed in the response, set
//! on a tracing span so every log line of the request carries it, and written in the access log
//! line with method, path, status and latency. The query string is not logged: it can carry
//! personal data.

use std::future::Future;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request};
use axum::response::Response;
use tracing::Instrument;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The current request's id, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn incoming_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&X_REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.to_owned())
}

/// Reads W3C trace context from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Joins the caller's trace (if any) and returns this request's trace id, when traces are
/// exported.
fn link_trace(span: &tracing::Span, headers: &HeaderMap) -> Option<String> {
    if !crate::telemetry::traces_enabled() {
        return None;
    }
    use opentelemetry::trace::{TraceContextExt, TraceId};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    (trace_id != TraceId::INVALID).then(|| trace_id.to_string())
}

/// Gives the request its id and span, has `next` handle it inside that span, then echoes the
/// id and writes the access log line.
pub async fn observe<Fut>(
    mut req: Request<Body>,
    next: impl FnOnce(Request<Body>) -> Fut,
) -> Response
where
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let id = incoming_id(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The method as a fixed label: a made-up method can be 50 KB long.
    let method = crate::telemetry::metrics::method_label(req.method());
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = id.as_str(),
        method,
        path = path.as_str(),
        trace_id = tracing::field::Empty
    );
    let trace_id = link_trace(&span, req.headers());
    if let Some(t) = &trace_id {
        span.record("trace_id", t.as_str());
    }

    let handled = next(req).instrument(span);
    let mut res = if crate::telemetry::errors_enabled() {
        // A hub per request, so an error or panic report carries this request's tags only.
        use sentry::SentryFutureExt;
        let hub = std::sync::Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
        hub.configure_scope(|scope| {
            scope.set_tag("request_id", &id);
            scope.set_tag("method", method);
            scope.set_tag("path", &path);
        });
        handled.bind_hub(hub).await
    } else {
        handled.await
    };

    let status = res.status().as_u16();
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let trace_id = trace_id.unwrap_or_default();
    // Fields as `&str`, not `%`: the JSON formatter escapes a string directly, where a
    // Display value is formatted into a temporary first.
    let (request_id, path, trace_id) = (id.as_str(), path.as_str(), trace_id.as_str());
    if status >= 500 {
        tracing::warn!(
            request_id, method, path, status, latency_ms, trace_id, "request"
        );
    } else {
        tracing::info!(
            request_id, method, path, status, latency_ms, trace_id, "request"
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_are_trusted() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("lb-7f3a.91:2"));
        assert_eq!(incoming_id(&h).as_deref(), Some("lb-7f3a.91:2"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("<script>"));
        assert_eq!(incoming_id(&h), None);
        h.insert(
            &X_REQUEST_ID,
            HeaderValue::from_str(&"a".repeat(200)).unwrap(),
        );
        assert_eq!(incoming_id(&h), None);
    }
}
