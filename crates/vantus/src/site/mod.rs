//! The public site: pages rendered from the database, cached per content generation.

pub mod cache;
pub mod errors;
mod feeds;
pub mod invalidation;
pub mod layout;
mod preview;
pub mod render;
pub mod views;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::content::{self, ContentKind};
use crate::http::caching::{CachePolicy, CachedPage};
use crate::http::errors::AppError;
use crate::http::extract::Query;
use crate::state::App;
use crate::store::Db;
use cache::{Lookup, PageCache};
use layout::{Layout, Section};
use views::*;

/// Insight articles per list page.
const INSIGHTS_PER_PAGE: i64 = 10;
/// Enough for any real portfolio; the list is one page by design.
const WORK_LIMIT: i64 = 100;

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/", get(home))
        .route("/services", get(services))
        .route("/process", get(process))
        .route("/work", get(work_index))
        .route("/work/{slug}", get(case_study))
        .route("/insights", get(insights_index))
        .route("/insights/feed.xml", get(feeds::atom))
        .route("/insights/{slug}", get(insight))
        .route("/about", get(prose_page))
        .route("/trust", get(prose_page))
        .route("/privacy", get(prose_page))
        .route("/terms", get(prose_page))
        .route("/sitemap.xml", get(feeds::sitemap))
        .route("/robots.txt", get(feeds::robots))
        .route("/preview/{token}", get(preview::page))
        // Pages made in the portal live at `/<slug>`; anything else unmatched is still a 404.
        .fallback(custom_page)
}

/// Upper bound on cached rendered pages (a few MB at most).
const PAGE_CACHE_ENTRIES: usize = 512;

/// The site's state: the application, and the pages rendered from its content. Derefs to
/// [`App`], so handlers reach the configuration and the store as in any slice.
#[derive(Clone)]
pub struct Site(Arc<SiteInner>);

pub struct SiteInner {
    pub app: App,
    pub pages: PageCache,
}

impl std::ops::Deref for Site {
    type Target = SiteInner;
    fn deref(&self) -> &SiteInner {
        &self.0
    }
}

impl std::ops::Deref for SiteInner {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl Site {
    /// `generation` is the content generation in the database at start-up.
    pub fn new(app: App, generation: i64) -> Self {
        Site(Arc::new(SiteInner {
            app,
            pages: PageCache::new(generation, PAGE_CACHE_ENTRIES),
        }))
    }

    /// Reads site content from a replica that has caught up with the newest content this
    /// process has seen, else from the primary: a visitor never gets a page older than one
    /// already served.
    pub async fn read_site<T, Read, Fut>(&self, read: Read) -> Result<T, sqlx::Error>
    where
        Read: Fn(Db) -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let wanted = self.pages.generation();
        let site = self.app.site.clone();
        self.app
            .store
            .read(
                move |db: Db| async move {
                    Ok(with_conn!(&db, conn => content::generation(conn, &site).await)? >= wanted)
                },
                read,
            )
            .await
    }

    /// Looks for content changes made by any process (this one, another replica, a restore)
    /// and retires cached pages older than them. Returns whether anything changed.
    pub async fn refresh_generation(&self) -> Result<bool, sqlx::Error> {
        let g = with_conn!(self.app.store.primary(), conn => {
            content::generation(conn, &self.app.site).await
        })?;
        Ok(self.pages.observe_generation(g))
    }
}

/// What a page renderer produces: the body and how to serve it.
pub struct Rendered {
    pub content_type: &'static str,
    pub policy: CachePolicy,
    pub body: String,
}

impl Rendered {
    pub fn html(t: &impl Template) -> Result<Self, AppError> {
        Ok(Self {
            content_type: "text/html; charset=utf-8",
            policy: CachePolicy::Page,
            body: t.render()?,
        })
    }
}

/// Serves `key` from the page cache, rendering it on a miss. If rendering fails for a reason
/// that is not the client's (the database is down), a stale copy is better than an error page.
///
/// `render` makes the rendering future, boxed and only on a miss: held inline, its database
/// reads would make every hit's future tens of kilobytes to allocate and move.
pub async fn cached<F>(
    app: &Site,
    headers: &HeaderMap,
    key: String,
    render: impl FnOnce() -> F,
) -> Response
where
    F: std::future::Future<Output = Result<Rendered, AppError>>,
{
    let stale = match app.pages.lookup(&key) {
        Lookup::Fresh(page) => return page.respond(headers),
        Lookup::Stale(page) if app.pages.is_rendering(&key) => return page.respond(headers),
        Lookup::Stale(page) => Some(page),
        Lookup::Miss => None,
    };
    // One render per key at a time; the others wait and then find it cached.
    let _turn = app.pages.render_turn(&key).await;
    if let Lookup::Fresh(page) = app.pages.lookup(&key) {
        return page.respond(headers);
    }
    // Taken before reading: if content changes while we render, the entry is already stale.
    let generation = app.pages.generation();
    match Box::pin(render()).await {
        Ok(r) => {
            let page = Arc::new(CachedPage::new(
                generation,
                StatusCode::OK,
                r.content_type,
                r.policy,
                r.body,
            ));
            app.pages.insert(key, page.clone());
            page.respond(headers)
        }
        Err(e) if e.is_internal() && stale.is_some() => {
            tracing::warn!(error = %e, "serving a stale page because rendering failed");
            stale.expect("checked").respond(headers)
        }
        Err(e) => e.into_response(),
    }
}

