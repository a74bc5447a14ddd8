//! Logs, traces, metrics and error reporting.
//!
//! * Logs: one JSON object per line (or human-readable text), filtered by `RUST_LOG`, written
//!   by a background thread so a slow stdout (a full pipe to a log shipper) does not stall
//!   request handling; the buffer is not lossy, so under extreme pressure requests wait rather
//!   than logs vanish.
//! * Traces and logs: exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, so
//!   they leave the host without a log shipper; each request's trace id also appears in its
//!   log lines (`trace_id`), and an incoming `traceparent` is continued.
//! * Errors: error-level events and panics go to Sentry when `SENTRY_DSN` is set, tagged with
//!   the request id, method and route, and never with personal data.
//! * Metrics: see [`metrics`].
//! * Log lines are written in batches by one thread: see [`log_writer`].
//!
//! Keep the returned guard alive until exit: dropping it flushes logs and traces.

pub mod log_writer;
pub mod metrics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Environment, LogConfig, LogFormat, TelemetryConfig};

/// Where log lines go: the server logs to stdout; other commands keep stdout for their output.
#[derive(Clone, Copy, Debug)]
pub enum LogTarget {
    Stdout,
    Stderr,
}

#[must_use = "dropping the guard stops log output"]
pub struct TelemetryGuard {
    _flush: Option<log_writer::BatchWriterGuard>,
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    logger: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    _sentry: Option<sentry::ClientInitGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            let _ = provider.shutdown();
        }
        if let Some(provider) = self.logger.take() {
            let _ = provider.shutdown();
        }
    }
}

static TRACES: AtomicBool = AtomicBool::new(false);
static ERRORS: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (the request path skips trace bookkeeping otherwise).
pub fn traces_enabled() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// Whether errors are reported to Sentry.
pub fn errors_enabled() -> bool {
    ERRORS.load(Ordering::Relaxed)
}

/// Uses ring for every TLS client in the process (database, S3, OTLP, Sentry): one crypto
/// provider in the build, chosen here once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Installs the global subscriber. Safe to call more than once (tests): later calls are no-ops.
pub fn init(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    env: Environment,
    target: LogTarget,
) -> TelemetryGuard {
    install_crypto_provider();
    let filter = EnvFilter::builder().parse_lossy(&log.filter);
    let (writer, guard) = log_writer::for_target(target);

    // OTLP/HTTP signal URLs under the collector's base URL, and who is sending.
    let signal_url = |signal: &str| {
        telemetry
            .otlp_endpoint
            .as_ref()
            .map(|base| format!("{}/v1/{signal}", base.as_str().trim_end_matches('/')))
    };
    let resource = || {
        opentelemetry_sdk::Resource::builder()
            .with_service_name(telemetry.service_name.clone())
            .build()
    };
    let tracer =
        signal_url("traces").and_then(|endpoint| match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(exporter) => Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource())
                    .build(),
            ),
            Err(e) => {
                eprintln!("vantus: OTLP exporter disabled: {e}");
                None
            }
        });
    let logger = signal_url("logs").and_then(|endpoint| {
        match opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(exporter) => Some(
                opentelemetry_sdk::logs::SdkLoggerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource())
                    .build(),
            ),
            Err(e) => {
                eprintln!("vantus: OTLP log exporter disabled: {e}");
                None
            }
        }
    });
    // The exporters' own HTTP clients log through tracing too; never feed those back into the
    // export (it would loop).
    let log_export_layer = logger.as_ref().map(|p| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(p).with_filter(
            tracing_subscriber::filter::filter_fn(|m| {
                let t = m.target();
                !(t.starts_with("opentelemetry")
                    || t.starts_with("reqwest")
                    || t.starts_with("hyper"))
            }),
        )
    });
    if tracer.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    let otel_layer = tracer
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("vantus")));

    let sentry_guard = telemetry.sentry_dsn.as_ref().map(|dsn| {
        let mut options = sentry::ClientOptions::new();
        options.dsn = dsn.expose_secret().parse().ok();
        options.release = Some(crate::build::VERSION.into());
        options.environment = Some(env.as_str().into());
        options.send_default_pii = false;
        options.attach_stacktrace = true;
        options.before_send = Some(Arc::new(|mut event| {
            // Belt and braces: nothing that identifies a person leaves the process.
            event.user = None;
            if let Some(req) = event.request.as_mut() {
                req.cookies = None;
                req.headers.clear();
                req.query_string = None;
                req.data = None;
            }
            Some(event)
        }));
        sentry::init(options)
    });
    let sentry_layer = sentry_guard.as_ref().map(|_| {
        sentry::integrations::tracing::ErrorLayer::new()
            .with_filter(tracing_subscriber::filter::LevelFilter::ERROR)
    });

    let fmt_layer = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(matches!(target, LogTarget::Stderr))
            .with_writer(writer)
            .boxed(),
    };
    TRACES.store(tracer.is_some(), Ordering::Relaxed);
    ERRORS.store(sentry_guard.is_some(), Ordering::Relaxed);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(log_export_layer)
        .with(sentry_layer)
        .with(fmt_layer)
        .try_init();
    TelemetryGuard {
        _flush: guard,
        tracer,
        logger,
        _sentry: sentry_guard,
    }
}
