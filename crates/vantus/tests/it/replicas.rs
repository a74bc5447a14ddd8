//! Read replicas, for real: a primary and a streaming replica made with `pg_basebackup`, each
//! a PostgreSQL server on its own port. Pages are read from the replica while it is up and
//! current, from the primary when it lags behind content this process has seen, and from the
//! primary after the replica is killed.

use std::time::Duration;

use sqlx::Connection;
use vantus::content::{self, ContentKind};
use vantus::store::ReplicaState;

use crate::support::pg_cluster::PgCluster;
use crate::support::{TestApp, TestDb, eventually};

async fn exec(url: &str, sql: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap();
}

async fn replica_content_rows(url: &str) -> i64 {
    match sqlx::PgConnection::connect(url).await {
        Ok(mut c) => sqlx::query_scalar("SELECT COUNT(*) FROM content_items")
            .fetch_one(&mut c)
            .await
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_reads_use_the_replica_and_fall_back_to_the_primary() {
    let primary = tokio::task::spawn_blocking(PgCluster::primary)
        .await
        .unwrap();
    exec(&primary.url("postgres"), "CREATE DATABASE vantus").await;
    let replica_port_holder = tokio::task::block_in_place(|| PgCluster::replica_of(&primary));
    let mut replica = replica_port_holder;
    let replica_url = replica.url("vantus");

    let app = TestApp::spawn_on(TestDb::external(primary.url("vantus")), |env| {
        env.insert("DATABASE_REPLICA_URLS".into(), replica_url.clone());
    })
    .await;
    let state = app.server().site.clone();
    let set = state.store.replicas().expect("replicas configured").clone();
    let r = set.replicas()[0].clone();

    // The replica catches up with the seed within moments.
    let expected = content::seed::load().unwrap().len() as i64;
    eventually(
        Duration::from_secs(20),
        "the replica to receive the seed",
        async || replica_content_rows(&replica_url).await >= expected,
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the replica to be probed healthy",
        async || r.state() == ReplicaState::Healthy,
    )
    .await;

    // 1. While it is up and current, page reads go to the replica.
    let (reads_before, primary_before) = (r.reads(), set.primary_reads());
    for path in [
        "/",
        "/work",
        "/work/shopify-erp-sync",
        "/insights",
        "/services",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(
        r.reads() - reads_before,
        5,
        "all five page renders read the replica"
    );
    assert_eq!(set.primary_reads(), primary_before, "none read the primary");
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    let check = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "replicas")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "pass", "{ready}");
    assert_eq!(check["replicas"][0]["state"], "healthy");
    assert!(
        !check["replicas"][0]["name"]
            .as_str()
            .unwrap()
            .contains("password")
    );

    // 2. A replica that has not replayed a change this process has seen is not used for it:
    //    visitors never get a page older than one already served.
    exec(&replica_url, "SELECT pg_wal_replay_pause()").await;
    vantus::with_conn!(state.store.primary(), conn => {
        content::update_body(
            conn,
            &state.site,
            ContentKind::Page,
            "about",
            "About us",
            "## Edited on the primary",
        )
        .await
    })
    .unwrap();
    state.refresh_generation().await.unwrap();
    let fallbacks = set.fallbacks();
    let about = app.get("/about").await.text().await.unwrap();
    assert!(
        about.contains("Edited on the primary"),
        "served from the primary, not the stale replica"
    );
    assert!(set.fallbacks() > fallbacks);
    exec(&replica_url, "SELECT pg_wal_replay_resume()").await;

    // 3. Kill the replica: pages are still served, from the primary.
    tokio::task::block_in_place(|| replica.kill());
    let primary_before = set.primary_reads();
    for path in [
        "/process",
        "/trust",
        "/insights/graphql-at-scale",
        "/work/healthcare-intake-portal",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path} after the replica died");
    }
    assert_eq!(set.primary_reads() - primary_before, 4);
    assert_eq!(r.state(), ReplicaState::Down);
    let res = app.get("/readyz").await;
    assert_eq!(
        res.status(),
        200,
        "a dead replica degrades, it does not fail readiness"
    );
    let ready: serde_json::Value = res.json().await.unwrap();
    assert_eq!(ready["status"], "warn", "{ready}");

    // Writes never went to the replica: the edit is on the primary.
    let mut c = sqlx::PgConnection::connect(&primary.url("vantus"))
        .await
        .unwrap();
    let title: String = sqlx::query_scalar("SELECT title FROM content_items WHERE slug = 'about'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(title, "About us");
}
