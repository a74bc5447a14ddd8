//! The CRM's queries on `leads`: the filtered, searchable list in keyset pages, the pipeline,
//! assignment, spam decisions, and the figures the dashboard shows. Every function takes a
//! [`TenantScope`] and filters by it.
//!
//! The list is one statement built from the filter (only the conditions in use), ordered by
//! `(created_at, id)` newest first. A page continues strictly after the last row it showed
//! ([`Cursor`]), never by OFFSET: page 4,000 costs what page 1 costs, and a lead inserted
//! while someone pages can only appear above the first page, never shift or repeat a row.
//! Each list condition has an index in that order (migration 0010); the search condition comes
//! from [`crate::store::search`], the one place the engines differ.

use serde::Serialize;
use uuid::Uuid;

use super::queries::LeadSource;
use crate::store::{Conn, Timestamp, on_conn, search};
use crate::tenancy::TenantScope;

/// A lead's place in the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    New,
    Contacted,
    Qualified,
    Proposal,
    Won,
    Lost,
}

impl Stage {
    /// In pipeline order.
    pub const ALL: [Stage; 6] = [
        Stage::New,
        Stage::Contacted,
        Stage::Qualified,
        Stage::Proposal,
        Stage::Won,
        Stage::Lost,
    ];

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Contacted => "contacted",
            Stage::Qualified => "qualified",
            Stage::Proposal => "proposal",
            Stage::Won => "won",
            Stage::Lost => "lost",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Stage::New => "New",
            Stage::Contacted => "Contacted",
            Stage::Qualified => "Qualified",
            Stage::Proposal => "Proposal",
            Stage::Won => "Won",
            Stage::Lost => "Lost",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Stage::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Still being worked on: neither won nor lost.
    pub fn is_open(self) -> bool {
        !matches!(self, Stage::Won | Stage::Lost)
    }
}

/// Whose leads to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Owner {
    #[default]
    Anyone,
    Unassigned,
    Member(Uuid),
}

/// What to list. `None` (and [`Owner::Anyone`], no words) means any.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The spam inbox rather than the leads.
    pub spam: bool,
    pub stage: Option<Stage>,
    pub source: Option<LeadSource>,
    pub owner: Owner,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Words every listed lead contains (name, email, company or message), as prefixes
    /// ([`search::words`]).
    pub words: Vec<String>,
}

/// Where a page ends: the last row's `(created_at, id)`. The next page starts after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub id: Uuid,
}

impl Cursor {
    pub fn of(lead: &CrmLead) -> Self {
        Self {
            created_at: lead.created_at,
            id: lead.id,
        }
    }

