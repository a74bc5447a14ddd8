//! Staff accounts and access: how passwords are checked and stored ([`password`]), who may do
//! what ([`permission`]), accounts ([`users`]), server-side sessions ([`session`]), the
//! [`staff::Staff`] extractor every admin handler starts from, passkeys ([`passkeys`]), the
//! sign-in routes ([`routes`]), the second factor ([`mfa`]), the one way a session starts
//! ([`sign_in`]), the emails about a user's own credentials ([`notify`]), and the single-use
//! links sent by email: [`invitations`] and password [`resets`]. The hourly sweep of the
//! credentials that stopped working is [`expired`].

pub mod csrf;
pub mod expired;
pub mod invitations;
pub mod memberships;
pub mod mfa;
pub mod notify;
pub mod passkeys;
pub mod password;
pub mod permission;
pub mod resets;
pub mod routes;
pub mod routing;
pub mod session;
pub mod sign_in;
pub mod staff;
pub mod users;

use std::sync::Arc;

use crate::state::App;
use password::Passwords;

/// The session cookie: `__Host-` prefixed and `Secure` when the site is served over HTTPS
/// (always in production), so only this origin over TLS can set or read it.
#[derive(Clone, Copy, Debug)]
pub struct SessionCookie {
    pub name: &'static str,
    pub secure: bool,
}

impl SessionCookie {
    pub fn for_app(app: &App) -> Self {
        Self::named(app, "__Host-vantus_session", "vantus_session")
    }

    /// The login challenge's cookie (between the password and the second factor), shaped
    /// like the session's.
    pub fn challenge_for(app: &App) -> Self {
        Self::named(app, "__Host-vantus_mfa_challenge", "vantus_mfa_challenge")
    }

    fn named(app: &App, secure_name: &'static str, plain_name: &'static str) -> Self {
        let secure = app.config.is_production() || app.config.public_url.scheme() == "https";
        SessionCookie {
            name: if secure { secure_name } else { plain_name },
            secure,
        }
    }

    /// The `Set-Cookie` value that hands `token` to the browser for `max_age`.
    pub fn set(&self, token: &str, max_age: std::time::Duration) -> String {
        format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.name,
            max_age.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes it.
    pub fn clear(&self) -> String {
        self.set("", std::time::Duration::ZERO)
    }
}

/// The state of the sign-in routes and of every admin handler: the application, the password
/// hasher (with its semaphore, one per server), the cookies' shape, the key TOTP secrets are
/// sealed with, and the passkey relying party (`None` when the public URL's host is an IP
/// address, which WebAuthn refuses).
#[derive(Clone)]
pub struct Auth {
    pub app: App,
    pub passwords: Passwords,
    pub cookie: SessionCookie,
    pub passkeys: Option<Arc<passkeys::RelyingParty>>,
    pub challenge_cookie: SessionCookie,
    pub mfa_key: crate::secrets::MfaKey,
}

impl Auth {
    pub fn new(app: App, mfa_key: crate::secrets::MfaKey) -> Result<Self, password::HashError> {
        let passwords = Passwords::new(&app.config.auth)?;
        let cookie = SessionCookie::for_app(&app);
        let passkeys = match passkeys::RelyingParty::for_public_url(&app.config.public_url) {
            Ok(rp) => Some(Arc::new(rp)),
            Err(why) => {
                tracing::warn!(%why, "passkeys are unavailable");
                None
            }
        };
        let challenge_cookie = SessionCookie::challenge_for(&app);
        Ok(Self {
            app,
            passwords,
            cookie,
            passkeys,
            challenge_cookie,
            mfa_key,
        })
    }
}

impl Auth {
    /// The hash to store for a new password that passed the policy, or the 500 to answer when
    /// hashing itself fails (never the user's mistake).
    pub async fn hash_new_password(
        &self,
        password: String,
    ) -> Result<String, axum::response::Response> {
        use axum::response::IntoResponse;
        self.passwords
            .hash(&secrecy::SecretString::from(password))
            .await
            .map_err(|e| crate::http::errors::AppError::Internal(e.to_string()).into_response())
    }
}

impl std::ops::Deref for Auth {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl axum::extract::FromRef<Auth> for App {
    fn from_ref(auth: &Auth) -> App {
        auth.app.clone()
    }
}

impl axum::extract::FromRef<Auth> for crate::http::client_ip::TrustedProxies {
    fn from_ref(auth: &Auth) -> Self {
        auth.app.trusted_proxies.clone()
    }
}
