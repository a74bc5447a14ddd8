//! Issue 8, the writing side: backups stage their plaintext privately and clean up after a
//! killed run, everything Vantus creates is owner-only whatever the umask, a planted sidecar
//! symlink is not followed, and `db copy` refuses a target holding anybody's data.

use vantus::ops::generate;

use crate::both_engines;
use crate::support::{Engine, TestDb, base_env, open_db, raw_table_names, run_binary};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A migrated test database holding a generated data set large enough that a backup takes a
/// while (so it can be caught, and killed, mid-way).
async fn populated(engine: Engine, audit_rows: u64) -> TestDb {
    let db = TestDb::create(engine).await;
    let pool = open_db(&db.url).await;
    vantus::store::migrate::migrate_to(&pool, None)
        .await
        .unwrap();
    generate::run(&pool, 100, audit_rows).await.unwrap();
    pool.close().await;
    db
}

/// `db copy` into a database holding another application's table (with rows, no Vantus
/// tables at all) is refused by name, and that database is left exactly as it was.
async fn db_copy_refuses_a_target_with_unrelated_data(engine: Engine) {
    let source = populated(Engine::Sqlite, 50).await;
    let target = TestDb::create(engine).await;
    let target_db = open_db(&target.url).await;
    vantus::on_db!(&target_db, p => sqlx::raw_sql(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');"
    ).execute(p).await.map(|_| ()))
    .unwrap();
    let env = base_env(&target);

    let o = run_binary(
        &[
            "db",
            "copy",
            "--from",
            &source.url,
            "--to",
            &target.url,
            "--dry-run",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("target is not empty"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    let o = run_binary(
        &["db", "copy", "--from", &source.url, "--to", &target.url],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let message = stderr(&o);
    assert!(
        message.contains("already holds data") && message.contains("customers (3 rows)"),
        "{message}"
    );

    let tables: Vec<String> = match &target_db {
        vantus::store::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(p)
                .await
                .unwrap()
        }
        vantus::store::Db::Postgres(p) => sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
        )
        .fetch_all(p)
        .await
        .unwrap(),
    };
    assert_eq!(tables, ["customers"], "no Vantus table was added");
    assert_eq!(raw_table_names(&target_db).await, ["customers"]);
    let names: Vec<String> = vantus::on_db!(&target_db, p => sqlx::query_scalar(
        "SELECT name FROM customers ORDER BY id"
    ).fetch_all(p).await)
    .unwrap();
    assert_eq!(names, ["Ada", "Grace", "Edsger"]);
    target_db.close().await;
}

both_engines!(db_copy_refuses_a_target_with_unrelated_data);
