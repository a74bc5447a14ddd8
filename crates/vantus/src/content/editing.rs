//! Editing content from the portal: create, save a draft, publish, unpublish, delete and
//! restore, and the redirects a slug change leaves behind.
//!
//! The model, in one paragraph: a `content_items` row is what the public site shows (its
//! status, slug and fields as last published). Every save writes a new revision
//! ([`super::revisions`]) and points the item's `draft_revision_id` at it; the row itself is
//! left alone, so a draft of a published item never changes its public page. Publishing copies
//! the draft revision into the row, in one transaction with the content generation's bump (so
//! every replica's page cache retires the old page) and, if the slug changed, a redirect from
//! the old address.
//!
//! Every function takes a [`TenantScope`] and a [`Conn`]: the caller runs it inside the write
//! transaction that also records the audit entry.

use uuid::Uuid;

pub use super::fields::{Fields, Invalid, Seo};
use super::revisions::{self, NewRevision, Revision};
use super::{ContentKind, bump_generation};
use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// Why an edit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    /// No such item in this tenant (or it is deleted, where that matters).
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<Invalid> for EditError {
    fn from(i: Invalid) -> Self {
        EditError::Invalid(i)
    }
}

/// Pages whose address the site's routes fix (`/`, `/services`, `/process`, `/contact`…): their
/// slug cannot change, and no other page may take one of these.
pub const FIXED_PAGES: &[&str] = &[
    "home", "services", "process", "contact", "about", "trust", "privacy", "terms",
];

/// An item as the portal sees it: its live state, and whether a draft is waiting.
#[derive(Clone, Debug)]
pub struct AdminItem {
    pub id: Uuid,
    pub kind: String,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub meta: String,
    pub status: String,
    pub published_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub seo_description: String,
    pub seo_image: String,
    pub seo_canonical: String,
    pub draft_revision_id: Option<Uuid>,
    pub published_revision_id: Option<Uuid>,
}
crate::store::from_row!(AdminItem {
    id,
    kind,
    slug,
    title,
    summary,
    body_markdown,
    meta,
    status,
    published_at,
    updated_at,
    deleted_at,
    seo_description,
    seo_image,
    seo_canonical,
    draft_revision_id,
    published_revision_id
});

impl AdminItem {
    pub fn kind(&self) -> ContentKind {
        ContentKind::parse(&self.kind).unwrap_or(ContentKind::Page)
    }

    pub fn is_published(&self) -> bool {
        self.status == "published" && self.deleted_at.is_none()
    }

    /// The fields as they stand in the row (what was last published, or created).
    pub fn fields(&self) -> Fields {
        Fields {
            slug: self.slug.clone(),
            title: self.title.clone(),
            summary: self.summary.clone(),
            body_markdown: self.body_markdown.clone(),
            meta: self.meta.clone(),
            seo: Seo {
                description: self.seo_description.clone(),
                image: self.seo_image.clone(),
                canonical: self.seo_canonical.clone(),
            },
        }
    }
}

/// `fields` dressed as the item they would become once published (for previews).
pub fn as_published(
    id: Uuid,
    published_at: Option<Timestamp>,
    fields: &Fields,
    at: Timestamp,
) -> super::ContentItem {
    super::ContentItem {
        id,
        slug: fields.slug.clone(),
        title: fields.title.clone(),
        summary: fields.summary.clone(),
        body_markdown: fields.body_markdown.clone(),
        meta: fields.meta.clone(),
        published_at: Some(published_at.unwrap_or(at)),
        updated_at: at,
        seo_description: fields.seo.description.clone(),
        seo_image: fields.seo.image.clone(),
        seo_canonical: fields.seo.canonical.clone(),
    }
}

macro_rules! admin_columns {
    () => {
        "id, kind, slug, title, summary, body_markdown, meta, status, published_at, updated_at, \
         deleted_at, seo_description, seo_image, seo_canonical, draft_revision_id, \
         published_revision_id"
    };
}

/// An item of this tenant by id, deleted or not.
pub async fn find(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<AdminItem>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        "SELECT ", admin_columns!(), " FROM content_items WHERE tenant_id = $1 AND id = $2"
    )).bind(scope.id()).bind(id).fetch_optional(c).await)
}