    /// `<unix micros>_<id>`, for a link.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.unix_micros(), self.id)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (micros, id) = raw.split_once('_')?;
        Some(Self {
            created_at: Timestamp::from_unix_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// A lead as the CRM sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrmLead {
    pub id: Uuid,
    pub stage: String,
    pub spam_reason: Option<String>,
    pub source: String,
    pub name: String,
    pub email: String,
    pub company: Option<String>,
    pub role: Option<String>,
    pub budget: String,
    pub website: Option<String>,
    pub message: String,
    pub assignee_id: Option<Uuid>,
    pub lost_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
crate::store::from_row!(CrmLead {
    id,
    stage,
    spam_reason,
    source,
    name,
    email,
    company,
    role,
    budget,
    website,
    message,
    assignee_id,
    lost_reason,
    created_at,
    updated_at
});

impl CrmLead {
    pub fn stage(&self) -> Option<Stage> {
        Stage::parse(&self.stage)
    }
}

// Qualified: the FTS table the SQLite search reads through has columns of the same names.
macro_rules! crm_columns {
    () => {
        "leads.id, leads.stage, leads.spam_reason, leads.source, leads.name, leads.email, \
         leads.company, leads.role, leads.budget, leads.website, leads.message, \
         leads.assignee_id, leads.lost_reason, leads.created_at, leads.updated_at"
    };
}

/// A value bound into a built statement.
enum Arg {
    Uuid(Uuid),
    Text(String),
    Time(Timestamp),
    Int(i64),
}

/// A statement's text and its arguments, numbered as they are pushed.
struct Built {
    sql: String,
    args: Vec<Arg>,
}

impl Built {
    fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends `clause`, where `$?` stands for the argument pushed now.
    fn and(&mut self, clause: &str, arg: Arg) {
        self.args.push(arg);
        let n = self.args.len();
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace("$?", &format!("${n}")));
    }

    fn push(&mut self, arg: Arg) -> usize {
        self.args.push(arg);
        self.args.len()
    }
}

/// Binds the built arguments in order, on either engine.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for arg in $args {
            q = match arg {
                Arg::Uuid(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::Time(v) => q.bind(*v),
                Arg::Int(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// `b` (a select list, and the arguments `from` uses), then `FROM {from} WHERE` the conditions of `filter` in `scope` but its words, and the
/// cursor's (the inbox condition is spelled as the partial indexes spell it, so the planner
/// can use them).
fn listed(
    mut b: Built,
    from: &str,
    scope: &TenantScope,
    filter: &Filter,
    after: Option<&Cursor>,
) -> Built {
    b.sql.push_str(" FROM ");
    b.sql.push_str(from);
    let tenant = b.push(Arg::Uuid(scope.id()));
    b.sql
        .push_str(&format!(" WHERE leads.tenant_id = ${tenant}"));
    b.sql.push_str(if filter.spam {
        " AND leads.spam_reason IS NOT NULL"
    } else {
        " AND leads.spam_reason IS NULL"
    });
    if let Some(stage) = filter.stage {
        b.and("leads.stage = $?", Arg::Text(stage.as_str().into()));
    }
    if let Some(source) = filter.source {
        b.and("leads.source = $?", Arg::Text(source.as_str().into()));
    }
    match filter.owner {
        Owner::Anyone => {}
        Owner::Unassigned => b.sql.push_str(" AND leads.assignee_id IS NULL"),
        Owner::Member(id) => b.and("leads.assignee_id = $?", Arg::Uuid(id)),
    }
    if let Some(from) = filter.from {
        b.and("leads.created_at >= $?", Arg::Time(from));
    }
    if let Some(until) = filter.until {
        b.and("leads.created_at < $?", Arg::Time(until));
    }
    if let Some(cursor) = after {
        b.beyond("<", cursor);
    }
    b
}

impl Built {
    /// Only leads `op` (`<`: after, `>`: before) `cursor` in the list's key.
    fn beyond(&mut self, op: &str, cursor: &Cursor) {
        let t = self.push(Arg::Time(cursor.created_at));
        let i = self.push(Arg::Uuid(cursor.id));
        self.sql.push_str(&format!(
            " AND (leads.created_at, leads.id) {op} (${t}, ${i})"
        ));
    }

    /// Ends the statement: `ORDER BY order LIMIT limit`.
    fn limit(&mut self, order: &str, limit: i64) {
        let l = self.push(Arg::Int(limit));
        self.sql.push_str(&format!(" ORDER BY {order} LIMIT ${l}"));
    }
}

/// The list's order, newest first.
const LIST_ORDER: &str = "leads.created_at DESC, leads.id DESC";

/// Up to `limit` leads of `scope` matching `filter`, newest first, after `after` (`None`: from
/// the newest). The next page starts after the last one's [`Cursor`].
///
/// A search first tries [`search::newest_first`], which answers most searches without
/// counting their matches, and falls back to [`search::lead_condition`] when that attempt
/// cannot prove its page.
pub async fn page(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<CrmLead>, sqlx::Error> {
    let limit = limit.clamp(0, 1000);
    if !filter.words.is_empty()
        && limit > 0
        && let Some(found) = newest_first(conn, scope, filter, after, limit).await?
    {
        return Ok(found);
    }
    let mut b = listed(
        Built::new(concat!("SELECT ", crm_columns!())),
        "leads",
        scope,
        filter,
        after,
    );
    if !filter.words.is_empty() {
        let matching = search::lead_condition(conn, &filter.words).await?;
        b.and(&matching.clause, Arg::Text(matching.value));
    }
    b.limit(LIST_ORDER, limit);
    fetch(conn, b).await
}

/// Runs a built statement, rows as `T`.
async fn fetch<T>(conn: &mut Conn<'_>, b: Built) -> Result<Vec<T>, sqlx::Error>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let Built { sql, args } = b;
    on_conn!(conn.reborrow(), c => bind_all!(sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql)), &args)
        .fetch_all(c).await)
}

/// A lead read in the FTS index's order, with its rowid there.
struct Indexed {
    lead: CrmLead,
    index_rowid: i64,
}
crate::store::from_row!(Indexed { index_rowid } flatten { lead });

/// How many listed leads the SQLite newest-first proof walks at most: a word sparser than
/// about one lead in a hundred is left to the count-based plans (the walk reads a compact
/// index, about 1 ms for this many).
const PROOF_WALK: i64 = 5_000;

/// The page of a search read newest first ([`search::NewestFirst`]), or `None` when that
/// read cannot be shown to be the page.
async fn newest_first(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Option<Vec<CrmLead>>, sqlx::Error> {
    match search::newest_first(conn, &filter.words, limit) {
        search::NewestFirst::IndexOrder { query } => {
            let mut b = Built::new(concat!(
                "SELECT ",
                crm_columns!(),
                ", leads.rowid AS index_rowid"
            ));
            let q = b.push(Arg::Text(query));
            let scan = b.push(Arg::Int(limit.saturating_mul(search::INDEX_SCAN_PER_ROW)));
            let from = search::index_order_from(q, scan);
            let mut b = listed(b, &from, scope, filter, after);
            b.limit(search::INDEX_ORDER, limit);
            let rows: Vec<Indexed> = fetch(conn, b).await?;
            // A short page may have run out of matches or of the scan's bound: the general
            // plan reads it (a rare word: its narrow plan is cheap).
            if (rows.len() as i64) < limit {
                return Ok(None);
            }
            // Every match at or above the lowest rowid read was read.
            let lowest_read = rows.iter().map(|r| r.index_rowid).min().unwrap_or(i64::MAX);
            let mut leads: Vec<CrmLead> = rows.into_iter().map(|r| r.lead).collect();
            leads.sort_by_key(|l| std::cmp::Reverse((l.created_at, l.id)));
            let Some(oldest) = leads.last().map(Cursor::of) else {
                return Ok(None);
            };
            // A full page is the list's page when no lead listed above its oldest has a rowid
            // below the lowest read: such a lead could be a match that was not read. The proof
            // walks the list's index between the page's ends (the unary plus keeps the rowid
            // test off the table's own key); past PROOF_WALK leads it gives up.
            let mut proof = listed(
                Built::new("SELECT COUNT(*), MIN(listed) FROM (SELECT +leads.rowid AS listed"),
                "leads",
                scope,
                filter,
                after,
            );
            proof.beyond(">", &oldest);
            let cap = proof.push(Arg::Int(PROOF_WALK));
            proof.sql.push_str(&format!(" LIMIT ${cap}) AS walked"));
            let Built { sql, args } = proof;
            let (walked, lowest_listed): (i64, Option<i64>) = on_conn!(conn.reborrow(), c =>
                bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args).fetch_one(c).await)?;
            let proven = walked < PROOF_WALK && lowest_listed.is_none_or(|r| r >= lowest_read);
            Ok(proven.then_some(leads))
        }
        search::NewestFirst::Window {
            window,
            matches,
            query,
        } => {
            // The first `window` leads of the list, then the matching ones among them: a full
            // page found there is the page, as the window is the start of the list.
            let mut b = listed(
                Built::new(concat!("SELECT * FROM (SELECT ", crm_columns!())),
                "leads",
                scope,
                filter,
                after,
            );
            b.limit(LIST_ORDER, window);
            b.sql.push_str(") AS leads WHERE ");
            let n = b.push(Arg::Text(query));
            b.sql.push_str(&matches.replace("$?", &format!("${n}")));
            b.limit(LIST_ORDER, limit);
            let leads: Vec<CrmLead> = fetch(conn, b).await?;
            Ok(((leads.len() as i64) == limit).then_some(leads))
        }
    }
}

pub async fn get(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<CrmLead>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        crm_columns!(),
        " FROM leads WHERE tenant_id = $1 AND id = $2"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(SQL)
        .bind(scope.id()).bind(id).fetch_optional(c).await)
}

/// The leads of `ids` that `scope` has (others are left out: another tenant's id names
/// nothing here), in no particular order.
pub async fn get_many(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    ids: &[Uuid],
) -> Result<Vec<CrmLead>, sqlx::Error> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(lead) = get(conn, scope, id).await? {
            out.push(lead);
        }
    }
    Ok(out)
}

/// Moves a lead to `stage`, with `lost_reason` kept only for [`Stage::Lost`] (the caller
/// checks it is given). False when the tenant has no such lead.
pub async fn set_stage(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    stage: Stage,
    lost_reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let reason = if stage == Stage::Lost {
        lost_reason
    } else {
        None
    };
    let done = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE leads SET stage = $3, lost_reason = $4, updated_at = $5
         WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(stage.as_str()).bind(reason).bind(Timestamp::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Gives a lead to `assignee` (`None`: nobody). The caller checks `assignee` is a member of
/// `scope`. False when the tenant has no such lead.
pub async fn assign(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    assignee: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE leads SET assignee_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(assignee).bind(Timestamp::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Files a lead as spam (`Some(reason)`) or rescues it as a lead (`None`). False when the
/// tenant has no such lead.
pub async fn set_spam(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE leads SET spam_reason = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(reason).bind(Timestamp::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// How many leads (spam left out) of `scope` are in each stage, every stage listed, in
/// pipeline order: the dashboard's "leads by stage".
pub async fn stage_counts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<Vec<(Stage, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT stage, count(*) FROM leads WHERE tenant_id = $1 AND spam_reason IS NULL
         GROUP BY stage"
    ).bind(scope.id()).fetch_all(c).await)?;
    Ok(Stage::ALL
        .into_iter()
        .map(|stage| {
            let n = rows
                .iter()
                .find(|(s, _)| s == stage.as_str())
                .map_or(0, |(_, n)| *n);
            (stage, n)
        })
        .collect())
}

/// Leads (spam left out) of `scope` still being worked on: neither won nor lost.
pub async fn open_count(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<i64, sqlx::Error> {
    let counts = stage_counts(conn, scope).await?;
    Ok(counts
        .iter()
        .filter(|(s, _)| s.is_open())
        .map(|(_, n)| n)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_cursors_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::parse("closed"), None);
        assert!(Stage::Proposal.is_open() && !Stage::Lost.is_open());
        let c = Cursor {
            created_at: Timestamp::from_unix_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::parse("x_y"), None);
    }
}
