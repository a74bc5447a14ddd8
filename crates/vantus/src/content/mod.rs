//! Site content: case studies, insight articles and pages. Model, queries and the generation
//! counter that tells page caches when content changed.
//!
//! Every query takes a [`TenantScope`]; content of one tenant is unreachable from another.
//! Queries take a [`Conn`], so a caller can make them part of its own transaction.

pub mod editing;
pub mod fields;
pub mod markdown;
pub mod meta;
pub mod preview;
pub mod revisions;
pub mod schedule;
pub mod seed;
#[doc(hidden)]
pub mod xss_corpus;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

pub use markdown::SanitizedHtml;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentKind {
    CaseStudy,
    Insight,
    Page,
}

impl ContentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::CaseStudy => "case_study",
            ContentKind::Insight => "insight",
            ContentKind::Page => "page",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "case_study" => Some(ContentKind::CaseStudy),
            "insight" => Some(ContentKind::Insight),
            "page" => Some(ContentKind::Page),
            _ => None,
        }
    }

    /// Public URL path of an item of this kind.
    pub fn path_of(self, slug: &str) -> String {
        match self {
            ContentKind::CaseStudy => format!("/work/{slug}"),
            ContentKind::Insight => format!("/insights/{slug}"),
            ContentKind::Page if slug == "home" => "/".to_owned(),
            ContentKind::Page => format!("/{slug}"),
        }
    }
}

/// A published item with its body, as a detail page needs it.
#[derive(Clone, Debug)]
pub struct ContentItem {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    /// Kind-specific fields as JSON; read with [`ContentItem::meta`].
    pub meta: String,
    pub published_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// SEO fields; empty when not set (see [`editing::Seo`]).
    pub seo_description: String,
    pub seo_image: String,
    pub seo_canonical: String,
}
crate::store::from_row!(ContentItem {
    id,
    slug,
    title,
    summary,
    body_markdown,
    meta,
    published_at,
    updated_at,
    seo_description,
    seo_image,
    seo_canonical
});

/// The columns of [`ContentItem`], spliced into queries at compile time (`concat!`).
macro_rules! item_columns {
    () => {
        "id, slug, title, summary, body_markdown, meta, published_at, updated_at, \
         seo_description, seo_image, seo_canonical"
    };
}

/// A published item without its body, as lists and feeds need it.
#[derive(Clone, Debug)]
pub struct ContentSummary {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub meta: String,
    pub published_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}
crate::store::from_row!(ContentSummary {
    slug,
    title,
    summary,
    meta,
    published_at,
    updated_at
});

/// Parses kind-specific fields. Content edited into an unexpected shape degrades to defaults
/// (and a warning) rather than taking the page down.
fn parse_meta<T: DeserializeOwned + Default>(slug: &str, json: &str) -> T {
    serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::warn!(slug, error = %e, "content fields unreadable; showing defaults");
        T::default()
    })
}

impl ContentItem {
    pub fn meta<T: DeserializeOwned + Default>(&self) -> T {
        parse_meta(&self.slug, &self.meta)
    }

    pub fn body_html(&self) -> SanitizedHtml {
        markdown::render(&self.body_markdown)
    }
}

impl ContentSummary {
    pub fn meta<T: DeserializeOwned + Default>(&self) -> T {
        parse_meta(&self.slug, &self.meta)
    }
}

/// One published item by kind and slug.
pub async fn find_published(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    slug: &str,
) -> Result<Option<ContentItem>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        "SELECT ", item_columns!(), "
         FROM content_items
         WHERE tenant_id = $1 AND kind = $2 AND slug = $3
           AND status = 'published' AND deleted_at IS NULL"
    )).bind(scope.id()).bind(kind.as_str()).bind(slug).fetch_optional(c).await)
}

