//! The demo tenant and its site content, from the Markdown files in `content/` (embedded in the
//! binary at build time, so a container needs nothing beside it).
//!
//! A file is TOML front matter between `+++` lines, then the Markdown body. Seeding is
//! idempotent: items that exist are left alone, so restarts and concurrent replicas are safe and
//! editors' changes survive upgrades.

use rust_embed::RustEmbed;

use super::meta::{CaseStudyMeta, HomeMeta, InsightMeta, ProcessMeta, ServicesMeta};
use super::{ContentKind, NewContent};
use crate::store::migrate::{self, SetupError};
use crate::store::{Conn, Db, Timestamp};
use crate::tenancy::{self, TenantScope};

#[derive(RustEmbed)]
#[folder = "../../content/"]
#[include = "*.md"]
struct SeedFiles;

/// Display name and contact of the demo tenant created on first start.
const DEMO_TENANT_NAME: &str = "Vantus Systems";
const DEMO_TENANT_CONTACT: &str = "hello@vantus.systems";

/// A seed file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("content/{file}: {problem}")]
pub struct SeedError {
    pub file: String,
    pub problem: String,
}

/// Parses every embedded seed file.
pub fn load() -> Result<Vec<NewContent>, SeedError> {
    let mut items = Vec::new();
    let mut names: Vec<_> = SeedFiles::iter().collect();
    names.sort();
    for name in names {
        let file = SeedFiles::get(&name).expect("listed files exist");
        let text = std::str::from_utf8(&file.data).map_err(|_| SeedError {
            file: name.to_string(),
            problem: "is not UTF-8".into(),
        })?;
        items.push(parse(&name, text).map_err(|problem| SeedError {
            file: name.to_string(),
            problem,
        })?);
    }
    Ok(items)
}

/// Parses one file; `path` is relative to `content/` (e.g. `insights/graphql-at-scale.md`).
pub fn parse(path: &str, text: &str) -> Result<NewContent, String> {
    let text = text.replace("\r\n", "\n");
    let rest = text
        .strip_prefix("+++\n")
        .ok_or("must start with a +++ line (TOML front matter)")?;
    let end = rest
        .find("\n+++\n")
        .ok_or("front matter has no closing +++ line")?;
    let (front, body) = (&rest[..end], &rest[end + 5..]);
    let table: toml::Table =
        toml::from_str(front).map_err(|e| format!("front matter: {}", e.message()))?;

    let string = |key: &str| -> Result<String, String> {
        table
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("front matter needs a non-empty `{key}`"))
    };
    let kind_str = string("kind")?;
    let kind = ContentKind::parse(&kind_str)
        .ok_or_else(|| format!("kind \"{kind_str}\" is not one of case_study, insight, page"))?;
    let slug = string("slug")?;
    let (folder, stem) = path
        .strip_suffix(".md")
        .and_then(|p| p.rsplit_once('/'))
        .ok_or("must live in case-studies/, insights/ or pages/")?;
    let expected_folder = match kind {
        ContentKind::CaseStudy => "case-studies",
        ContentKind::Insight => "insights",
        ContentKind::Page => "pages",
    };
    if folder != expected_folder {
        return Err(format!("a {kind_str} belongs in {expected_folder}/"));
    }
    if slug != stem || !tenancy::is_valid_slug(&slug) {
        return Err(format!(
            "slug \"{slug}\" must equal the file name and be lowercase-with-hyphens"
        ));
    }
    let title = string("title")?;
    let summary = string("summary")?;
    let published_at = table
        .get("published_at")
        .and_then(|v| v.as_datetime())
        .and_then(|d| Timestamp::parse_rfc3339(&d.to_string()))
        .ok_or("published_at must be a UTC date-time such as 2026-03-02T09:00:00Z")?;

    let extra = match kind {
        ContentKind::CaseStudy => table.get("case_study"),
        ContentKind::Insight => table.get("insight"),
        ContentKind::Page => table
            .get("page")
            .and_then(|p| p.as_table())
            .and_then(|p| p.get(&slug)),
    };
    let meta = match extra {
        Some(v) => serde_json::to_value(v).map_err(|e| format!("extra fields: {e}"))?,
        None => serde_json::Value::Object(Default::default()),
    };
    check_meta_shape(kind, &slug, &meta)?;

    Ok(NewContent {
        kind,
        slug,
        title,
        summary,
        body_markdown: body.trim_start_matches('\n').to_owned(),
        meta_json: meta.to_string(),
        published_at,
    })
}

