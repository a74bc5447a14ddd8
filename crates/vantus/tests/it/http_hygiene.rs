//! HTTP hygiene: compression, validators, cache policy, security headers, request ids, limits
//! and malformed input.

use std::io::{Read, Write};

use crate::both_engines;
use crate::support::{Engine, TestApp};

const SECURITY_HEADERS: &[&str] = &[
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "permissions-policy",
    "cross-origin-opener-policy",
];

fn assert_security_headers(res: &reqwest::Response, what: &str) {
    for h in SECURITY_HEADERS {
        assert!(res.headers().contains_key(*h), "{what}: missing {h}");
    }
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
}

/// Sends the head of a POST announcing a body over the 64 KiB limit and returns the raw
/// response. (Streaming the body itself races the server's early 413 and close.)
async fn oversized_post(addr: std::net::SocketAddr) -> String {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            65 * 1024
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}

async fn responses_are_compressed_with_brotli_and_gzip(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let plain = app.get("/").await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();

    let res = app
        .get("/")
        .header("accept-encoding", "gzip, deflate, br")
        .await;
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(res.headers()["vary"], "accept-encoding");
    let br = res.bytes().await.unwrap();
    assert!(
        br.len() * 3 < plain.len(),
        "brotli shrinks the page ({} vs {})",
        br.len(),
        plain.len()
    );
    let mut decoded = Vec::new();
    brotli::BrotliDecompress(&mut &br[..], &mut decoded).unwrap();
    assert_eq!(decoded, plain);

    let res = app.get("/").header("accept-encoding", "gzip").await;
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let gz = res.bytes().await.unwrap();
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain);

    // Dynamic responses (the readiness JSON, error pages) are compressed by the layer.
    let res = app
        .get("/no-such-page")
        .header("accept", "text/html")
        .header("accept-encoding", "gzip")
        .await;
    assert_eq!(res.headers()["content-encoding"], "gzip");
}

async fn etag_and_304(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for path in ["/", "/work/shopify-erp-sync", "/sitemap.xml"] {
        let first = app.get(path).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong ETag: {etag}"
        );
        let body = first.bytes().await.unwrap();
        let again = app.get(path).await;
        assert_eq!(
            again.headers()["etag"].to_str().unwrap(),
            etag,
            "stable across requests"
        );
        assert_eq!(again.bytes().await.unwrap(), body);

        let res = app.get(path).header("if-none-match", &etag).await;
        assert_eq!(res.status(), 304, "{path}");
        assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
        assert!(res.bytes().await.unwrap().is_empty());

        // A compressed variant's tag validates too (same entity, another encoding).
        let res = app
            .get(path)
            .header("accept-encoding", "br")
            .header("if-none-match", &etag)
            .await;
        assert_eq!(res.status(), 304);

        let res = app
            .get(path)
            .header("if-none-match", "\"something-else\"")
            .await;
        assert_eq!(res.status(), 200);
    }
}

async fn cache_control_per_route(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let html = app.get("/").await.text().await.unwrap();
    let css = html
        .split("href=\"")
        .find_map(|s| {
            s.split('"')
                .next()
                .filter(|h| h.starts_with("/static/site."))
        })
        .expect("stylesheet link")
        .to_owned();
    for (path, policy) in [
        ("/", "public, no-cache"),
        ("/insights/graphql-at-scale", "public, no-cache"),
        ("/sitemap.xml", "public, max-age=3600"),
        ("/insights/feed.xml", "public, max-age=3600"),
        ("/robots.txt", "public, max-age=86400"),
        (css.as_str(), "public, max-age=31536000, immutable"),
        ("/readyz", "no-store"),
        ("/healthz", "no-store"),
        ("/nope", "no-store"),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["cache-control"], policy, "{path}");
    }
    let res = app.get(&css).await;
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        app.get("/static/site.0000000000.css").await.status(),
        404,
        "old fingerprints are gone"
    );
}

async fn security_headers_on_every_response(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for path in [
        "/",
        "/work/shopify-erp-sync",
        "/nope",
        "/healthz",
        "/readyz",
        "/sitemap.xml",
        "/robots.txt",
    ] {
        let res = app.get(path).await;
        assert_security_headers(&res, path);
        assert!(
            res.headers().get("strict-transport-security").is_none(),
            "no HSTS on development http"
        );
    }
    // The server answers 413 from Content-Length alone, so the head of the request suffices.
    let raw = oversized_post(app.server().addr).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    for h in SECURITY_HEADERS {
        assert!(
            raw.to_ascii_lowercase().contains(&format!("\r\n{h}:")),
            "413 lacks {h}: {raw}"
        );
    }
    let res = app.delete("/").await;
    assert_security_headers(&res, "405");
}

async fn production_adds_hsts(engine: Engine) {
    let app = TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_ENV".into(), "production".into());
        env.insert(
            "VANTUS_SECRET_KEY".into(),
            "7d2f9c4e1a8b3650f2e7d4c9a1b6e3f0".into(),
        );
        env.insert(
            "VANTUS_MFA_KEY".into(),
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        );
        env.insert(
            "VANTUS_PUBLIC_URL".into(),
            "https://vantus.example.com".into(),
        );
    })
    .await;
    let res = app.get("/").await;
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("upgrade-insecure-requests")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("<link rel=\"canonical\" href=\"https://vantus.example.com/\">"));
}

async fn request_ids_are_generated_or_propagated(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let a = app.get("/").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let b = app.get("/").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    let res = app.get("/").header("x-request-id", "lb-1234.abcd").await;
    assert_eq!(res.headers()["x-request-id"], "lb-1234.abcd");
    let res = app
        .get("/")
        .header("x-request-id", "has spaces <and> junk")
        .await;
    assert_ne!(res.headers()["x-request-id"], "has spaces <and> junk");
}

async fn oversized_bodies_and_wrong_methods_get_clear_errors(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let raw = oversized_post(app.server().addr).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    let body: serde_json::Value =
        serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64 KiB"),
        "{body}"
    );

    let res = app.put("/work").body("x").await;
    assert_eq!(res.status(), 405);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["status"], 405);

    // HEAD works wherever GET does, without a body.
    let res = app.head("/services").await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());
}

async fn malformed_headers_are_refused_or_ignored_never_fatal(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    // Garbage in optional headers is ignored.
    for (h, v) in [
        ("if-none-match", "garbage, W/"),
        ("accept-encoding", ";;;q=banana,,br;q=x"),
        ("accept", "*/*;q=banana"),
        ("x-request-id", ""),
    ] {
        let res = app.get("/").header(h, v).try_send().await;
        assert_eq!(
            res.map(|r| r.status().as_u16()).unwrap_or(0),
            200,
            "{h}: {v}"
        );
    }
    // A request line or header the HTTP parser cannot read is refused with 400.
    let addr = app.server().addr;
    for raw in [
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GARBAGE\r\n\r\n",
    ] {
        let status = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            s.write_all(raw.as_bytes()).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).to_string()
        })
        .await
        .unwrap();
        assert!(status.starts_with("HTTP/1.1 400"), "{raw:?} → {status:?}");
    }
    // ...and the server carries on.
    assert_eq!(app.get("/").await.status(), 200);
}

both_engines!(
    responses_are_compressed_with_brotli_and_gzip,
    etag_and_304,
    cache_control_per_route,
    security_headers_on_every_response,
    production_adds_hsts,
    request_ids_are_generated_or_propagated,
    oversized_bodies_and_wrong_methods_get_clear_errors,
    malformed_headers_are_refused_or_ignored_never_fatal,
);
