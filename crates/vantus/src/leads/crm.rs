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
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
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

impl CrmLead {
    pub fn stage(&self) -> Option<Stage> {
        Stage::parse(&self.stage)
    }
}

macro_rules! crm_columns {
    () => {
        "leads.id, stage, spam_reason, source, name, email, company, role, budget, website, \
         message, assignee_id, lost_reason, created_at, updated_at"
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

/// The WHERE clause of `filter` in `scope` (the inbox condition is spelled as the partial
/// indexes spell it, so the planner can use them).
async fn filtered(
    conn: &mut Conn<'_>,
    select: &str,
    scope: &TenantScope,
    filter: &Filter,
) -> Result<Built, sqlx::Error> {
    let mut b = Built::new(select);
    b.sql.push_str(" FROM leads WHERE tenant_id = $1");
    b.args.push(Arg::Uuid(scope.id()));
    b.sql.push_str(if filter.spam {
        " AND spam_reason IS NOT NULL"
    } else {
        " AND spam_reason IS NULL"
    });
    if let Some(stage) = filter.stage {
        b.and("stage = $?", Arg::Text(stage.as_str().into()));
    }
    if let Some(source) = filter.source {
        b.and("source = $?", Arg::Text(source.as_str().into()));
    }
    match filter.owner {
        Owner::Anyone => {}
        Owner::Unassigned => b.sql.push_str(" AND assignee_id IS NULL"),
        Owner::Member(id) => b.and("assignee_id = $?", Arg::Uuid(id)),
    }
    if let Some(from) = filter.from {
        b.and("created_at >= $?", Arg::Time(from));
    }
    if let Some(until) = filter.until {
        b.and("created_at < $?", Arg::Time(until));
    }
    if !filter.words.is_empty() {
        let n = b.args.len() + 1;
        let (clause, value) = search::lead_condition(conn, n, &filter.words).await?;
        b.push(Arg::Text(value));
        b.sql.push_str(" AND ");
        b.sql.push_str(&clause);
    }
    Ok(b)
}

/// Up to `limit` leads of `scope` matching `filter`, newest first, after `after` (`None`: from
/// the newest). The next page starts after the last one's [`Cursor`].
pub async fn page(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<CrmLead>, sqlx::Error> {
    let mut b = filtered(conn, concat!("SELECT ", crm_columns!()), scope, filter).await?;
    if let Some(cursor) = after {
        let t = b.push(Arg::Time(cursor.created_at));
        let i = b.push(Arg::Uuid(cursor.id));
        b.sql
            .push_str(&format!(" AND (created_at, leads.id) < (${t}, ${i})"));
    }
    let l = b.push(Arg::Int(limit.clamp(0, 1000)));
    b.sql.push_str(&format!(
        " ORDER BY created_at DESC, leads.id DESC LIMIT ${l}"
    ));
    let Built { sql, args } = b;
    on_conn!(conn.reborrow(), c => bind_all!(sqlx::query_as::<_, CrmLead>(sqlx::AssertSqlSafe(sql)), &args)
        .fetch_all(c).await)
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
