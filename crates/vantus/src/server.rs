//! Start-up, the router, and graceful shutdown.
//!
//! Order of start-up, chosen so orchestrators always get a truthful answer:
//! 1. bind the port and serve `/healthz` + `/readyz` (readiness says 503 and why);
//! 2. connect to the database (retrying while it comes up), migrate and seed under a lock;
//! 3. build the application and switch the router over to it; `/readyz` turns 200.
//!
//! On SIGTERM/SIGINT: readiness turns 503 (and, for `VANTUS_SHUTDOWN_DELAY`, serving goes on so
//! load balancers can notice), the listener stops accepting, in-flight requests
//! finish (bounded by the drain timeout), pools close, the process exits 0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::{Either, Ready, ready};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use crate::config::{Config, ConfigError, DatabaseConfig};
use crate::content::seed;
use crate::health::{self, HealthState};
use crate::jobs::Scheduler;
use crate::lifecycle::{Lifecycle, Phase};
use crate::site::Site;
use crate::state::App;
use crate::store::migrate::SetupError;
use crate::store::{self, ConnectError, Db, ReplicaSet, Store};
use crate::telemetry::metrics;
use crate::{content, http, leads, secrets, site};

/// How often replicas are probed for health and lag.
const REPLICA_PROBE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} ({setting}): {source}")]
    Bind {
        addr: SocketAddr,
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("start-up interrupted by a shutdown signal")]
    Interrupted,
}

/// A server that is up and ready. Tests drive it directly; `vantus serve` waits for a signal.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: App,
    /// The site slice's state (its page cache), for tests that watch content generations.
    pub site: Site,
    lifecycle: Arc<Lifecycle>,
    stop: CancellationToken,
    serve: JoinHandle<()>,
    /// The outbox worker: awaited on shutdown so deliveries it started are recorded.
    outbox: JoinHandle<()>,
    drain_timeout: Duration,
    shutdown_delay: Duration,
}

/// Sends requests to the application once it exists, and answers 503 until then.
#[derive(Clone)]
struct ReadySwitch(Arc<OnceLock<Router>>);

impl Service<Request<Body>> for ReadySwitch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Oneshot<Router, Request<Body>>, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.0.get() {
            Some(router) => Either::Left(router.clone().oneshot(req)),
            None => {
                let mut res = StatusCode::SERVICE_UNAVAILABLE.into_response();
                res.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("5"));
                Either::Right(ready(Ok(res)))
            }
        }
    }
}

/// Binds, migrates, seeds and returns once the server is ready.
pub async fn start(mut config: Config) -> Result<RunningServer, StartError> {
    crate::telemetry::install_crypto_provider();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let secret = secrets::resolve(&config.secret, &config.data_dir)?;
    let mfa_key = secrets::resolve_mfa_key(&config.auth.mfa_key, &config.data_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            setting: "VANTUS_LISTEN",
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        setting: "VANTUS_LISTEN",
        source,
    })?;

    if config.public_url_is_default {
        config.public_url = crate::config::default_public_url(addr);
    }

    let lifecycle = Arc::new(Lifecycle::default());
    let app_cell: Arc<OnceLock<App>> = Arc::new(OnceLock::new());
    let store_cell: Arc<OnceLock<Store>> = Arc::new(OnceLock::new());
    let routes: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    let outer = outer_routes(&config, &lifecycle, &app_cell, &store_cell, &routes);
    let limits = connection_limits(&config);
    let security = http::security_headers::SecurityHeaders::new(config.is_production());

    let stop = CancellationToken::new();
    metrics::handle();
    tokio::spawn(metrics::upkeep(stop.clone()));
    if let Some(metrics_addr) = config.telemetry.metrics_listen {
        let listener =
            TcpListener::bind(metrics_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: metrics_addr,
                    setting: "VANTUS_METRICS_LISTEN",
                    source,
                })?;
        let router = Router::new()
            .route("/metrics", get(metrics::serve_private))
            .with_state(store_cell.clone());
        let stop = stop.clone();
        tracing::info!(addr = %metrics_addr, "metrics listening");
        let security = security.clone();
        tokio::spawn(async move {
            http::serve::serve(listener, router, limits, &security, stop).await;
        });
    }
    let serve = {
        let stop = stop.clone();
        tokio::spawn(async move {
            http::serve::serve(listener, outer, limits, &security, stop).await;
        })
    };
    tracing::info!(
        addr = %addr,
        env = config.env.as_str(),
        database = %config.database.url.redacted(),
        version = crate::build::VERSION,
        "listening"
    );

    let drain_timeout = config.http.drain_timeout;
    let shutdown_delay = config.http.shutdown_delay;
    let prepared = prepare(config, secret, lifecycle.clone(), stop.clone()).await;
    let (app, generation) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            stop.cancel();
            let _ = serve.await;
            return Err(e);
        }
    };

    let site = Site::new(app.clone(), generation);
    let _ = app_cell.set(app.clone());
    let _ = store_cell.set(app.store.clone());
    let auth = crate::auth::Auth::new(app.clone(), mfa_key).map_err(|e| {
        ConfigError::new(
            "VANTUS_ARGON2_MEMORY_KIB",
            format!("with the other argon2 settings: {e}"),
        )
    })?;
    let _ = routes.set(application_routes(&app, &site, &auth));
    lifecycle.set(Phase::Ready);
    let outbox = spawn_background(&app, &site, &stop).await;
    Ok(RunningServer {
        addr,
        app,
        site,
        lifecycle,
        stop,
        serve,
        outbox,
        drain_timeout,
        shutdown_delay,
    })
}

