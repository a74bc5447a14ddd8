//! Prometheus metrics: per-route request counts, latency histograms and errors; database pool
//! usage; replica fallbacks; job runs; the last good backup; build info; the outbox
//! (`vantus_outbox_deliveries_total{channel,outcome}` with outcome `sent`, `failed` or `dead`,
//! and the gauges `vantus_outbox_oldest_pending_seconds` and `vantus_outbox_dead_messages`,
//! which each replica's outbox worker refreshes every few seconds; see `crate::outbox::worker`).
//!
//! `/metrics` is served on its own address (`VANTUS_METRICS_LISTEN`, never routed publicly)
//! and/or on the main port to requests bearing `VANTUS_METRICS_TOKEN`.

use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};

use crate::store::{Db, Store};

/// Latency buckets (seconds): fine near the cached-page range, coarse for slow outliers.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder (installed once; later calls reuse it, which also suits tests
/// that start several servers in one process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("vantus_http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .expect("static buckets are valid")
            .set_buckets_for_metric(
                Matcher::Full("vantus_job_duration_seconds".into()),
                &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0],
            )
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // A second recorder in the same process (tests) keeps the first; harmless.
        let _ = metrics::set_global_recorder(recorder);
        metrics::gauge!(
            "vantus_build_info",
            "version" => crate::build::VERSION,
            "commit" => crate::build::GIT_SHA
        )
        .set(1.0);
        handle
    })
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep (or a scrape) folds it into the
/// buckets; without this task an unscraped server grows by a few bytes per request, forever.
pub async fn upkeep(stop: tokio_util::sync::CancellationToken) {
    let handle = handle();
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.cancelled() => return,
        }
    }
}

/// The matched route template, carried from the inner router to the outer metrics layer.
#[derive(Clone)]
struct Route(MatchedPath);

/// Route layer on the application router: remembers which route template answered, in the
/// response, for [`record`]. A plain service with its own future: it runs on every request.
#[derive(Clone, Copy, Default)]
pub struct RememberRouteLayer;

impl<S> tower::Layer<S> for RememberRouteLayer {
    type Service = RememberRoute<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RememberRoute(inner)
    }
}

#[derive(Clone)]
pub struct RememberRoute<S>(S);

impl<S, B> tower::Service<Request<B>> for RememberRoute<S>
where
    S: tower::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        RouteFuture {
            inner: self.0.call(req),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RouteFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, E> std::future::Future for RouteFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        if let Some(route) = this.route.take() {
            res.extensions_mut().insert(Route(route));
        }
        Poll::Ready(Ok(res))
    }
}

/// The handles of one route, method and status, looked up once per thread: building a
/// metric key and finding it in the registry on every request costs allocations and a
/// hash of every label.
struct RequestHandles {
    requests: metrics::Counter,
    duration: metrics::Histogram,
    /// Only for 5xx statuses.
    errors: Option<metrics::Counter>,
}

impl RequestHandles {
    fn register(route: &str, method: &'static str, status: StatusCode) -> Self {
        let code = status.as_u16().to_string();
        RequestHandles {
            requests: metrics::counter!("vantus_http_requests_total",
                "route" => route.to_owned(), "method" => method, "status" => code.clone()),
            duration: metrics::histogram!("vantus_http_request_duration_seconds",
                "route" => route.to_owned(), "method" => method),
            errors: status.is_server_error().then(|| {
                metrics::counter!("vantus_http_errors_total", "route" => route.to_owned(), "status" => code)
            }),
        }
    }
}

/// Handles by route, per (method, status): a lookup by the route as `&str`, without
/// building a key per request.
type HandleCache = std::collections::HashMap<
    (&'static str, u16),
    std::collections::HashMap<String, RequestHandles>,
>;

thread_local! {
    /// Per thread, the handles already registered. Bounded, like the series themselves:
    /// routes are templates, methods a fixed set.
    static HANDLES: std::cell::RefCell<HandleCache> = Default::default();
}

/// Runs `f` with the handles of this route, method and status, registering them on first use.
fn with_request_handles(
    route: &str,
    method: &'static str,
    status: StatusCode,
    f: impl FnOnce(&RequestHandles),
) {
    HANDLES.with_borrow_mut(|cache| {
        let by_route = cache.entry((method, status.as_u16())).or_default();
        if let Some(found) = by_route.get(route) {
            return f(found);
        }
        let made = RequestHandles::register(route, method, status);
        f(&made);
        by_route.insert(route.to_owned(), made);
    })
}

/// Outer layer: counts and times every request by route template (never by raw path, which
/// would let visitors create unbounded series).
pub async fn record<Fut>(req: Request<Body>, next: impl FnOnce(Request<Body>) -> Fut) -> Response
where
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    let method = method_label(req.method());
    let builtin: Option<&'static str> = match req.uri().path() {
        "/healthz" => Some("/healthz"),
        "/readyz" => Some("/readyz"),
        "/metrics" => Some("/metrics"),
        _ => None,
    };
    let res = next(req).await;
    let status = res.status();
    let route = match (builtin, res.extensions().get::<Route>()) {
        (Some(p), _) => p,
        (None, Some(r)) => r.0.as_str(),
        (None, None) => "unmatched",
    };
    let elapsed = started.elapsed().as_secs_f64();
    with_request_handles(route, method, status, |handles| {
        handles.requests.increment(1);
        handles.duration.record(elapsed);
        if let Some(errors) = &handles.errors {
            errors.increment(1);
        }
    });
    res
}

/// The method as a label from a fixed set. Hyper accepts any token as a method, so a label
/// taken as sent would let any client create series (and memory) without bound.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn pool_gauges(pool: &str, db: &Db) {
    let (open, idle) = db.pool_usage();
    let idle = idle as f64;
    metrics::gauge!("vantus_db_pool_connections", "pool" => pool.to_owned(), "state" => "idle")
        .set(idle);
    metrics::gauge!("vantus_db_pool_connections", "pool" => pool.to_owned(), "state" => "in_use")
        .set((f64::from(open) - idle).max(0.0));
}

/// Renders the exposition, refreshing the gauges that are read rather than pushed.
pub fn render(store: Option<&Store>) -> String {
    let handle = handle();
    if let Some(store) = store {
        pool_gauges("primary", store.primary());
        if let Some(set) = store.replicas() {
            for (i, r) in set.replicas().iter().enumerate() {
                pool_gauges(&format!("replica{i}"), r.db());
                metrics::gauge!("vantus_db_replica_lag_seconds", "replica" => format!("replica{i}"))
                    .set(r.lag().as_secs_f64());
            }
            metrics::counter!("vantus_db_replica_fallbacks_total").absolute(set.fallbacks());
        }
    }
    handle.render()
}

fn exposition(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `/metrics` on the dedicated metrics listener (no token: that address is private).
pub async fn serve_private(State(store): State<std::sync::Arc<OnceLock<Store>>>) -> Response {
    exposition(render(store.get()))
}

/// `/metrics` on the main port: only with `Authorization: Bearer <VANTUS_METRICS_TOKEN>`.
pub async fn serve_with_token(
    State((store, token)): State<(std::sync::Arc<OnceLock<Store>>, SecretString)>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        return res;
    }
    exposition(render(store.get()))
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Records a successful backup for `vantus_backup_last_success_timestamp_seconds`.
pub fn backup_succeeded(at: crate::store::Timestamp) {
    metrics::gauge!("vantus_backup_last_success_timestamp_seconds")
        .set(at.unix_micros() as f64 / 1e6);
}
