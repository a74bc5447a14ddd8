//! The state every handler shares once the server is ready.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::http::client_ip::TrustedProxies;
use crate::http::rate_limit::{LimiterOptions, RateLimiter};
use crate::lifecycle::Lifecycle;
use crate::secrets::SecretKey;
use crate::store::Store;
use crate::tenancy::TenantScope;

#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub store: Store,
    /// The tenant whose content the public site shows.
    pub site: TenantScope,
    pub lifecycle: Arc<Lifecycle>,
    pub secret: SecretKey,
    /// `VANTUS_TRUSTED_PROXIES`, shared with the [`ClientIp`](crate::http::client_ip::ClientIp)
    /// extractor.
    pub trusted_proxies: TrustedProxies,
    /// Request allowances per client, shared by every rate-limited route class (on Redis when
    /// `REDIS_URL` is set, else in this process).
    pub limiter: RateLimiter,
    /// `tenant_hosts` in memory, for [`PublicTenant`].
    pub hosts: crate::tenancy::HostDirectory,
    /// Where media files are kept (local folder or S3).
    pub media: crate::media::MediaStore,
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
        lifecycle: Arc<Lifecycle>,
        secret: SecretKey,
    ) -> Result<Self, redis::RedisError> {
        let trusted_proxies = TrustedProxies(config.http.trusted_proxies.clone().into());
        let redis_url = config
            .redis_url
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret);
        let limiter = RateLimiter::new(redis_url, LimiterOptions::default())?;
        Ok(Self(Arc::new(AppInner {
            hosts: crate::tenancy::HostDirectory::new(store.notices().clone()),
            media: crate::media::MediaStore::for_config(&config),
            trusted_proxies,
            limiter,
            config,
            store,
            site,
            lifecycle,
            secret,
        })))
    }
}

/// The tenant a public request is for: the one its host is listed under (`tenant_hosts`),
/// else the configured site tenant. The only way public handlers get a [`TenantScope`].
pub struct PublicTenant(pub TenantScope);

impl<S> axum::extract::FromRequestParts<S> for PublicTenant
where
    App: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::http::errors::AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let app = <App as axum::extract::FromRef<S>>::from_ref(state);
        // HTTP/2 sends the host as the URI's authority, HTTP/1.1 in the Host header.
        // X-Forwarded-Host is not consulted: a proxy in front passes Host through.
        let host = parts
            .uri
            .authority()
            .map(|a| a.host().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(axum::http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
        if let Some(host) = host
            && let Some(scope) = app.hosts.find(app.store.primary(), &host).await?
        {
            return Ok(PublicTenant(scope));
        }
        Ok(PublicTenant(app.site.clone()))
    }
}
