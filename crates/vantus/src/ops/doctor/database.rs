//! The database: engine, filesystem, connection, migrations, clock, and read replicas.

use std::time::Duration;

use super::{Doctor, ENV, Finding, disk};
use crate::config::DatabaseUrl;
use crate::store::{self, Db, ReplicaSet, ReplicaState};

/// What connecting to the primary depends on (the default SQLite file lives in the data folder).
pub(super) const NEEDS: &[&str] = &[
    ENV,
    "DATABASE_URL",
    "VANTUS_DATA_DIR",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_CONNECT_TIMEOUT",
];

/// Checks the primary; returns it connected, for the checks that read it.
pub(super) async fn check(d: &mut Doctor<'_>) -> Option<Db> {
    if !d.can_run("database", NEEDS) {
        return None;
    }
    engine(d);
    let db = connect(d).await?;
    d.ok(
        "database",
        format!("{} answers", d.config.database.url.redacted()),
    );
    migrations(d, &db).await;
    clock(d, &db).await;
    Some(db)
}

fn engine(d: &mut Doctor<'_>) {
    match &d.config.database.url {
        DatabaseUrl::Sqlite { path } => {
            if d.production() {
                d.push(Finding::critical("database-engine", "production runs on SQLite")
                    .impact("One file on one disk: no replicas, no failover, and a dead disk means dead data (the audit's second finding).")
                    .fix("Move to PostgreSQL: `vantus db copy --from sqlite://… --to postgres://…`, then set DATABASE_URL."));
            } else {
                d.ok("database-engine", "SQLite (fine for development)");
            }
            if let Some(fs) = disk::filesystem_kind(path) {
                d.push(Finding::critical("database-filesystem", format!("the SQLite file is on a {fs} filesystem"))
                    .impact("SQLite's locking is unreliable on network filesystems; concurrent writers can corrupt the database.")
                    .fix("Keep the SQLite file on a local disk, or use PostgreSQL."));
            }
        }
        DatabaseUrl::Postgres { .. } => d.ok("database-engine", "PostgreSQL"),
    }
}

async fn connect(d: &mut Doctor<'_>) -> Option<Db> {
    let found = match tokio::time::timeout(
        Duration::from_secs(5),
        store::connect(&d.config.database),
    )
    .await
    {
        Ok(Ok(db)) => return Some(db),
        Ok(Err(e)) => format!("cannot connect: {e}"),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    d.push(
        Finding::critical("database", found)
            .impact("Nothing can be served or saved.")
            .fix("Check DATABASE_URL, the network and the database server."),
    );
    None
}

async fn migrations(d: &mut Doctor<'_>, db: &Db) {
    let finding = match with_conn!(db, conn => store::migrate::pending(conn).await) {
        Ok(p) if p.is_empty() => Finding::ok("migrations", "all applied"),
        Ok(p) => Finding::high("migrations", format!("{} migration(s) pending", p.len()))
            .impact("The running code may expect tables or columns that do not exist yet.")
            .fix("Run `vantus migrate` (the Kubernetes migration Job does this before a rollout)."),
        Err(e) => Finding::high(
            "migrations",
            format!("cannot read the migration ledger: {e}"),
        )
        .impact("Unknown schema state.")
        .fix("Run `vantus migrate --status`."),
    };
    d.push(finding);
}

async fn clock(d: &mut Doctor<'_>, db: &Db) {
    let Db::Postgres(pool) = db else { return };
    let Ok(server) =
        sqlx::query_scalar::<_, f64>("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
            .fetch_one(pool)
            .await
    else {
        return;
    };
    let local = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
    let skew = (local - server).abs();
    let finding = if skew > 30.0 {
        Finding::high(
            "clock",
            format!("this host's clock is {skew:.1} s away from the database's"),
        )
        .impact("Schedules fire at the wrong time, TOTP codes fail, audit timestamps disagree.")
        .fix("Run NTP (chrony/systemd-timesyncd) on every host.")
    } else if skew > 2.0 {
        Finding::medium(
            "clock",
            format!("clock skew of {skew:.1} s with the database"),
        )
        .impact("TOTP and schedule drift.")
        .fix("Run NTP on every host.")
    } else {
        Finding::ok("clock", format!("within {skew:.2} s of the database"))
    };
    d.push(finding);
}

pub(super) async fn replicas(d: &mut Doctor<'_>) {
    let config = &d.config.database;
    if config.replica_urls.is_empty()
        || !d.can_run(
            "replicas",
            &["DATABASE_REPLICA_URLS", "DATABASE_REPLICA_MAX_LAG"],
        )
    {
        return;
    }
    let set = match ReplicaSet::new(&config.replica_urls, 1, config.replica_max_lag) {
        Ok(s) => s,
        Err(e) => {
            d.push(
                Finding::high("replicas", e.to_string())
                    .impact("Reads fall back to the primary.")
                    .fix("Fix DATABASE_REPLICA_URLS."),
            );
            return;
        }
    };
    set.probe_all().await;
    for r in set.replicas() {
        let finding = match r.state() {
            ReplicaState::Healthy => Finding::ok(
                "replicas",
                format!("{}: lag {} ms", r.name(), r.lag().as_millis()),
            ),
            ReplicaState::Lagging => Finding::medium(
                "replicas",
                format!(
                    "{} lags {} s (limit {} s)",
                    r.name(),
                    r.lag().as_secs(),
                    config.replica_max_lag.as_secs()
                ),
            )
            .impact("Page reads go to the primary until it catches up.")
            .fix("Check the replica's replay and network."),
            _ => Finding::high("replicas", format!("{} is unreachable", r.name()))
                .impact("Page reads all go to the primary.")
                .fix("Check the replica server and DATABASE_REPLICA_URLS."),
        };
        d.push(finding);
    }
    set.close().await;
}
