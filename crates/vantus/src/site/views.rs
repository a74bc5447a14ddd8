//! Template data for the public pages. Each struct is one file in `templates/`; askama checks
//! them against each other at compile time, and escapes every string unless its type is
//! [`SanitizedHtml`].

use askama::Template;

use super::layout::Layout;
use crate::content::meta::{CaseStudyMeta, HomeMeta, InsightMeta, ProcessMeta, ServicesMeta};
use crate::content::{ContentItem, ContentKind, ContentSummary, SanitizedHtml, markdown};

/// A case study as a card in lists.
pub struct CaseCard {
    pub href: String,
    pub title: String,
    pub summary: String,
    pub meta: CaseStudyMeta,
}

impl From<&ContentSummary> for CaseCard {
    fn from(s: &ContentSummary) -> Self {
        Self {
            href: ContentKind::CaseStudy.path_of(&s.slug),
            title: s.title.clone(),
            summary: s.summary.clone(),
            meta: s.meta(),
        }
    }
}

/// A published date in both forms a `<time>` element needs.
pub struct Date {
    pub iso: String,
    pub human: String,
}

impl Date {
    fn of(t: Option<crate::store::Timestamp>) -> Option<Self> {
        t.map(|t| Date {
            iso: t.to_iso_date(),
            human: t.to_long_date(),
        })
    }
}

/// An insight article as an entry in lists.
pub struct InsightCard {
    pub href: String,
    pub title: String,
    pub summary: String,
    pub date: Option<Date>,
    pub meta: InsightMeta,
}

impl From<&ContentSummary> for InsightCard {
    fn from(s: &ContentSummary) -> Self {
        Self {
            href: ContentKind::Insight.path_of(&s.slug),
            title: s.title.clone(),
            summary: s.summary.clone(),
            date: Date::of(s.published_at),
            meta: s.meta(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub layout: Layout,
    pub meta: HomeMeta,
    pub intro: SanitizedHtml,
    pub work: Vec<CaseCard>,
    pub insights: Vec<InsightCard>,
}

/// What a page-kind item with structured metadata (`M`) gives its template.
pub struct PageParts<M> {
    pub layout: Layout,
    pub title: String,
    pub summary: String,
    pub meta: M,
    pub body: SanitizedHtml,
}

/// A template for a page-kind item whose metadata shapes it: the struct, and its
/// construction from [`PageParts`].
macro_rules! structured_page {
    ($name:ident, $path:literal, $meta:ty) => {
        #[derive(Template)]
        #[template(path = $path)]
        pub struct $name {
            pub layout: Layout,
            pub title: String,
            pub summary: String,
            pub meta: $meta,
            pub body: SanitizedHtml,
        }

        impl From<PageParts<$meta>> for $name {
            fn from(p: PageParts<$meta>) -> Self {
                Self {
                    layout: p.layout,
                    title: p.title,
                    summary: p.summary,
                    meta: p.meta,
                    body: p.body,
                }
            }
        }
    };
}

structured_page!(ServicesPage, "services.html", ServicesMeta);
structured_page!(ProcessPage, "process.html", ProcessMeta);

/// About, trust, contact, privacy, terms: a title, a lede and a prose body.
#[derive(Template)]
#[template(path = "prose.html")]
pub struct ProsePage {
    pub layout: Layout,
    pub title: String,
    pub summary: String,
    pub body: SanitizedHtml,
    pub updated: Option<Date>,
}

#[derive(Template)]
#[template(path = "work_index.html")]
pub struct WorkIndex {
    pub layout: Layout,
    pub items: Vec<CaseCard>,
}

#[derive(Template)]
#[template(path = "case_study.html")]
pub struct CaseStudyPage {
    pub layout: Layout,
    pub title: String,
    pub summary: String,
    pub meta: CaseStudyMeta,
    pub body: SanitizedHtml,
    pub more: Vec<CaseCard>,
}

#[derive(Template)]
#[template(path = "insights_index.html")]
pub struct InsightsIndex {
    pub layout: Layout,
    pub items: Vec<InsightCard>,
    pub page: i64,
    pub pages: i64,
}

impl InsightsIndex {
    pub fn prev_href(&self) -> Option<String> {
        match self.page {
            1 => None,
            2 => Some("/insights".to_owned()),
            n => Some(format!("/insights?page={}", n - 1)),
        }
    }

    pub fn next_href(&self) -> Option<String> {
        (self.page < self.pages).then(|| format!("/insights?page={}", self.page + 1))
    }
}

#[derive(Template)]
#[template(path = "insight.html")]
pub struct InsightPage {
    pub layout: Layout,
    pub title: String,
    pub summary: String,
    pub meta: InsightMeta,
    pub date: Option<Date>,
    pub reading_minutes: usize,
    pub body: SanitizedHtml,
    pub more: Vec<InsightCard>,
}

impl InsightPage {
    pub fn from_item(
        layout: Layout,
        item: &ContentItem,
        body: SanitizedHtml,
        more: Vec<InsightCard>,
    ) -> Self {
        Self {
            layout,
            title: item.title.clone(),
            summary: item.summary.clone(),
            meta: item.meta(),
            date: Date::of(item.published_at),
            // 220 words a minute, rounded up: an honest estimate for technical prose.
            reading_minutes: markdown::word_count(&item.body_markdown)
                .div_ceil(220)
                .max(1),
            body,
            more,
        }
    }
}

pub fn date_of(item: &ContentItem) -> Option<Date> {
    Date::of(Some(item.updated_at))
}

/// One `<url>` of the sitemap.
pub struct SitemapEntry {
    pub loc: String,
    pub lastmod: String,
}

#[derive(Template)]
#[template(path = "sitemap.xml")]
pub struct Sitemap {
    pub entries: Vec<SitemapEntry>,
}

pub struct FeedEntry {
    pub id: String,
    pub url: String,
    pub title: String,
    pub summary: String,
    pub published: String,
    pub updated: String,
    pub author: String,
}

#[derive(Template)]
#[template(path = "feed.xml")]
pub struct AtomFeed {
    pub site_url: String,
    pub feed_url: String,
    pub updated: String,
    pub entries: Vec<FeedEntry>,
}
