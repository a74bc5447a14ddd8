//! What an editor changes about an item ([`Fields`]) and the rules it must meet
//! ([`Fields::validate`]): the one place a form's mistakes are found and named.

use serde::{Deserialize, Serialize};

use super::ContentKind;

/// A field the editor got wrong, and why (answered as 422 naming the field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// SEO fields of an item. Empty strings mean "not set": the page then describes itself with
/// its summary and names its own address as canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seo {
    pub description: String,
    pub image: String,
    pub canonical: String,
}

/// Everything an editor changes about an item, as the form sends it (validated by
/// [`Fields::validate`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    /// Kind-specific fields as a JSON object (see `content::meta`).
    pub meta: String,
    pub seo: Seo,
}

/// Slugs a new page may not take: top-level paths that belong to something else.
const RESERVED_PAGE_SLUGS: &[&str] = &[
    "admin", "api", "static", "media", "preview", "work", "insights", "sitemap", "robots",
    "healthz", "readyz", "metrics", "feed",
];

const MAX_TITLE: usize = 200;
const MAX_SUMMARY: usize = 1_000;
const MAX_DESCRIPTION: usize = 300;
const MAX_BODY: usize = 200_000;
const MAX_URL: usize = 2_000;

impl Fields {
    /// Trims what should be trimmed and checks every field; the first problem found, by field
    /// in form order.
    pub fn validate(mut self, kind: ContentKind) -> Result<Self, Invalid> {
        self.slug = self.slug.trim().to_owned();
        self.title = self.title.trim().to_owned();
        self.summary = self.summary.trim().to_owned();
        self.seo.description = self.seo.description.trim().to_owned();
        self.seo.image = self.seo.image.trim().to_owned();
        self.seo.canonical = self.seo.canonical.trim().to_owned();
        if self.title.is_empty() {
            return Err(Invalid::new("title", "must not be empty"));
        }
        if self.title.chars().count() > MAX_TITLE {
            return Err(Invalid::new(
                "title",
                format!("must be at most {MAX_TITLE} characters"),
            ));
        }
        if !crate::slug::is_valid_slug(&self.slug) {
            return Err(Invalid::new(
                "slug",
                "use lowercase letters, digits and single hyphens (1 to 64 characters), e.g. my-article",
            ));
        }
        if kind == ContentKind::Page && RESERVED_PAGE_SLUGS.contains(&self.slug.as_str()) {
            return Err(Invalid::new(
                "slug",
                format!("\"{}\" is a reserved address; choose another", self.slug),
            ));
        }
        if self.summary.chars().count() > MAX_SUMMARY {
            return Err(Invalid::new(
                "summary",
                format!("must be at most {MAX_SUMMARY} characters"),
            ));
        }
        if self.body_markdown.len() > MAX_BODY {
            return Err(Invalid::new(
                "body",
                format!("must be at most {MAX_BODY} bytes"),
            ));
        }
        self.body_markdown = self.body_markdown.replace("\r\n", "\n");
        let meta_text = if self.meta.trim().is_empty() {
            "{}"
        } else {
            self.meta.trim()
        };
        let meta: serde_json::Value = serde_json::from_str(meta_text)
            .map_err(|e| Invalid::new("meta", format!("is not valid JSON: {e}")))?;
        if !meta.is_object() {
            return Err(Invalid::new(
                "meta",
                "must be a JSON object, e.g. {\"tags\": []}",
            ));
        }
        super::seed::check_meta_shape(kind, &self.slug, &meta)
            .map_err(|why| Invalid::new("meta", why))?;
        self.meta = meta.to_string();
        if self.seo.description.chars().count() > MAX_DESCRIPTION {
            return Err(Invalid::new(
                "seo_description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        if !self.seo.image.is_empty() {
            let ok = self.seo.image.len() <= MAX_URL
                && (self.seo.image.starts_with(super::markdown::MEDIA_PREFIX)
                    || is_absolute_https(&self.seo.image));
            if !ok {
                return Err(Invalid::new(
                    "seo_image",
                    "must be an image of the media library (/media/…) or an absolute https:// URL",
                ));
            }
        }
        let canonical_ok = self.seo.canonical.is_empty()
            || (self.seo.canonical.len() <= MAX_URL && is_absolute_https(&self.seo.canonical));
        if !canonical_ok {
            return Err(Invalid::new(
                "seo_canonical",
                "must be an absolute https:// URL, e.g. https://example.com/insights/my-article",
            ));
        }
        Ok(self)
    }
}

fn is_absolute_https(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
}
