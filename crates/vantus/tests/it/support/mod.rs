//! The shared test harness: real databases, a real server on an ephemeral port, real HTTP.
//!
//! * [`TestDb`] is a fresh SQLite file in a temporary folder, or a fresh PostgreSQL database
//!   on the server named by `VANTUS_TEST_PG_URL` (default: the local trust-auth server),
//!   dropped when the test ends.
//! * [`TestApp`] starts `vantus::server::start` in-process against a `TestDb`.
//! * [`binary`] runs the compiled `vantus` executable, for exit codes, signals and logs.
//! * `both_engines!(test_fn)` runs one async test body against SQLite and PostgreSQL.

#![allow(dead_code)]

pub mod pg_cluster;
pub mod sinks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use vantus::config::{Config, Overrides};
use vantus::server::{self, RunningServer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs `async fn $name(engine: Engine)` once per engine, as `$name::sqlite` and
/// `$name::postgres`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Engine::Postgres).await
            }
        }
    )*};
}

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

/// The environment a test server runs with: an ephemeral port, the test database, a data
/// folder inside the test's temp dir, quiet logs.
pub fn base_env(db: &TestDb) -> HashMap<String, String> {
    HashMap::from([
        ("VANTUS_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("DATABASE_URL".to_owned(), db.url.clone()),
        (
            "VANTUS_DATA_DIR".to_owned(),
            db.data_dir().display().to_string(),
        ),
        ("DATABASE_CONNECT_TIMEOUT".to_owned(), "5s".to_owned()),
        ("VANTUS_DRAIN_TIMEOUT".to_owned(), "10s".to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ])
}

pub struct TestApp {
    pub server: Option<RunningServer>,
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}).await
    }

    /// Starts a server; `adjust` may change its environment first.
    pub async fn spawn_with(
        engine: Engine,
        adjust: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let db = TestDb::create(engine).await;
        Self::spawn_on(db, adjust).await
    }

    pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let mut env = base_env(&db);
        adjust(&mut env);
        let config = Config::load(&env, &Overrides::default()).expect("test config is valid");
        let server = server::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        Self {
            server: Some(server),
            base,
            client: client(),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request is answered")
    }

    /// GET with an `Accept: text/html` header, as a browser sends.
    pub async fn get_html(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .expect("request is answered")
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    pub async fn stop(mut self) -> bool {
        match self.server.take() {
            Some(s) => s.shutdown().await,
            None => true,
        }
    }
}

/// A client that neither follows redirects nor decompresses, so tests see the wire.
pub fn client() -> reqwest::Client {
    vantus::telemetry::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The `<title>` of an HTML document.
pub fn title_of(html: &str) -> String {
    let start = html.find("<title>").map(|i| i + 7).unwrap_or(0);
    let end = html[start..]
        .find("</title>")
        .map(|i| i + start)
        .unwrap_or(start);
    html[start..end].to_owned()
}

/// The compiled `vantus` executable.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vantus"))
}

/// Runs `vantus <args>` with exactly `env` (plus PATH) and waits for it.
pub fn run_binary(args: &[&str], env: &HashMap<String, String>) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .expect("vantus runs")
}

/// A `vantus serve` child process whose stdout (JSON logs) is collected in the background.
pub struct ServeProcess {
    pub child: Child,
    pub addr: String,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `vantus serve` and waits until it logs its address and `/readyz` answers 200.
    pub async fn start(env: &HashMap<String, String>) -> Self {
        let this = Self::spawn_listening(env).await;
        this.wait_ready(Duration::from_secs(30)).await;
        this
    }

    /// Starts `vantus serve` and returns as soon as it is listening (possibly not ready).
    pub async fn spawn_listening(env: &HashMap<String, String>) -> Self {
        Self::spawn_with(env, Command::new(binary())).await
    }

    pub async fn spawn_with(env: &HashMap<String, String>, mut cmd: Command) -> Self {
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            // The harness finds the address in the "listening" line, logged at info.
            .env(
                "RUST_LOG",
                match env.get("RUST_LOG").map(String::as_str) {
                    None | Some("warn") => "info",
                    Some(other) => other,
                },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("vantus serve spawns");
        let stdout = child.stdout.take().expect("piped");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let found = logs.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| v["addr"].as_str().unwrap_or("").to_owned())
            });
            if let Some(a) = found {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("vantus serve exited with {status} before listening: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "vantus serve did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let c = client();
        loop {
            if let Ok(r) = c.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vantus serve did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for exit (bounded) and returns the exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("vantus did not exit within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The environment of `base_env` as a list, plus more.
pub fn env_with(db: &TestDb, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = base_env(db);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}
