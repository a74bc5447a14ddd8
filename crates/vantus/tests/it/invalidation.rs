//! Publishing seen everywhere at once: a content or host change committed anywhere retires the
//! caches of every replica within a second, pushed (PostgreSQL `LISTEN/NOTIFY`, SQLite in
//! process), and still within seconds by polling while the push channel is down.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::Connection;
use vantus::content::{self, ContentKind};

use crate::support::{
    Engine, ServeProcess, TestApp, TestDb, base_env, eventually, pg_admin, pg_admin_url,
};

/// The promise: a publish is visible on every replica within this.
const WITHIN: Duration = Duration::from_secs(1);

/// Polls `fetch` for `marker` for up to `within`; returns how long it took, or panics.
async fn seen_within<F, Fut>(within: Duration, what: &str, marker: &str, fetch: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let start = Instant::now();
    loop {
        if fetch().await.contains(marker) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not visible within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Changes the about page the way a publish does (body and generation in one transaction), on
/// the server's own pool.
pub(crate) async fn publish_about(app: &TestApp, marker: &str) {
    let state = &app.server().site;
    let changed = vantus::with_conn!(state.store.primary(), conn => {
        content::update_body(
            conn,
            &state.site,
            ContentKind::Page,
            "about",
            "About the studio",
            &format!("## {marker}\n\nNew words."),
        )
        .await
    })
    .unwrap();
    assert!(changed);
}

async fn a_publish_reaches_every_replica_within_a_second(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let replica = app.spawn_replica(|_| {}).await;
    let (ours, theirs) = (
        app.server().app.store.notices().clone(),
        replica.server().app.store.notices().clone(),
    );
    eventually(
        Duration::from_secs(10),
        "change notices to flow",
        async || (ours.push_is_up() && theirs.push_is_up()).then_some(()),
    )
    .await;
    // Both replicas have the page cached before the change.
    for base in [&app.base, &replica.base] {
        let page = crate::support::get_url(format!("{base}/about"))
            .send()
            .await;
        assert!(!page.text().await.unwrap().contains("Pushed edit one"));
    }
    for marker in ["Pushed edit one", "Pushed edit two"] {
        publish_about(&app, marker).await;
        let took = seen_within(WITHIN, "the other replica", marker, async || {
            replica.get("/about").await.text().await.unwrap()
        })
        .await;
        seen_within(WITHIN, "the writing replica", marker, async || {
            app.get("/about").await.text().await.unwrap()
        })
        .await;
        eprintln!("{engine:?}: {marker} visible on the other replica after {took:?}");
    }
}

async fn host_changes_reach_every_replica_within_a_second(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let replica = app.spawn_replica(|_| {}).await;
    let other = replica.server().app.clone();
    let db = app.server().app.store.primary().clone();
    let tenant = vantus::in_write_tx!(&db, conn => {
        vantus::tenancy::create(conn, "pushed", "Pushed Ltd")
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))
    })
    .unwrap();
    // The other replica loads its copy of tenant_hosts now, without the new host.
    assert_eq!(
        other
            .hosts
            .find(other.store.primary(), "pushed.example")
            .await
            .unwrap(),
        None
    );
    vantus::in_write_tx!(&db, conn => vantus::tenancy::add_host(conn, &tenant, "pushed.example").await)
        .unwrap();
    let start = Instant::now();
    loop {
        let found = other
            .hosts
            .find(other.store.primary(), "pushed.example")
            .await
            .unwrap();
        if found.as_ref().map(|s| s.slug()) == Some("pushed") {
            break;
        }
        assert!(
            start.elapsed() < WITHIN,
            "the new host was not seen by the other replica within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

crate::both_engines!(
    a_publish_reaches_every_replica_within_a_second,
    host_changes_reach_every_replica_within_a_second,
);

/// Runs `sql` on `url` as one transaction.
async fn pg_tx(url: &str, sql: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let mut tx = c.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// What an editor's publish writes: a new body and the generation bump, committed together.
fn publish_sql(marker: &str) -> String {
    format!(
        "UPDATE content_items SET body_markdown = '## {marker}' WHERE kind = 'page' AND slug = 'about';
         UPDATE site_state SET content_generation = content_generation + 1;"
    )
}

/// Two real `vantus serve` processes on one PostgreSQL: a change committed to the database
/// (as a publish through either would) is served by both within a second, repeatedly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_postgres_see_a_publish_within_a_second() {
    let db = TestDb::create(Engine::Postgres).await;
    let env: HashMap<String, String> = base_env(&db);
    let one = ServeProcess::start(&env).await;
    let mut env_two = env.clone();
    env_two.insert(
        "VANTUS_DATA_DIR".into(),
        db.dir.path().join("two").display().to_string(),
    );
    let two = ServeProcess::start(&env_two).await;
    // Each process listens once it is ready.
    eventually(
        Duration::from_secs(10),
        "both processes to LISTEN",
        async || {
            let mut c = sqlx::PgConnection::connect(&db.url).await.ok()?;
            let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&mut c)
        .await
        .ok()?;
            (n == 2).then_some(())
        },
    )
    .await;
    for marker in ["First push", "Second push", "Third push"] {
        for p in [&one, &two] {
            let text = p.get("/about").await.text().await.unwrap();
            assert!(!text.contains(marker));
        }
        pg_tx(&db.url, &publish_sql(marker)).await;
        for (name, p) in [("one", &one), ("two", &two)] {
            let took = seen_within(WITHIN, name, marker, async || {
                p.get("/about").await.text().await.unwrap()
            })
            .await;
            eprintln!("process {name}: {marker} visible after {took:?}");
        }
    }
    for p in [&one, &two] {
        let logs = p.log_lines().join("\n");
        assert!(
            !logs.contains("change notices interrupted"),
            "the push channel never dropped: {logs}"
        );
    }
}

/// The `LISTEN` connection of the server on `url`'s database, if one is open.
async fn listener_pid(url: &str) -> Option<i32> {
    let mut c = sqlx::PgConnection::connect(url).await.ok()?;
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_optional(&mut c)
    .await
    .ok()?
}

/// Kills the listener's connection while new connections are refused: changes are still seen
/// (by polling), and once connections are allowed again the listener reconnects and pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listen_connection_falls_back_to_polling_and_reconnects() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let url = app.db.url.clone();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let notices = app.server().app.store.notices().clone();
    let first = eventually(Duration::from_secs(10), "the listener", async || {
        listener_pid(&url).await
    })
    .await;
    assert!(notices.push_is_up());
    assert!(
        !app.get("/about")
            .await
            .text()
            .await
            .unwrap()
            .contains("Polled")
    );

    // The pool keeps its open connections; only new ones (the listener's) are refused.
    pg_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    eventually(
        Duration::from_secs(5),
        "the push channel to be down",
        async || (!notices.push_is_up()).then_some(()),
    )
    .await;
    publish_about(&app, "Polled while down").await;
    // One fallback poll (1 s) plus a render.
    seen_within(
        Duration::from_secs(3),
        "the change while the push channel is down",
        "Polled while down",
        async || app.get("/about").await.text().await.unwrap(),
    )
    .await;
    assert!(!notices.push_is_up(), "the listener cannot reconnect yet");

    pg_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    eventually(
        Duration::from_secs(20),
        "the listener to reconnect",
        async || (notices.push_is_up()).then_some(()),
    )
    .await;
    let second = listener_pid(&url).await.expect("listening again");
    assert_ne!(first, second, "a new LISTEN connection");
    publish_about(&app, "Pushed again").await;
    seen_within(
        WITHIN,
        "a change after reconnecting",
        "Pushed again",
        async || app.get("/about").await.text().await.unwrap(),
    )
    .await;
}