/// Proves the kind-specific fields match what the templates read, so a typo in a seed file
/// fails the build's tests instead of silently blanking part of a page.
pub(crate) fn check_meta_shape(
    kind: ContentKind,
    slug: &str,
    meta: &serde_json::Value,
) -> Result<(), String> {
    fn strict<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<(), String> {
        serde_json::from_value::<T>(v.clone())
            .map(|_| ())
            .map_err(|e| format!("extra fields: {e}"))
    }
    match (kind, slug) {
        (ContentKind::CaseStudy, _) => strict::<CaseStudyMeta>(meta),
        (ContentKind::Insight, _) => strict::<InsightMeta>(meta),
        (ContentKind::Page, "home") => strict::<HomeMeta>(meta),
        (ContentKind::Page, "services") => strict::<ServicesMeta>(meta),
        (ContentKind::Page, "process") => strict::<ProcessMeta>(meta),
        (ContentKind::Page, _) => Ok(()),
    }
}

/// Creates the site tenant and inserts seed content it lacks. Returns the scope and how many
/// items were added (0 on every start after the first). Run it in a transaction
/// ([`migrate_and_seed`] does) so a tenant never exists without its content.
pub async fn seed_site_tenant(
    conn: &mut Conn<'_>,
    slug: &str,
) -> Result<(TenantScope, u64), SeedSetupError> {
    let items = load()?;
    let scope = tenancy::ensure(conn, slug, DEMO_TENANT_NAME, Some(DEMO_TENANT_CONTACT)).await?;
    let added = super::insert_missing(conn, &scope, &items).await?;
    Ok((scope, added))
}

/// Applies pending migrations, then seeds the site tenant `slug` in one transaction, then
/// seals audit rows that have no place in the hash chain yet (those from before the chain, or
/// written by an older release during an upgrade), all under the migration lock: what
/// `vantus serve` does at start-up and `vantus migrate` on demand.
pub async fn migrate_and_seed(db: &Db, slug: &str) -> Result<(TenantScope, u64), SetupError> {
    migrate::migrate_then(db, async {
        let seeded = in_write_tx!(db, conn => seed_site_tenant(conn, slug).await)
            .map_err(|e: SeedSetupError| SetupError::Seed(e.to_string()))?;
        let sealed = crate::audit::chain::seal_unchained(db).await?;
        if sealed > 0 {
            tracing::info!(rows = sealed, "sealed audit rows into the hash chain");
        }
        Ok::<_, SetupError>(seeded)
    })
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum SeedSetupError {
    #[error("seed content is invalid: {0}")]
    Invalid(#[from] SeedError),
    #[error("cannot write seed content: {0}")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_file_parses_with_its_fields() {
        let items = load().expect("seed content is valid");
        let count = |k| items.iter().filter(|i| i.kind == k).count();
        assert!(count(ContentKind::CaseStudy) >= 3);
        assert!(count(ContentKind::Insight) >= 3);
        for page in [
            "home", "services", "process", "about", "trust", "contact", "privacy", "terms",
        ] {
            assert!(
                items
                    .iter()
                    .any(|i| i.kind == ContentKind::Page && i.slug == page),
                "page {page} missing"
            );
        }
        let home = items.iter().find(|i| i.slug == "home").unwrap();
        let meta: HomeMeta = serde_json::from_str(&home.meta_json).unwrap();
        assert_eq!(meta.proof_points.len(), 3);
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let ok = "+++\nkind = \"insight\"\nslug = \"a\"\ntitle = \"T\"\nsummary = \"S\"\npublished_at = 2026-01-01T00:00:00Z\n+++\nBody";
        assert!(parse("insights/a.md", ok).is_ok());
        assert!(
            parse("insights/b.md", ok)
                .unwrap_err()
                .contains("file name")
        );
        assert!(parse("pages/a.md", ok).unwrap_err().contains("insights/"));
        assert!(
            parse("insights/a.md", "no front matter")
                .unwrap_err()
                .contains("+++")
        );
        let bad_date = ok.replace("2026-01-01T00:00:00Z", "\"yesterday\"");
        assert!(
            parse("insights/a.md", &bad_date)
                .unwrap_err()
                .contains("published_at")
        );
        let bad_meta = ok.replace("+++\nBody", "[insight]\ntags = \"not a list\"\n+++\nBody");
        assert!(
            parse("insights/a.md", &bad_meta)
                .unwrap_err()
                .contains("extra fields")
        );
    }
}
