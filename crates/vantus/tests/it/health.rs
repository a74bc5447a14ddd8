//! Liveness and readiness.

use std::time::Duration;

use crate::both_engines;
use crate::support::{Engine, TestApp, eventually, pg_admin};

async fn healthz_and_readyz_report_checks(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "pass"
    );

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "pass");
    assert_eq!(body["phase"], "ready");
    let checks = body["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} check in {body}"))
    };
    assert_eq!(check("database")["status"], "pass");
    let engine_name = if engine == Engine::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    assert!(
        check("database")["detail"]
            .as_str()
            .unwrap()
            .starts_with(engine_name)
    );
    assert_eq!(check("migrations")["status"], "pass");
}

both_engines!(healthz_and_readyz_report_checks);

/// Makes a test database unreachable: no new connections, existing ones terminated. Returns
/// its name, to let connections in again with `ALLOW_CONNECTIONS true`.
async fn cut_off(db: &crate::support::TestDb) -> String {
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    pg_admin(&format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    ))
    .await;
    pg_admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    name
}

/// Readiness follows the database: 503 naming the failed check while it is unreachable, 200
/// again once it is back, while liveness stays 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_unreachable_and_recovers() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let name = cut_off(&app.db).await;

    let outage = eventually(
        Duration::from_secs(15),
        "readyz to notice the outage",
        async || {
            let res = app.get("/readyz").await;
            (res.status() == 503).then_some(res)
        },
    )
    .await;
    let body = outage.json::<serde_json::Value>().await.unwrap();
    let db = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database")
        .unwrap()
        .clone();
    assert_eq!(db["status"], "fail", "{body}");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the database"
    );
    // A page never rendered before cannot be served: 503 with Retry-After, not a 500.
    let page = app.get_html("/about").await;
    assert_eq!(page.status(), 503);
    assert_eq!(page.headers()["retry-after"], "5");

    pg_admin(&format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
    ))
    .await;
    eventually(Duration::from_secs(15), "readyz to recover", async || {
        app.get("/readyz").await.status() == 200
    })
    .await;
    assert_eq!(app.get("/about").await.status(), 200);
}

/// A page rendered before an outage is served (stale) during it rather than an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_pages_survive_a_database_outage() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let before = app.get("/work").await.text().await.unwrap();
    let name = cut_off(&app.db).await;
    let during = app.get("/work").await;
    assert_eq!(during.status(), 200);
    assert_eq!(during.text().await.unwrap(), before);
    pg_admin(&format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
    ))
    .await;
}
