//! The one function that turns a content item into its public page ([`render_page`]). The
//! public routes call it with the published item; the CMS preview (signed links and the
//! editor's live preview) calls it with a draft, so what an editor previews is exactly what
//! visitors will get, sanitizer included.

use super::Rendered;
use super::layout::{Layout, Section};
use super::views::*;
use crate::config::Config;
use crate::content::markdown::{self, SanitizedHtml};
use crate::content::{self, ContentItem, ContentKind, ContentSummary};
use crate::http::errors::AppError;
use crate::media::catalog::{self, Catalog};
use crate::store::Conn;
use crate::tenancy::TenantScope;

/// What a page shows beside its item: the home page's latest work and insights, a detail
/// page's others to read next.
#[derive(Default)]
pub struct Related {
    pub work: Vec<ContentSummary>,
    pub insights: Vec<ContentSummary>,
    pub more: Vec<ContentSummary>,
    /// The library images the item's Markdown shows, so its body gets their sizes and
    /// responsive variants ([`Related::with_media`]).
    pub media: Catalog,
}

impl Related {
    /// Adds the library images `markdown` refers to (in `scope`'s library only).
    pub async fn with_media(
        mut self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        markdown: &str,
    ) -> Result<Self, sqlx::Error> {
        self.media = catalog::for_markdown(conn, scope, markdown).await?;
        Ok(self)
    }
}

/// Reads what the page of `kind`/`slug` shows beside the item itself.
pub async fn load_related(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: ContentKind,
    slug: &str,
) -> Result<Related, sqlx::Error> {
    Ok(match kind {
        ContentKind::Page if slug == "home" => Related {
            work: content::list_published(conn, scope, ContentKind::CaseStudy, 3, 0).await?,
            insights: content::list_published(conn, scope, ContentKind::Insight, 3, 0).await?,
            ..Related::default()
        },
        ContentKind::Page => Related::default(),
        _ => Related {
            more: content::list_published(conn, scope, kind, 3, 0)
                .await?
                .into_iter()
                .filter(|o| o.slug != slug)
                .take(2)
                .collect(),
            ..Related::default()
        },
    })
}

/// The head of an item's page: its SEO description (else its summary), its canonical URL
/// (else its own address) and its social image.
pub fn page_layout(config: &Config, item: &ContentItem, path: &str, section: Section) -> Layout {
    let description = if item.seo_description.is_empty() {
        &item.summary
    } else {
        &item.seo_description
    };
    let canonical = if item.seo_canonical.is_empty() {
        config.public_url_of(path)
    } else {
        item.seo_canonical.clone()
    };
    let mut layout = Layout::new(&item.title, description, canonical, section);
    if !item.seo_image.is_empty() {
        layout.image = Some(if item.seo_image.starts_with('/') {
            config.public_url_of(&item.seo_image)
        } else {
            item.seo_image.clone()
        });
    }
    layout
}

fn section_of(kind: ContentKind, slug: &str) -> Section {
    match (kind, slug) {
        (ContentKind::CaseStudy, _) => Section::Work,
        (ContentKind::Insight, _) => Section::Insights,
        (ContentKind::Page, "home") => Section::Home,
        (ContentKind::Page, "services") => Section::Services,
        (ContentKind::Page, "process") => Section::Process,
        (ContentKind::Page, "about") => Section::About,
        (ContentKind::Page, _) => Section::None,
    }
}

/// Renders `item` (of `kind`) as its public page. `noindex` marks a preview.
pub fn render_page(
    config: &Config,
    kind: ContentKind,
    item: &ContentItem,
    related: Related,
    noindex: bool,
) -> Result<Rendered, AppError> {
    let path = kind.path_of(&item.slug);
    let body = markdown::render_with_media(&item.body_markdown, &related.media);
    let mut layout = page_layout(config, item, &path, section_of(kind, &item.slug));
    layout.noindex = noindex;
    match (kind, item.slug.as_str()) {
        (ContentKind::Page, "home") => Rendered::html(&HomePage {
            layout,
            meta: item.meta(),
            intro: body,
            work: related.work.iter().map(CaseCard::from).collect(),
            insights: related.insights.iter().map(InsightCard::from).collect(),
        }),
        (ContentKind::Page, "services") => {
            Rendered::html(&ServicesPage::from(parts(layout, item, body)))
        }
        (ContentKind::Page, "process") => {
            Rendered::html(&ProcessPage::from(parts(layout, item, body)))
        }
        (ContentKind::Page, slug) => Rendered::html(&ProsePage {
            layout,
            title: item.title.clone(),
            summary: item.summary.clone(),
            body,
            updated: matches!(slug, "privacy" | "terms")
                .then(|| date_of(item))
                .flatten(),
        }),
        (ContentKind::CaseStudy, _) => Rendered::html(&CaseStudyPage {
            layout: layout.article(),
            title: item.title.clone(),
            summary: item.summary.clone(),
            meta: item.meta(),
            body,
            more: related.more.iter().map(CaseCard::from).collect(),
        }),
        (ContentKind::Insight, _) => Rendered::html(&InsightPage::from_item(
            layout.article(),
            item,
            body,
            related.more.iter().map(InsightCard::from).collect(),
        )),
    }
}

fn parts<M: serde::de::DeserializeOwned + Default>(
    layout: Layout,
    item: &ContentItem,
    body: SanitizedHtml,
) -> PageParts<M> {
    PageParts {
        layout,
        title: item.title.clone(),
        summary: item.summary.clone(),
        meta: item.meta(),
        body,
    }
}
