//! Change notices: how every process learns, at once, that content or tenant hosts changed.
//!
//! Caches above this layer (the site's rendered pages, the in-memory `tenant_hosts`) stay
//! valid until a notice says otherwise. Notices come from the database itself, so every
//! writer (the portal, a CLI, a restore, raw SQL by an operator) is covered without having
//! to remember to announce its change:
//!
//! * **PostgreSQL**: triggers on `site_state`, `tenant_hosts` and `tenants` call `pg_notify`
//!   ([`install_triggers`]). A notification is delivered only when its transaction commits,
//!   and never for one that rolls back, so a listener can never see a change before it is
//!   readable. Each process holds one `LISTEN` connection ([`Notices::listen`]); while it is
//!   down (a restart, a failover, `pg_terminate_backend`) [`Notices::push_is_up`] is false,
//!   and consumers fall back to polling until it reconnects (with backoff). On reconnecting
//!   a [`Notice::Resync`] is sent, because notifications sent meanwhile are lost.
//! * **SQLite**: one server process owns the file, so notices stay in process. SQLite's update
//!   hook marks which watched tables a transaction touched and its commit hook (rollback hook)
//!   sends (forgets) them, on every connection of every pool on that file.
//!
//! Redis pub/sub is deliberately not used even when `REDIS_URL` is set: a publish after commit
//! is lost if the process dies in between, and a publish before commit announces a change that
//! may roll back; `NOTIFY` is transactional and needs no extra service.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Conn, Db};

/// The PostgreSQL channel every notice travels on.
pub const CHANNEL: &str = "vantus_invalidation";

/// Notices buffered per receiver; a receiver that falls further behind gets a resync.
const BUFFER: usize = 256;
/// Longest wait between two attempts to re-open the `LISTEN` connection.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A tenant's content generation moved; PostgreSQL says which tenant and to what.
    Content {
        tenant: Option<Uuid>,
        generation: Option<i64>,
    },
    /// `tenant_hosts` or a tenant's name changed.
    Hosts,
    /// Notices may have been missed: re-read everything cached.
    Resync,
}

impl Notice {
    /// Parses a notification payload as the triggers write it (`content:<tenant>:<generation>`
    /// or `hosts`); anything else is treated as "re-read everything".
    pub fn parse(payload: &str) -> Notice {
        if payload == "hosts" {
            return Notice::Hosts;
        }
        let mut parts = payload.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("content"), Some(tenant), generation) => match tenant.parse() {
                Ok(tenant) => Notice::Content {
                    tenant: Some(tenant),
                    generation: generation.and_then(|g| g.parse().ok()),
                },
                Err(_) => Notice::Resync,
            },
            _ => Notice::Resync,
        }
    }
}

/// The notices of one database, shared by every pool and task of this process that uses it.
#[derive(Clone)]
pub struct Notices(Arc<Inner>);

struct Inner {
    tx: broadcast::Sender<Notice>,
    /// Whether notices are flowing now (always on SQLite; on PostgreSQL while `LISTEN` holds).
    up: AtomicBool,
    /// The `LISTEN` task runs once per hub, however many servers share it.
    listening: AtomicBool,
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notices")
            .field("push_up", &self.push_is_up())
            .finish()
    }
}

impl Notices {
    fn new(up: bool) -> Self {
        Notices(Arc::new(Inner {
            tx: broadcast::channel(BUFFER).0,
            up: AtomicBool::new(up),
            listening: AtomicBool::new(false),
        }))
    }

    /// The notices of `db`: for SQLite the hub its connection hooks send to (one per file);
    /// for PostgreSQL a hub that stays down until [`listen`](Self::listen) is started.
    pub fn for_db(db: &Db) -> Self {
        match db {
            Db::Sqlite(pool) => sqlite_hub(pool.connect_options().get_filename()),
            Db::Postgres(_) => Notices::new(false),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.0.tx.subscribe()
    }

    /// Whether a change committed anywhere reaches this process without polling right now.
    pub fn push_is_up(&self) -> bool {
        self.0.up.load(Ordering::Acquire)
    }

    fn send(&self, notice: Notice) {
        // No receiver (a CLI command) is not an error: nobody caches anything.
        let _ = self.0.tx.send(notice);
    }

    fn set_up(&self, up: bool) {
        self.0.up.store(up, Ordering::Release);
        metrics::gauge!("vantus_invalidation_push_up").set(if up { 1.0 } else { 0.0 });
    }

    /// On PostgreSQL, keeps a `LISTEN` connection open until `stop` (reconnecting with
    /// backoff) and forwards its notifications. Nothing to do on SQLite. Started once per hub.
    pub fn listen(&self, db: &Db, stop: CancellationToken) {
        let Db::Postgres(pool) = db else {
            self.set_up(true);
            return;
        };
        if self.0.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        self.set_up(false);
        tokio::spawn(listen_postgres(self.clone(), pool.clone(), stop));
    }
}

async fn listen_postgres(hub: Notices, pool: PgPool, stop: CancellationToken) {
    // Its own pool of one, on the same server and credentials: `PgListener` holds its
    // connection for good, which should not shrink the pool requests use, and a reconnect
    // then opens a new connection rather than reusing one the pool holds.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut backoff = Duration::from_millis(100);
    // Logged once per outage, not once per failed attempt.
    let mut outage_logged = false;
    loop {
        let opened = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.cancelled() => break,
            opened = opened => match opened {
                Ok(listener) => listener,
                Err(e) => {
                    if !outage_logged {
                        tracing::warn!(error = %e, "change notices unavailable (LISTEN failed); polling for changes until it works");
                        outage_logged = true;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        hub.set_up(true);
        // `outage_logged` is set from the first failure until this success.
        if outage_logged {
            tracing::info!("change notices restored (LISTEN); polling stopped");
            // Whatever changed while nobody listened was not announced.
            hub.send(Notice::Resync);
        }
        backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    hub.set_up(false);
                    return;
                }
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => hub.send(Notice::parse(n.payload())),
                    // `None`: the connection was lost; `Err`: it broke otherwise.
                    Ok(None) | Err(_) => break,
                }
            }
        }
        hub.set_up(false);
        // Wakes consumers waiting for a notice, so they start polling.
        hub.send(Notice::Resync);
        metrics::counter!("vantus_invalidation_push_drops_total").increment(1);
        tracing::warn!(
            "change notices interrupted (LISTEN connection lost); polling until it reconnects"
        );
        outage_logged = true;
    }
    hub.set_up(false);
}

