//! The harness checks itself: waits time out naming what they waited for, servers stop when
//! dropped (even by a panic), verbs send what they say, response checks fail with the URL.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;

use crate::both_engines;
use crate::support::app::request_verbs;
use crate::support::{
    Engine, ResponseExt, ServeProcess, TestApp, TestDb, base_env, client, eventually,
};

/// The panic message of a task that panicked.
async fn panic_message(task: tokio::task::JoinHandle<()>) -> String {
    let payload = task
        .await
        .expect_err("the task panics")
        .try_into_panic()
        .expect("a panic, not a cancellation");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn accepts_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventually_returns_the_first_ready_value() {
    let mut calls = 0;
    let got = eventually(Duration::from_secs(5), "the third call", async || {
        calls += 1;
        (calls == 3).then_some(calls * 10)
    })
    .await;
    assert_eq!(got, 30);
    assert_eq!(calls, 3, "no call after the first ready one");

    let got: &str = eventually(Duration::from_secs(5), "an Ok", async || {
        Ok::<_, String>("fine")
    })
    .await;
    assert_eq!(got, "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventually_times_out_naming_what_it_waited_for() {
    let started = Instant::now();
    let task = tokio::spawn(async {
        eventually(
            Duration::from_millis(300),
            "the moon to turn blue",
            async || Err::<(), _>("it is grey"),
        )
        .await;
    });
    let message = panic_message(task).await;
    assert!(
        message.contains("the moon to turn blue"),
        "names what: {message}"
    );
    assert!(
        message.contains("it is grey"),
        "says what it saw: {message}"
    );
    assert!(message.contains("300ms"), "says how long: {message}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_assertion_inside_a_wait_fails_at_once() {
    let started = Instant::now();
    let task = tokio::spawn(async {
        eventually(Duration::from_secs(30), "never", async || -> bool {
            panic!("the process died while waiting")
        })
        .await;
    });
    assert!(panic_message(task).await.contains("the process died"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A `TestApp` that goes out of scope without `stop()` closes its port before the drop
/// returns.
async fn a_dropped_test_app_frees_its_port(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let addr = app.server().addr;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(accepts_connections(addr));
    drop(app);
    assert!(
        !accepts_connections(addr),
        "{addr} still accepts connections after the drop"
    );
}

both_engines!(a_dropped_test_app_frees_its_port);

/// A test that panics drops its `TestApp` while unwinding; that stops the server too, and the
/// panic stays a test failure (no abort from a panic inside the drop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_app_dropped_by_a_panic_frees_its_port() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let app = TestApp::spawn(Engine::Sqlite).await;
        tx.send(app.server().addr).unwrap();
        panic!("a failing test");
    });
    assert!(panic_message(task).await.contains("a failing test"));
    let addr = rx.await.unwrap();
    assert!(
        !accepts_connections(addr),
        "{addr} still accepts connections after the panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_serve_process_is_gone() {
    let db = TestDb::create(Engine::Sqlite).await;
    let p = ServeProcess::start(&base_env(&db)).await;
    assert_eq!(p.get("/readyz").await.status(), 200);
    let addr: SocketAddr = p.addr.parse().unwrap();
    let pid = p.child.id();
    drop(p);
    assert!(!accepts_connections(addr));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|s| s.contains("State:\tZ")),
        "vantus serve ({pid}) outlived its ServeProcess"
    );
}

/// A real HTTP server that answers with what it received, and one redirect.
struct Echo {
    addr: SocketAddr,
    client: reqwest::Client,
}

request_verbs!(Echo);

impl Echo {
    async fn start() -> Self {
        async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let marker = headers
                .get("x-marker")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            axum::Json(serde_json::json!({
                "method": method.as_str(),
                "content_type": content_type,
                "marker": marker,
                "body": String::from_utf8_lossy(&body),
            }))
        }
        let app = Router::new()
            .route(
                "/moved",
                axum::routing::get(|| async {
                    (StatusCode::SEE_OTHER, [(header::LOCATION, "/elsewhere")])
                }),
            )
            .route(
                "/page",
                axum::routing::get(|| async { axum::response::Html("<title>x</title>") }),
            )
            .fallback(echo);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            client: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_send_their_method_headers_and_body() {
    let echo = Echo::start().await;
    let got = echo
        .post_form("/f", &[("name", "Ada Lovelace"), ("note", "a&b=c")])
        .await
        .assert_status(200)
        .json_value()
        .await;
    assert_eq!(got["method"], "POST");
    assert_eq!(got["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(got["body"], "name=Ada+Lovelace&note=a%26b%3Dc");

    let got = echo
        .post_json("/j", &serde_json::json!({"n": 1}))
        .await
        .json_value()
        .await;
    assert_eq!(got["method"], "POST");
    assert_eq!(got["content_type"], "application/json");
    assert_eq!(got["body"], r#"{"n":1}"#);

    for (request, method) in [
        (echo.put("/p").body("x"), "PUT"),
        (echo.delete("/d"), "DELETE"),
        (echo.get("/g"), "GET"),
    ] {
        let got = request.header("x-marker", "m").await.json_value().await;
        assert_eq!(got["method"], method);
        assert_eq!(got["marker"], "m");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_checks_pass_and_fail_with_the_url() {
    let echo = Echo::start().await;
    echo.get("/moved").await.assert_redirect_to("/elsewhere");
    assert_eq!(echo.get("/page").await.html().await, "<title>x</title>");

    let moved = echo.get("/moved").await;
    let url = moved.url().to_string();
    let task = tokio::spawn(async move {
        moved.assert_status(200);
    });
    let message = panic_message(task).await;
    assert!(
        message.contains(&url) && message.contains("303"),
        "{message}"
    );

    let json = echo.get("/g").await;
    let task = tokio::spawn(async move {
        json.html().await;
    });
    assert!(panic_message(task).await.contains("not HTML"));

    let task = tokio::spawn(async move {
        // Nothing listens on port 9 (discard) here.
        crate::support::get_url("http://127.0.0.1:9/").await;
    });
    assert!(panic_message(task).await.contains("was not answered"));
}

/// The verbs reach the real server with their method: it refuses what it does not route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_answers_each_verb() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.get("/").await.assert_status(200).html().await;
    app.head("/").await.assert_status(200);
    // The contact form takes posts: a form without its fields is re-rendered with errors.
    app.post_form("/contact", &[("a", "b")])
        .await
        .assert_status(422);
    app.post_form("/about", &[("a", "b")])
        .await
        .assert_status(405);
    let body = app
        .post_json("/work", &serde_json::json!({}))
        .await
        .assert_status(405)
        .json_value()
        .await;
    assert_eq!(body["error"]["status"], 405);
    app.put("/work").await.assert_status(405);
    app.delete("/work").await.assert_status(405);
}