/// The connection limits, with the connection cap lowered to what the open-file limit allows
/// (after raising the soft limit to the hard one, as Go's runtime and nginx do).
fn connection_limits(config: &Config) -> http::serve::ConnectionLimits {
    /// Descriptors kept for the database pools, backups, logs and the listeners.
    const RESERVED_FDS: u64 = 128;
    let mut max_connections = config.http.max_connections;
    if let Some(open_files) = raise_open_file_limit() {
        let fits = open_files.saturating_sub(RESERVED_FDS).max(1);
        if (max_connections as u64) > fits {
            tracing::warn!(
                configured = max_connections,
                open_file_limit = open_files,
                using = fits,
                "VANTUS_MAX_CONNECTIONS lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE)"
            );
            max_connections = fits as usize;
        }
    }
    http::serve::ConnectionLimits {
        header_read_timeout: config.http.header_read_timeout,
        keep_alive_timeout: config.http.keep_alive_timeout,
        max_connections,
    }
}

/// Raises the soft open-file limit to the hard limit; returns the limit now in force.
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(hard)) = (limit.current, limit.maximum)
        && current < hard
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = Some(current);
        }
    }
    limit.current
}

/// The routes that answer before the application is ready: health, readiness and (with a
/// token) metrics; everything else goes to the application once it exists (503 until then).
fn outer_routes(
    config: &Config,
    lifecycle: &Arc<Lifecycle>,
    app_cell: &Arc<OnceLock<App>>,
    store_cell: &Arc<OnceLock<Store>>,
    application: &Arc<OnceLock<Router>>,
) -> Router {
    let mut outer = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(HealthState {
            lifecycle: lifecycle.clone(),
            app: app_cell.clone(),
        });
    if let Some(token) = config.telemetry.metrics_token.clone() {
        outer = outer.merge(
            Router::new()
                .route("/metrics", get(metrics::serve_with_token))
                .with_state((store_cell.clone(), token)),
        );
    }
    let outer = outer.fallback_service(ReadySwitch(application.clone()));
    http::with_standard_layers(outer, config, Arc::new(site::errors::SiteErrorPages))
}

/// Every route of the application, one slice after another. The one place routes are
/// assembled: a slice provides its router, this mounts it.
fn application_routes(app: &App, site: &Site, auth: &crate::auth::Auth) -> Router {
    Router::new()
        .route("/static/{file}", get(http::assets::serve))
        .merge(site::routes().with_state(site.clone()))
        .merge(leads::routes(app).with_state(leads::Leads::new(app.clone())))
        .merge(crate::admin::portal_routes(auth))
        .merge(crate::admin::media::public_routes(auth))
        .merge(fault_injection_routes())
        .route_layer(metrics::RememberRouteLayer)
}

/// Connects, migrates, seeds and builds the application state; also returns the content
/// generation found, for the site's page cache.
async fn prepare(
    config: Config,
    secret: secrets::SecretKey,
    lifecycle: Arc<Lifecycle>,
    stop: CancellationToken,
) -> Result<(App, i64), StartError> {
    let primary = tokio::select! {
        db = connect_with_retry(&config.database) => db?,
        _ = stop.cancelled() => return Err(StartError::Interrupted),
    };
    lifecycle.set(Phase::Migrating);
    let started = Instant::now();
    let (scope, added) = seed::migrate_and_seed(&primary, &config.site_tenant).await?;
    tracing::info!(
        tenant = scope.slug(),
        seeded = added,
        ms = started.elapsed().as_millis() as u64,
        "database ready"
    );

    let replicas = if config.database.replica_urls.is_empty() {
        None
    } else {
        let set = ReplicaSet::new(
            &config.database.replica_urls,
            config.database.max_connections,
            config.database.replica_max_lag,
        )?;
        // One probe before serving, so replicas take reads from the first request.
        set.probe_all().await;
        Some(Arc::new(set))
    };
    let store = Store::new(primary, replicas);
    let generation = with_conn!(store.primary(), conn => content::generation(conn, &scope).await)?;
    let app = App::new(config, store, scope, lifecycle, secret).map_err(|e| {
        ConfigError::new(
            "REDIS_URL",
            format!("is not a Redis URL such as redis://host:6379/0 ({e})"),
        )
    })?;
    Ok((app, generation))
}