/// Published items of a kind, newest first.
pub async fn list_published(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    limit: i64,
    offset: i64,
) -> Result<Vec<ContentSummary>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT slug, title, summary, meta, published_at, updated_at
         FROM content_items
         WHERE tenant_id = $1 AND kind = $2 AND status = 'published' AND deleted_at IS NULL
         ORDER BY published_at DESC, slug
         LIMIT $3 OFFSET $4"
    ).bind(scope.id()).bind(kind.as_str()).bind(limit).bind(offset).fetch_all(c).await)
}

pub async fn count_published(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
) -> Result<i64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM content_items
         WHERE tenant_id = $1 AND kind = $2 AND status = 'published' AND deleted_at IS NULL"
    ).bind(scope.id()).bind(kind.as_str()).fetch_one(c).await)
}

/// The tenant's content generation: it grows with every content change.
pub async fn generation(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<i64, sqlx::Error> {
    let g: Option<i64> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT content_generation FROM site_state WHERE tenant_id = $1"
    ).bind(scope.id()).fetch_optional(c).await)?;
    Ok(g.unwrap_or(0))
}

/// Run in the same transaction as every content write: page caches and replica freshness
/// checks compare generations, so content and generation must change together.
const BUMP_GENERATION: &str = "UPDATE site_state
     SET content_generation = content_generation + 1, updated_at = $2
     WHERE tenant_id = $1";

/// Bumps the tenant's content generation: call it in the transaction of every change the
/// public site can see (publish, unpublish, delete, a slug's redirect), so page caches on every
/// replica retire what they hold.
pub async fn bump_generation(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(BUMP_GENERATION)
        .bind(scope.id())
        .bind(Timestamp::now())
        .execute(c)
        .await
        .map(|_| ()))
}

/// A new or changed item, as the seed (and later the CMS) supplies it.
#[derive(Clone, Debug)]
pub struct NewContent {
    pub kind: ContentKind,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub meta_json: String,
    pub published_at: Timestamp,
}

/// Inserts items that do not exist yet (by kind and slug) and bumps the generation if any
/// was added. Existing items are never overwritten: an editor's change outlives a new
/// release's seed. Returns how many were inserted.
pub async fn insert_missing(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    items: &[NewContent],
) -> Result<u64, sqlx::Error> {
    let now = Timestamp::now();
    // Its own transaction, or a savepoint inside the caller's: the items and the generation
    // change together either way.
    on_conn!(conn.reborrow(), c => {
        let mut tx = sqlx::Connection::begin(c).await?;
        let mut inserted = 0;
        for item in items {
            let result = sqlx::query(
                "INSERT INTO content_items
                   (id, tenant_id, kind, slug, title, summary, body_markdown, meta, status,
                    published_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'published', $9, $10, $10)
                 ON CONFLICT (tenant_id, kind, slug) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(scope.id())
            .bind(item.kind.as_str())
            .bind(&item.slug)
            .bind(&item.title)
            .bind(&item.summary)
            .bind(&item.body_markdown)
            .bind(&item.meta_json)
            .bind(item.published_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            inserted += result.rows_affected();
        }
        if inserted > 0 {
            sqlx::query(BUMP_GENERATION)
            .bind(scope.id())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    })
}

/// Changes an item's title and body (the CMS's edit) and bumps the generation in the same
/// transaction, so a cache can never hold the new generation with the old content.
pub async fn update_body(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    slug: &str,
    title: &str,
    body_markdown: &str,
) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    // Its own transaction, or a savepoint inside the caller's (as in `insert_missing`).
    on_conn!(conn.reborrow(), c => {
        let mut tx = sqlx::Connection::begin(c).await?;
        let changed = sqlx::query(
            "UPDATE content_items SET title = $4, body_markdown = $5, updated_at = $6
             WHERE tenant_id = $1 AND kind = $2 AND slug = $3 AND deleted_at IS NULL",
        )
        .bind(scope.id())
        .bind(kind.as_str())
        .bind(slug)
        .bind(title)
        .bind(body_markdown)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if changed {
            sqlx::query(BUMP_GENERATION)
            .bind(scope.id())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    })
}