/// One line of the content list: the item, and the title of its pending draft if any.
#[derive(Clone, Debug)]
pub struct ListedItem {
    pub id: Uuid,
    pub kind: String,
    pub slug: String,
    pub title: String,
    pub status: String,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub draft_title: Option<String>,
    pub draft_saved_at: Option<Timestamp>,
}
crate::store::from_row!(ListedItem {
    id,
    kind,
    slug,
    title,
    status,
    updated_at,
    deleted_at,
    draft_title,
    draft_saved_at
});

/// The tenant's items, newest change first: the live ones, or (`deleted`) the bin.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: Option<ContentKind>,
    deleted: bool,
) -> Result<Vec<ListedItem>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT i.id, i.kind, i.slug, i.title, i.status, i.updated_at, i.deleted_at,
                r.title AS draft_title, r.created_at AS draft_saved_at
         FROM content_items i
         LEFT JOIN content_revisions r ON r.id = i.draft_revision_id AND r.tenant_id = i.tenant_id
         WHERE i.tenant_id = $1 AND ($2 = '' OR i.kind = $2)
           AND ((i.deleted_at IS NOT NULL) = $3)
         ORDER BY COALESCE(r.created_at, i.updated_at) DESC, i.slug
         LIMIT 1000"
    ).bind(scope.id()).bind(kind.map(|k| k.as_str()).unwrap_or("")).bind(deleted).fetch_all(c).await)
}

/// Whether `slug` is free for `kind` in this tenant, other than for item `except`: no other
/// item has it (live, unpublished or deleted: the unique key covers them all), and no other
/// item's pending draft claims it.
async fn check_slug_free(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    slug: &str,
    except: Option<Uuid>,
) -> Result<(), EditError> {
    let except = except.unwrap_or(Uuid::nil());
    let taken: Option<(String, Option<Timestamp>)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT i.title, i.deleted_at FROM content_items i
         WHERE i.tenant_id = $1 AND i.kind = $2 AND i.id <> $4
           AND (i.slug = $3 OR EXISTS (
                SELECT 1 FROM content_revisions r
                WHERE r.id = i.draft_revision_id AND r.slug = $3))
         LIMIT 1"
    ).bind(scope.id()).bind(kind.as_str()).bind(slug).bind(except).fetch_optional(c).await)?;
    match taken {
        None => Ok(()),
        Some((title, deleted)) => Err(Invalid::new(
            "slug",
            format!(
                "\"{slug}\" is taken by \"{title}\"{}",
                if deleted.is_some() {
                    " (in the bin)"
                } else {
                    ""
                }
            ),
        )
        .into()),
    }
}

/// Creates an item as a draft (never published) with its first revision. Returns its id.
pub async fn create(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    fields: Fields,
    author: Uuid,
) -> Result<(Uuid, Revision), EditError> {
    let fields = fields.validate(kind)?;
    check_slug_free(conn, scope, kind, &fields.slug, None).await?;
    let id = Uuid::now_v7();
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO content_items
           (id, tenant_id, kind, slug, title, summary, body_markdown, meta, status,
            published_at, created_at, updated_at, seo_description, seo_image, seo_canonical)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', NULL, $9, $9, $10, $11, $12)"
    )
    .bind(id).bind(scope.id()).bind(kind.as_str()).bind(&fields.slug).bind(&fields.title)
    .bind(&fields.summary).bind(&fields.body_markdown).bind(&fields.meta).bind(now)
    .bind(&fields.seo.description).bind(&fields.seo.image).bind(&fields.seo.canonical)
    .execute(c).await.map(|_| ()))?;
    let revision = record_draft(conn, scope, id, &fields, author, "created").await?;
    Ok((id, revision))
}

/// Writes a revision and makes it the item's pending draft.
async fn record_draft(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    fields: &Fields,
    author: Uuid,
    note: &str,
) -> Result<Revision, sqlx::Error> {
    let revision = revisions::insert(
        conn,
        scope,
        &NewRevision {
            item_id: id,
            fields,
            note,
            author: Some(author),
        },
    )
    .await?;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_items SET draft_revision_id = $3, updated_at = $4
         WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(revision.id).bind(revision.created_at).execute(c).await.map(|_| ()))?;
    Ok(revision)
}

