//! The state every handler shares once the server is ready.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::content;
use crate::http::caching::PageCache;
use crate::http::client_ip::TrustedProxies;
use crate::lifecycle::Lifecycle;
use crate::secrets::SecretKey;
use crate::store::{Db, Store};
use crate::tenancy::TenantScope;

/// Upper bound on cached rendered pages (a few MB at most).
const PAGE_CACHE_ENTRIES: usize = 512;

#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub store: Store,
    /// The tenant whose content the public site shows.
    pub site: TenantScope,
    pub pages: PageCache,
    pub lifecycle: Arc<Lifecycle>,
    pub secret: SecretKey,
    /// `VANTUS_TRUSTED_PROXIES`, shared with the [`ClientIp`](crate::http::client_ip::ClientIp)
    /// extractor.
    pub trusted_proxies: TrustedProxies,
}

impl axum::extract::FromRef<App> for TrustedProxies {
    fn from_ref(app: &App) -> Self {
        app.trusted_proxies.clone()
    }
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(
        config: Config,
        store: Store,
        site: TenantScope,
        generation: i64,
        lifecycle: Arc<Lifecycle>,
        secret: SecretKey,
    ) -> Self {
        let trusted_proxies = TrustedProxies(config.http.trusted_proxies.clone().into());
        Self(Arc::new(AppInner {
            trusted_proxies,
            config,
            store,
            site,
            pages: PageCache::new(generation, PAGE_CACHE_ENTRIES),
            lifecycle,
            secret,
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
        let site = self.site.clone();
        self.store
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
        let g = with_conn!(self.store.primary(), conn => {
            content::generation(conn, &self.site).await
        })?;
        Ok(self.pages.observe_generation(g))
    }
}
