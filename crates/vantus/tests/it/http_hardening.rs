//! Regression tests for the HTTP findings of the security review: bounded metric labels,
//! connections that time out and cannot hold a shutdown, a connection cap, no internal names
//! on `/readyz`, no overflow in page numbers, security headers on hyper's own error responses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::both_engines;
use crate::support::*;

const TOKEN: &str = "metrics-token-0123456789abcdef";

fn addr_of(app: &TestApp) -> SocketAddr {
    app.server().addr
}

/// Sends `raw` on a fresh connection and returns everything the server writes before it
/// closes (or `wait` passes).
fn exchange(addr: SocketAddr, raw: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// How long until the server closes a connection that sent `raw` (None: still open after
/// `limit`).
fn time_until_closed(addr: SocketAddr, raw: &[u8], limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(raw).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

async fn metrics_body(app: &TestApp) -> String {
    app.get("/metrics")
        .bearer_auth(TOKEN)
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_create_metric_series() {
    let app = TestApp::spawn_with(Engine::Sqlite, |env| {
        env.insert("VANTUS_METRICS_TOKEN".into(), TOKEN.into());
    })
    .await;
    let addr = addr_of(&app);
    // Once with a made-up method, so every series a new method could touch exists.
    let first = "X".repeat(2000);
    let send = |method: String| {
        tokio::task::spawn_blocking(move || {
            exchange(
                addr,
                format!("{method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
                Duration::from_secs(5),
            )
        })
    };
    let reply = send(first).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 "), "{reply:.80}");
    let before = metrics_body(&app).await;
    for i in 0..50 {
        send(format!("M{i}{}", "Y".repeat(5000))).await.unwrap();
    }
    let after = metrics_body(&app).await;
    assert!(
        !after.contains("YYYY") && !after.contains("XXXX"),
        "a made-up method became a label"
    );
    // Every method label is one of a fixed set...
    for label in after.split("method=\"").skip(1) {
        let method = label.split('"').next().unwrap_or("");
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"
            ]
            .contains(&method),
            "method label {method:.40}"
        );
    }
    // ...and fifty more made-up methods only moved counters: the OTHER series are the same
    // lines, no longer.
    let other = |body: &str| {
        body.lines()
            .filter(|l| l.contains(r#"method="OTHER""#))
            .map(|l| {
                l.rsplit_once(' ')
                    .map(|(series, _)| series.to_owned())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
    };
    assert!(!other(&after).is_empty(), "{after}");
    assert_eq!(other(&before), other(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_and_idle_connections_are_closed() {
    let app = TestApp::spawn_with(Engine::Sqlite, |env| {
        env.insert("VANTUS_HEADER_READ_TIMEOUT".into(), "1s".into());
        env.insert("VANTUS_KEEP_ALIVE_TIMEOUT".into(), "1s".into());
    })
    .await;
    let addr = addr_of(&app);
    let closed = tokio::task::spawn_blocking(move || {
        let half = time_until_closed(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            Duration::from_secs(10),
        );
        let silent = time_until_closed(addr, b"", Duration::from_secs(10));
        // A keep-alive connection that finished a request, then went quiet.
        let after_request = time_until_closed(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(10),
        );
        (half, silent, after_request)
    })
    .await
    .unwrap();
    for (what, took) in [
        ("half a header", closed.0),
        ("a silent connection", closed.1),
        ("an idle keep-alive connection", closed.2),
    ] {
        let took = took.unwrap_or_else(|| panic!("{what} was still open after 10 s"));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{what} closed after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_does_not_hold_sigterm() {
    let db = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&db);
    // The default header timeout (10 s) and a long drain: only closing the stalled connection
    // at once lets the process exit promptly.
    env.insert("VANTUS_DRAIN_TIMEOUT".into(), "30s".into());
    let mut serve = ServeProcess::start(&env).await;
    let addr: SocketAddr = serve.addr.parse().unwrap();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Sl")
        .unwrap();
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    serve.terminate();
    let code = serve.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "serve exits 0 after SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        started.elapsed()
    );
    drop((stalled, idle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = TestApp::spawn_with(Engine::Sqlite, |env| {
        env.insert("VANTUS_MAX_CONNECTIONS".into(), "2".into());
        env.insert("VANTUS_KEEP_ALIVE_TIMEOUT".into(), "30s".into());
        env.insert("VANTUS_HEADER_READ_TIMEOUT".into(), "30s".into());
    })
    .await;
    let addr = addr_of(&app);
    let (waited, answered) = tokio::task::spawn_blocking(move || {
        // Two connections take both slots and stay open.
        let holders: Vec<TcpStream> = (0..2)
            .map(|_| {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // The third is accepted by the kernel but not served while both are open.
        let mut third = TcpStream::connect(addr).unwrap();
        third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        third
            .set_read_timeout(Some(Duration::from_millis(800)))
            .unwrap();
        let mut buf = [0u8; 64];
        let waited = matches!(third.read(&mut buf), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        // Once a slot frees, it is served.
        drop(holders);
        third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = third.read_to_end(&mut out);
        (waited, String::from_utf8_lossy(&out).into_owned())
    })
    .await
    .unwrap();
    assert!(
        waited,
        "the third connection was served while the cap was reached"
    );
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered:.80}");
}

/// A body still arriving when VANTUS_REQUEST_TIMEOUT strikes is the client's slowness: 408,
/// naming the setting, and the connection is closed (a slow handler stays 504: see
/// `cli::slow_requests_time_out_with_a_clear_error`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_arriving_too_slowly_is_answered_408() {
    let app = TestApp::spawn_with(Engine::Sqlite, |env| {
        env.insert("VANTUS_REQUEST_TIMEOUT".into(), "1s".into());
    })
    .await;
    let addr = addr_of(&app);
    let reply = tokio::task::spawn_blocking(move || {
        // A few bytes of a declared 200-byte body, then silence.
        exchange(
            addr,
            b"POST /api/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\n\r\n{\"name\": \"Slow",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:.300}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply:.600}"
    );
    assert!(reply.contains("VANTUS_REQUEST_TIMEOUT"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypers_own_error_responses_carry_security_headers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let addr = addr_of(&app);
    let replies = tokio::task::spawn_blocking(move || {
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
        let many_headers = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            (0..200)
                .map(|i| format!("x-h{i}: v\r\n"))
                .collect::<String>()
        );
        [
            exchange(addr, b"GARBAGE\r\n\r\n", Duration::from_secs(5)),
            exchange(addr, long_uri.as_bytes(), Duration::from_secs(5)),
            exchange(addr, many_headers.as_bytes(), Duration::from_secs(5)),
        ]
    })
    .await
    .unwrap();
    for (reply, status) in replies.iter().zip(["400", "414", "431"]) {
        let head = reply
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("http/1.1 {status}")),
            "expected {status}: {head}"
        );
        for h in [
            "x-content-type-options: nosniff",
            "content-security-policy:",
            "x-frame-options: deny",
            "referrer-policy:",
        ] {
            assert!(head.contains(h), "{status} lacks {h}: {head}");
        }
    }
    // A normal request on the same server still works and has each header once.
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get_all("x-content-type-options")
            .iter()
            .count(),
        1
    );
}

async fn huge_page_numbers_are_not_found(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for page in ["9223372036854775807", "922337203685477580", "2"] {
        let res = app.get(&format!("/insights?page={page}")).await;
        assert_eq!(res.status(), 404, "page {page}");
    }
    let res = app.get("/insights?page=99999999999999999999").await;
    assert_eq!(
        res.status(),
        400,
        "a number that does not fit is the client's mistake"
    );
}

async fn readyz_names_replicas_by_index(engine: Engine) {
    if engine == Engine::Sqlite {
        return; // Replicas are PostgreSQL only.
    }
    // The primary itself, named as a replica: its URL carries a user and a database name.
    let db = TestDb::create(engine).await;
    let replica_url = db.url.clone();
    let app = TestApp::spawn_on(db, |env| {
        env.insert("DATABASE_REPLICA_URLS".into(), replica_url.clone());
    })
    .await;
    let body = app.get("/readyz").await.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = url::Url::parse(&replica_url).unwrap();
    let database = url.path().trim_start_matches('/');
    let host_port = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    for secret in [database, host_port.as_str(), "@", "postgres://"] {
        assert!(!body.contains(secret), "/readyz shows {secret:?}: {body}");
    }
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["replicas"].as_array())
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["replica0"], "{body}");
}

both_engines!(
    huge_page_numbers_are_not_found,
    readyz_names_replicas_by_index
);

#[test]
fn a_metrics_listener_that_cannot_bind_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let env = std::collections::HashMap::from([
        ("VANTUS_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "VANTUS_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        (
            "VANTUS_METRICS_LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
    ]);
    let out = run_binary(&["serve"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("VANTUS_METRICS_LISTEN"), "{err}");
    assert!(!err.contains("VANTUS_LISTEN)"), "{err}");
}
