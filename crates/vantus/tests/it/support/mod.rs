//! The shared test harness: real databases, a real server on an ephemeral port, real HTTP.
//!
//! * [`db`]: [`TestDb`] is a fresh SQLite file in a temporary folder, or a fresh PostgreSQL
//!   database on the server named by `VANTUS_TEST_PG_URL` (default: the local trust-auth
//!   server), dropped when the test ends; plus PostgreSQL and digest helpers.
//! * [`app`]: [`TestApp`] starts `vantus::server::start` in-process against a `TestDb` and
//!   stops it when dropped; requests by verb (`app.get("/")`, `app.post_form(…)`, with
//!   `.header(…)` before `.await`) and response checks ([`ResponseExt`]).
//! * [`process`]: [`binary`] and [`ServeProcess`] run the compiled `vantus` executable, for
//!   exit codes, signals and logs; the same verbs.
//! * [`wait`]: [`eventually`], the one polling loop.
//! * [`staff`]: signed-in checks, pages as a cookie's holder sees them, form tokens.
//! * [`redis`]: a real Redis on its own port, which a test may stop and start again.
//! * [`smtp`]: a real SMTP server (`aiosmtpd`) whose delivered messages a test reads back.
//! * [`staff`]: accounts made with the CLI, signed in, and their pages' form tokens.
//! * [`TestApp::spawn_replica`]: a second server on the same database.
//! * `both_engines!(test_fn)` runs one async test body against SQLite and PostgreSQL.

#![allow(dead_code)]

pub mod app;
pub mod db;
pub mod pg_cluster;
pub mod process;
pub mod redis;
pub mod sinks;
pub mod smtp;
pub mod soft_authenticator;
pub mod staff;
pub mod wait;

use std::collections::HashMap;

// The harness's vocabulary, re-exported whole: not every test file uses every name.
#[allow(unused_imports)]
pub use app::{Replica, ResponseExt, TestApp, TestRequest, client, get_url, title_of};
#[allow(unused_imports)]
pub use db::{
    TestDb, audit_maintenance, delete_audit_rows, digest_all, open_db, pg_admin, pg_admin_url,
    pg_url_for, raw_table_names, read_manifest,
};
pub use process::{ServeProcess, binary, run_binary, run_binary_with_stdin};
/// The library's own engine, so the harness cannot drift from what the server supports.
pub use vantus::store::Engine;
#[allow(unused_imports)]
pub use wait::{eventually, eventually_every};

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
        // Tests sign in as owners without a second factor; tests/it/mfa.rs sets the default
        // (owner,admin) back where the requirement itself is tested.
        ("VANTUS_MFA_REQUIRED_ROLES".to_owned(), String::new()),
    ])
}

/// The environment of `base_env` as a list, plus more.
pub fn env_with(db: &TestDb, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = base_env(db);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}
