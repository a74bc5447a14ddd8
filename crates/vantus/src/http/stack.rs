//! The two sets of rules every request passes through, which apply the cross-cutting rules
//! in their fixed order. Outermost first:
//!
//! 1. [`Edge`]: the request id, span and access log ([`observe`]), the request metrics
//!    ([`metrics::record`]) and the security headers. It sees the final status of everything,
//!    including errors produced below it.
//! 2. Compression (tower-http). Pages cached pre-compressed carry Content-Encoding and pass.
//! 3. [`Guard`]: uniform error bodies ([`errors::render_errors`]), panic containment,
//!    `no-store` by default, refusal of cross-site state changes, body limits, and 408 for a
//!    body still arriving when the timeout strikes (see [`super::body`]).
//! 4. The request timeout and axum's body limit, then the routes.
//!
//! [`Apply`] runs each set as one boxed future per request. As nine `from_fn` layers, every
//! rule cost a boxed service, a boxed future and a clone of the whole stack below it, per
//! request (ADR 0003).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tower::Service;

use super::body::{Admission, BodyLimits};
use super::errors::{self, ErrorContext, ErrorRendering};
use super::origin::AllowedOrigin;
use super::security_headers::SecurityHeaders;
use super::{caching, observe};
use crate::telemetry::metrics;

/// A service below that cannot fail (every layer there answers errors as responses).
pub trait Inner<B>:
    Service<Request, Response = axum::http::Response<B>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> Inner<B> for S where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// Calls the service below. [`Apply::call`] moves in the instance it polled ready, so this
/// calls it directly (a `oneshot` would poll it ready a second time).
async fn answer<S: Inner<B>, B: ResponseBody>(mut inner: S, req: Request) -> Response {
    match inner.call(req).await {
        Ok(res) => res.map(Body::new),
        Err(never) => match never {},
    }
}

/// A response body axum can box.
pub trait ResponseBody:
    axum::body::HttpBody<Data = bytes::Bytes, Error: Into<axum::BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: axum::body::HttpBody<Data = bytes::Bytes, Error: Into<axum::BoxError>> + Send + 'static
{
}

/// Rules applied around the service below, as one future per request.
pub trait Rules: Send + Sync + 'static {
    fn around<S: Inner<B>, B: ResponseBody>(
        self: Arc<Self>,
        inner: S,
        req: Request,
    ) -> impl Future<Output = Response> + Send;
}

/// The layer applying `R`.
pub struct RulesLayer<R>(Arc<R>);

impl<R> RulesLayer<R> {
    pub fn new(rules: R) -> Self {
        RulesLayer(Arc::new(rules))
    }
}

impl<R> Clone for RulesLayer<R> {
    fn clone(&self) -> Self {
        RulesLayer(self.0.clone())
    }
}

impl<R, S> tower::Layer<S> for RulesLayer<R> {
    type Service = Apply<R, S>;
    fn layer(&self, inner: S) -> Apply<R, S> {
        Apply {
            inner,
            rules: self.0.clone(),
        }
    }
}

/// The service below with `R` applied around it.
pub struct Apply<R, S> {
    inner: S,
    rules: Arc<R>,
}

impl<R, S: Clone> Clone for Apply<R, S> {
    fn clone(&self) -> Self {
        Apply {
            inner: self.inner.clone(),
            rules: self.rules.clone(),
        }
    }
}

// `S`'s bounds are spelled out here (not `S: Inner<B>`): the response type names `B`.
impl<R, S, B> Service<Request> for Apply<R, S>
where
    R: Rules,
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static,
    B: ResponseBody,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready goes into the future, a fresh clone stays
        // (tower's rule for services moved into a future).
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let rules = self.rules.clone();
        Box::pin(async move { Ok(rules.around(inner, req).await) })
    }
}

/// Observability and security headers: the outermost rules.
pub struct Edge {
    pub security: SecurityHeaders,
}

impl Rules for Edge {
    async fn around<S: Inner<B>, B: ResponseBody>(
        self: Arc<Self>,
        inner: S,
        req: Request,
    ) -> Response {
        observe::observe(req, move |req| {
            metrics::record(req, move |req| async move {
                let mut res = answer(inner, req).await;
                self.security.apply(&mut res);
                res
            })
        })
        .await
    }
}

/// Error rendering, panic containment, the default Cache-Control, cross-site refusal and
/// body limits: the rules below compression.
pub struct Guard {
    pub errors: ErrorContext,
    pub origin: AllowedOrigin,
    pub body_limits: BodyLimits,
}

impl Rules for Guard {
    async fn around<S: Inner<B>, B: ResponseBody>(
        self: Arc<Self>,
        inner: S,
        mut req: Request,
    ) -> Response {
        let asked = ErrorRendering::of(&req);
        let (handled, body) = match self.origin.refusal(&req) {
            Some(refused) => (Ok(refused), None),
            None => match self.body_limits.admit(&mut req) {
                Admission::Refused(too_large) => (Ok(*too_large), None),
                Admission::Admitted(body) => (contain_panics(answer(inner, req)).await, body),
            },
        };
        let mut res = handled.unwrap_or_else(errors::on_panic);
        if let Some(body) = &body {
            body.blame_slow_body(&mut res);
        }
        caching::default_no_store(&mut res);
        errors::render_errors(&self.errors, asked, res)
    }
}

/// A panic in a handler becomes an error value here, instead of taking the connection down.
fn contain_panics<F: Future<Output = Response>>(
    handled: F,
) -> impl Future<Output = Result<Response, Box<dyn std::any::Any + Send>>> {
    std::panic::AssertUnwindSafe(handled).catch_unwind()
}
