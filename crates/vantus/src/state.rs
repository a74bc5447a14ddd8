//! The state every handler shares once the server is ready.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::http::client_ip::TrustedProxies;
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
    ) -> Self {
        let trusted_proxies = TrustedProxies(config.http.trusted_proxies.clone().into());
        Self(Arc::new(AppInner {
            trusted_proxies,
            config,
            store,
            site,
            lifecycle,
            secret,
        }))
    }
}
