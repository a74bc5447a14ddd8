//! The audit log's dialect-specific guards: the triggers that make `audit_log` append-only,
//! and the lock audit writers serialise on. The chain itself is computed in `crate::audit`,
//! once for both engines; only what SQL cannot say the same way on both lives here.
//!
//! Why triggers are installed from code rather than a migration: one migration folder serves
//! both engines (ADR 0001), and SQLite's `CREATE TRIGGER … BEGIN … END` and PostgreSQL's
//! trigger functions have no common form. They are (re)created idempotently after every
//! migration run once migration [`AUDIT_CHAIN_MIGRATION`] is applied, under the migration lock.

use super::{Conn, on_conn};

/// The migration that adds the chain columns and the `_audit_maintenance` bypass table.
pub const AUDIT_CHAIN_MIGRATION: i64 = 4;

/// Key of the transaction-level advisory lock audit writers take on PostgreSQL
/// ("vantus:audit" in ASCII, like the migration lock's key).
const AUDIT_CHAIN_LOCK_KEY: i64 = 0x7661_6e74_7573_6175;

/// What the triggers say when they refuse a change.
const REFUSAL: &str = "audit_log is append-only: rows cannot be changed or deleted (see docs/operations/audit-log.md)";

/// Makes the caller the only audit writer until its transaction ends, so reading the chain
/// head and appending after it cannot interleave with another writer.
///
/// PostgreSQL: `pg_advisory_xact_lock`, held until commit or rollback. Under READ COMMITTED the
/// next statement (reading the head) takes a fresh snapshot, which includes the rows of the
/// writer that held the lock before, since it released the lock only by committing. Locking
/// the head row instead (`SELECT … ORDER BY seq DESC LIMIT 1 FOR UPDATE`) would fork the chain:
/// a second writer waits on the same old head row, and when the first commits, PostgreSQL
/// re-checks that row, finds it still matching, and hands it over as "the head" again, so both
/// append after the same row (and an empty table has no row to lock at all).
///
/// SQLite: nothing to do. Write transactions start with `BEGIN IMMEDIATE` (and queue on the
/// per-file writer lock of `store::Db::begin_write`), so the whole transaction is the only
/// writer. Outside a transaction (an autocommitted connection) neither engine serialises;
/// the unique index on `seq` then makes a racing append fail rather than fork the chain.
pub async fn lock_audit_chain(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    if let Conn::Postgres(c) = conn {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_CHAIN_LOCK_KEY)
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}

/// Whether the chain migration is applied (the guards and the bypass table exist).
pub async fn audit_chain_applied(conn: &mut Conn<'_>) -> Result<bool, sqlx::Error> {
    let n: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = $1 AND success = TRUE"
    ).bind(AUDIT_CHAIN_MIGRATION).fetch_one(c).await)?;
    Ok(n > 0)
}

/// Creates (or replaces) the triggers that reject UPDATE and DELETE (and on PostgreSQL
/// TRUNCATE) on `audit_log` unless the transaction has a row in `_audit_maintenance`.
///
/// The bypass is confined to one transaction on both engines: a row another transaction
/// inserted is invisible until it commits, and the sanctioned users delete it before they do.
/// SQLite resolves a trigger's table names in the trigger's own schema, so a TEMP table of the
/// same name cannot stand in for the marker; on PostgreSQL the function names the marker
/// table by the audited table's schema for the same reason (a temporary table would otherwise
/// come first on the search path).
pub async fn install_guards(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    match conn {
        Conn::Sqlite(c) => {
            for (name, op) in [
                ("audit_log_no_update", "UPDATE"),
                ("audit_log_no_delete", "DELETE"),
            ] {
                let sql = format!(
                    "CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON audit_log
                     WHEN NOT EXISTS (SELECT 1 FROM _audit_maintenance)
                     BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut **c)
                    .await?;
            }
        }
        Conn::Postgres(c) => {
            let function = format!(
                "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
                 LANGUAGE plpgsql AS $body$
                 DECLARE
                     sanctioned boolean;
                 BEGIN
                     EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I._audit_maintenance)',
                                    TG_TABLE_SCHEMA) INTO sanctioned;
                     IF sanctioned THEN
                         RETURN NULL;
                     END IF;
                     RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'insufficient_privilege',
                         DETAIL = TG_OP || ' on audit_log was refused';
                 END
                 $body$"
            );
            sqlx::query(sqlx::AssertSqlSafe(function))
                .execute(&mut **c)
                .await?;
            // Created once: creating a trigger locks the table against every writer, which a
            // replica's start-up must not do to a serving site each time.
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger
                 WHERE tgname = 'audit_log_append_only' AND tgrelid = 'audit_log'::regclass)",
            )
            .fetch_one(&mut **c)
            .await?;
            if exists {
                return Ok(());
            }
            // Statement-level: the check runs once per statement, not once per row, so a
            // sanctioned restore deleting many rows pays for it once.
            sqlx::query(
                "CREATE TRIGGER audit_log_append_only
                 BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
                 FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
            )
            .execute(&mut **c)
            .await?;
        }
    }
    Ok(())
}
