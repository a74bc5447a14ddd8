//! Metrics, traces and error reports leave the process, to real receivers started by the tests.

use std::time::Duration;

use crate::support::sinks::Sink;
use crate::support::{Engine, ServeProcess, TestApp, TestDb, base_env, get_url};

const TOKEN: &str = "metrics-token-0123456789abcdef";

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_behind_a_token() {
    let app = TestApp::spawn_with(Engine::Sqlite, |env| {
        env.insert("VANTUS_METRICS_TOKEN".into(), TOKEN.into());
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let wrong = app
        .get("/metrics")
        .bearer_auth("not-the-token-at-all")
        .await;
    assert_eq!(wrong.status(), 401);
    let scrape = || async {
        let res = app.get("/metrics").bearer_auth(TOKEN).await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    };
    let series = "vantus_http_requests_total{route=\"/work/{slug}\",method=\"GET\",status=\"200\"}";
    let before = sample(&scrape().await, series);
    for _ in 0..3 {
        assert_eq!(app.get("/work/shopify-erp-sync").await.status(), 200);
    }
    app.get("/no-such-page").await;
    let text = scrape().await;
    assert_eq!(sample(&text, series) - before, 3.0, "{text}");
    assert!(
        sample(
            &text,
            "vantus_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ) >= 1.0
    );
    assert!(text.contains("vantus_http_request_duration_seconds_bucket{route=\"/work/{slug}\",method=\"GET\",le=\"0.005\"}"));
    assert!(text.contains("vantus_db_pool_connections{pool=\"primary\",state=\"idle\"}"));
    assert!(text.contains("vantus_build_info{version=\""));
}

/// With VANTUS_METRICS_LISTEN the exposition is on its own port and not on the public one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_a_separate_listener() {
    let db = TestDb::create(Engine::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = base_env(&db);
    env.insert("VANTUS_METRICS_LISTEN".into(), format!("127.0.0.1:{port}"));
    let p = ServeProcess::start(&env).await;
    p.get("/").await;
    let text = get_url(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("vantus_http_requests_total{route=\"/\",method=\"GET\",status=\"200\"}"),
        "{text}"
    );
    assert_eq!(p.get("/metrics").await.status(), 404);
}

/// Spans and log records reach an OTLP/HTTP receiver, and each request's log line carries its
/// trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp() {
    let collector = Sink::start().await;
    let db = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&db);
    env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        format!("http://{}", collector.addr),
    );
    env.insert("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into());
    let mut p = ServeProcess::start(&env).await;
    let res = p
        .get("/services")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .await;
    assert_eq!(res.status(), 200);
    // The caller's trace continues: the exported request span carries the caller's trace id.
    let trace_id = hex::decode("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let got = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.path == "/v1/traces" && r.body.windows(16).any(|w| w == trace_id.as_slice())
        })
        .await
        .expect("the collector received the request's span, in the caller's trace");
    assert!(
        got.body.windows(7).any(|w| w == b"request"),
        "the request span is in the export"
    );
    p.terminate();
    assert_eq!(p.wait_exit(Duration::from_secs(20)).await, Some(0));
    let line = p
        .log_lines()
        .into_iter()
        .find(|l| l.contains("\"path\":\"/services\"") && l.contains("\"message\":\"request\""))
        .expect("access log line");
    assert!(
        line.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "{line}"
    );
}

/// A handler panic becomes a 500 page, an event at the Sentry endpoint (without personal data),
/// and the process keeps serving.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_reported_to_sentry_and_the_server_survives() {
    let sentry = Sink::start().await;
    let db = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&db);
    env.insert(
        "SENTRY_DSN".into(),
        format!("http://publickey@{}/7", sentry.addr),
    );
    let p = ServeProcess::start(&env).await;
    let res = p
        .get("/__fault/panic?email=someone@example.com")
        .header("accept", "text/html")
        .header("cookie", "session=secret-cookie-value")
        .await;
    assert_eq!(res.status(), 500);
    assert!(res.text().await.unwrap().contains("Something went wrong"));
    let event = sentry
        .wait_for(Duration::from_secs(20), |r| {
            r.path == "/api/7/envelope/"
                && String::from_utf8_lossy(&r.body).contains("fault injection")
        })
        .await
        .expect("Sentry received the panic");
    let body = String::from_utf8_lossy(&event.body);
    assert!(
        body.contains("request_id"),
        "tagged with the request id: {body}"
    );
    assert!(
        !body.contains("someone@example.com") && !body.contains("secret-cookie-value"),
        "no personal data: {body}"
    );
    assert_eq!(p.get("/").await.status(), 200, "still serving");
}
