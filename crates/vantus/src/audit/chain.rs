//! The audit log as a hash chain: each row carries its place (`seq`, 1, 2, 3, …), the hash of
//! the row before it (`prev_hash`) and its own `hash`, so a row changed, removed or slipped in
//! later breaks the chain where it happened and `vantus audit verify` names that row.
//!
//! `hash = SHA-256(prev_hash || canonical(row))`, lowercase hex, where `prev_hash` is the
//! previous row's hash as 64 ASCII hex digits ([`GENESIS_PREV_HASH`] for seq 1) and
//! `canonical(row)` is the compact JSON array
//! `[seq, id, tenant_id, actor, action, resource, detail, ip, request_id, created_at]`:
//! UUIDs hyphenated lowercase (or `null`), text exactly as stored (`detail` is the stored JSON
//! text, never re-serialised), `created_at` as fixed-width UTC text (`Timestamp`). That is the
//! engine-neutral encoding of `store::rows`, so a chain written on SQLite verifies after a
//! backup, a restore or a `db copy` to PostgreSQL, and the other way round.
//!
//! A chain detects edits; it does not prevent them (the triggers of `store::append_only` do
//! that, for everyone but a database owner who drops them). Whoever can write the table can
//! also append rows with correct hashes, since the hash has no secret key: the chain proves
//! that nothing recorded was altered or removed, not who appended. Removing the newest rows
//! leaves a shorter chain that is still whole; the head recorded in every backup manifest
//! (ADR 0011) is what exposes that.

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::append_only::lock_audit_chain;
use crate::store::{Conn, Db, Timestamp, multirow, on_conn};

/// `prev_hash` of the first row of a chain: 64 `0` digits, the width of a SHA-256 in hex. A
/// public starting point that anyone can recompute, not a key: the chain holds no secret.
pub const GENESIS_PREV_HASH: &str = match std::str::from_utf8(&[b'0'; 64]) {
    Ok(zeros) => zeros,
    Err(_) => panic!("ASCII zeros are UTF-8"),
};

/// Rows between two progress reports of [`verify`].
pub const PROGRESS_EVERY: u64 = 100_000;

/// The newest row of the chain: what a backup manifest records and `verify` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// `SEQ:HASH`, the form `vantus audit verify --expect-head` takes.
impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// The fields of one row that its hash covers (all of them except the chain's own columns).
#[derive(Clone, Copy, Debug)]
pub struct EntryFields<'a> {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    /// The JSON text exactly as stored.
    pub detail: &'a str,
    pub ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub created_at: Timestamp,
}

/// The canonical encoding of a row at `seq` (see the module documentation).
fn canonical(seq: i64, e: &EntryFields<'_>) -> String {
    use serde_json::Value;
    let uuid = |u: Uuid| Value::String(u.hyphenated().to_string());
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::String(s.to_owned()));
    Value::Array(vec![
        Value::from(seq),
        uuid(e.id),
        e.tenant_id.map_or(Value::Null, uuid),
        text(Some(e.actor)),
        text(Some(e.action)),
        text(Some(e.resource)),
        text(Some(e.detail)),
        text(e.ip),
        text(e.request_id),
        Value::String(e.created_at.to_fixed_string()),
    ])
    .to_string()
}

/// The hash of the row at `seq` whose predecessor's hash is `prev_hash`.
pub fn link_hash(prev_hash: &str, seq: i64, entry: &EntryFields<'_>) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(seq, entry).as_bytes());
    hex::encode(h.finalize())
}

/// The newest chained row, or `None` for an empty chain. Read it after [`lock_audit_chain`]
/// when appending, or the head may move before the append.
pub async fn head(conn: &mut Conn<'_>) -> Result<Option<ChainHead>, sqlx::Error> {
    let sql = "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1";
    let row: Option<(i64, Option<String>)> =
        on_conn!(conn.reborrow(), c => sqlx::query_as(sql).fetch_optional(c).await)?;
    // A head without a hash is a broken chain that `verify` reports; appending after it
    // (with an empty prev_hash) keeps audit writes, and so the changes they belong to, working.
    Ok(row.map(|(seq, hash)| ChainHead {
        seq,
        hash: hash.unwrap_or_default(),
    }))
}