fn canonical(app: &Site, path: &str) -> String {
    app.config.public_url_of(path)
}

async fn home(State(app): State<Site>, headers: HeaderMap) -> Response {
    cached(&app, &headers, "/".into(), || async {
        let site = &app.site;
        let (page, related) = app
            .read_site(move |db: Db| async move {
                with_conn!(&db, conn => {
                    let page = content::find_published(conn, site, ContentKind::Page, "home").await?;
                    let related = match &page {
                        Some(p) => render::load_related(conn, site, ContentKind::Page, "home")
                            .await?
                            .with_media(conn, site, &p.body_markdown)
                            .await?,
                        None => render::Related::default(),
                    };
                    Ok((page, related))
                })
            })
            .await?;
        let page = page.ok_or(AppError::NotFound)?;
        render::render_page(&app.config, ContentKind::Page, &page, related, false)
    })
    .await
}

/// Loads one page-kind item with the library images it shows, or 404.
async fn load_page(
    app: &Site,
    slug: &str,
) -> Result<(content::ContentItem, render::Related), AppError> {
    let site = &app.site;
    let (page, related) = app
        .read_site(move |db: Db| async move {
            with_conn!(&db, conn => {
                let page = content::find_published(conn, site, ContentKind::Page, slug).await?;
                let related = match &page {
                    Some(p) => render::Related::default()
                        .with_media(conn, site, &p.body_markdown)
                        .await?,
                    None => render::Related::default(),
                };
                Ok::<_, sqlx::Error>((page, related))
            })
        })
        .await?;
    Ok((page.ok_or(AppError::NotFound)?, related))
}

async fn services(State(app): State<Site>, headers: HeaderMap) -> Response {
    fixed_page(&app, &headers, "services").await
}

async fn process(State(app): State<Site>, headers: HeaderMap) -> Response {
    fixed_page(&app, &headers, "process").await
}

/// About, trust, privacy and terms: the path is the slug.
async fn prose_page(State(app): State<Site>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let slug = uri.path().trim_start_matches('/').to_owned();
    fixed_page(&app, &headers, &slug).await
}

/// A page-kind item at `/<slug>`, rendered by [`render::render_page`].
async fn fixed_page(app: &Site, headers: &HeaderMap, slug: &str) -> Response {
    let path = ContentKind::Page.path_of(slug);
    cached(app, headers, path, || async {
        let (page, related) = load_page(app, slug).await?;
        render::render_page(&app.config, ContentKind::Page, &page, related, false)
    })
    .await
}

/// The router's fallback: a page made in the portal (`/<slug>`), an old address of one (301),
/// or the usual 404.
async fn custom_page(
    State(app): State<Site>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let slug = uri.path().trim_start_matches('/');
    let routable = matches!(method, axum::http::Method::GET | axum::http::Method::HEAD)
        && crate::tenancy::is_valid_slug(slug)
        && !content::editing::FIXED_PAGES.contains(&slug);
    if !routable {
        return AppError::NotFound.into_response();
    }
    let res = fixed_page(&app, &headers, slug).await;
    or_redirect(&app, ContentKind::Page, slug, res).await
}

/// A 404 for a content address becomes a 301 when the address is an old slug of an item
/// (`content_redirects`); anything else is answered as it was.
async fn or_redirect(app: &Site, kind: ContentKind, slug: &str, res: Response) -> Response {
    if res.status() != StatusCode::NOT_FOUND {
        return res;
    }
    // Boxed, and only for a 404: held inline, the lookup's database read would enlarge the
    // future of every page served.
    Box::pin(redirect_for(app, kind, slug, res)).await
}

async fn redirect_for(app: &Site, kind: ContentKind, slug: &str, res: Response) -> Response {
    let site = &app.site;
    let found = app
        .read_site(move |db: Db| async move {
            with_conn!(&db, conn => content::editing::redirect_for(conn, site, kind, slug).await)
        })
        .await;
    match found {
        Ok(Some(to)) => {
            let mut moved = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&kind.path_of(&to)) {
                moved.headers_mut().insert(axum::http::header::LOCATION, v);
                return moved;
            }
            res
        }
        Ok(None) => res,
        Err(e) => AppError::from(e).into_response(),
    }
}

