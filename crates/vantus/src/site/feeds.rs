//! Machine-readable views of the site: sitemap.xml, robots.txt and the Atom feed of insights.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::Site;
use super::views::{AtomFeed, FeedEntry, Sitemap, SitemapEntry};
use super::{Rendered, cached, canonical};
use crate::content::{self, ContentKind};
use crate::http::caching::CachePolicy;
use crate::http::errors::AppError;
use crate::store::Db;

/// Most entries a feed carries; readers only want the recent ones.
const FEED_ENTRIES: i64 = 20;
/// The sitemap protocol's limit per file.
const SITEMAP_LIMIT: i64 = 50_000;

fn xml(policy: CachePolicy, t: &impl Template) -> Result<Rendered, AppError> {
    Ok(Rendered {
        content_type: "application/xml; charset=utf-8",
        policy,
        body: t.render()?,
    })
}

pub async fn sitemap(State(app): State<Site>, headers: HeaderMap) -> Response {
    cached(&app, &headers, "/sitemap.xml".into(), || async {
        let site = &app.site;
        let (pages, work, insights) = app
            .read_site(move |db: Db| async move {
                with_conn!(&db, conn => {
                    let limit = SITEMAP_LIMIT;
                    Ok((
                        content::list_published(conn, site, ContentKind::Page, limit, 0).await?,
                        content::list_published(conn, site, ContentKind::CaseStudy, limit, 0)
                            .await?,
                        content::list_published(conn, site, ContentKind::Insight, limit, 0)
                            .await?,
                    ))
                })
            })
            .await?;
        let newest = |items: &[content::ContentSummary]| {
            items
                .iter()
                .map(|i| i.updated_at)
                .max()
                .map(|t| t.to_iso_date())
                .unwrap_or_default()
        };
        let mut entries = Vec::new();
        for (kind, items) in [
            (ContentKind::Page, &pages),
            (ContentKind::CaseStudy, &work),
            (ContentKind::Insight, &insights),
        ] {
            for item in items.iter() {
                entries.push(SitemapEntry {
                    loc: canonical(&app, &kind.path_of(&item.slug)),
                    lastmod: item.updated_at.to_iso_date(),
                });
            }
        }
        // The two list pages are not content items; they change when their items do.
        entries.push(SitemapEntry {
            loc: canonical(&app, "/work"),
            lastmod: newest(&work),
        });
        entries.push(SitemapEntry {
            loc: canonical(&app, "/insights"),
            lastmod: newest(&insights),
        });
        xml(CachePolicy::Feed, &Sitemap { entries })
    })
    .await
}

pub async fn robots(State(app): State<Site>, headers: HeaderMap) -> Response {
    let body = format!(
        "User-agent: *\nAllow: /\n\nSitemap: {}\n",
        canonical(&app, "/sitemap.xml")
    );
    cached(&app, &headers, "/robots.txt".into(), || async {
        Ok(Rendered {
            content_type: "text/plain; charset=utf-8",
            policy: CachePolicy::Daily,
            body,
        })
    })
    .await
}

pub async fn atom(State(app): State<Site>, headers: HeaderMap) -> Response {
    cached(&app, &headers, "/insights/feed.xml".into(), || async {
        let site = &app.site;
        let items = app
            .read_site(move |db: Db| async move {
                with_conn!(&db, conn => {
                    content::list_published(conn, site, ContentKind::Insight, FEED_ENTRIES, 0).await
                })
            })
            .await?;
        let entries: Vec<FeedEntry> = items
            .iter()
            .map(|i| {
                let meta: content::meta::InsightMeta = i.meta();
                let url = canonical(&app, &ContentKind::Insight.path_of(&i.slug));
                FeedEntry {
                    id: url.clone(),
                    url,
                    title: i.title.clone(),
                    summary: i.summary.clone(),
                    published: i.published_at.unwrap_or(i.updated_at).to_rfc3339_seconds(),
                    updated: i.updated_at.to_rfc3339_seconds(),
                    author: if meta.author.is_empty() {
                        super::layout::SITE_NAME.to_owned()
                    } else {
                        meta.author
                    },
                }
            })
            .collect();
        let updated = items
            .iter()
            .map(|i| i.updated_at)
            .max()
            .map(|t| t.to_rfc3339_seconds())
            .unwrap_or_else(|| crate::store::Timestamp::now().to_rfc3339_seconds());
        let feed = AtomFeed {
            site_url: canonical(&app, "/"),
            feed_url: canonical(&app, "/insights/feed.xml"),
            updated,
            entries,
        };
        Ok(Rendered {
            content_type: "application/atom+xml; charset=utf-8",
            policy: CachePolicy::Feed,
            body: feed.render()?,
        })
    })
    .await
}
