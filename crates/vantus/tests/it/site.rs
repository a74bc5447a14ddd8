//! The public site: every page, its title, the 404 page, feeds, and cache invalidation.

use crate::both_engines;
use crate::support::{Engine, TestApp, title_of};

/// Path and the title each page must carry.
const PAGES: &[(&str, &str)] = &[
    ("/", "Vantus Systems — engineering for high-trust products"),
    ("/services", "Services and packages · Vantus Systems"),
    ("/process", "How we work: seven phases · Vantus Systems"),
    ("/work", "Work · Vantus Systems"),
    (
        "/work/shopify-erp-sync",
        "Shopify to ERP sync for a mid-market outdoor retailer · Vantus Systems",
    ),
    (
        "/work/fintech-analytics-dashboard",
        "A merchant analytics dashboard that agrees with the ledger · Vantus Systems",
    ),
    (
        "/work/healthcare-intake-portal",
        "An accessible patient intake portal for a physiotherapy group · Vantus Systems",
    ),
    ("/insights", "Insights · Vantus Systems"),
    (
        "/insights/graphql-at-scale",
        "GraphQL at scale: the problems arrive in a predictable order · Vantus Systems",
    ),
    (
        "/insights/restore-drills",
        "Restore drills: a backup you have not restored is a rumour · Vantus Systems",
    ),
    ("/about", "About Vantus Systems"),
    ("/trust", "Trust center · Vantus Systems"),
    ("/contact", "Start a project · Vantus Systems"),
    ("/privacy", "Privacy notice · Vantus Systems"),
    ("/terms", "Website terms of use · Vantus Systems"),
];

async fn every_page_answers_200_with_its_title(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for (path, title) in PAGES {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        let html = res.text().await.unwrap();
        assert_eq!(title_of(&html), *title, "{path}");
        assert!(html.contains("<main id=\"main\""), "{path}: landmark");
        assert!(html.contains("<h1"), "{path}: heading");
        assert!(
            !html.contains("<script"),
            "{path}: pages need no JavaScript"
        );
    }
}

async fn content_comes_from_the_database_sanitized(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let html = app
        .get_html("/work/shopify-erp-sync")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<h2>The situation</h2>"),
        "Markdown is rendered"
    );
    assert!(
        html.contains("order sync lag at p99"),
        "case study results are shown"
    );
    let home = app.get_html("/").await.text().await.unwrap();
    assert!(home.contains("Software your customers can rely on"));
    assert_eq!(
        home.matches("class=\"card case-card\"").count(),
        3,
        "home features three case studies"
    );
    let html = app.get_html("/services").await.text().await.unwrap();
    assert!(html.contains("€6,500 flat"));
    let html = app.get_html("/process").await.text().await.unwrap();
    assert_eq!(html.matches("class=\"phase\"").count(), 7);
}

async fn unknown_slugs_and_routes_get_the_404_page(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for path in [
        "/work/no-such-study",
        "/insights/nope",
        "/nope",
        "/work/..%2F..%2Fetc",
        "/work/UPPER",
    ] {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 404, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("Page not found"), "{path}");
        assert!(
            html.contains("<nav class=\"site-nav\""),
            "{path}: the 404 page has the site's layout"
        );
    }
    // Non-browsers get JSON.
    let res = app.get("/nope").await;
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["status"], 404);
    assert!(body["request_id"].is_string());
}

