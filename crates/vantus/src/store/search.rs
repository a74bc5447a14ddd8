//! The leads' full-text index: the one place where the two engines' search differs.
//!
//! * SQLite: an FTS5 table `_leads_fts` (its rowid is the lead's rowid, `lead_id` carries the
//!   lead's id), kept in step by triggers on `leads`.
//! * PostgreSQL: a table `_leads_search` (the lead's id and its stored `tsvector`) with a GIN
//!   index, kept in step by a trigger on `leads` and emptied by its foreign key's cascade.
//!
//! Neither can be written in the SQL both engines share, so [`install`] creates them after
//! every migration run (under the migration lock), idempotently, once migration
//! [`CRM_MIGRATION`] is applied. Both tables start with `_`, so backups, restores and `db copy`
//! (which enumerate application tables, `store::schema`) leave them out; the triggers rebuild
//! the index as rows are restored or copied, and [`install`] fills in what is missing when the
//! index's row count disagrees with `leads` (an index created on a database that already had
//! leads, or one filled while the triggers were absent). The FTS table is never `VACUUM`ed in
//! place: SQLite may renumber the rowids of a table without an INTEGER PRIMARY KEY when it does.
//!
//! Why a stored vector in its own table on PostgreSQL, not an expression index or a generated
//! column: with an expression index, a search for a common word either recomputes the vector
//! of every row the list walks (the planner's choice for a `LIMIT`ed, ordered list) or builds a
//! large id array first; both took about 300 ms at 100,000 leads. A stored vector is cheap to
//! test row by row, so the planner can walk the list's index for common words and the GIN index
//! for rare ones. A generated column on `leads` would be carried into backups and copies (to an
//! engine that cannot insert it); a `_` table is derived data, as on SQLite.
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

/// The indexed text of the lead row `r` on PostgreSQL (`r` is `NEW` in the trigger, a table
/// alias in the backfill).
fn pg_document(r: &str) -> String {
    format!(
        "to_tsvector('simple'::regconfig, regexp_replace({r}.name || ' ' || {r}.email || ' ' || \
         coalesce({r}.company, '') || ' ' || {r}.message, '[^[:alnum:]]+', ' ', 'g'))"
    )
}

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

/// Up to this many matches, a search is "narrow": the list is read from the matching leads,
/// sorted. Beyond it, the list's own index is walked in order and each lead is tested, which
/// reaches a page after about `page × leads / matches` leads. The two costs meet near
/// `sqrt(page × leads)`: about 2,000 for 50-lead pages of 100,000 leads.
const NARROW: i64 = 2_000;

/// The condition "the lead matches the search bound as `$n`" for `conn`'s engine, and the
/// value to bind for `words` (never empty: callers skip the condition without words).
///
/// Neither engine's planner can tell a narrow search from a broad one (a prefix query has a
/// fixed selectivity estimate), so this counts the matches first, up to [`NARROW`] + 1 (an
/// index-only read), and writes the condition for the plan that suits the count:
/// * SQLite: `leads.rowid IN (…)` lets the set of matching rowids drive the read; `+leads.rowid
///   IN (…)` (the unary plus keeps the term off any index) makes SQLite walk the list's index
///   and test each lead against the set, built once. The FTS table's rowids are the leads'.
/// * PostgreSQL: a narrow search binds the matching ids themselves (read by the GIN index),
///   which the planner looks up by primary key; a broad one tests each listed lead's stored
///   vector by its primary key.
pub async fn lead_condition(
    conn: &mut Conn<'_>,
    n: usize,
    words: &[String],
) -> Result<(String, String), sqlx::Error> {
    match conn {
        Conn::Sqlite(c) => {
            // Each word quoted (FTS5 syntax in it is literal), as a prefix.
            let query = words
                .iter()
                .map(|w| format!("\"{w}\"*"))
                .collect::<Vec<_>>()
                .join(" ");
            let matches: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT rowid FROM _leads_fts WHERE _leads_fts MATCH $1 LIMIT $2)",
            )
            .bind(&query)
            .bind(NARROW + 1)
            .fetch_one(&mut **c)
            .await?;
            let walk = if matches > NARROW { "+" } else { "" };
            Ok((
                format!(
                    "{walk}leads.rowid IN (SELECT rowid FROM _leads_fts WHERE _leads_fts MATCH ${n})"
                ),
                query,
            ))
        }
        Conn::Postgres(c) => {
            // Only letters and digits remain in a word: nothing in it is tsquery syntax.
            let query = words
                .iter()
                .map(|w| format!("{w}:*"))
                .collect::<Vec<_>>()
                .join(" & ");
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT lead_id FROM _leads_search
                 WHERE document @@ to_tsquery('simple'::regconfig, $1) LIMIT $2",
            )
            .bind(&query)
            .bind(NARROW + 1)
            .fetch_all(&mut **c)
            .await?;
            if ids.len() as i64 > NARROW {
                return Ok((
                    format!(
                        "EXISTS (SELECT 1 FROM _leads_search AS s WHERE s.lead_id = leads.id \
                         AND s.document @@ to_tsquery('simple'::regconfig, ${n}))"
                    ),
                    query,
                ));
            }
            // An array literal of the ids, bound as text: both engines' statements share one
            // argument type list, and SQLite has no array type.
            let list = ids
                .iter()
                .map(uuid::Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",");
            // Unnested in a subquery, so the text is parsed once: as `= ANY($n::uuid[])` the
            // cast ran again for every row the plan visited (seconds at 100,000 leads).
            Ok((
                format!("leads.id IN (SELECT unnest(CAST(${n} AS uuid[])))"),
                format!("{{{list}}}"),
            ))
        }
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
            for ddl in pg_ddl() {
                sqlx::query(sqlx::AssertSqlSafe(ddl))
                    .execute(&mut **c)
                    .await?;
            }
            let (indexed, leads): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM _leads_search), (SELECT COUNT(*) FROM leads)",
            )
            .fetch_one(&mut **c)
            .await?;
            if indexed != leads {
                let fill = format!(
                    "INSERT INTO _leads_search (lead_id, document)
                     SELECT l.id, {} FROM leads AS l
                     WHERE NOT EXISTS (SELECT 1 FROM _leads_search AS s WHERE s.lead_id = l.id)",
                    pg_document("l")
                );
                sqlx::query(sqlx::AssertSqlSafe(fill))
                    .execute(&mut **c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// PostgreSQL's index: the table, its GIN index, the trigger that keeps it, and the removal of
/// the expression index an earlier version used. Every statement is idempotent.
fn pg_ddl() -> [String; 5] {
    [
        "CREATE TABLE IF NOT EXISTS _leads_search (
             lead_id  UUID PRIMARY KEY REFERENCES leads (id) ON DELETE CASCADE,
             document TSVECTOR NOT NULL)"
            .into(),
        "CREATE INDEX IF NOT EXISTS _leads_search_document ON _leads_search USING GIN (document)"
            .into(),
        format!(
            "CREATE OR REPLACE FUNCTION _leads_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO _leads_search (lead_id, document) VALUES (NEW.id, {})
                 ON CONFLICT (lead_id) DO UPDATE SET document = EXCLUDED.document;
                 RETURN NULL;
             END $$",
            pg_document("NEW")
        ),
        "CREATE OR REPLACE TRIGGER _leads_search_sync
         AFTER INSERT OR UPDATE OF name, email, company, message ON leads
         FOR EACH ROW EXECUTE FUNCTION _leads_search_sync()"
            .into(),
        "DROP INDEX IF EXISTS leads_search".into(),
    ]
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
