//! A generated data set for benchmarks and drills: content items written through the content
//! module (the app's own path), and audit-log rows in bulk. Text deliberately mixes scripts,
//! emoji and combining characters so copies and restores prove they keep Unicode exactly.

use serde_json::json;
use uuid::Uuid;

use super::OpsError;
use crate::audit::chain;
use crate::content::{self, ContentKind, NewContent};
use crate::store::{Db, Timestamp};
use crate::tenancy;

/// Audit rows appended per transaction.
const AUDIT_PAGE: u64 = 1000;

/// The text of one generated audit row, owned while its entry borrows it.
struct GeneratedAuditText {
    actor: String,
    action: &'static str,
    resource: String,
    detail: String,
    ip: String,
    request_id: String,
    created_at: Timestamp,
}

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

    // Through the chain like every audit entry, so a generated data set verifies (and its
    // backups, copies and restores are checked the way real ones are).
    let mut written = 0u64;
    while written < audit_rows {
        let n = AUDIT_PAGE.min(audit_rows - written);
        let texts: Vec<GeneratedAuditText> = (written..written + n)
            .map(|i| {
                let sample = SAMPLES[i as usize % SAMPLES.len()];
                GeneratedAuditText {
                    actor: format!("user-{}", i % 97),
                    resource: format!("lead/{i}"),
                    detail: json!({ "note": sample, "n": i }).to_string(),
                    ip: format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 7),
                    request_id: Uuid::new_v4().to_string(),
                    created_at: Timestamp::from_unix_micros(base - i as i64 * 1_000)
                        .expect("valid"),
                    action: ["lead.created", "content.updated", "session.started"][i as usize % 3],
                }
            })
            .collect();
        let entries: Vec<chain::EntryFields<'_>> = texts
            .iter()
            .map(|t| chain::EntryFields {
                id: Uuid::now_v7(),
                tenant_id: Some(scope.id()),
                actor: &t.actor,
                action: t.action,
                resource: &t.resource,
                detail: &t.detail,
                ip: Some(&t.ip),
                request_id: Some(&t.request_id),
                created_at: t.created_at,
            })
            .collect();
        in_write_tx!(db, conn => chain::append(conn, &entries).await)?;
        written += n;
    }
    Ok(Generated {
        content_items: added,
        audit_rows: written,
    })
}
