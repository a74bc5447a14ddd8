//! Revisions: every save of an item, never changed afterwards. The history says who saved
//! what and when; any two revisions can be compared ([`diff`]); restoring one writes it again
//! as a new draft (the history only grows).

use uuid::Uuid;

use super::fields::{Fields, Seo};
use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// One saved state of an item.
#[derive(Clone, Debug)]
pub struct Revision {
    pub id: Uuid,
    pub item_id: Uuid,
    pub number: i64,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub meta: String,
    pub seo_description: String,
    pub seo_image: String,
    pub seo_canonical: String,
    pub note: String,
    pub author_id: Option<Uuid>,
    /// The author's display name (none for content that came from the seed files).
    pub author_name: Option<String>,
    pub created_at: Timestamp,
}
crate::store::from_row!(Revision {
    id,
    item_id,
    number,
    slug,
    title,
    summary,
    body_markdown,
    meta,
    seo_description,
    seo_image,
    seo_canonical,
    note,
    author_id,
    author_name,
    created_at
});

impl Revision {
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

macro_rules! revision_select {
    () => {
        "SELECT r.id, r.item_id, r.number, r.slug, r.title, r.summary, r.body_markdown, r.meta,
                r.seo_description, r.seo_image, r.seo_canonical, r.note, r.author_id,
                u.name AS author_name, r.created_at
         FROM content_revisions r LEFT JOIN users u ON u.id = r.author_id "
    };
}

/// What [`insert`] writes.
pub struct NewRevision<'a> {
    pub item_id: Uuid,
    pub fields: &'a Fields,
    pub note: &'a str,
    pub author: Option<Uuid>,
}

/// Appends a revision (numbered after the item's last one).
pub async fn insert(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    new: &NewRevision<'_>,
) -> Result<Revision, sqlx::Error> {
    let number: i64 = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM content_revisions
         WHERE tenant_id = $1 AND item_id = $2"
    ).bind(scope.id()).bind(new.item_id).fetch_one(c).await)?;
    let id = Uuid::now_v7();
    let f = new.fields;
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO content_revisions
           (id, tenant_id, item_id, number, slug, title, summary, body_markdown, meta,
            seo_description, seo_image, seo_canonical, note, author_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )
    .bind(id).bind(scope.id()).bind(new.item_id).bind(number).bind(&f.slug).bind(&f.title)
    .bind(&f.summary).bind(&f.body_markdown).bind(&f.meta).bind(&f.seo.description)
    .bind(&f.seo.image).bind(&f.seo.canonical).bind(new.note).bind(new.author)
    .bind(Timestamp::now())
    .execute(c).await.map(|_| ()))?;
    find(conn, scope, new.item_id, id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// One revision of one item of this tenant.
pub async fn find(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
    id: Uuid,
) -> Result<Option<Revision>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        revision_select!(),
        "WHERE r.tenant_id = $1 AND r.item_id = $2 AND r.id = $3"
    )).bind(scope.id()).bind(item_id).bind(id).fetch_optional(c).await)
}

/// A revision of this tenant by id alone (the preview link names only the revision).
pub async fn find_by_id(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Option<Revision>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        revision_select!(),
        "WHERE r.tenant_id = $1 AND r.id = $2"
    )).bind(scope.id()).bind(id).fetch_optional(c).await)
}

/// An item's revisions, newest first.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item_id: Uuid,
) -> Result<Vec<Revision>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(concat!(
        revision_select!(),
        "WHERE r.tenant_id = $1 AND r.item_id = $2 ORDER BY r.number DESC LIMIT 500"
    )).bind(scope.id()).bind(item_id).fetch_all(c).await)
}

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    /// `equal`, `insert` or `delete` (CSS classes of the diff view).
    pub tag: &'static str,
    /// `" "`, `"+"` or `"-"`.
    pub sign: &'static str,
    pub text: String,
}

/// The differences in one field between two revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub lines: Vec<DiffLine>,
}

/// Line diffs of the fields that differ between `old` and `new` (title, summary, slug, the
/// Markdown source, the kind-specific fields and the SEO fields); fields that are equal are
/// left out. Text only: the view escapes it like any other string.
pub fn diff(old: &Revision, new: &Revision) -> Vec<FieldDiff> {
    let (a, b) = (old.fields(), new.fields());
    let pairs: [(&'static str, &str, &str); 8] = [
        ("title", &a.title, &b.title),
        ("slug", &a.slug, &b.slug),
        ("summary", &a.summary, &b.summary),
        ("body", &a.body_markdown, &b.body_markdown),
        ("meta", &a.meta, &b.meta),
        ("seo_description", &a.seo.description, &b.seo.description),
        ("seo_image", &a.seo.image, &b.seo.image),
        ("seo_canonical", &a.seo.canonical, &b.seo.canonical),
    ];
    pairs
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(field, x, y)| FieldDiff {
            field,
            lines: line_diff(x, y),
        })
        .collect()
}

fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    use similar::{ChangeTag, TextDiff};
    TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|change| {
            let (tag, sign) = match change.tag() {
                ChangeTag::Equal => ("equal", " "),
                ChangeTag::Insert => ("insert", "+"),
                ChangeTag::Delete => ("delete", "-"),
            };
            DiffLine {
                tag,
                sign,
                text: change.value().trim_end_matches('\n').to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(title: &str, body: &str) -> Revision {
        Revision {
            id: Uuid::nil(),
            item_id: Uuid::nil(),
            number: 1,
            slug: "s".into(),
            title: title.into(),
            summary: "x".into(),
            body_markdown: body.into(),
            meta: "{}".into(),
            seo_description: String::new(),
            seo_image: String::new(),
            seo_canonical: String::new(),
            note: "saved".into(),
            author_id: None,
            author_name: None,
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn the_diff_names_changed_fields_and_lines() {
        let d = diff(&rev("A", "one\ntwo\n"), &rev("B", "one\nthree\n"));
        let fields: Vec<&str> = d.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["title", "body"]);
        let body: Vec<(&str, &str)> = d[1]
            .lines
            .iter()
            .map(|l| (l.sign, l.text.as_str()))
            .collect();
        assert_eq!(body, [(" ", "one"), ("-", "two"), ("+", "three")]);
        assert!(diff(&rev("A", "x"), &rev("A", "x")).is_empty());
    }
}
