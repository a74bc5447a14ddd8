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
//! words of the query, each as a prefix of at most [`PREFIX_CHARS`] characters, all required
//! ([`words`]).
//!
//! A page of a search is read in up to two steps (the list, `leads::crm`, runs them):
//! [`newest_first`], cheap for the common case and proven or dropped, then the plans of
//! [`lead_condition`], chosen by a count of the matches.

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
/// person can read, and bound the query's cost), each cut to its first [`PREFIX_CHARS`]
/// characters: a word matches every word that begins like it ("integration" also finds
/// "integrator"), which SQLite's prefix index answers without reading every match.
pub fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| w.to_lowercase().chars().take(PREFIX_CHARS).collect())
        .collect()
}

/// The longest prefix SQLite's FTS index keeps (`prefix='2 … 8'`): a prefix query of up to
/// this many characters reads its matches lazily, in rowid order, from one index entry; a
/// longer one, or one of 1 character, merges every matching term's list first (milliseconds
/// for a word in half of 100,000 leads).
pub const PREFIX_CHARS: usize = 8;

/// Up to this many matches, a search is "narrow": the list is read from the matching leads,
/// sorted. Beyond it, the list's own index is walked in order and each lead is tested, which
/// reaches a page after about `page × leads / matches` leads. The narrow plan's cost grows
/// with the matches, the walk's with their scarcity, so they meet near
/// `sqrt(page × leads × walk cost / match cost)`, which differs by engine:
/// * SQLite walks a compact partial index and tests a rowid set (about 0.25 µs a lead), while
///   each match of the narrow plan is a lookup in the wide `leads` table plus a sort (about
///   6 µs): they meet near 500 matches at 100,000 leads. At 1,000 matches (1 % of the leads)
///   the walk took 1.3 ms and the narrow plan 6 ms (SQLite 3.40, the benchmark's data).
/// * PostgreSQL's walk tests each lead's stored vector through a primary-key lookup, dearer
///   than SQLite's set test, so its narrow plan stays cheaper up to about 2,000 matches.
const SQLITE_NARROW: i64 = 500;
const POSTGRES_NARROW: i64 = 2_000;

/// A condition on `leads` that holds for the leads matching a search: `clause`, where `$?`
/// stands for `value` bound as text.
pub struct Condition {
    pub clause: String,
    pub value: String,
}

/// The condition "the lead matches `words`" for `conn`'s engine (`words` never empty: callers
/// skip the condition without words).
///
/// Neither engine's planner can tell a narrow search from a broad one (a prefix query has a
/// fixed selectivity estimate), so this counts the matches first, up to [`SQLITE_NARROW`] or
/// [`POSTGRES_NARROW`] + 1 (an index-only read), and writes the condition for the plan that
/// suits the count:
/// * SQLite: `leads.rowid IN (…)` lets the set of matching rowids drive the read; `+leads.rowid
///   IN (…)` (the unary plus keeps the term off any index) makes SQLite walk the list's index
///   and test each lead against the set, built once. The FTS table's rowids are the leads'.
/// * PostgreSQL: a narrow search binds the matching ids themselves (read by the GIN index),
///   which the planner looks up by primary key; a broad one tests each listed lead's stored
///   vector by its primary key.
///
/// Before either, the list tries [`NewestFirst`], which needs no count.
pub async fn lead_condition(
    conn: &mut Conn<'_>,
    words: &[String],
) -> Result<Condition, sqlx::Error> {
    match conn {
        Conn::Sqlite(c) => {
            let query = sqlite_query(words);
            let matches: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT rowid FROM _leads_fts WHERE _leads_fts MATCH $1 LIMIT $2)",
            )
            .bind(&query)
            .bind(SQLITE_NARROW + 1)
            .fetch_one(&mut **c)
            .await?;
            let walk = if matches > SQLITE_NARROW { "+" } else { "" };
            Ok(Condition {
                clause: format!(
                    "{walk}leads.rowid IN (SELECT rowid FROM _leads_fts WHERE _leads_fts MATCH $?)"
                ),
                value: query,
            })
        }
        Conn::Postgres(c) => {
            let query = postgres_query(words);
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT lead_id FROM _leads_search
                 WHERE document @@ to_tsquery('simple'::regconfig, $1) LIMIT $2",
            )
            .bind(&query)
            .bind(POSTGRES_NARROW + 1)
            .fetch_all(&mut **c)
            .await?;
            if ids.len() as i64 > POSTGRES_NARROW {
                return Ok(Condition {
                    clause: POSTGRES_MATCHES.into(),
                    value: query,
                });
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
            Ok(Condition {
                clause: "leads.id IN (SELECT unnest(CAST($? AS uuid[])))".into(),
                value: format!("{{{list}}}"),
            })
        }
    }
}

