//! Signing in and out: `GET`/`POST /admin/login`, `POST /admin/logout`.
//!
//! A refused sign-in always gets the same page and status, whether the address has no
//! account, the password is wrong, or the account is disabled, and it takes as long (see
//! [`Passwords::verify`](super::password::Passwords::verify)). Attempts are limited per client
//! (route layer, `VANTUS_RATE_LIMIT_LOGIN`) and per account (`VANTUS_RATE_LIMIT_LOGIN_ACCOUNT`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Auth;
use super::permission::perm;
use super::routing::Portal;
use super::session;
use super::staff::Staff;
use super::users::{self, LoginEmail};
use crate::audit::{self, Actor, AuditAction, Change};
use crate::http::client_ip::ClientIp;
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::http::rate_limit::{self, Decision, Quota, RouteLimit, client_key};
use crate::site::layout::{Layout, Section};
use crate::tenancy;

/// The per-client limit of sign-in attempts (`VANTUS_RATE_LIMIT_LOGIN`), shared by every way
/// of signing in (password, passkey): one budget, whichever door is tried.
pub(crate) fn login_limit(auth: &Auth) -> RouteLimit {
    let rate = auth.config.auth.login_rate;
    RouteLimit {
        limiter: auth.limiter.clone(),
        class: "login",
        quota: Quota::new(rate.count, rate.period),
        trusted: auth.trusted_proxies.clone(),
    }
}

/// Declares the sign-in routes on the portal's table.
pub fn declare(portal: &mut Portal) {
    portal
        .public(Method::GET, "/admin/login", login_page)
        .public_layered(Method::POST, "/admin/login", login, |route, auth| {
            route.route_layer(from_fn_with_state(login_limit(auth), rate_limit::limit))
        })
        .staff::<perm::ViewDashboard, _, _>(Method::POST, "/admin/logout", logout);
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    next: String,
    error: Option<&'static str>,
    /// Whether "Sign in with a passkey" is offered (a relying party could be built).
    passkeys: bool,
}

/// Where to go after signing in: a path inside the portal, never another site.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

fn render(page: LoginPage, status: StatusCode) -> Response {
    crate::http::html_page(status, page.render())
}

