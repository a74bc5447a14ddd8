//! The database layer: one query path for SQLite and PostgreSQL.
//!
//! Business code writes each query once, with `$1` placeholders, as a function taking a
//! [`Conn`] (`&mut Conn<'_>`): a connection or transaction on either engine, so a caller can
//! compose several queries in one transaction. Which entry point to use when: to write,
//! [`in_write_tx!`] (or [`Db::begin_write`] when the transaction must outlive one block) hands
//! out a `Conn` inside a transaction that commits on `Ok` and rolls back on `Err`; to read,
//! [`with_conn!`] (or [`Db::acquire`]) lends a pooled `Conn` for a run of queries; [`on_db!`]
//! runs one ad-hoc statement on the pool and [`on_conn`] one statement on a `Conn`, each
//! compiled once per engine. Dialect differences (advisory locks, replica lag,
//! `BEGIN IMMEDIATE`, the audit log's append-only triggers) stay inside this module.
//! Why this design and not sqlx `Any` or an ORM: `docs/adr/0001-database-layer.md`.

/// Runs the same query expression against whichever pool is live.
///
/// ```ignore
/// let n: i64 = on_db!(db, pool => sqlx::query_scalar("SELECT count(*) FROM tenants")
///     .fetch_one(pool).await)?;
/// ```
/// The body is compiled once per engine, so it must type-check for both.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` (an expression giving `Result<T, E>`, `E: From<sqlx::Error>`) with `$conn`
/// bound to a `&mut Conn` inside a write transaction, then commits on `Ok` and rolls back on
/// `Err`; evaluates to that result. A `?` inside `$body` also ends the transaction unapplied,
/// and a `return` ends the body with its value (it does not leave the enclosing function).
///
/// ```ignore
/// let id = in_write_tx!(db, conn => {
///     let scope = tenancy::ensure(conn, "acme", "Acme", None).await?;
///     audit::record(conn, &Actor::Cli, AuditAction::BackupCreated, "x", json!({})).await?;
///     Ok::<_, sqlx::Error>(scope.id())
/// })?;
/// ```
/// SQLite gets `BEGIN IMMEDIATE` so a read-then-write transaction waits for the write lock
/// instead of failing with SQLITE_BUSY halfway through.
#[macro_export]
macro_rules! in_write_tx {
    ($db:expr, $conn:ident => $body:expr) => {
        async {
            match $crate::store::Db::begin_write($db).await {
                Err(e) => Err(e.into()),
                Ok(mut tx) => {
                    // The body runs in its own async block, so a `return` in it ends the
                    // body (committing or rolling back like its value), not the caller.
                    let out = async {
                        let $conn = &mut tx.conn();
                        $body
                    }
                    .await;
                    tx.finish(out).await
                }
            }
        }
        .await
    };
}

/// Runs `$body` (an expression giving `Result<T, E>`, `E: From<sqlx::Error>`) with `$conn`
/// bound to a `&mut Conn` on one pooled connection, for a run of reads (or a single
/// autocommitted write); the connection goes back to the pool afterwards.
#[macro_export]
macro_rules! with_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        async {
            match $crate::store::Db::acquire($db).await {
                Err(e) => Err(e.into()),
                Ok(mut pooled) => {
                    let $conn = &mut pooled.conn();
                    $body
                }
            }
        }
        .await
    };
}

pub mod append_only;
pub mod migrate;
pub mod multirow;
pub mod notify;
pub mod replicas;
pub mod rows;
pub mod schema;
pub mod search;
mod timestamp;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

pub use replicas::{ReplicaSet, ReplicaState};
pub use rows::{AsConn, Conn};
pub(crate) use rows::{from_row, on_conn};
pub use timestamp::Timestamp;

use crate::config::{ConfigError, DatabaseConfig, DatabaseUrl};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// A connection pool on one of the two supported engines.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// A round trip to the server: proves it answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }

    /// Connections in use and idle, for readiness and metrics.
    pub fn pool_usage(&self) -> (u32, usize) {
        on_db!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// One connection from the pool, for a run of queries outside a transaction.
    pub async fn acquire(&self) -> Result<PooledConn, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => PooledConn::Sqlite(pool.acquire().await?),
            Db::Postgres(pool) => PooledConn::Postgres(pool.acquire().await?),
        })
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (take the write lock now, not
    /// at the first write), a normal transaction on PostgreSQL.
    ///
    /// SQLite has one writer at a time. Left to itself, each waiting writer polls the file lock
    /// in its busy handler with sleeps that grow to 100 ms, so a burst of writes queues behind
    /// sleeping connections (measured: p99 above 500 ms at 32 concurrent leads). Writers of
    /// this process therefore queue first on an async lock per database file, in arrival
    /// order, and hold it for the transaction; the busy timeout remains for other processes
    /// on the same file.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => {
                // Bounded like SQLite's own busy timeout: a writer that never ends (a bug)
                // makes the others fail, not hang.
                let turn = tokio::time::timeout(
                    SQLITE_BUSY_TIMEOUT,
                    sqlite_writer_lock(pool).lock_owned(),
                )
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                WriteTx::Sqlite(tx, turn)
            }
            Db::Postgres(pool) => WriteTx::Postgres(pool.begin().await?),
        })
    }
}