/// Opens the primary pool, retrying an unreachable PostgreSQL (it may still be starting, as
/// in a compose stack) until `DATABASE_CONNECT_TIMEOUT`. Configuration mistakes and SQLite
/// errors are not retried: waiting would not fix them.
pub async fn connect_with_retry(cfg: &DatabaseConfig) -> Result<Db, ConnectError> {
    // Settings are capped well below overflow, but a deadline is never worth a panic.
    let deadline = Instant::now()
        .checked_add(cfg.connect_timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
    let mut delay = Duration::from_millis(250);
    loop {
        match store::connect(cfg).await {
            Ok(db) => return Ok(db),
            Err(ConnectError::Open { target, source })
                if cfg.url.is_postgres()
                    && store::is_connection_error(&source)
                    && Instant::now() + delay < deadline =>
            {
                tracing::warn!(database = %target, error = %source, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Routes that fail on purpose, for tests of panic containment and error reporting. Compiled
/// only with the `fault-injection` feature; release builds do not have them.
#[cfg(feature = "fault-injection")]
fn fault_injection_routes() -> Router {
    Router::new().route(
        "/__fault/panic",
        get(|| async {
            panic!("fault injection: a handler panicked");
            #[allow(unreachable_code)]
            ""
        }),
    )
}

#[cfg(not(feature = "fault-injection"))]
fn fault_injection_routes() -> Router {
    Router::new()
}

/// A name for this process in job records: host and pid.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Starts the scheduler, the content and replica watchers and the outbox worker; returns the
/// worker's handle.
async fn spawn_background(app: &App, site: &Site, stop: &CancellationToken) -> JoinHandle<()> {
    if let Ok(Some(at)) = with_conn!(app.store.primary(), conn => {
        crate::jobs::last_success(conn, crate::jobs::BACKUP).await
    }) {
        metrics::backup_succeeded(at);
    }
    let instance = instance_name();
    let mut scheduler = Scheduler::new(app.store.primary().clone(), instance.clone());
    crate::ops::scheduled::register(&mut scheduler, app, &instance);
    crate::admin::cms::scheduled::register(&mut scheduler, app);
    if !scheduler.is_empty() {
        scheduler.spawn(stop.clone());
    }
    // Content and host changes made anywhere retire this process's caches (pushed; polled
    // only while the push channel is down).
    app.store
        .notices()
        .listen(app.store.primary(), stop.clone());
    tokio::spawn(site::invalidation::follow(site.clone(), stop.clone()));
    if let Some(set) = app.store.replicas() {
        tokio::spawn(set.clone().monitor(REPLICA_PROBE, stop.clone()));
    }
    // Every replica makes media variants; the lease on each row keeps them from doubling up.
    crate::media::variants::spawn(
        app.store.primary().clone(),
        app.media.clone(),
        crate::media::limits(&app.config),
        stop.clone(),
    );
    // Every replica delivers the outbox; the lease on each row keeps them from doubling up.
    crate::outbox::Worker::new(app.store.primary().clone(), &app.config, &instance)
        .spawn(stop.clone())
}

impl RunningServer {
    /// Drains and stops. Returns whether every in-flight request finished within the drain
    /// timeout.
    pub async fn shutdown(self) -> bool {
        self.lifecycle.set(Phase::Draining);
        if !self.shutdown_delay.is_zero() {
            // A lame duck: readiness already fails, so load balancers stop sending new
            // requests; connections are still accepted until they have.
            tracing::info!(
                delay_ms = self.shutdown_delay.as_millis() as u64,
                "draining: readiness is failing; serving on until the delay ends"
            );
            tokio::time::sleep(self.shutdown_delay).await;
        }
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        let mut serve = self.serve;
        let drained = match tokio::time::timeout_at(deadline, &mut serve).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "server task failed");
                false
            }
            Err(_) => {
                tracing::warn!(
                    timeout_s = self.drain_timeout.as_secs(),
                    "drain timeout reached; abandoning in-flight requests"
                );
                // Dropping the accept loop closes every connection still open.
                serve.abort();
                false
            }
        };
        // The worker stops claiming at once, but finishes the deliveries it has started and
        // records their outcome before the pool closes; otherwise a message that was sent
        // would stay leased and be sent again (same Message-ID) once its lease ran out.
        let mut outbox = self.outbox;
        if tokio::time::timeout_at(deadline, &mut outbox)
            .await
            .is_err()
        {
            tracing::warn!(
                "drain timeout reached with outbox deliveries in flight; they are retried when their lease ends"
            );
            outbox.abort();
        }
        self.app.store.close().await;
        tracing::info!(drained, "stopped");
        drained
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called,
/// not when the future is first polled: a signal that arrives in between is kept.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).expect("installing a SIGTERM handler succeeds on Unix");
        let mut interrupt =
            signal(SignalKind::interrupt()).expect("installing a SIGINT handler succeeds on Unix");
        async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(signal = "ctrl-c", "shutting down");
        }
    }
}

/// `vantus serve`: start, wait for a signal, drain, stop. One signal listener, installed
/// before anything starts, serves the whole run: a SIGTERM sent just as the server became
/// ready (between two listeners) was lost, and the process kept running.
pub async fn run(config: Config) -> Result<(), StartError> {
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let server = tokio::select! {
        s = start(config) => s?,
        _ = &mut signal => return Err(StartError::Interrupted),
    };
    signal.await;
    server.shutdown().await;
    Ok(())
}