fn login_view(auth: &Auth, email: String, next: String, error: Option<&'static str>) -> LoginPage {
    let mut layout = Layout::bare("Sign in", Section::None);
    layout.description = "Sign in to the Vantus portal.".into();
    LoginPage {
        layout,
        email,
        next,
        error,
        passkeys: auth.passkeys.is_some(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(State(auth): State<Auth>, Query(q): Query<NextQuery>) -> Response {
    render(
        login_view(&auth, String::new(), safe_next(q.next.as_deref()), None),
        StatusCode::OK,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginPost {
    email: String,
    password: String,
    next: Option<String>,
}

/// Shown for every refused sign-in, whatever the reason.
const REFUSED: &str = "The email address or the password is not right.";

async fn login(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    origin: audit::RequestOrigin,
    headers: HeaderMap,
    Form(post): Form<LoginPost>,
) -> Response {
    let next = safe_next(post.next.as_deref());
    let refused = |email: String| {
        render(
            login_view(&auth, email, next.clone(), Some(REFUSED)),
            StatusCode::UNAUTHORIZED,
        )
    };
    // Per account, from every client: keyed by a hash of the address as typed (normalised),
    // so an address that has no account is limited the same way as one that has.
    let typed = post.email.trim().to_lowercase();
    let rate = auth.config.auth.login_account_rate;
    if let Decision::Deny { retry_after } = auth
        .limiter
        .check(
            "login-account",
            &hex::encode(Sha256::digest(typed.as_bytes())),
            Quota::new(rate.count, rate.period),
        )
        .await
    {
        return rate_limit::too_many_requests(retry_after);
    }
    let password = SecretString::from(post.password);
    let db = auth.store.primary();
    let user = match LoginEmail::parse(&typed) {
        Ok(email) => match with_conn!(db, conn => users::find_by_email(conn, &email).await) {
            Ok(user) => user,
            Err(e) => return AppError::from(e).into_response(),
        },
        Err(_) => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matched = auth.passwords.verify(&password, stored).await;
    let user = user.filter(|u| matched && u.disabled_at.is_none());
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let max_age = auth.config.auth.session_max_age;
    let outcome = in_write_tx!(db, conn => {
        let Some(user) = user else {
            // Who tried is not known for sure: record the client's network, not the address.
            let ctx = audit::Context::new(Actor::Public, None, origin.clone());
            ctx.record(conn, AuditAction::LoginFailed, "session",
                Change::none().with("client", client_key(Some(ip)))).await?;
            return Ok::<_, sqlx::Error>(None);
        };
        start_session(conn, user.id, ip, &origin, user_agent, max_age, Change::none()).await
    });
    match outcome {
        Ok(Some(started)) => match HeaderValue::from_str(&next) {
            Ok(location) => {
                let mut res = StatusCode::SEE_OTHER.into_response();
                res.headers_mut().insert(header::LOCATION, location);
                with_session_cookie(&auth, &started, res)
            }
            Err(_) => {
                AppError::Internal("a next path that is not a header value".into()).into_response()
            }
        },
        Ok(None) => refused(typed),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// Starts the session of `user`, whose sign-in was verified (password, passkey), in the first
/// tenant they work in, and records `login.succeeded` with `detail` and the client's network,
/// in the caller's transaction. `None`, recorded as `login.failed`, when they work in none.
pub(crate) async fn start_session(
    conn: &mut crate::store::Conn<'_>,
    user: uuid::Uuid,
    ip: std::net::IpAddr,
    origin: &audit::RequestOrigin,
    user_agent: Option<&str>,
    max_age: std::time::Duration,
    facts: Change,
) -> Result<Option<session::Started>, sqlx::Error> {
    let scope = match users::first_tenant(conn, user).await? {
        Some(t) => tenancy::find_by_id(conn, t).await?,
        None => None,
    };
    let resource = format!("user:{user}");
    let Some(scope) = scope else {
        let ctx = audit::Context::new(Actor::User(user), None, origin.clone());
        ctx.record(
            conn,
            AuditAction::LoginFailed,
            &resource,
            facts.with("reason", "no tenant"),
        )
        .await?;
        return Ok(None);
    };
    let ip_text = ip.to_string();
    let started = session::start(conn, user, &scope, Some(&ip_text), user_agent, max_age).await?;
    let ctx = audit::Context::new(Actor::User(user), Some(scope), origin.clone());
    ctx.record(
        conn,
        AuditAction::LoginSucceeded,
        &resource,
        facts.with("client", client_key(Some(ip))),
    )
    .await?;
    Ok(Some(started))
}

/// `res` with the `Set-Cookie` header that hands a started session to the browser.
pub(crate) fn with_session_cookie(
    auth: &Auth,
    started: &session::Started,
    res: Response,
) -> Response {
    with_session_cookie_for(auth, started, auth.config.auth.session_max_age, res)
}

/// `res` handing `started` to the browser for `max_age` (a renewed session keeps the end of
/// the one it replaces).
pub fn with_session_cookie_for(
    auth: &Auth,
    started: &session::Started,
    max_age: std::time::Duration,
    mut res: Response,
) -> Response {
    let set = auth.cookie.set(
        secrecy::ExposeSecret::expose_secret(&started.token),
        max_age,
    );
    match HeaderValue::from_str(&set) {
        Ok(set) => {
            res.headers_mut().insert(header::SET_COOKIE, set);
            res
        }
        Err(_) => {
            AppError::Internal("a session cookie that is not a header value".into()).into_response()
        }
    }
}

/// Signing out; the form token was checked by [`super::csrf::verify`].
async fn logout(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
    let db = auth.store.primary();
    let done = in_write_tx!(db, conn => {
        session::revoke(conn, &staff.session.id).await?;
        staff.audit().record(conn, AuditAction::Logout, &format!("user:{}", staff.user_id),
            Change::none()).await
    });
    if let Err(e) = done {
        return AppError::from(e).into_response();
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/admin/login"));
    if let Ok(clear) = HeaderValue::from_str(&auth.cookie.clear()) {
        res.headers_mut().insert(header::SET_COOKIE, clear);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_portal_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/admin/leads?page=2")),
            "/admin/leads?page=2"
        );
        for bad in [
            "https://evil.example/admin",
            "//evil.example/admin",
            "/contact",
            "/admin\\@evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin");
    }
}