/// The writer lock of a SQLite database file, shared by every pool on that file in this
/// process (see [`Db::begin_write`]).
fn sqlite_writer_lock(pool: &SqlitePool) -> Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static LOCKS: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    locks.entry(file).or_default().clone()
}

/// A connection lent by the pool ([`Db::acquire`]); returns to it when dropped.
pub enum PooledConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl PooledConn {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            PooledConn::Sqlite(c) => c.as_conn(),
            PooledConn::Postgres(c) => c.as_conn(),
        }
    }
}

/// A write transaction on either engine ([`Db::begin_write`]). Dropped without
/// [`commit`](WriteTx::commit), it rolls back.
pub enum WriteTx {
    /// The transaction, and this process's turn to write to the file (held until it ends).
    Sqlite(
        Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Postgres(Transaction<'static, Postgres>),
}

impl WriteTx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            WriteTx::Sqlite(tx, _) => tx.as_conn(),
            WriteTx::Postgres(tx) => tx.as_conn(),
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx, _turn) => tx.commit().await,
            WriteTx::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx, _turn) => tx.rollback().await,
            WriteTx::Postgres(tx) => tx.rollback().await,
        }
    }

    /// Commits when `out` is `Ok`, rolls back when it is `Err`, and passes `out` on. A failed
    /// rollback is only logged: the caller's error is the one worth reporting, and the server
    /// discards the transaction when the connection drops anyway.
    pub async fn finish<T, E: From<sqlx::Error>>(self, out: Result<T, E>) -> Result<T, E> {
        match out {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::warn!(error = %rollback, "cannot roll back a failed transaction");
                }
                Err(e)
            }
        }
    }
}

/// Failure to open a database, phrased for an operator.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database at {target}: {source}")]
    Open {
        target: String,
        #[source]
        source: sqlx::Error,
    },
}

/// How long a SQLite writer waits for the write lock (another process's, or this one's
/// queue) before it fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may wait for a primary connection before it fails.
const PRIMARY_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the primary pool. SQLite files (and their folder) are created when missing.
pub async fn connect(cfg: &DatabaseConfig) -> Result<Db, ConnectError> {
    match &cfg.url {
        DatabaseUrl::Sqlite { path } => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::secrets::ensure_data_dir(parent).map_err(|e| {
                    ConfigError::new("DATABASE_URL", format!("the SQLite folder: {}", e.problem))
                })?;
            }
            // SQLite would create the file 0644 under a usual umask, and gives its -wal and
            // -shm files the main file's mode: creating it 0600 first keeps all three private.
            match crate::secrets::private_new_file().open(path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(ConfigError::new(
                        "DATABASE_URL",
                        format!("cannot create the SQLite database {}: {e}", path.display()),
                    )
                    .into());
                }
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                // After a checkpoint, the WAL file is cut back to this size: under continuous
                // writes it otherwise keeps its largest size (65 MB seen in the benchmark).
                .pragma("journal_size_limit", "16777216");
            // Every connection announces the changes it commits (see `notify`).
            let hub = notify::sqlite_hub(path);
            let pool = SqlitePoolOptions::new()
                .max_connections(cfg.max_connections)
                .acquire_timeout(PRIMARY_ACQUIRE_TIMEOUT)
                .before_acquire(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
                .after_connect(move |conn, _| {
                    let hub = hub.clone();
                    Box::pin(async move { notify::install_sqlite_hooks(conn, hub).await })
                })
                .connect_with(options)
                .await
                .map_err(|source| ConnectError::Open {
                    target: cfg.url.redacted(),
                    source,
                })?;
            Ok(Db::Sqlite(pool))
        }
        DatabaseUrl::Postgres { .. } => {
            let options = pg_options("DATABASE_URL", &cfg.url)?;
            let pool = PgPoolOptions::new()
                .max_connections(cfg.max_connections)
                .acquire_timeout(PRIMARY_ACQUIRE_TIMEOUT)
                .before_acquire(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
                .connect_with(options)
                .await
                .map_err(|source| ConnectError::Open {
                    target: cfg.url.redacted(),
                    source,
                })?;
            Ok(Db::Postgres(pool))
        }
    }
}

/// Whether a pooled connection may be lent again: not while sqlx still counts it inside a
/// transaction. A COMMIT that fails (SQLite's "database or disk is full") leaves sqlx's
/// transaction depth raised; the ROLLBACK queued when the transaction drops then fails too
/// (SQLite has already ended the transaction), and the depth never comes down. Lent again,
/// such a connection fails every later `BEGIN` ("non-zero transaction depth"), so the pool
/// closes it instead and opens a fresh one: writes recover when space is freed.
fn outside_transaction<C: sqlx::Connection>(conn: &C) -> bool {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    clean
}

