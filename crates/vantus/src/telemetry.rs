//! Logging: one JSON object per line (or human-readable text), filtered by `RUST_LOG`.
//!
//! Lines are written by a background thread so a slow stdout (a full pipe to a log shipper)
//! does not stall request handling; the buffer is not lossy, so under extreme pressure
//! requests wait rather than logs vanish. Keep the returned guard alive until exit: dropping it
//! flushes what is buffered.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Where log lines go: the server logs to stdout; other commands keep stdout for their output.
#[derive(Clone, Copy, Debug)]
pub enum LogTarget {
    Stdout,
    Stderr,
}

#[must_use = "dropping the guard stops log output"]
pub struct TelemetryGuard {
    _flush: WorkerGuard,
}

/// Installs the global subscriber. Safe to call more than once (tests): later calls are no-ops.
pub fn init(log: &LogConfig, target: LogTarget) -> TelemetryGuard {
    let filter = EnvFilter::builder().parse_lossy(&log.filter);
    let builder = NonBlockingBuilder::default().lossy(false);
    let (writer, guard) = match target {
        LogTarget::Stdout => builder.finish(std::io::stdout()),
        LogTarget::Stderr => builder.finish(std::io::stderr()),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match log.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(matches!(target, LogTarget::Stderr))
                    .with_writer(writer),
            )
            .try_init(),
    };
    drop(result);
    TelemetryGuard { _flush: guard }
}
