//! Logs leaving the host, error reporting, metrics.

use super::{Doctor, ENV, Finding, Severity};

pub(super) fn check(d: &mut Doctor<'_>) {
    let production = d.production();
    let telemetry = &d.config.telemetry;
    if d.can_run(
        "log-shipping",
        &[ENV, "VANTUS_LOG_SHIPPING", "OTEL_EXPORTER_OTLP_ENDPOINT"],
    ) {
        let finding = match (&telemetry.log_shipping, &telemetry.otlp_endpoint) {
            (Some(p), _) => Finding::ok("log-shipping", format!("logs shipped by {p}")),
            (None, Some(_)) => Finding::ok("log-shipping", "logs and traces exported over OTLP"),
            (None, None) => Finding::new("log-shipping", if production { Severity::High } else { Severity::Medium },
                "no log shipping or OTLP endpoint declared")
                .impact("Logs stay on each host; with several replicas an incident means logging into each box (the audit's fourth finding).")
                .fix("Ship stdout with Vector or Fluent Bit (docs/operations/logging-and-dashboards.md) and set VANTUS_LOG_SHIPPING, or set OTEL_EXPORTER_OTLP_ENDPOINT."),
        };
        d.push(finding);
    }
    if d.can_run("error-reporting", &[ENV, "SENTRY_DSN"]) {
        let finding = if telemetry.sentry_dsn.is_some() {
            Finding::ok("error-reporting", "Sentry configured")
        } else {
            Finding::new(
                "error-reporting",
                if production {
                    Severity::Medium
                } else {
                    Severity::Ok
                },
                "no error reporting (SENTRY_DSN unset)",
            )
            .impact("Crashes and 500s are only in logs; nobody is told.")
            .fix("Set SENTRY_DSN.")
        };
        d.push(finding);
    }
    if d.can_run(
        "metrics",
        &[ENV, "VANTUS_METRICS_LISTEN", "VANTUS_METRICS_TOKEN"],
    ) && production
        && telemetry.metrics_listen.is_none()
        && telemetry.metrics_token.is_none()
    {
        d.push(
            Finding::medium("metrics", "metrics are not exposed")
                .impact("No dashboards or alerts on latency, errors or backups.")
                .fix("Set VANTUS_METRICS_LISTEN=0.0.0.0:9090 (private network) or VANTUS_METRICS_TOKEN."),
        );
    }
}
