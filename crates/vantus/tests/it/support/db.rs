//! Databases that exist for one test, and the PostgreSQL helpers around them.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::Engine;

/// The PostgreSQL server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("VANTUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `postgres://…/<name>` on the test server.
pub fn pg_url_for(name: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A database that exists for one test.
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    pub dir: TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn create(engine: Engine) -> Self {
        vantus::telemetry::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        match engine {
            Engine::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("vantus.db").display());
                Self {
                    engine,
                    url,
                    dir,
                    pg_name: None,
                }
            }
            Engine::Postgres => {
                let name = format!("vantus_test_{}", uuid::Uuid::new_v4().simple());
                pg_admin(&format!("CREATE DATABASE {name}")).await;
                Self {
                    engine,
                    url: pg_url_for(&name),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Drops and recreates the database: the "disk died" of a restore test.
    pub async fn wipe(&self) {
        match self.engine {
            Engine::Sqlite => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ =
                        std::fs::remove_file(self.dir.path().join(format!("vantus.db{suffix}")));
                }
            }
            Engine::Postgres => {
                let name = self.pg_name.clone().expect("a test database");
                pg_admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await;
                pg_admin(&format!("CREATE DATABASE {name}")).await;
            }
        }
    }

    /// A database the test manages itself (e.g. on its own cluster); nothing is dropped.
    pub fn external(url: String) -> Self {
        Self {
            engine: Engine::Postgres,
            url,
            dir: tempfile::tempdir().expect("temp dir"),
            pg_name: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("var")
    }
}

/// Runs one statement on the admin database.
pub async fn pg_admin(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("the test PostgreSQL server is reachable (see VANTUS_TEST_PG_URL)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside async context: use a private runtime on a plain thread.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(pg_admin(&format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )));
            })
            .join();
        }
    }
}

/// Row count and SHA-256 of every application table, in the engine-neutral encoding.
pub async fn digest_all(
    db: &vantus::store::Db,
) -> std::collections::BTreeMap<String, (u64, String)> {
    use vantus::store::{rows, schema};
    let mut out = std::collections::BTreeMap::new();
    for t in schema::tables(db).await.expect("schema") {
        let d = vantus::on_db!(db, pool => {
            let mut c = pool.acquire().await.unwrap();
            rows::digest(rows::conn(&mut c), &t).await
        })
        .expect("digest");
        out.insert(t.name.clone(), (d.rows, d.sha256()));
    }
    out
}

/// Opens a pool on `url` (no migrations, no seeding).
pub async fn open_db(url: &str) -> vantus::store::Db {
    let cfg = vantus::config::DatabaseConfig {
        url: vantus::config::DatabaseUrl::parse("DATABASE_URL", url).unwrap(),
        replica_urls: vec![],
        max_connections: 4,
        replica_max_lag: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
    };
    vantus::store::connect(&cfg).await.expect("database opens")
}

/// Every table name in the database, straight from the catalog, excluding bookkeeping
/// tables that start with `_`: the list a backup must cover.
pub async fn raw_table_names(db: &vantus::store::Db) -> Vec<String> {
    let mut names: Vec<String> = match db {
        vantus::store::Db::Sqlite(p) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND substr(name, 1, 1) <> '_'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        vantus::store::Db::Postgres(p) => sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND substr(tablename, 1, 1) <> '_'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
    };
    names.sort();
    names
}

/// Deletes audit-log rows (`DELETE FROM audit_log WHERE {filter}`) through the sanctioned
/// bypass of the append-only triggers, as restore does: for tests that take out the entry an
/// operation recorded about itself, or that tamper on purpose. Returns the rows deleted.
pub async fn delete_audit_rows(db: &vantus::store::Db, filter: &str) -> u64 {
    audit_maintenance(db, &format!("DELETE FROM audit_log WHERE {filter}")).await
}

/// Runs one statement on `audit_log` through the sanctioned bypass (one transaction, the
/// marker row inserted and removed around it). Returns the rows affected.
pub async fn audit_maintenance(db: &vantus::store::Db, sql: &str) -> u64 {
    use vantus::audit::chain;
    let sql = sql.to_owned();
    vantus::in_write_tx!(db, conn => {
        let bypass = chain::begin_maintenance(conn, "test").await?;
        let n = match conn {
            vantus::store::Conn::Sqlite(c) => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut **c).await?.rows_affected(),
            vantus::store::Conn::Postgres(c) => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut **c).await?.rows_affected(),
        };
        chain::end_maintenance(conn, bypass).await?;
        Ok::<_, sqlx::Error>(n)
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The `manifest.json` of an unencrypted backup archive.
pub fn read_manifest(archive: &std::path::Path) -> vantus::ops::archive::Manifest {
    use std::io::Read;
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let mut json = String::new();
            entry.read_to_string(&mut json).unwrap();
            return serde_json::from_str(&json).unwrap();
        }
    }
    panic!("no manifest in {}", archive.display());
}
