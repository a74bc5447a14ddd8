//! Metrics, traces, error reporting and logs.

use std::net::SocketAddr;

use secrecy::SecretString;
use url::Url;

use super::parse_socket_addr;
use super::source::Source;

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<SecretString>,
    pub otlp_endpoint: Option<Url>,
    pub service_name: String,
    pub sentry_dsn: Option<SecretString>,
    pub log_shipping: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub filter: String,
    pub format: LogFormat,
}

impl TelemetryConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        Self {
            metrics_listen: src.optional("VANTUS_METRICS_LISTEN", |raw| {
                parse_socket_addr(raw, "0.0.0.0:9090")
            }),
            metrics_token: src.optional("VANTUS_METRICS_TOKEN", |token| {
                if token.len() < 16 {
                    return Err("is too short (at least 16 characters)".into());
                }
                Ok(SecretString::from(token.to_owned()))
            }),
            otlp_endpoint: src.optional("OTEL_EXPORTER_OTLP_ENDPOINT", |raw| {
                Url::parse(raw.trim()).map_err(|e| format!("\"{raw}\" is not a URL ({e})"))
            }),
            service_name: src.or_default("OTEL_SERVICE_NAME", |raw| Ok(raw.to_owned())),
            sentry_dsn: src.optional("SENTRY_DSN", |dsn| {
                if dsn.parse::<sentry::types::Dsn>().is_err() {
                    return Err("is not a Sentry DSN (https://<key>@<host>/<project>)".into());
                }
                Ok(SecretString::from(dsn.to_owned()))
            }),
            log_shipping: src.raw("VANTUS_LOG_SHIPPING"),
        }
    }
}

impl LogConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        Self {
            filter: src.or_default("RUST_LOG", |filter| {
                match tracing_subscriber::EnvFilter::builder().parse(filter) {
                    Ok(_) => Ok(filter.to_owned()),
                    Err(e) => Err(format!("\"{filter}\" is not a log filter ({e})")),
                }
            }),
            format: src.choice(
                "VANTUS_LOG_FORMAT",
                &[
                    ("json", LogFormat::Json),
                    ("pretty", LogFormat::Pretty),
                    ("text", LogFormat::Pretty),
                ],
                "a log format",
                "json or pretty",
            ),
        }
    }
}