async fn work_index(State(app): State<Site>, headers: HeaderMap) -> Response {
    cached(&app, &headers, "/work".into(), || async {
        let site = &app.site;
        let items = app
            .read_site(move |db: Db| async move {
                with_conn!(&db, conn => {
                    content::list_published(conn, site, ContentKind::CaseStudy, WORK_LIMIT, 0).await
                })
            })
            .await?;
        Rendered::html(&WorkIndex {
            layout: Layout::new(
                "Work",
                "Case studies: integrations, dashboards and portals built for teams whose customers notice when things go wrong.",
                canonical(&app, "/work"),
                Section::Work,
            ),
            items: items.iter().map(CaseCard::from).collect(),
        })
    })
    .await
}

/// Rejects slugs that cannot exist before touching the cache or the database, so junk URLs
/// neither fill the cache nor cost a query.
fn check_slug(slug: &str) -> Result<(), AppError> {
    if crate::tenancy::is_valid_slug(slug) {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// One published item of `kind`, and what its page shows beside it.
async fn load_detail(
    app: &Site,
    kind: ContentKind,
    slug: &str,
) -> Result<(content::ContentItem, render::Related), AppError> {
    let site = &app.site;
    let (item, related) = app
        .read_site(move |db: Db| async move {
            with_conn!(&db, conn => {
                let item = content::find_published(conn, site, kind, slug).await?;
                let related = match &item {
                    Some(i) => render::load_related(conn, site, kind, slug)
                        .await?
                        .with_media(conn, site, &i.body_markdown)
                        .await?,
                    None => render::Related::default(),
                };
                Ok((item, related))
            })
        })
        .await?;
    Ok((item.ok_or(AppError::NotFound)?, related))
}

async fn case_study(
    State(app): State<Site>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    detail_page(&app, &headers, ContentKind::CaseStudy, &slug).await
}

/// A case study or an insight at `/<kind>/<slug>`, with a few others of its kind to read
/// next; an old slug of one redirects to its current address.
async fn detail_page(app: &Site, headers: &HeaderMap, kind: ContentKind, slug: &str) -> Response {
    if let Err(e) = check_slug(slug) {
        return e.into_response();
    }
    let path = kind.path_of(slug);
    let res = cached(app, headers, path, || async {
        let (item, related) = load_detail(app, kind, slug).await?;
        render::render_page(&app.config, kind, &item, related, false)
    })
    .await;
    or_redirect(app, kind, slug, res).await
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<i64>,
}

async fn insights_index(
    State(app): State<Site>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let page = q.page.unwrap_or(1);
    if page < 1 {
        return AppError::bad_request("page", "must be 1 or more").into_response();
    }
    // A page number past the end is a 404; one so large its offset overflows is too.
    let Some(offset) = (page - 1).checked_mul(INSIGHTS_PER_PAGE) else {
        return AppError::NotFound.into_response();
    };
    // The cache key carries only parameters that change the page, so tracking parameters
    // (?utm_source=...) share one entry.
    let key = if page == 1 {
        "/insights".to_owned()
    } else {
        format!("/insights?page={page}")
    };
    cached(&app, &headers, key, || async {
        let site = &app.site;
        let (total, items) = app
            .read_site(move |db: Db| async move {
                with_conn!(&db, conn => {
                    Ok((
                        content::count_published(conn, site, ContentKind::Insight).await?,
                        content::list_published(conn,
                            site,
                            ContentKind::Insight,
                            INSIGHTS_PER_PAGE,
                            offset,
                        )
                        .await?,
                    ))
                })
            })
            .await?;
        let pages = ((total + INSIGHTS_PER_PAGE - 1) / INSIGHTS_PER_PAGE).max(1);
        if page > pages {
            return Err(AppError::NotFound);
        }
        let title = if page == 1 {
            "Insights".to_owned()
        } else {
            format!("Insights, page {page}")
        };
        let path = if page == 1 {
            "/insights".to_owned()
        } else {
            format!("/insights?page={page}")
        };
        Rendered::html(&InsightsIndex {
            layout: Layout::new(
                &title,
                "Notes on building and running software people trust: reliability, security, performance and engineering practice.",
                canonical(&app, &path),
                Section::Insights,
            ),
            items: items.iter().map(InsightCard::from).collect(),
            page,
            pages,
        })
    })
    .await
}

async fn insight(
    State(app): State<Site>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    detail_page(&app, &headers, ContentKind::Insight, &slug).await
}
