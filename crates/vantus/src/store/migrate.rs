//! Schema migrations, one folder for both engines (`migrations/` at the repository root).
//!
//! On PostgreSQL, migrating (and the seeding that follows) happens under a session-level
//! advisory lock, so any number of replicas starting together apply each migration exactly once;
//! the others wait, then find nothing to do. SQLite serialises writers by itself.
//!
//! Migrations already applied by a newer release are tolerated (`ignore_missing`): during a
//! rolling upgrade old pods keep serving on the expanded schema. Schema changes are therefore
//! written expand-then-contract (ADR 0001).

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use super::{Conn, Db, append_only, on_conn, search};

/// Key of the advisory lock held while migrating and seeding ("vantus:migrate").
const MIGRATION_LOCK_KEY: i64 = 0x7661_6e74_7573_6d67;

/// Embeds `migrations/<file>.sql` as migration `version`, described as sqlx's `migrate!`
/// would describe it (the file name after the version, `_` read as a space).
macro_rules! migration {
    ($version:literal, $file:literal) => {
        (
            $version,
            $file,
            include_str!(concat!("../../../../migrations/", $file, ".sql")),
        )
    };
}

/// Every migration, in order: version, file name (without `.sql`) and SQL. Listed by hand
/// rather than by sqlx's `migrate!` macro, whose proc-macro crate builds both database drivers
/// a second time (ADR 0103); `every_migration_file_is_listed` fails when a file is missing.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    migration!(1, "0001_foundation"),
    migration!(2, "0002_operations"),
    migration!(3, "0003_leads"),
    migration!(4, "0004_audit_chain"),
    migration!(5, "0005_accounts"),
    migration!(6, "0006_mfa"),
    migration!(7, "0007_invitations"),
    migration!(8, "0008_tenant_admin"),
    migration!(9, "0009_passkeys"),
    migration!(10, "0010_crm"),
    migration!(11, "0011_cms"),
    migration!(12, "0012_media"),
    migration!(13, "0013_schedule_revision"),
];

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, file, sql)| {
            let description = file
                .split_once('_')
                .map_or(file, |(_, d)| d)
                .replace('_', " ");
            // The same checksum and no-transaction marker as `migrate!`, so databases migrated
            // by earlier releases (which used the macro) see the same migrations.
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    m.set_ignore_missing(true);
    m
}

/// Versions and descriptions this binary knows, in order.
pub fn known() -> Vec<(i64, String)> {
    migrator()
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}

/// Applies pending migrations, then awaits `after` (seeding), all under the migration lock.
/// Start-up and `vantus migrate` go through `content::seed::migrate_and_seed`.
/// `after` is a future, so nothing in it runs before the migrations are in place.
pub async fn migrate_then<T>(
    db: &Db,
    after: impl std::future::Future<Output = Result<T, SetupError>>,
) -> Result<T, SetupError> {
    migrate_to_then(db, None, after).await
}

/// Applies migrations up to `target` (all when `None`), without seeding: for databases that
/// are about to receive a restore or a copy.
pub async fn migrate_to(db: &Db, target: Option<i64>) -> Result<(), SetupError> {
    migrate_to_then(db, target, async { Ok(()) }).await
}

async fn migrate_to_then<T>(
    db: &Db,
    target: Option<i64>,
    after: impl std::future::Future<Output = Result<T, SetupError>>,
) -> Result<T, SetupError> {
    let m = migrator();
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            // `run_direct` on a concrete connection rather than `run(pool)`: the generic
            // `Acquire` bound of `run` makes the future non-`Send` (sqlx's own workaround).
            m.run_direct(target, &mut *conn, false).await?;
            guard_audit_log(&mut Conn::Sqlite(&mut conn)).await?;
            super::notify::install_triggers(&mut Conn::Sqlite(&mut conn)).await?;
            search::install(&mut Conn::Sqlite(&mut conn)).await?;
            drop(conn);
            after.await
        }
        Db::Postgres(pool) => {
            let mut lock_conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut *lock_conn)
                .await?;
            let result = async {
                m.run_direct(target, &mut *lock_conn, false).await?;
                guard_audit_log(&mut Conn::Postgres(&mut lock_conn)).await?;
                super::notify::install_triggers(&mut Conn::Postgres(&mut lock_conn)).await?;
                search::install(&mut Conn::Postgres(&mut lock_conn)).await?;
                after.await
            }
            .await;
            // Unlock even on failure; if the connection is broken the server drops the lock.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut *lock_conn)
                .await;
            result
        }
    }
}

/// Installs the append-only triggers of `audit_log` once the chain migration is applied
/// (they cannot be written in the SQL both engines share; see [`append_only`]).
async fn guard_audit_log(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    if append_only::audit_chain_applied(conn).await? {
        append_only::install_guards(conn).await?;
    }
    Ok(())
}

/// Migrations this binary knows that the database has not applied successfully.
pub async fn pending(conn: &mut Conn<'_>) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let applied: Vec<i64> = match on_conn!(conn.reborrow(), c => sqlx::query_scalar::<_, i64>(
        "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version"
    ).fetch_all(c).await)
    {
        Ok(v) => v,
        Err(sqlx::Error::Database(e)) if is_missing_table(e.as_ref()) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(known()
        .into_iter()
        .filter(|(v, _)| !applied.contains(v))
        .collect())
}

fn is_missing_table(e: &dyn sqlx::error::DatabaseError) -> bool {
    // PostgreSQL: undefined_table. SQLite has no code for it, only the message.
    e.code().as_deref() == Some("42P01") || e.message().contains("no such table")
}

/// Why migrating or seeding failed, phrased for an operator.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Seed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|(_, f, _)| format!("{f}.sql"))
            .collect();
        assert_eq!(
            listed, files,
            "MIGRATIONS must list every file of migrations/, in order"
        );
        for (version, file, _) in MIGRATIONS {
            let prefix: i64 = file.split('_').next().unwrap().parse().unwrap();
            assert_eq!(*version, prefix, "{file} is listed with the wrong version");
        }
    }

    #[test]
    fn migrations_are_described_like_sqlx_describes_them() {
        let known = known();
        assert_eq!(known.len(), MIGRATIONS.len());
        assert_eq!(known[0], (1, "foundation".to_string()));
        assert!(
            known.contains(&(8, "tenant admin".to_string())),
            "{known:?}"
        );
    }
}