/// Appends `entries` to the chain, in order, with multi-row INSERTs of at most
/// [`multirow::MAX_STATEMENT_BYTES`] each.
///
/// `conn` should be a write transaction (`in_write_tx!`, `Db::begin_write`): the chain lock
/// is held until it ends, and the entries commit with the change they describe. On an
/// autocommitted connection two racing writers may read the same head; the unique `seq`
/// then makes one of them fail instead of forking the chain.
pub async fn append(conn: &mut Conn<'_>, entries: &[EntryFields<'_>]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    lock_audit_chain(conn).await?;
    let (mut seq, mut prev) = match head(conn).await? {
        Some(h) => (h.seq, h.hash),
        None => (0, GENESIS_PREV_HASH.to_owned()),
    };
    let linked: Vec<(&EntryFields<'_>, i64, String, String)> = entries
        .iter()
        .map(|e| {
            seq += 1;
            let hash = link_hash(&prev, seq, e);
            let prev_hash = std::mem::replace(&mut prev, hash.clone());
            (e, seq, prev_hash, hash)
        })
        .collect();
    // Bound values, roughly: fixed-size ids, times and hashes (~220 bytes) plus the text.
    let bytes = |(e, ..): &(&EntryFields<'_>, i64, String, String)| {
        220 + e.actor.len()
            + e.action.len()
            + e.resource.len()
            + e.detail.len()
            + e.ip.map_or(0, str::len)
            + e.request_id.map_or(0, str::len)
    };
    for rows in multirow::chunks(&linked, bytes) {
        let sql = format!(
            "INSERT INTO audit_log (id, tenant_id, actor, action, resource, detail, ip,
                                    request_id, created_at, seq, prev_hash, hash)
             VALUES {}",
            multirow::values(
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                12,
                rows.len()
            )
        );
        on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (e, seq, prev_hash, hash) in rows {
                q = q
                    .bind(e.id)
                    .bind(e.tenant_id)
                    .bind(e.actor)
                    .bind(e.action)
                    .bind(e.resource)
                    .bind(e.detail)
                    .bind(e.ip)
                    .bind(e.request_id)
                    .bind(e.created_at)
                    .bind(*seq)
                    .bind(prev_hash.as_str())
                    .bind(hash.as_str());
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// A sanctioned bypass of the append-only triggers, open in one transaction: see
/// [`begin_maintenance`].
#[must_use = "end_maintenance must run before the transaction commits"]
pub struct Maintenance {
    marker: Uuid,
}

/// Opens the sanctioned bypass of the append-only triggers for the caller's transaction: takes
/// the chain lock (nobody appends meanwhile) and inserts a row into `_audit_maintenance`.
/// Only restore `--force` (which replaces every table) and [`seal_unchained`] use it, and each
/// calls [`end_maintenance`] before committing, so the marker is never visible to anyone else.
/// Requires the chain migration (the marker table).
pub async fn begin_maintenance(
    conn: &mut Conn<'_>,
    reason: &str,
) -> Result<Maintenance, sqlx::Error> {
    lock_audit_chain(conn).await?;
    let marker = Uuid::now_v7();
    let sql = "INSERT INTO _audit_maintenance (id, reason, started_at) VALUES ($1, $2, $3)";
    on_conn!(conn.reborrow(), c => sqlx::query(sql)
        .bind(marker).bind(reason).bind(Timestamp::now())
        .execute(c).await.map(|_| ()))?;
    Ok(Maintenance { marker })
}

/// Closes the bypass [`begin_maintenance`] opened; the triggers apply again at once.
pub async fn end_maintenance(conn: &mut Conn<'_>, m: Maintenance) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM _audit_maintenance WHERE id = $1";
    on_conn!(conn.reborrow(), c => sqlx::query(sql).bind(m.marker).execute(c).await.map(|_| ()))
}

/// One stored row as `verify` and sealing read it: the fields, then seq, prev_hash, hash.
type StoredRow = (
    Uuid,
    Option<Uuid>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Timestamp,
    Option<i64>,
    Option<String>,
    Option<String>,
);

const STORED_COLUMNS: &str = "id, tenant_id, actor, action, resource, detail, ip, request_id, \
                              created_at, seq, prev_hash, hash";

fn fields(r: &StoredRow) -> EntryFields<'_> {
    EntryFields {
        id: r.0,
        tenant_id: r.1,
        actor: &r.2,
        action: &r.3,
        resource: &r.4,
        detail: &r.5,
        ip: r.6.as_deref(),
        request_id: r.7.as_deref(),
        created_at: r.8,
    }
}

/// Rows sealed per page (one UPDATE each, all in one transaction).
const SEAL_PAGE: i64 = 500;

/// Puts rows that have no place in the chain yet at its end, oldest first (`created_at`,
/// then id): the rows that existed before the chain migration, and rows an older release
/// wrote during a rolling upgrade. Runs at every start (`content::seed::migrate_and_seed`)
/// and after a restore; returns how many rows were sealed. Cheap when there is nothing to do:
/// one indexed read, no write lock.
pub async fn seal_unchained(db: &Db) -> Result<u64, sqlx::Error> {
    let pending = with_conn!(db, conn => unchained(conn).await)?;
    if pending.is_none() {
        return Ok(0);
    }
    in_write_tx!(db, conn => {
        let bypass = begin_maintenance(conn, "seal rows written before the chain").await?;
        let (mut seq, mut prev) = match head(conn).await? {
            Some(h) => (h.seq, h.hash),
            None => (0, GENESIS_PREV_HASH.to_owned()),
        };
        let mut sealed = 0u64;
        loop {
            let sql = format!(
                "SELECT {STORED_COLUMNS} FROM audit_log WHERE seq IS NULL
                 ORDER BY created_at, id LIMIT {SEAL_PAGE}"
            );
            let page: Vec<StoredRow> = on_conn!(conn.reborrow(), c =>
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(c).await)?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                seq += 1;
                let hash = link_hash(&prev, seq, &fields(row));
                let sql = "UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3
                           WHERE id = $4 AND seq IS NULL";
                on_conn!(conn.reborrow(), c => sqlx::query(sql)
                    .bind(seq).bind(prev.as_str()).bind(hash.as_str()).bind(row.0)
                    .execute(c).await.map(|_| ()))?;
                prev = hash;
                sealed += 1;
            }
        }
        end_maintenance(conn, bypass).await?;
        Ok::<_, sqlx::Error>(sealed)
    })
}