/// PostgreSQL's test of one lead: its stored vector, found by primary key.
const POSTGRES_MATCHES: &str = "EXISTS (SELECT 1 FROM _leads_search AS s WHERE s.lead_id = leads.id \
     AND s.document @@ to_tsquery('simple'::regconfig, $?))";

/// Each word quoted (FTS5 syntax in it is literal), as a prefix, all required.
fn sqlite_query(words: &[String]) -> String {
    joined(words, |w| format!("\"{w}\"*"), " ")
}

/// Only letters and digits remain in a word: nothing in it is tsquery syntax.
fn postgres_query(words: &[String]) -> String {
    joined(words, |w| format!("{w}:*"), " & ")
}

fn joined(words: &[String], each: impl Fn(&str) -> String, separator: &str) -> String {
    words
        .iter()
        .map(|w| each(w))
        .collect::<Vec<_>>()
        .join(separator)
}

/// A first, cheap attempt at a search's page, tried before [`lead_condition`] (which needs a
/// count of the matches). What it returns is exact or nothing: the list checks it
/// ([`crate::leads::crm`]), and reads the page the general way when the check fails.
pub enum NewestFirst {
    /// SQLite: read the matches in the FTS index's rowid order, newest rowid first, which
    /// FTS5 gives lazily ([`index_order_from`]). Rowids follow insertion, so for leads captured
    /// as they arrive this is the list's order; the list then proves it for the page (no lead
    /// listed between the page's ends has a rowid below the page's smallest).
    IndexOrder { query: String },
    /// PostgreSQL: walk only the first `window` leads of the list, testing each one's stored
    /// vector. A page found among them is the page; a common word fills it within a few
    /// dozen leads, where counting its matches in the GIN index would read them all.
    Window {
        window: i64,
        matches: &'static str,
        query: String,
    },
}

/// How many list leads, per lead of the page, PostgreSQL's [`NewestFirst::Window`] tests
/// before it gives up: a word in at least a quarter of the leads fills a page within it.
pub const POSTGRES_WINDOW_PER_ROW: i64 = 4;

/// The newest-first attempt for `words` on `conn`'s engine.
pub fn newest_first(conn: &Conn<'_>, words: &[String], page: i64) -> NewestFirst {
    match conn {
        Conn::Sqlite(_) => NewestFirst::IndexOrder {
            query: sqlite_query(words),
        },
        Conn::Postgres(_) => NewestFirst::Window {
            window: page.saturating_mul(POSTGRES_WINDOW_PER_ROW),
            matches: POSTGRES_MATCHES,
            query: postgres_query(words),
        },
    }
}

/// What replaces `FROM leads` for [`NewestFirst::IndexOrder`]: the newest `$scan` matches of
/// the FTS query `$query` (argument numbers), as `m.matched`, each joined to its lead; order by
/// [`INDEX_ORDER`]. SQLite reads them lazily, in order, and stops when the page is full; the
/// bound keeps a search whose matches are mostly another tenant's, or filtered out, from
/// reading every match.
pub fn index_order_from(query: usize, scan: usize) -> String {
    format!(
        "(SELECT rowid AS matched FROM _leads_fts WHERE _leads_fts MATCH ${query} \
         ORDER BY rowid DESC LIMIT ${scan}) AS m CROSS JOIN leads ON leads.rowid = m.matched"
    )
}

/// The order of [`index_order_from`]'s rows: newest rowid first.
pub const INDEX_ORDER: &str = "m.matched DESC";

/// How many matches per lead of the page [`index_order_from`] reads at most.
pub const INDEX_SCAN_PER_ROW: i64 = 8;

async fn crm_applied(conn: &mut Conn<'_>) -> Result<bool, sqlx::Error> {
    let n: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = $1 AND success = TRUE"
    ).bind(CRM_MIGRATION).fetch_one(c).await)?;
    Ok(n > 0)
}

/// What the FTS table's definition says once it has the prefix index; a table made by an
/// earlier version lacks it and is made again ([`install`]).
const SQLITE_PREFIX_INDEX: &str = "prefix = '2 3 4 5 6 7 8'";

const SQLITE_DDL: [&str; 4] = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS _leads_fts USING fts5(
         lead_id UNINDEXED, name, email, company, message,
         tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4 5 6 7 8')",
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
            let defined: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '_leads_fts'",
            )
            .fetch_optional(&mut **c)
            .await?;
            if defined.is_some_and(|sql| !sql.contains(SQLITE_PREFIX_INDEX)) {
                // An FTS table cannot gain a prefix index in place: it is dropped and made
                // again below, then refilled because its count no longer matches.
                sqlx::query("DROP TABLE _leads_fts")
                    .execute(&mut **c)
                    .await?;
            }
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
        assert_eq!(words("Integration ÉTÉS"), ["integrat", "étés"]);
    }
}