/// Saves an edit as a new revision, the item's pending draft. The public page is unchanged
/// until it is published. `note` says what made it ("saved", "restored from revision 3").
pub async fn save_draft(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    fields: Fields,
    author: Uuid,
    note: &str,
) -> Result<Revision, EditError> {
    let item = find(conn, scope, id).await?.ok_or(EditError::NotFound)?;
    if item.deleted_at.is_some() {
        return Err(EditError::NotFound);
    }
    let kind = item.kind();
    let fields = fields.validate(kind)?;
    if kind == ContentKind::Page
        && fields.slug != item.slug
        && FIXED_PAGES.contains(&item.slug.as_str())
    {
        return Err(Invalid::new(
            "slug",
            format!(
                "the address of the \"{}\" page is fixed by the site",
                item.slug
            ),
        )
        .into());
    }
    if kind == ContentKind::Page
        && fields.slug != item.slug
        && FIXED_PAGES.contains(&fields.slug.as_str())
    {
        return Err(Invalid::new(
            "slug",
            format!("\"{}\" is a reserved address; choose another", fields.slug),
        )
        .into());
    }
    check_slug_free(conn, scope, kind, &fields.slug, Some(id)).await?;
    Ok(record_draft(conn, scope, id, &fields, author, note).await?)
}

/// What publishing did, for the audit entry.
#[derive(Clone, Debug)]
pub struct Published {
    pub revision: Option<Uuid>,
    pub slug: String,
    /// The slug the item had before, when publishing moved it (a redirect now leads from it).
    pub moved_from: Option<String>,
}

/// Publishes the pending draft (or, for an unpublished item with no draft, what it had).
/// `Ok(None)`: it is published already and nothing is pending.
pub async fn publish(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<Published>, EditError> {
    publish_revision(conn, scope, id, None).await
}

/// Publishes revision `pinned` of the item, or the pending draft when `None` (see
/// [`publish`]). A scheduled publish pins the draft it was scheduled for: a draft saved after
/// that is not what the scheduler approved, so it stays pending. `Ok(None)`: `pinned` is what
/// is published already.
pub async fn publish_revision(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
    pinned: Option<Uuid>,
) -> Result<Option<Published>, EditError> {
    let item = find(conn, scope, id).await?.ok_or(EditError::NotFound)?;
    if item.deleted_at.is_some() {
        return Err(EditError::NotFound);
    }
    let kind = item.kind();
    let (fields, revision) = match pinned.or(item.draft_revision_id) {
        Some(rev) if item.is_published() && item.published_revision_id == Some(rev) => {
            return Ok(None);
        }
        Some(rev) => {
            let r = revisions::find(conn, scope, id, rev)
                .await?
                .ok_or(EditError::NotFound)?;
            (r.fields(), Some(rev))
        }
        None if item.is_published() => return Ok(None),
        None => (item.fields(), item.published_revision_id),
    };
    if fields.slug != item.slug {
        check_slug_free(conn, scope, kind, &fields.slug, Some(id)).await?;
    }
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_items
         SET slug = $3, title = $4, summary = $5, body_markdown = $6, meta = $7,
             seo_description = $8, seo_image = $9, seo_canonical = $10,
             status = 'published', published_at = COALESCE(published_at, $11),
             published_revision_id = $12, updated_at = $11,
             -- A newer draft than the published revision stays pending.
             draft_revision_id = CASE WHEN draft_revision_id = $12 THEN NULL
                                      ELSE draft_revision_id END
         WHERE tenant_id = $1 AND id = $2"
    )
    .bind(scope.id()).bind(id).bind(&fields.slug).bind(&fields.title).bind(&fields.summary)
    .bind(&fields.body_markdown).bind(&fields.meta).bind(&fields.seo.description)
    .bind(&fields.seo.image).bind(&fields.seo.canonical).bind(now).bind(revision)
    .execute(c).await.map(|_| ()))?;
    // The new address is the item's own now: no redirect may lead away from it.
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM content_redirects WHERE tenant_id = $1 AND kind = $2 AND old_slug = $3"
    ).bind(scope.id()).bind(kind.as_str()).bind(&fields.slug).execute(c).await.map(|_| ()))?;
    // An address that was public keeps working: it redirects to the new one. Never published
    // means never linked, so no redirect then.
    let moved_from =
        (fields.slug != item.slug && item.published_at.is_some()).then(|| item.slug.clone());
    if let Some(old) = &moved_from {
        on_conn!(conn.reborrow(), c => sqlx::query(
            "INSERT INTO content_redirects (id, tenant_id, kind, old_slug, item_id, created_at)
             VALUES ($6, $1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, kind, old_slug) DO UPDATE SET item_id = $4, created_at = $5"
        ).bind(scope.id()).bind(kind.as_str()).bind(old).bind(id).bind(now).bind(Uuid::now_v7()).execute(c).await.map(|_| ()))?;
    }
    bump_generation(conn, scope).await?;
    Ok(Some(Published {
        revision,
        slug: fields.slug,
        moved_from,
    }))
}

