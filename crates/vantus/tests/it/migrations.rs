//! Migrations and seeding: idempotent, safe when many instances start at once, and visible in
//! readiness while they run.

use std::time::Duration;

use sqlx::Connection;
use vantus::config::DatabaseUrl;
use vantus::content::seed;
use vantus::store::{self, migrate};

use crate::both_engines;
use crate::support::{Engine, ServeProcess, TestApp, TestDb, base_env, eventually};

async fn content_count(db: &store::Db) -> i64 {
    vantus::on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM content_items").fetch_one(pool).await).unwrap()
}

async fn second_start_reuses_the_data(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let first_count = content_count(app.server().app.store.primary()).await;
    assert!(first_count >= 14);
    let generation = app.server().site.pages.generation();
    let db = app.into_db().await;
    let again = TestApp::spawn_on(db, |_| {}).await;
    assert_eq!(
        content_count(again.server().app.store.primary()).await,
        first_count,
        "seeding is idempotent"
    );
    assert_eq!(
        again.server().site.pages.generation(),
        generation,
        "nothing changed, so nothing is invalidated"
    );
    assert_eq!(again.get("/").await.status(), 200);
}

both_engines!(second_start_reuses_the_data);

/// Six instances migrating one fresh PostgreSQL database at the same moment: every one
/// succeeds, each migration is applied once, the seed is inserted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_on_postgres_apply_once() {
    let db = TestDb::create(Engine::Postgres).await;
    let cfg = vantus::config::DatabaseConfig {
        url: DatabaseUrl::parse("DATABASE_URL", &db.url).unwrap(),
        replica_urls: vec![],
        max_connections: 3,
        replica_max_lag: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
    };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let pool = store::connect(&cfg).await.unwrap();
            let out = seed::migrate_and_seed(&pool, "default").await;
            (pool, out)
        }));
    }
    let mut added_total = 0;
    let mut pools = Vec::new();
    for t in tasks {
        let (pool, out) = t.await.unwrap();
        let (_, added) = out.expect("every instance's migration succeeds");
        added_total += added;
        pools.push(pool);
    }
    let items = seed::load().unwrap().len() as u64;
    assert_eq!(added_total, items, "the seed went in exactly once");
    let pool = &pools[0];
    assert_eq!(content_count(pool).await as u64, items);
    let applied: i64 = vantus::on_db!(pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(p).await).unwrap();
    assert_eq!(applied as usize, migrate::known().len());
    for p in pools {
        p.close().await;
    }
}

/// While migrations wait (here: on the advisory lock another instance holds), the port is
/// open, liveness passes and readiness answers 503 "migrating".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_migrating() {
    let db = TestDb::create(Engine::Postgres).await;
    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(0x7661_6e74_7573_6d67_i64)
        .execute(&mut lock)
        .await
        .unwrap();

    let env = base_env(&db);
    let process = ServeProcess::spawn_listening(&env).await;
    let body = eventually(Duration::from_secs(10), "the migrating phase", async || {
        let res = process.get("/readyz").await;
        assert_eq!(res.status(), 503);
        let body: serde_json::Value = res.json().await.unwrap();
        if body["phase"] == "migrating" {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await;
    assert_eq!(body["checks"][0]["detail"], "applying migrations");
    assert_eq!(process.get("/healthz").await.status(), 200);
    assert_eq!(
        process.get("/").await.status(),
        503,
        "pages wait for readiness"
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(0x7661_6e74_7573_6d67_i64)
        .execute(&mut lock)
        .await
        .unwrap();
    process.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(process.get("/").await.status(), 200);
}