/// The oldest row outside the chain (id), and how many there are, if any.
async fn unchained(conn: &mut Conn<'_>) -> Result<Option<(Uuid, i64)>, sqlx::Error> {
    let first: Option<Uuid> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT id FROM audit_log WHERE seq IS NULL ORDER BY created_at, id LIMIT 1"
    ).fetch_optional(c).await)?;
    let Some(first) = first else {
        return Ok(None);
    };
    let n: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE seq IS NULL"
    ).fetch_one(c).await)?;
    Ok(Some((first, n)))
}

/// The first row where the chain does not hold, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// `None` for a row that has no place in the chain at all.
    pub seq: Option<i64>,
    pub id: Uuid,
    pub problem: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "row seq {seq} (id {}): {}", self.id, self.problem),
            None => write!(f, "row id {} (no seq): {}", self.id, self.problem),
        }
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every row is in the chain and every link holds.
    Intact { rows: u64, head: Option<ChainHead> },
    /// `checked` rows held before `at`, the first that does not.
    Broken { checked: u64, at: ChainBreak },
    /// Every link holds, but the chain ends before the anchor `verify` was given: rows were
    /// removed from its end (or the anchor belongs to another database).
    Truncated {
        rows: u64,
        head: Option<ChainHead>,
        expected: ChainHead,
    },
}

