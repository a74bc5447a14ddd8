//! Signing in and out: `GET`/`POST /admin/login`, the second factor at `GET`/`POST
//! /admin/login/mfa`, `POST /admin/logout`.
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
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Auth;
use super::mfa;
use super::notify;
use super::permission::perm;
use super::routing::Portal;
use super::session;
use super::sign_in::{
    Proof, SignIn, SignedIn, complete_sign_in, redirect_setting, signed_in_response,
};
use super::staff::Staff;
use super::users::{self, LoginEmail};
use crate::audit::{self, Actor, AuditAction, Change};
use crate::http::client_ip::ClientIp;
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::http::rate_limit::{self, Decision, Quota, RouteLimit, client_key};
use crate::site::layout::{Layout, Section};

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
        .public(Method::GET, "/admin/login/mfa", second_factor_page)
        .public_layered(
            Method::POST,
            "/admin/login/mfa",
            second_factor,
            |route, auth| {
                route.route_layer(from_fn_with_state(login_limit(auth), rate_limit::limit))
            },
        )
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
    let outcome = in_write_tx!(db, conn => {
        let Some(user) = user else {
            // Who tried is not known for sure: record the client's network, not the address.
            audit::Context::new(Actor::Public, None, origin.clone()).record(conn,
                AuditAction::LoginFailed, "session", Change::none().with("client", client_key(Some(ip)))).await?;
            return Ok::<_, sqlx::Error>(Step::Refused);
        };
        // A second factor is asked for before any session exists.
        if mfa::is_enrolled(conn, user.id).await? {
            let token = mfa::challenge::create(conn, user.id, &next).await?;
            return Ok(Step::SecondFactor(token));
        }
        let sign_in = SignIn { user: user.id, ip, origin: &origin, user_agent, proof: Proof::Password, facts: Change::none() };
        Ok(match complete_sign_in(conn, &auth, &sign_in).await? {
            Some(signed) => Step::SignedIn(signed),
            None => Step::Refused,
        })
    });
    match outcome {
        Ok(Step::SignedIn(signed)) => signed_in_response(&auth, &signed, &next, &[]),
        Ok(Step::SecondFactor(token)) => redirect_setting(
            "/admin/login/mfa",
            &[auth
                .challenge_cookie
                .set(token.expose_secret(), mfa::challenge::TTL)],
        ),
        Ok(Step::Refused) => refused(typed),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// Where a correct password leads.
enum Step {
    Refused,
    SecondFactor(SecretString),
    SignedIn(SignedIn),
}

#[derive(Template)]
#[template(path = "auth/login_mfa.html")]
struct SecondFactorPage {
    layout: Layout,
    error: Option<&'static str>,
    /// Offer a passkey as the second factor (the server has a relying party).
    passkeys: bool,
}

fn second_factor_view(error: Option<&'static str>, status: StatusCode, passkeys: bool) -> Response {
    let mut layout = Layout::bare("Two-factor sign-in", Section::None);
    layout.description = "Enter the code from your authenticator app.".into();
    crate::http::html_page(
        status,
        SecondFactorPage {
            layout,
            error,
            passkeys,
        }
        .render(),
    )
}

/// Whether the second step offers a passkey: the server has a relying party and `user` has one.
async fn offers_passkey(auth: &Auth, user: uuid::Uuid) -> Result<bool, sqlx::Error> {
    if auth.passkeys.is_none() {
        return Ok(false);
    }
    let n = with_conn!(auth.store.primary(), conn => super::passkeys::count_for(conn, user).await)?;
    Ok(n > 0)
}

fn back_to_sign_in(auth: &Auth) -> Response {
    redirect_setting("/admin/login", &[auth.challenge_cookie.clear()])
}

/// The second step's form; without a live challenge, back to the password.
async fn second_factor_page(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let Some(token) = session::session_token(&headers, auth.challenge_cookie.name) else {
        return back_to_sign_in(&auth);
    };
    match with_conn!(auth.store.primary(), conn => mfa::challenge::find_live(conn, &token).await) {
        Ok(Some(c)) => match offers_passkey(&auth, c.user_id).await {
            Ok(passkeys) => second_factor_view(None, StatusCode::OK, passkeys),
            Err(e) => AppError::from(e).into_response(),
        },
        Ok(None) => back_to_sign_in(&auth),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SecondFactorPost {
    code: String,
}

const CODE_REFUSED: &str = "The code is not right: enter the current 6-digit code from your authenticator app, or an unused recovery code.";

/// What the second step led to.
enum Second {
    Expired,
    Refused,
    SignedIn(SignedIn, String),
}

/// Checks the TOTP or recovery code of a live challenge. Each try counts against the challenge
/// ([`mfa::challenge::MAX_ATTEMPTS`]), against the account (`VANTUS_RATE_LIMIT_LOGIN_ACCOUNT`)
/// and, through the route layer, against the client.
async fn second_factor(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    origin: audit::RequestOrigin,
    headers: HeaderMap,
    Form(post): Form<SecondFactorPost>,
) -> Response {
    let Some(token) = session::session_token(&headers, auth.challenge_cookie.name) else {
        return back_to_sign_in(&auth);
    };
    let db = auth.store.primary();
    let challenge = match with_conn!(db, conn => mfa::challenge::find_live(conn, &token).await) {
        Ok(Some(c)) => c,
        Ok(None) => return back_to_sign_in(&auth),
        Err(e) => return AppError::from(e).into_response(),
    };
    let rate = auth.config.auth.login_account_rate;
    if let Decision::Deny { retry_after } = auth
        .limiter
        .check(
            "login-mfa",
            &challenge.user_id.to_string(),
            Quota::new(rate.count, rate.period),
        )
        .await
    {
        return rate_limit::too_many_requests(retry_after);
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let key = auth.mfa_key.clone();
    let outcome = in_write_tx!(db, conn => {
        if !mfa::challenge::count_attempt(conn, &challenge.id).await? {
            return Ok::<_, sqlx::Error>(Second::Expired);
        }
        let me = challenge.user_id;
        let actor = Actor::User(me);
        let resource = format!("user:{me}");
        let disabled = users::find_by_id(conn, me).await?.is_none_or(|u| u.disabled_at.is_some());
        let factor = if disabled { None } else { mfa::verify(conn, &key, me, &post.code).await? };
        let Some(factor) = factor else {
            audit::Context::new(actor, None, origin.clone()).record(conn, AuditAction::LoginMfaFailed,
                &resource, Change::none().with("client", client_key(Some(ip)))
                    .with("attempt", challenge.attempts + 1)).await?;
            return Ok(Second::Refused);
        };
        mfa::challenge::consume(conn, &challenge.id).await?;
        let proof = match factor {
            mfa::Factor::Totp => Proof::PasswordAndTotp,
            mfa::Factor::RecoveryCode => Proof::PasswordAndRecoveryCode,
        };
        let sign_in = SignIn { user: me, ip, origin: &origin, user_agent, proof, facts: Change::none() };
        let Some(signed) = complete_sign_in(conn, &auth, &sign_in).await? else {
            return Ok(Second::Refused);
        };
        if factor == mfa::Factor::RecoveryCode {
            let left = mfa::recovery_codes_left(conn, me).await?;
            audit::Context::new(actor, Some(signed.scope.clone()), origin.clone()).record(conn,
                AuditAction::MfaRecoveryCodeUsed, &resource, Change::none().with("left", left)).await?;
            notify::credential_changed(conn, &signed.scope, me, notify::Change::RecoveryCodeUsed).await?;
        }
        Ok(Second::SignedIn(signed, challenge.next_path.clone()))
    });
    match outcome {
        Ok(Second::SignedIn(signed, next)) => signed_in_response(
            &auth,
            &signed,
            &safe_next(Some(&next)),
            &[auth.challenge_cookie.clear()],
        ),
        Ok(Second::Refused) => {
            let passkeys = offers_passkey(&auth, challenge.user_id)
                .await
                .unwrap_or(false);
            second_factor_view(Some(CODE_REFUSED), StatusCode::UNAUTHORIZED, passkeys)
        }
        Ok(Second::Expired) => back_to_sign_in(&auth),
        Err(e) => AppError::from(e).into_response(),
    }
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
