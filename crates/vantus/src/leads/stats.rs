//! Pipeline figures for the portal's dashboard: how many leads are new, open, and in each
//! stage. Spam is never counted (a lead is a row whose `spam_reason` is NULL).

use crate::store::{Conn, on_conn};
use crate::tenancy::TenantScope;

/// Stages that end a lead's pipeline; every other stage counts as open.
pub const CLOSED_STAGES: [&str; 2] = ["won", "lost"];

/// The tenant's lead figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineFigures {
    /// Leads in the `new` stage (nobody has acted on them yet).
    pub new: i64,
    /// Leads in any stage but won or lost, new ones included.
    pub open: i64,
    /// Every stage that has leads, with how many, in pipeline order.
    pub by_stage: Vec<(String, i64)>,
}

/// Counts the tenant's leads by stage, in one query.
pub async fn pipeline(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<PipelineFigures, sqlx::Error> {
    let mut rows: Vec<(String, i64)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT stage, COUNT(*) FROM leads
         WHERE tenant_id = $1 AND spam_reason IS NULL
         GROUP BY stage"
    ).bind(scope.id()).fetch_all(c).await)?;
    rows.sort_by_key(|(stage, _)| (stage_rank(stage), stage.clone()));
    let count = |wanted: &dyn Fn(&str) -> bool| {
        rows.iter()
            .filter(|(s, _)| wanted(s))
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    Ok(PipelineFigures {
        new: count(&|s| s == "new"),
        open: count(&|s| !CLOSED_STAGES.contains(&s)),
        by_stage: rows,
    })
}

/// Pipeline order; stages this build does not know (added by a later migration) go last.
fn stage_rank(stage: &str) -> usize {
    const ORDER: [&str; 6] = ["new", "contacted", "qualified", "proposal", "won", "lost"];
    ORDER
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(ORDER.len())
}