/// Reads the whole chain in `seq` order, one row in memory at a time, and recomputes every
/// link; stops at the first row that does not hold. With an `anchor` (a head recorded earlier,
/// e.g. in a backup manifest), the chain must also still contain that row with that hash: the
/// one thing a whole chain cannot show by itself is that rows were removed from its end.
/// `progress` hears the rows checked so far every [`PROGRESS_EVERY`] rows. The read is one
/// statement, so it sees one snapshot while writers carry on.
pub async fn verify(
    conn: &mut Conn<'_>,
    anchor: Option<&ChainHead>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Verdict, sqlx::Error> {
    let sql = format!("SELECT {STORED_COLUMNS} FROM audit_log WHERE seq IS NOT NULL ORDER BY seq");
    let mut checked = 0u64;
    let mut last: Option<ChainHead> = None;
    let mut broken = None;
    on_conn!(conn.reborrow(), c => {
        let mut stream = sqlx::query_as::<_, StoredRow>(sqlx::AssertSqlSafe(sql)).fetch(&mut *c);
        while let Some(row) = stream.try_next().await? {
            if let Err(at) = check_link(last.as_ref(), &row) {
                broken = Some(at);
                break;
            }
            if let Some(a) = anchor.filter(|a| Some(a.seq) == row.9)
                && row.11.as_deref() != Some(a.hash.as_str())
            {
                broken = Some(ChainBreak {
                    seq: row.9,
                    id: row.0,
                    problem: format!(
                        "its hash is not the {} recorded for seq {} (the chain was rewritten from here on)",
                        a.hash, a.seq
                    ),
                });
                break;
            }
            last = Some(ChainHead {
                seq: row.9.unwrap_or_default(),
                hash: row.11.unwrap_or_default(),
            });
            checked += 1;
            if checked.is_multiple_of(PROGRESS_EVERY) {
                progress(checked);
            }
        }
    });
    if let Some(at) = broken {
        return Ok(Verdict::Broken { checked, at });
    }
    if let Some(a) = anchor
        && last.as_ref().is_none_or(|l| l.seq < a.seq)
    {
        return Ok(Verdict::Truncated {
            rows: checked,
            head: last,
            expected: a.clone(),
        });
    }
    if let Some((id, n)) = unchained(conn).await? {
        let problem = format!(
            "{n} row(s) have no place in the chain (no seq or hash): written by an older release during an upgrade, or inserted by hand; a start of this release (or `vantus migrate`) seals rows an older release wrote"
        );
        return Ok(Verdict::Broken {
            checked,
            at: ChainBreak {
                seq: None,
                id,
                problem,
            },
        });
    }
    Ok(Verdict::Intact {
        rows: checked,
        head: last,
    })
}

/// Checks one row against the row before it (`None` for the first).
fn check_link(before: Option<&ChainHead>, row: &StoredRow) -> Result<(), ChainBreak> {
    let seq = row.9.unwrap_or_default();
    let at = |problem: String| ChainBreak {
        seq: Some(seq),
        id: row.0,
        problem,
    };
    let expected_seq = before.map_or(1, |b| b.seq + 1);
    if seq != expected_seq {
        let gap = if seq == expected_seq + 1 {
            format!("seq {expected_seq} is missing")
        } else {
            format!("seq {expected_seq} to {} are missing", seq - 1)
        };
        return Err(at(format!(
            "{gap} before it (rows were deleted, or the chain was cut)"
        )));
    }
    let (Some(prev_hash), Some(hash)) = (row.10.as_deref(), row.11.as_deref()) else {
        return Err(at("it has a seq but no prev_hash or hash".into()));
    };
    let expected_prev = before.map_or(GENESIS_PREV_HASH, |b| b.hash.as_str());
    if prev_hash != expected_prev {
        return Err(at(match before {
            Some(b) => format!(
                "its prev_hash is not the hash of seq {} (that row, or this link, was replaced)",
                b.seq
            ),
            None => "the first row's prev_hash is not the genesis value".into(),
        }));
    }
    if link_hash(prev_hash, seq, &fields(row)) != hash {
        return Err(at(
            "its fields do not match its hash (the row was changed after it was written)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail: &str) -> EntryFields<'_> {
        EntryFields {
            id: Uuid::parse_str("0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5").unwrap(),
            tenant_id: Some(Uuid::parse_str("5b1e0f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c").unwrap()),
            actor: "cli",
            action: "backup.created",
            resource: "s3://bucket/vantus-2026.vbak",
            detail,
            ip: None,
            request_id: Some("req-1"),
            created_at: Timestamp::parse_rfc3339("2026-11-26T09:30:00.123456Z").unwrap(),
        }
    }

    /// Computed independently with Python:
    /// `hashlib.sha256(("0"*64 + json.dumps([1, "0192f0c1-…", "5b1e0f5c-…", "cli",
    /// "backup.created", "s3://bucket/vantus-2026.vbak", '{"rows":3,"note":"Zürich ✓"}', None,
    /// "req-1", "2026-11-26T09:30:00.123456Z"], separators=(",", ":"),
    /// ensure_ascii=False)).encode()).hexdigest()`. If this fails, the encoding changed and
    /// every existing chain would stop verifying.
    #[test]
    fn the_hash_of_a_row_is_a_fixed_function_of_its_fields() {
        let e = entry(r#"{"rows":3,"note":"Zürich ✓"}"#);
        assert_eq!(
            canonical(1, &e),
            r#"[1,"0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5","5b1e0f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c","cli","backup.created","s3://bucket/vantus-2026.vbak","{\"rows\":3,\"note\":\"Zürich ✓\"}",null,"req-1","2026-11-26T09:30:00.123456Z"]"#
        );
        assert_eq!(
            link_hash(GENESIS_PREV_HASH, 1, &e),
            "52a11c63be33408414993475b6ee12546591f7ab0165cf2c4546113fbbe4a3fd"
        );
        let first = link_hash(GENESIS_PREV_HASH, 1, &e);
        assert_eq!(
            link_hash(&first, 2, &e),
            "19bbed908abfea2b13a4985efdd705b88c8310184287df799de6cf75831cc70a"
        );
    }

    #[test]
    fn a_changed_field_a_gap_or_a_foreign_link_is_named() {
        let e = entry("{}");
        let h1 = link_hash(GENESIS_PREV_HASH, 1, &e);
        let stored = |seq: i64, prev: &str, hash: &str, detail: &str| -> StoredRow {
            (
                e.id,
                e.tenant_id,
                e.actor.into(),
                e.action.into(),
                e.resource.into(),
                detail.into(),
                None,
                Some("req-1".into()),
                e.created_at,
                Some(seq),
                Some(prev.into()),
                Some(hash.into()),
            )
        };
        assert_eq!(
            check_link(None, &stored(1, GENESIS_PREV_HASH, &h1, "{}")),
            Ok(())
        );
        let changed = check_link(None, &stored(1, GENESIS_PREV_HASH, &h1, "{\"x\":1}"));
        assert!(
            changed
                .unwrap_err()
                .problem
                .contains("do not match its hash")
        );
        let head = ChainHead {
            seq: 1,
            hash: h1.clone(),
        };
        let h3 = link_hash(&h1, 3, &e);
        let gap = check_link(Some(&head), &stored(3, &h1, &h3, "{}")).unwrap_err();
        assert_eq!(gap.seq, Some(3));
        assert!(gap.problem.contains("seq 2 is missing"), "{}", gap.problem);
        let h2 = link_hash(GENESIS_PREV_HASH, 2, &e);
        let foreign = check_link(Some(&head), &stored(2, GENESIS_PREV_HASH, &h2, "{}"));
        assert!(
            foreign
                .unwrap_err()
                .problem
                .contains("not the hash of seq 1")
        );
        let mut no_hash = stored(2, &h1, "", "{}");
        no_hash.11 = None;
        assert!(
            check_link(Some(&head), &no_hash)
                .unwrap_err()
                .problem
                .contains("no prev_hash or hash")
        );
    }
}