/// Opens a database that must already exist: a SQLite path that is not there is an error
/// (naming `setting`), not a new empty file. For sources of copies and for audits.
pub async fn connect_existing(
    setting: &'static str,
    cfg: &DatabaseConfig,
) -> Result<Db, ConnectError> {
    if let DatabaseUrl::Sqlite { path } = &cfg.url
        && !path.is_file()
    {
        return Err(
            ConfigError::new(setting, format!("no SQLite database at {}", path.display())).into(),
        );
    }
    connect(cfg).await
}

/// Parses PostgreSQL connection options without ever echoing the URL (it holds a password).
pub(crate) fn pg_options(
    setting: &'static str,
    url: &DatabaseUrl,
) -> Result<PgConnectOptions, ConfigError> {
    let DatabaseUrl::Postgres { url } = url else {
        return Err(ConfigError::new(setting, "expected a postgres:// URL"));
    };
    PgConnectOptions::from_str(url.expose_secret())
        .map(|o| o.application_name("vantus"))
        .map_err(|e| ConfigError::new(setting, format!("cannot be used: {}", scrub(&e, url))))
}

/// Removes a secret from an error message, in case a driver quotes its input.
fn scrub(e: &dyn std::fmt::Display, secret: &secrecy::SecretString) -> String {
    let msg = e.to_string();
    let s = secret.expose_secret();
    if s.is_empty() {
        msg
    } else {
        msg.replace(s, "***")
    }
}

/// Whether an error means "this server is unreachable" rather than "this query is wrong":
/// only the former justifies retrying the read elsewhere.
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| {
        // Class 08 (connection exception); admin/crash shutdown and "cannot connect now";
        // too many connections; "not accepting connections"; the database is gone; and a
        // recovery conflict on a hot standby. All mean "this server cannot answer now".
        c.starts_with("08")
            || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "55000" | "3D000" | "40001")
    }))
}

/// Whether the database refused a write because its storage is full: SQLite's SQLITE_FULL
/// (13), PostgreSQL's `disk_full` (53100). The service is unavailable for writes until an
/// operator frees space; reads go on.
pub fn is_storage_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| matches!(c.as_ref(), "13" | "53100")))
}

/// The primary pool plus optional read replicas.
#[derive(Clone, Debug)]
pub struct Store {
    primary: Db,
    replicas: Option<Arc<ReplicaSet>>,
    notices: notify::Notices,
}

impl Store {
    pub fn new(primary: Db, replicas: Option<Arc<ReplicaSet>>) -> Self {
        let notices = notify::Notices::for_db(&primary);
        Self {
            primary,
            replicas,
            notices,
        }
    }

    /// Change notices for this database (see [`notify`]).
    pub fn notices(&self) -> &notify::Notices {
        &self.notices
    }

    /// All writes, and reads that must see them, go here.
    pub fn primary(&self) -> &Db {
        &self.primary
    }

    pub fn replicas(&self) -> Option<&Arc<ReplicaSet>> {
        self.replicas.as_ref()
    }

    pub fn engine(&self) -> Engine {
        self.primary.engine()
    }

    /// Runs a read on a healthy replica whose copy is fresh enough (`is_fresh`, run on that
    /// replica), or on the primary when no replica qualifies or the chosen one fails to answer.
    /// A replica's connection error never reaches the caller.
    ///
    /// The closures receive the pool by value (a cheap handle) so their futures own everything
    /// they use and stay `Send` without lifetime gymnastics.
    pub async fn read<T, Fresh, FreshFut, Read, ReadFut>(
        &self,
        is_fresh: Fresh,
        read: Read,
    ) -> Result<T, sqlx::Error>
    where
        Fresh: FnOnce(Db) -> FreshFut,
        FreshFut: std::future::Future<Output = Result<bool, sqlx::Error>>,
        Read: Fn(Db) -> ReadFut,
        ReadFut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(set) = &self.replicas {
            if let Some(replica) = set.pick() {
                let db = replica.db().clone();
                let outcome = match is_fresh(db.clone()).await {
                    Ok(true) => read(db).await.map(Some),
                    Ok(false) => Ok(None),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(Some(value)) => {
                        replica.count_read();
                        return Ok(value);
                    }
                    Ok(None) => set.count_fallback(replicas::FallbackReason::Stale),
                    Err(e) if is_connection_error(&e) => {
                        replica.mark_down(&e);
                        set.count_fallback(replicas::FallbackReason::Unreachable);
                    }
                    Err(e) => return Err(e),
                }
            } else {
                set.count_fallback(replicas::FallbackReason::NoneHealthy);
            }
        }
        let value = read(self.primary.clone()).await?;
        if let Some(set) = &self.replicas {
            set.count_primary_read();
        }
        Ok(value)
    }

    pub async fn close(&self) {
        self.primary.close().await;
        if let Some(set) = &self.replicas {
            set.close().await;
        }
    }
}
