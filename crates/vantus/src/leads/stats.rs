//! Pipeline figures for the portal's dashboard: how many leads are new, open, and in each
//! stage, from the CRM's one count by stage ([`crm::stage_counts`]). Spam is never counted.

use super::crm::{self, Stage};
use crate::store::Conn;
use crate::tenancy::TenantScope;

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

pub async fn pipeline(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<PipelineFigures, sqlx::Error> {
    let counts = crm::stage_counts(conn, scope).await?;
    Ok(PipelineFigures {
        new: count(&counts, |s| s == Stage::New),
        open: count(&counts, Stage::is_open),
        by_stage: counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str().to_owned(), *n))
            .collect(),
    })
}

fn count(counts: &[(Stage, i64)], wanted: impl Fn(Stage) -> bool) -> i64 {
    counts
        .iter()
        .filter(|(s, _)| wanted(*s))
        .map(|(_, n)| n)
        .sum()
}