/// Takes a published item off the site (it stays, as a draft, with its revisions).
/// `Ok(false)`: it was not published.
pub async fn unpublish(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<bool, EditError> {
    let item = find(conn, scope, id).await?.ok_or(EditError::NotFound)?;
    if item.deleted_at.is_some() {
        return Err(EditError::NotFound);
    }
    if !item.is_published() {
        return Ok(false);
    }
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_items SET status = 'draft', updated_at = $3
         WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(Timestamp::now()).execute(c).await.map(|_| ()))?;
    bump_generation(conn, scope).await?;
    Ok(true)
}

/// Moves an item to the bin (soft delete): off the site at once, its pending schedules
/// cancelled; [`restore`] brings it back as an unpublished draft. `Ok(false)`: in the bin
/// already.
pub async fn delete(conn: &mut Conn<'_>, scope: &TenantScope, id: Uuid) -> Result<bool, EditError> {
    let item = find(conn, scope, id).await?.ok_or(EditError::NotFound)?;
    if item.deleted_at.is_some() {
        return Ok(false);
    }
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_items SET deleted_at = $3, updated_at = $3
         WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(now).execute(c).await.map(|_| ()))?;
    super::schedule::cancel_all(conn, scope, id, "cancelled: the item was deleted").await?;
    if item.is_published() {
        bump_generation(conn, scope).await?;
    }
    Ok(true)
}

/// Takes an item out of the bin, unpublished: whoever restores it decides when it goes back
/// on the site. `Ok(false)`: it was not in the bin.
pub async fn restore(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<bool, EditError> {
    let item = find(conn, scope, id).await?.ok_or(EditError::NotFound)?;
    if item.deleted_at.is_none() {
        return Ok(false);
    }
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE content_items SET deleted_at = NULL, status = 'draft', updated_at = $3
         WHERE tenant_id = $1 AND id = $2"
    ).bind(scope.id()).bind(id).bind(Timestamp::now()).execute(c).await.map(|_| ()))?;
    Ok(true)
}

/// Where an old address of `kind` leads now: the current slug of the published item that
/// had it, if any.
pub async fn redirect_for(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    old_slug: &str,
) -> Result<Option<String>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT i.slug FROM content_redirects r
         JOIN content_items i ON i.id = r.item_id AND i.tenant_id = r.tenant_id
         WHERE r.tenant_id = $1 AND r.kind = $2 AND r.old_slug = $3
           AND i.status = 'published' AND i.deleted_at IS NULL"
    ).bind(scope.id()).bind(kind.as_str()).bind(old_slug).fetch_optional(c).await)
}

/// One entry of [`awaiting`]: an item with a draft waiting to be published, or a scheduled
/// publish or unpublish.
#[derive(Clone, Debug)]
pub struct Awaiting {
    pub item_id: Uuid,
    pub kind: String,
    pub title: String,
    /// `draft` (saved, not published yet), `publish` or `unpublish` (scheduled).
    pub what: String,
    /// When the draft was saved, or when the schedule runs.
    pub at: Timestamp,
}
crate::store::from_row!(Awaiting {
    item_id,
    kind,
    title,
    what,
    at
});

/// The scheduled publishes and unpublishes still to run, of live items of tenant `$1`.
macro_rules! pending_schedules {
    () => {
        "FROM content_schedules s
         JOIN content_items i ON i.id = s.item_id AND i.tenant_id = s.tenant_id
         WHERE s.tenant_id = $1 AND s.done_at IS NULL AND i.deleted_at IS NULL"
    };
}

