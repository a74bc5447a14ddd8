//! A generated data set for benchmarks and drills: content items written through the content
//! module (the app's own path), and audit-log rows in bulk. Text deliberately mixes scripts,
//! emoji and combining characters so copies and restores prove they keep Unicode exactly.

use serde_json::json;
use uuid::Uuid;

use super::OpsError;
use crate::content::{self, ContentKind, NewContent};
use crate::store::rows::{self, Row};
use crate::store::schema;
use crate::store::{Db, Timestamp};
use crate::tenancy;

const SAMPLES: &[&str] = &[
    "Zürich café — naïve façade",
    "東京の配送センター",
    "Ünïcödé ✓ 🚚📦",
    "e\u{301}te\u{301} (combining accents)",
    "Ελληνικά και Русский",
    "plain ASCII",
];

#[derive(Debug, serde::Serialize)]
pub struct Generated {
    pub content_items: u64,
    pub audit_rows: u64,
}

/// Adds `content_items` insight articles to tenant `generated` and `audit_rows` audit events.
pub async fn run(db: &Db, content_items: u64, audit_rows: u64) -> Result<Generated, OpsError> {
    let scope =
        with_conn!(db, conn => tenancy::ensure(conn, "generated", "Generated data", None).await)?;
    let base = Timestamp::now().unix_micros();
    let mut added = 0;
    let mut batch = Vec::new();
    for i in 0..content_items {
        let sample = SAMPLES[i as usize % SAMPLES.len()];
        batch.push(NewContent {
            kind: ContentKind::Insight,
            slug: format!("generated-{i}"),
            title: format!("Generated article {i}: {sample}"),
            summary: format!("Summary {i} — {sample}"),
            body_markdown: format!(
                "## Section {i}\n\n{sample}\n\n- item one\n- item two\n\n{}",
                "Lorem words ".repeat(40)
            ),
            meta_json: json!({ "author": "Generator", "tags": [sample, "generated"] }).to_string(),
            published_at: Timestamp::from_unix_micros(base - i as i64 * 1_000_000)
                .expect("valid time"),
        });
        if batch.len() == 200 {
            added += with_conn!(db, conn => content::insert_missing(conn, &scope, &batch).await)?;
            batch.clear();
        }
    }
    added += with_conn!(db, conn => content::insert_missing(conn, &scope, &batch).await)?;

    let tables = schema::tables(db).await?;
    let audit = tables
        .iter()
        .find(|t| t.name == "audit_log")
        .ok_or_else(|| OpsError::Refused("no audit_log table".into()))?;
    let per_batch = rows::batch_size(audit.columns.len());
    let mut written = 0u64;
    while written < audit_rows {
        let n = per_batch.min((audit_rows - written) as usize);
        let page: Vec<Row> = (0..n)
            .map(|k| {
                let i = written + k as u64;
                let sample = SAMPLES[i as usize % SAMPLES.len()];
                audit
                    .columns
                    .iter()
                    .map(|c| match c.name.as_str() {
                        "id" => json!(Uuid::now_v7().to_string()),
                        "tenant_id" => json!(scope.id().to_string()),
                        "actor" => json!(format!("user-{}", i % 97)),
                        "action" => json!(
                            ["lead.created", "content.updated", "session.started"][i as usize % 3]
                        ),
                        "resource" => json!(format!("lead/{i}")),
                        "detail" => json!(json!({ "note": sample, "n": i }).to_string()),
                        "ip" => json!(format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 7)),
                        "request_id" => json!(Uuid::new_v4().to_string()),
                        "created_at" => json!(
                            Timestamp::from_unix_micros(base - i as i64 * 1_000)
                                .expect("valid")
                                .to_fixed_string()
                        ),
                        _ => serde_json::Value::Null,
                    })
                    .collect()
            })
            .collect();
        on_db!(db, pool => {
            let mut tx = pool.begin().await?;
            rows::insert(rows::conn(&mut tx), audit, &audit.columns, &page).await?;
            tx.commit().await
        })?;
        written += n as u64;
    }
    Ok(Generated {
        content_items: added,
        audit_rows: written,
    })
}