/// Installs (or replaces) the PostgreSQL triggers that announce changes; idempotent, run after
/// every migration under the migration lock. Tables a partial migration has not made yet are
/// skipped. Nothing to do on SQLite (its hooks are set on each connection).
pub async fn install_triggers(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    let Conn::Postgres(c) = conn else {
        return Ok(());
    };
    sqlx::raw_sql(
        r#"
CREATE OR REPLACE FUNCTION vantus_notify_content() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('vantus_invalidation',
        'content:' || NEW.tenant_id::text || ':' || NEW.content_generation::text);
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION vantus_notify_hosts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('vantus_invalidation', 'hosts');
    RETURN NULL;
END
$fn$;
DO $do$
BEGIN
    IF to_regclass('site_state') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS vantus_notify_content ON site_state;
        CREATE TRIGGER vantus_notify_content AFTER INSERT OR UPDATE OF content_generation
            ON site_state FOR EACH ROW EXECUTE FUNCTION vantus_notify_content();
    END IF;
    IF to_regclass('tenant_hosts') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS vantus_notify_hosts ON tenant_hosts;
        CREATE TRIGGER vantus_notify_hosts AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON tenant_hosts FOR EACH STATEMENT EXECUTE FUNCTION vantus_notify_hosts();
    END IF;
    IF to_regclass('tenants') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS vantus_notify_tenants ON tenants;
        CREATE TRIGGER vantus_notify_tenants AFTER UPDATE OR DELETE
            ON tenants FOR EACH STATEMENT EXECUTE FUNCTION vantus_notify_hosts();
    END IF;
END
$do$;
"#,
    )
    .execute(&mut **c)
    .await
    .map(|_| ())
}

/// The hub of one SQLite file, shared by every pool of this process on it (tests run several
/// servers on one file, as replicas would).
pub(super) fn sqlite_hub(file: &std::path::Path) -> Notices {
    static HUBS: OnceLock<Mutex<HashMap<PathBuf, Notices>>> = OnceLock::new();
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    HUBS.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(file)
        .or_insert_with(|| Notices::new(true))
        .clone()
}

/// Bits of the watched tables a transaction touched.
const CONTENT: u8 = 1;
const HOSTS: u8 = 2;

/// Sets the hooks that turn committed changes of the watched tables into notices, on one
/// SQLite connection (called for every new connection of a pool).
///
/// The commit hook runs just before SQLite makes the commit durable, so a consumer that reads
/// at once may still see the old row: consumers re-read until the change shows (see
/// `site::invalidation`).
pub async fn install_sqlite_hooks(
    conn: &mut sqlx::SqliteConnection,
    hub: Notices,
) -> Result<(), sqlx::Error> {
    let touched = Arc::new(AtomicU8::new(0));
    let mut handle = conn.lock_handle().await?;
    {
        let touched = touched.clone();
        handle.set_update_hook(move |change| {
            let bit = match change.table {
                "site_state" => CONTENT,
                "tenant_hosts" | "tenants" => HOSTS,
                _ => 0,
            };
            if bit != 0 {
                touched.fetch_or(bit, Ordering::AcqRel);
            }
        });
    }
    {
        let touched = touched.clone();
        handle.set_commit_hook(move || {
            let bits = touched.swap(0, Ordering::AcqRel);
            if bits & CONTENT != 0 {
                hub.send(Notice::Content {
                    tenant: None,
                    generation: None,
                });
            }
            if bits & HOSTS != 0 {
                hub.send(Notice::Hosts);
            }
            true
        });
    }
    handle.set_rollback_hook(move || {
        touched.store(0, Ordering::Release);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_unknown_ones_mean_resync() {
        let t = Uuid::now_v7();
        assert_eq!(
            Notice::parse(&format!("content:{t}:42")),
            Notice::Content {
                tenant: Some(t),
                generation: Some(42)
            }
        );
        assert_eq!(Notice::parse("hosts"), Notice::Hosts);
        assert_eq!(Notice::parse("content:nope:1"), Notice::Resync);
        assert_eq!(Notice::parse(""), Notice::Resync);
    }
}