/// Drafts awaiting publish in tenant `$1`: a draft revision of any item, or an item never
/// published (such as a draft seed file); an item taken off the site is not waiting.
macro_rules! pending_drafts {
    () => {
        "FROM content_items i
         LEFT JOIN content_revisions r ON r.id = i.draft_revision_id AND r.tenant_id = i.tenant_id
         WHERE i.tenant_id = $1 AND i.deleted_at IS NULL
           AND (i.draft_revision_id IS NOT NULL
                OR (i.status = 'draft' AND i.published_revision_id IS NULL))"
    };
}

/// Scheduled publishes and unpublishes, soonest first, then drafts awaiting publish, newest
/// first: at most `limit` of each, for the portal's dashboard ([`awaiting_counts`] counts all).
pub async fn awaiting(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    limit: i64,
) -> Result<Vec<Awaiting>, sqlx::Error> {
    const SCHEDULED: &str = concat!(
        "SELECT s.item_id, i.kind, i.title, s.action AS what, s.run_at AS at ",
        pending_schedules!(),
        " ORDER BY s.run_at LIMIT $2"
    );
    const DRAFTS: &str = concat!(
        "SELECT i.id AS item_id, i.kind, COALESCE(r.title, i.title) AS title, 'draft' AS what,
                COALESCE(r.created_at, i.updated_at) AS at ",
        pending_drafts!(),
        " ORDER BY at DESC LIMIT $2"
    );
    let mut scheduled: Vec<Awaiting> = on_conn!(conn.reborrow(), c => sqlx::query_as(SCHEDULED)
        .bind(scope.id()).bind(limit).fetch_all(c).await)?;
    let drafts: Vec<Awaiting> = on_conn!(conn.reborrow(), c => sqlx::query_as(DRAFTS)
        .bind(scope.id()).bind(limit).fetch_all(c).await)?;
    scheduled.extend(drafts);
    Ok(scheduled)
}

/// How many drafts await publish and how many schedules are still to run, all of them (what
/// [`awaiting`] lists the first of).
pub async fn awaiting_counts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<(i64, i64), sqlx::Error> {
    const COUNTS: &str = concat!(
        "SELECT (SELECT COUNT(*) ",
        pending_drafts!(),
        "), (SELECT COUNT(*) ",
        pending_schedules!(),
        ")"
    );
    on_conn!(conn.reborrow(), c => sqlx::query_as(COUNTS).bind(scope.id()).fetch_one(c).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            slug: "a-post".into(),
            title: "A post".into(),
            summary: "S".into(),
            body_markdown: "Body".into(),
            meta: String::new(),
            seo: Seo::default(),
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |f: Fields| fields_err(f.validate(ContentKind::Insight));
        fn fields_err(r: Result<Fields, Invalid>) -> &'static str {
            r.expect_err("invalid").field
        }
        assert_eq!(
            bad(Fields {
                title: "  ".into(),
                ..fields()
            }),
            "title"
        );
        assert_eq!(
            bad(Fields {
                slug: "Not A Slug".into(),
                ..fields()
            }),
            "slug"
        );
        assert_eq!(
            bad(Fields {
                meta: "[1]".into(),
                ..fields()
            }),
            "meta"
        );
        assert_eq!(
            bad(Fields {
                meta: "{\"tags\": \"x\"}".into(),
                ..fields()
            }),
            "meta"
        );
        for canonical in [
            "http://example.com/x",
            "/insights/x",
            "https://",
            "javascript:x",
        ] {
            let mut f = fields();
            f.seo.canonical = canonical.into();
            assert_eq!(bad(f), "seo_canonical", "{canonical}");
        }
        let mut f = fields();
        f.seo.image = "http://x.example/a.png".into();
        assert_eq!(bad(f), "seo_image");
        let page = Fields {
            slug: "admin".into(),
            ..fields()
        };
        assert_eq!(page.validate(ContentKind::Page).unwrap_err().field, "slug");
        let mut ok = fields();
        ok.seo.canonical = "https://example.com/insights/a-post".into();
        ok.seo.image = "/media/ab.webp".into();
        let ok = ok.validate(ContentKind::Insight).unwrap();
        assert_eq!(ok.meta, "{}");
    }
}