async fn sitemap_robots_and_feed(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let res = app.get("/sitemap.xml").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let xml = res.text().await.unwrap();
    assert!(xml.contains(&format!("<loc>{}/work/shopify-erp-sync</loc>", app.base)));
    assert!(xml.contains(&format!(
        "<loc>{}/insights/graphql-at-scale</loc>",
        app.base
    )));
    assert!(xml.contains(&format!("<loc>{}/</loc>", app.base)));
    let robots = app.get("/robots.txt").await.text().await.unwrap();
    assert!(robots.contains(&format!("Sitemap: {}/sitemap.xml", app.base)));
    let res = app.get("/insights/feed.xml").await;
    assert_eq!(
        res.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let feed = res.text().await.unwrap();
    assert!(feed.starts_with("<?xml"));
    assert_eq!(feed.matches("<entry>").count(), 4);
    assert!(
        feed.contains(
            "<title>GraphQL at scale: the problems arrive in a predictable order</title>"
        )
    );
}

async fn insights_pagination_validates_its_parameter(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    assert_eq!(app.get("/insights?page=1&utm_source=x").await.status(), 200);
    assert_eq!(app.get("/insights?page=9").await.status(), 404);
    for bad in [
        "/insights?page=abc",
        "/insights?page=-1",
        "/insights?page=0",
        "/insights?page=99999999999999999999",
    ] {
        let res = app.get(bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["field"], "page", "{bad}: {body}");
    }
}

async fn cached_pages_follow_content_changes(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let before = app.get("/about").await.text().await.unwrap();
    assert!(!before.contains("Freshly edited"));
    crate::invalidation::publish_about(&app, "Freshly edited").await;
    // The commit's change notice retires the cached page (tests/it/invalidation.rs times it).
    let after = crate::support::eventually(
        std::time::Duration::from_secs(1),
        "the cached page to be retired",
        async || {
            let page = app.get("/about").await.text().await.unwrap();
            page.contains("Freshly edited").then_some(page)
        },
    )
    .await;
    assert!(title_of(&after).starts_with("About the studio"));
}

/// The heading levels of a document, in order.
fn heading_levels(html: &str) -> Vec<u8> {
    let bytes = html.as_bytes();
    let mut levels = Vec::new();
    let mut i = 0;
    while let Some(at) = html[i..].find("<h") {
        let start = i + at;
        if let (Some(d), Some(after)) = (bytes.get(start + 2), bytes.get(start + 3))
            && (b'1'..=b'6').contains(d)
            && matches!(after, b' ' | b'>')
        {
            levels.push(d - b'0');
        }
        i = start + 2;
    }
    levels
}

/// A correct outline: one `h1`, first; no level skipped on the way down.
fn outline_problem(levels: &[u8]) -> Option<String> {
    if levels.first() != Some(&1) {
        return Some(format!("the first heading is not an h1: {levels:?}"));
    }
    if levels.iter().filter(|l| **l == 1).count() != 1 {
        return Some(format!("more than one h1: {levels:?}"));
    }
    levels
        .windows(2)
        .find(|w| w[1] > w[0] + 1)
        .map(|w| format!("h{} follows h{}: {levels:?}", w[1], w[0]))
}

#[test]
fn the_outline_check_catches_skipped_levels() {
    assert_eq!(
        heading_levels("<h1 class=x>a</h1><h2>b</h2><h3>c</h3><hr><head>"),
        [1, 2, 3]
    );
    assert!(outline_problem(&[1, 2, 3, 2, 3]).is_none());
    assert!(outline_problem(&[1, 3]).is_some());
    assert!(outline_problem(&[2, 1]).is_some());
    assert!(outline_problem(&[1, 2, 1]).is_some());
}

async fn every_page_has_a_correct_heading_outline(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let paths = PAGES.iter().map(|(p, _)| *p).chain(["/nope"]);
    for path in paths {
        let html = app.get_html(path).await.text().await.unwrap();
        if let Some(problem) = outline_problem(&heading_levels(&html)) {
            panic!("{path}: {problem}");
        }
    }
}

both_engines!(
    every_page_has_a_correct_heading_outline,
    every_page_answers_200_with_its_title,
    content_comes_from_the_database_sanitized,
    unknown_slugs_and_routes_get_the_404_page,
    sitemap_robots_and_feed,
    insights_pagination_validates_its_parameter,
    cached_pages_follow_content_changes,
);
