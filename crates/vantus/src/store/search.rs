//! The leads' full-text index: the one place where the two engines' search differs.
//!
//! * SQLite: an FTS5 table `_leads_fts` (its rowid is the lead's rowid, `lead_id` carries the
//!   lead's id), kept in step by triggers on `leads`.
//! * PostgreSQL: a GIN index `leads_search` on an expression of the lead's text columns.
//!
//! Neither can be written in the SQL both engines share, so [`install`] creates them after
//! every migration run (under the migration lock), idempotently, once migration
//! [`CRM_MIGRATION`] is applied. The FTS table and its shadow tables start with `_`, so
//! backups, restores and `db copy` (which enumerate application tables, `store::schema`) leave
//! them out; the triggers rebuild the index as rows are restored or copied, and [`install`]
//! rebuilds the whole index when its row count disagrees with `leads` (an index created on a
//! database that already had leads, or one filled while the triggers were absent). A GIN index
//! is maintained by PostgreSQL itself. The index is never `VACUUM`ed in place: SQLite may
//! renumber the rowids of a table without an INTEGER PRIMARY KEY when it does.
//!
//! Both engines tokenise the same way: runs of letters and digits are words (FTS5's
//! `unicode61`; on PostgreSQL everything else is replaced by spaces before `to_tsvector` with
//! the `simple` configuration, which neither stems nor drops stop words). A search is the
//! words of the query, each as a prefix, all required ([`words`]).

use super::{Conn, on_conn};

/// The migration that makes `leads` what the index covers.
pub const CRM_MIGRATION: i64 = 10;

/// Names of SQLite tables that belong to the index (the FTS5 table and its shadow tables):
/// derived data, never counted as content by `db copy`'s "is the target empty" check.
pub fn is_index_table(name: &str) -> bool {
    name.starts_with("_leads_fts")
}

/// The indexed text of a lead on PostgreSQL: the index's expression, which queries repeat
/// word for word so the planner uses the index.
const PG_DOCUMENT: &str = "to_tsvector('simple'::regconfig, regexp_replace(name || ' ' || email || ' ' || coalesce(company, '') || ' ' || message, '[^[:alnum:]]+', ' ', 'g'))";

/// The words of a search as both engines tokenise them, at most 8 (more narrow nothing a
/// person can read, and bound the query's cost).
pub fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_lowercase)
        .collect()
}

/// The condition "the lead `leads.id` matches the search bound as `$n`" for `conn`'s engine,
/// and the value to bind for `words` (never empty: callers skip the condition without words).
pub fn lead_condition(conn: &Conn<'_>, n: usize, words: &[String]) -> (String, String) {
    match conn {
        Conn::Sqlite(_) => (
            format!("leads.id IN (SELECT lead_id FROM _leads_fts WHERE _leads_fts MATCH ${n})"),
            // Each word quoted (FTS5 syntax in it is literal), as a prefix.
            words
                .iter()
                .map(|w| format!("\"{w}\"*"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Conn::Postgres(_) => (
            // The matching ids are found first (a GIN bitmap scan, run once as an init plan),
            // then the listed rows are looked up among them. Written as a plain condition on
            // the document, the planner prefers the list's ordered index scan and recomputes
            // every row's document until a page is full (hundreds of ms at 100,000 leads).
            format!(
                "leads.id = ANY(ARRAY(SELECT s.id FROM leads AS s \
                 WHERE {PG_DOCUMENT} @@ to_tsquery('simple'::regconfig, ${n})))"
            ),
            // Only letters and digits remain in a word: nothing in it is tsquery syntax.
            words
                .iter()
                .map(|w| format!("{w}:*"))
                .collect::<Vec<_>>()
                .join(" & "),
        ),
    }
}

async fn crm_applied(conn: &mut Conn<'_>) -> Result<bool, sqlx::Error> {
    let n: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = $1 AND success = TRUE"
    ).bind(CRM_MIGRATION).fetch_one(c).await)?;
    Ok(n > 0)
}

const SQLITE_DDL: [&str; 4] = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS _leads_fts USING fts5(
         lead_id UNINDEXED, name, email, company, message,
         tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS _leads_fts_insert AFTER INSERT ON leads BEGIN
         INSERT INTO _leads_fts (rowid, lead_id, name, email, company, message)
         VALUES (new.rowid, new.id, new.name, new.email, coalesce(new.company, ''), new.message);
     END",
    "CREATE TRIGGER IF NOT EXISTS _leads_fts_delete AFTER DELETE ON leads BEGIN
         DELETE FROM _leads_fts WHERE rowid = old.rowid;
     END",
    "CREATE TRIGGER IF NOT EXISTS _leads_fts_update
     AFTER UPDATE OF name, email, company, message ON leads BEGIN
         DELETE FROM _leads_fts WHERE rowid = old.rowid;
         INSERT INTO _leads_fts (rowid, lead_id, name, email, company, message)
         VALUES (new.rowid, new.id, new.name, new.email, coalesce(new.company, ''), new.message);
     END",
];

/// Creates the index when missing (and on SQLite fills it when it disagrees with `leads`).
/// Safe to run any number of times; a no-op before migration [`CRM_MIGRATION`].
pub async fn install(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    if !crm_applied(conn).await? {
        return Ok(());
    }
    match conn {
        Conn::Sqlite(c) => {
            for ddl in SQLITE_DDL {
                sqlx::query(ddl).execute(&mut **c).await?;
            }
            let (indexed, leads): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM _leads_fts), (SELECT COUNT(*) FROM leads)",
            )
            .fetch_one(&mut **c)
            .await?;
            if indexed != leads {
                rebuild_sqlite(c).await?;
            }
        }
        Conn::Postgres(c) => {
            // Created once: building an index blocks writers to the table, which a replica's
            // start-up must not do to a serving site each time.
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_indexes
                 WHERE schemaname = current_schema() AND indexname = 'leads_search')",
            )
            .fetch_one(&mut **c)
            .await?;
            if !exists {
                let ddl = format!(
                    "CREATE INDEX IF NOT EXISTS leads_search ON leads USING GIN ({PG_DOCUMENT})"
                );
                sqlx::query(sqlx::AssertSqlSafe(ddl))
                    .execute(&mut **c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Refills the FTS table from `leads` in one transaction.
async fn rebuild_sqlite(c: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = c.begin().await?;
    sqlx::query("DELETE FROM _leads_fts")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO _leads_fts (rowid, lead_id, name, email, company, message)
         SELECT rowid, id, name, email, coalesce(company, ''), message FROM leads",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_its_words_without_syntax() {
        assert_eq!(
            words("  Ada's \"pricing\"* OR x-y "),
            ["ada", "s", "pricing", "or", "x", "y"]
        );
        assert!(words("*** ()").is_empty());
        assert_eq!(words("a b c d e f g h i j").len(), 8);
    }
}
