//! The rate limiter against a real Redis (a `redis-server` this test starts on its own port):
//! limits shared by two limiters (two replicas), still enforced when Redis dies mid-test, shared
//! again when it returns, scripts reloaded after `SCRIPT FLUSH`; and the HTTP layer, whose
//! client key a spoofed `X-Forwarded-For` from an untrusted peer cannot change.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::redis::RedisServer;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use vantus::http::client_ip::TrustedProxies;
use vantus::http::rate_limit::{
    self, Backend, Decision, LimiterOptions, Quota, RateLimiter, RouteLimit,
};

fn options() -> LimiterOptions {
    LimiterOptions {
        redis_timeout: Duration::from_millis(200),
        retry_redis_after: Duration::from_millis(300),
        max_local_keys: 1000,
    }
}

const MINUTE: Duration = Duration::from_secs(60);

async fn allowed(limiter: &RateLimiter, client: &str, quota: Quota, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if limiter.check("forms", client, quota).await == Decision::Allow {
            ok += 1;
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_allowance_through_redis() {
    let redis = RedisServer::start();
    let a = RateLimiter::new(Some(&redis.url()), options()).unwrap();
    let b = RateLimiter::new(Some(&redis.url()), options()).unwrap();
    let quota = Quota::new(4, MINUTE);
    assert_eq!(allowed(&a, "198.51.100.1", quota, 2).await, 2);
    assert_eq!(allowed(&b, "198.51.100.1", quota, 2).await, 2);
    // The allowance is spent on both replicas together.
    assert_eq!(allowed(&a, "198.51.100.1", quota, 1).await, 0);
    assert_eq!(allowed(&b, "198.51.100.1", quota, 1).await, 0);
    assert_eq!(a.backend(), Backend::Shared);
    // Another client is unaffected.
    assert_eq!(allowed(&b, "198.51.100.2", quota, 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_when_redis_dies_and_are_shared_again_when_it_returns() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let limiter = RateLimiter::new(Some(&redis.url()), options()).unwrap();
    let quota = Quota::new(3, MINUTE);
    assert_eq!(allowed(&limiter, "203.0.113.5", quota, 1).await, 1);
    assert_eq!(limiter.backend(), Backend::Shared);

    redis.stop();
    // Over the limit without Redis: still limited (3 allowed locally, then 429s), never open.
    let started = Instant::now();
    assert_eq!(allowed(&limiter, "203.0.113.5", quota, 10).await, 3);
    assert_eq!(limiter.backend(), Backend::Fallback);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead Redis slows requests by {:?}",
        started.elapsed()
    );

    let _redis = RedisServer::start_on(port);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A fresh Redis has no state for this client: its allowance starts over, shared again.
    assert_eq!(allowed(&limiter, "203.0.113.5", quota, 1).await, 1);
    assert_eq!(limiter.backend(), Backend::Shared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_is_reloaded_after_a_script_flush() {
    let redis = RedisServer::start();
    let limiter = RateLimiter::new(Some(&redis.url()), options()).unwrap();
    let quota = Quota::new(2, MINUTE);
    assert_eq!(allowed(&limiter, "192.0.2.9", quota, 1).await, 1);
    let flushed = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SCRIPT", "FLUSH"])
        .output()
        .unwrap();
    assert!(flushed.status.success());
    assert_eq!(allowed(&limiter, "192.0.2.9", quota, 2).await, 1);
    assert_eq!(limiter.backend(), Backend::Shared, "NOSCRIPT was handled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_limit_is_per_process_and_bounded() {
    let limiter = RateLimiter::new(None, options()).unwrap();
    assert_eq!(limiter.backend(), Backend::Local);
    let quota = Quota::new(2, MINUTE);
    let mut total = 0;
    for i in 0..5000 {
        total += allowed(&limiter, &format!("10.9.{}.{}", i / 250, i % 250), quota, 1).await;
    }
    assert!(
        limiter.local_keys() <= 1000,
        "{} keys",
        limiter.local_keys()
    );
    assert!(
        total <= 1000 * 2,
        "{total} requests let through by 5000 addresses"
    );
}

/// Serves one rate-limited route on a real listener, through `http::serve`.
async fn limited_server(
    limiter: RateLimiter,
    trusted: &[&str],
) -> (SocketAddr, tokio_util::sync::CancellationToken) {
    let rule = RouteLimit {
        limiter,
        class: "forms",
        quota: Quota::new(2, MINUTE),
        trusted: TrustedProxies(
            trusted
                .iter()
                .map(|c| vantus::config::Cidr::parse(c).unwrap())
                .collect(),
        ),
    };
    let router = Router::new()
        .route("/submit", post(|| async { "thanks" }))
        .route_layer(from_fn_with_state(rule, rate_limit::limit));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let limits = vantus::http::serve::ConnectionLimits {
        header_read_timeout: Duration::from_secs(5),
        keep_alive_timeout: Duration::from_secs(5),
        max_connections: 64,
    };
    let security = vantus::http::security_headers::SecurityHeaders::new(false);
    let serve_stop = stop.clone();
    tokio::spawn(async move {
        vantus::http::serve::serve(listener, router, limits, &security, serve_stop).await;
    });
    (addr, stop)
}

/// Posts four times, the i-th with `X-Forwarded-For: forwarded(i)`; returns the statuses and
/// checks every 429's `Retry-After`.
async fn statuses(addr: SocketAddr, forwarded: impl Fn(usize) -> String) -> Vec<u16> {
    let client = crate::support::client();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let res = client
            .post(format!("http://{addr}/submit"))
            .header("x-forwarded-for", forwarded(i))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(res.status().as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_client() {
    let limiter = RateLimiter::new(None, options()).unwrap();
    // Loopback is not a trusted proxy here, so X-Forwarded-For is ignored.
    let (addr, stop) = limited_server(limiter, &["10.0.0.0/8"]).await;
    let got = statuses(addr, |i| format!("198.51.100.{i}")).await;
    assert_eq!(got, [200, 200, 429, 429]);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let limiter = RateLimiter::new(None, options()).unwrap();
    let (addr, stop) = limited_server(limiter, &["127.0.0.0/8"]).await;
    let got = statuses(addr, |i| format!("198.51.100.{}", i % 2)).await;
    assert_eq!(got, [200, 200, 200, 200]);
    stop.cancel();
}

/// The whole server: two Vantus instances on one Redis share the API's allowance; the form's
/// 429 is an HTML page for a browser and the API's is JSON; with Redis stopped mid-test,
/// requests over the limit still get 429, and `/readyz` warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_the_limit_and_keep_limiting_without_redis() {
    use crate::support::{Engine, ResponseExt, TestApp};
    let mut redis = RedisServer::start();
    let env = |url: String| {
        move |env: &mut std::collections::HashMap<String, String>| {
            env.insert("REDIS_URL".into(), url);
            env.insert("VANTUS_RATE_LIMIT_API".into(), "3/1m".into());
            env.insert("VANTUS_RATE_LIMIT_FORMS".into(), "1/1m".into());
        }
    };
    let a = TestApp::spawn_with(Engine::Sqlite, env(redis.url())).await;
    let b = TestApp::spawn_with(Engine::Sqlite, env(redis.url())).await;
    let lead = serde_json::json!({
        "name": "Ada", "email": "ada@example.com",
        "message": "Limits shared by every replica.", "consent": true
    });
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing: one client.
    let post = |app: &TestApp, i: usize| {
        app.post_json("/api/leads", &lead)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
    };
    assert_eq!(post(&a, 1).await.status(), 202);
    assert_eq!(post(&a, 2).await.status(), 202);
    assert_eq!(post(&b, 3).await.status(), 202);
    let over = post(&b, 4).await.assert_status(429);
    assert!(over.headers().contains_key("retry-after"));
    let body = over.json_value().await;
    assert_eq!(body["error"]["status"], 429, "{body}");
    assert_eq!(post(&a, 5).await.status(), 429, "the allowance is shared");

    // The form class has its own allowance; over it, a browser gets the HTML error page.
    let form = [("name", "Ada")];
    assert_eq!(
        a.post_form("/contact", &form)
            .header("accept", "text/html")
            .await
            .status(),
        422
    );
    let page = a
        .post_form("/contact", &form)
        .header("accept", "text/html")
        .await
        .assert_status(429)
        .html()
        .await;
    assert!(page.contains("Too many requests"), "{page}");

    let ready = a.get("/readyz").await.json_value().await;
    let check = |r: &serde_json::Value| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "rate_limiter")
            .cloned()
            .unwrap()
    };
    assert_eq!(check(&ready)["status"], "pass", "{ready}");

    redis.stop();
    // Without Redis each server limits on its own (a fresh local allowance of 3), never open.
    let mut passed = 0;
    for i in 0..8 {
        if post(&a, 10 + i).await.status() == 202 {
            passed += 1;
        }
    }
    assert!(passed <= 3, "{passed} of 8 requests passed with Redis down");
    let ready = a.get("/readyz").await.json_value().await;
    assert_eq!(check(&ready)["status"], "warn", "{ready}");
    assert_eq!(
        ready["status"], "warn",
        "a limiter on its fallback does not fail readiness"
    );
}
