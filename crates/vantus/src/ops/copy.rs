//! `vantus db copy --from URL --to URL`: SQLite ⇄ PostgreSQL, verified, resumable.
//!
//! The target is migrated to the same schema (without seeding), then each table is copied in
//! dependency order, in primary-key order, in batches; each batch is one INSERT, so the target
//! always holds a clean prefix of every table. A bookkeeping table `_vantus_copy` in the target
//! remembers an unfinished copy: re-running the same command after an interruption carries on
//! after the last key present. At the end every table's row count and SHA-256 are compared on
//! both sides, then the copy is marked finished. Ids, timestamps and text are carried in the
//! engine-neutral encoding, so they arrive exactly as they left.

use std::time::Instant;

use serde::Serialize;

use super::progress::Progress;
use super::{OpsError, TableCheck};
use crate::store::rows::{self, Row};
use crate::store::schema::{self, Table};
use crate::store::{Db, Timestamp, migrate};

#[derive(Debug, Serialize)]
pub struct CopyReport {
    pub source_engine: String,
    pub target_engine: String,
    pub dry_run: bool,
    /// Rows per table in the source (the plan, for a dry run).
    pub plan: Vec<(String, u64)>,
    /// Target state before the copy: "empty", "resuming" or, for a dry run, "not empty".
    pub target_state: String,
    pub copied_rows: u64,
    pub tables: Vec<TableCheck>,
    pub seconds: f64,
}

impl CopyReport {
    pub fn verified(&self) -> bool {
        !self.tables.is_empty() && self.tables.iter().all(TableCheck::ok)
    }
}

const MARKER_DDL: &str = "CREATE TABLE IF NOT EXISTS _vantus_copy (
    source TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT
)";

async fn count_rows(db: &Db, table: &Table) -> Result<u64, OpsError> {
    Ok(on_db!(db, pool => {
        let mut c = pool.acquire().await?;
        rows::count(rows::conn(&mut c), table).await
    })? as u64)
}

async fn table_exists(db: &Db, name: &str) -> Result<bool, sqlx::Error> {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        )
        .bind(name)
        .fetch_one(p)
        .await
        .map(|n| n > 0),
        Db::Postgres(p) => {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                .bind(name)
                .fetch_one(p)
                .await
        }
    }
}

/// Our own bookkeeping, which a migrated but empty target already holds rows in.
const BOOKKEEPING: [&str; 2] = ["_sqlx_migrations", "_vantus_copy"];

/// Every table in the target (in PostgreSQL: in every schema but the system's) that holds at
/// least one row, as `name (N rows)`, straight from the catalog so foreign tables count too.
async fn occupied_tables(target: &Db) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<(String, String)> = match target {
        Db::Sqlite(p) => sqlx::query_as(
            "SELECT 'main', name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .fetch_all(p)
        .await?,
        Db::Postgres(p) => sqlx::query_as(
            "SELECT schemaname::text, tablename::text FROM pg_tables
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
               AND schemaname NOT LIKE 'pg\\_%'
             ORDER BY schemaname <> current_schema(), schemaname, tablename",
        )
        .fetch_all(p)
        .await?,
    };
    let current_schema: String = match target {
        Db::Sqlite(_) => "main".to_owned(),
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT current_schema()::text")
                .fetch_one(p)
                .await?
        }
    };
    let quote = |ident: &str| format!("\"{}\"", ident.replace('"', "\"\""));
    let mut occupied = Vec::new();
    for (schema_name, table) in names {
        // The leads' full-text index (SQLite) is derived from `leads` and never empty.
        let ours = schema_name == current_schema
            && (BOOKKEEPING.contains(&table.as_str())
                || crate::store::search::is_index_table(&table));
        if ours {
            continue;
        }
        let sql = format!(
            "SELECT COUNT(*) FROM {}.{}",
            quote(&schema_name),
            quote(&table)
        );
        let n: i64 = on_db!(target, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await)?;
        if n > 0 {
            let shown = if schema_name == current_schema {
                table
            } else {
                format!("{schema_name}.{table}")
            };
            occupied.push(format!("{shown} ({n} rows)"));
        }
    }
    Ok(occupied)
}

/// An unfinished copy from `source` recorded in the target, if any.
async fn unfinished_copy(target: &Db, source: &str) -> Result<bool, sqlx::Error> {
    if !table_exists(target, "_vantus_copy").await? {
        return Ok(false);
    }
    let n: i64 = on_db!(target, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM _vantus_copy WHERE source = $1 AND finished_at IS NULL"
    ).bind(source).fetch_one(pool).await)?;
    Ok(n > 0)
}

pub async fn run(
    source: &Db,
    source_label: &str,
    target: &Db,
    dry_run: bool,
    interactive: bool,
) -> Result<CopyReport, OpsError> {
    let started = Instant::now();
    let pending = with_conn!(source, conn => migrate::pending(conn).await)?;
    if !pending.is_empty() {
        return Err(OpsError::Refused(format!(
            "the source has {} pending migration(s); run `vantus migrate` against it first",
            pending.len()
        )));
    }
    let tables = schema::tables(source).await?;
    let mut plan = Vec::new();
    for t in &tables {
        plan.push((t.name.clone(), count_rows(source, t).await?));
    }

    // What is in the target already? Every table counts, not only Vantus' own: copying
    // beside another application's data would mix the two in one database.
    let occupied = occupied_tables(target).await?;
    let resuming = !occupied.is_empty() && unfinished_copy(target, source_label).await?;
    let target_state = match (occupied.is_empty(), resuming) {
        (true, _) => "empty",
        (false, true) => "resuming",
        (false, false) => "not empty",
    };
    let report = |tables, copied_rows| CopyReport {
        source_engine: source.engine().as_str().to_owned(),
        target_engine: target.engine().as_str().to_owned(),
        dry_run,
        plan: plan.clone(),
        target_state: target_state.to_owned(),
        copied_rows,
        tables,
        seconds: started.elapsed().as_secs_f64(),
    };
    if dry_run {
        return Ok(report(Vec::new(), 0));
    }
    if target_state == "not empty" {
        return Err(OpsError::Refused(format!(
            "the target database already holds data ({}) that did not come from an unfinished copy of this source; copy into an empty database",
            occupied.join(", ")
        )));
    }

    migrate::migrate_to(target, None).await?;
    on_db!(target, pool => sqlx::query(MARKER_DDL).execute(pool).await.map(|_| ()))?;
    if !resuming {
        on_db!(target, pool => sqlx::query(
            "INSERT INTO _vantus_copy (source, started_at) VALUES ($1, $2)"
        ).bind(source_label).bind(Timestamp::now().to_fixed_string()).execute(pool).await.map(|_| ()))?;
    }
    let target_tables = schema::tables(target).await?;

    let total: u64 = plan.iter().map(|(_, n)| n).sum();
    let mut progress = Progress::new("copy", total, interactive);
    let mut copied = 0u64;
    for table in &tables {
        let dest = target_tables
            .iter()
            .find(|t| t.name == table.name)
            .ok_or_else(|| {
                OpsError::Refused(format!(
                    "the target has no table {} after migrating",
                    table.name
                ))
            })?;
        progress.stage(&table.name);
        let mut after = on_db!(target, pool => {
            let mut c = pool.acquire().await?;
            rows::max_key(rows::conn(&mut c), dest).await
        })?;
        if after.is_some() {
            // Count what is already there toward progress.
            progress.add(count_rows(target, dest).await?);
        }
        let batch = rows::batch_size(table.columns.len());
        loop {
            let page: Vec<Row> = on_db!(source, pool => {
                let mut c = pool.acquire().await?;
                rows::read_page(rows::conn(&mut c), table, after.as_ref(), batch).await
            })?;
            if page.is_empty() {
                break;
            }
            let pk = table
                .columns
                .iter()
                .position(|c| c.name == table.primary_key)
                .expect("pk is a column");
            let last = page.last().map(|r| r[pk].clone());
            on_db!(target, pool => {
                let mut c = pool.acquire().await?;
                rows::insert(rows::conn(&mut c), dest, &table.columns, &page).await
            })?;
            copied += page.len() as u64;
            progress.add(page.len() as u64);
            after = last;
        }
    }
    schema::reset_sequences(target).await?;
    progress.stage("verifying");

    let mut checks = Vec::new();
    for table in &tables {
        let dest = Table {
            columns: table.columns.clone(),
            ..target_tables
                .iter()
                .find(|t| t.name == table.name)
                .expect("exists")
                .clone()
        };
        let s = on_db!(source, pool => {
            let mut c = pool.acquire().await?;
            rows::digest(rows::conn(&mut c), table).await
        })?;
        let d = on_db!(target, pool => {
            let mut c = pool.acquire().await?;
            rows::digest(rows::conn(&mut c), &dest).await
        })?;
        checks.push(TableCheck {
            table: table.name.clone(),
            expected_rows: s.rows,
            actual_rows: d.rows,
            expected_sha256: s.sha256(),
            actual_sha256: d.sha256(),
        });
    }
    progress.finish();
    let out = report(checks, copied);
    if out.verified() {
        on_db!(target, pool => sqlx::query(
            "UPDATE _vantus_copy SET finished_at = $2 WHERE source = $1 AND finished_at IS NULL"
        ).bind(source_label).bind(Timestamp::now().to_fixed_string()).execute(pool).await.map(|_| ()))?;
    }
    Ok(out)
}
