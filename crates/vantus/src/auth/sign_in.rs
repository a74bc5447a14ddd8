//! The one way a session starts. Every sign-in path (password only; password then TOTP or a
//! recovery code; later a passkey as the second factor or alone) proves who the person is in
//! its own way, then calls [`complete_sign_in`] inside its write transaction and answers with
//! [`signed_in_response`]. So the tenant choice, the "must enrol a second factor" mark, the
//! session's `authenticated_at` and the `login.succeeded` audit entry are the same for all.

use std::net::IpAddr;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::Auth;
use super::mfa;
use super::permission::Role;
use super::session::{self, Started};
use super::users;
use crate::audit::{self, Actor, AuditAction, Change};
use crate::http::errors::AppError;
use crate::http::rate_limit::client_key;
use crate::store::Conn;
use crate::tenancy::{self, TenantScope};

/// What the person proved before the session starts; recorded in the audit entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A password, and the account has no second factor.
    Password,
    /// A password and a TOTP code.
    PasswordAndTotp,
    /// A password and a recovery code.
    PasswordAndRecoveryCode,
    /// A password and a passkey (the passkey work wires this).
    PasswordAndPasskey,
    /// A passkey alone (passwordless; the passkey work wires this).
    Passkey,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Password => "password",
            Proof::PasswordAndTotp => "password+totp",
            Proof::PasswordAndRecoveryCode => "password+recovery_code",
            Proof::PasswordAndPasskey => "password+passkey",
            Proof::Passkey => "passkey",
        }
    }
}

/// Who signs in, from where, having proved what.
pub struct SignIn<'a> {
    pub user: Uuid,
    pub ip: IpAddr,
    /// The request's address and id, for the audit entry.
    pub origin: &'a audit::RequestOrigin,
    pub user_agent: Option<&'a str>,
    pub proof: Proof,
    /// More facts for the `login.succeeded` entry (which passkey).
    pub facts: Change,
}

/// A session that has started.
pub struct SignedIn {
    pub started: Started,
    pub scope: TenantScope,
    /// The session may only enrol a second factor (the role requires one, the user has none).
    pub must_enrol: bool,
}

/// Whether `user` must enrol a second factor before using the portal in `scope`: their role
/// there is in `VANTUS_MFA_REQUIRED_ROLES` and [`mfa::is_enrolled`] says no.
pub async fn requires_enrolment(
    conn: &mut Conn<'_>,
    auth: &Auth,
    user: Uuid,
    scope: &TenantScope,
) -> Result<bool, sqlx::Error> {
    let required = &auth.config.auth.mfa_required_roles;
    if required.is_empty() {
        return Ok(false);
    }
    let role: Option<Role> = users::role_in(conn, user, scope).await?;
    let needs = role.is_some_and(|r| required.iter().any(|n| n == r.as_str()));
    Ok(needs && !mfa::is_enrolled(conn, user).await?)
}

/// Starts the session of someone who has proved who they are, on `conn` (the caller's write
/// transaction, so the audit entry commits with the session): picks the tenant they work in,
/// marks the session "must enrol" when their role requires a second factor they lack, and
/// records `login.succeeded` with the proof. `None` (recorded as `login.failed`) when the
/// account belongs to no tenant. The caller has checked the account is not disabled.
pub async fn complete_sign_in(
    conn: &mut Conn<'_>,
    auth: &Auth,
    sign_in: &SignIn<'_>,
) -> Result<Option<SignedIn>, sqlx::Error> {
    let user = sign_in.user;
    let scope = match users::first_tenant(conn, user).await? {
        Some(t) => tenancy::find_by_id(conn, t).await?,
        None => None,
    };
    let resource = format!("user:{user}");
    let Some(scope) = scope else {
        audit::Context::new(Actor::User(user), None, sign_in.origin.clone())
            .record(
                conn,
                AuditAction::LoginFailed,
                &resource,
                sign_in.facts.clone().with("reason", "no tenant"),
            )
            .await?;
        return Ok(None);
    };
    let ip = sign_in.ip.to_string();
    let max_age = auth.config.auth.session_max_age;
    let started =
        session::start(conn, user, &scope, Some(&ip), sign_in.user_agent, max_age).await?;
    let must_enrol = requires_enrolment(conn, auth, user, &scope).await?;
    if must_enrol {
        session::set_must_enrol(conn, &started.session_id, true).await?;
    }
    let facts = sign_in
        .facts
        .clone()
        .with("client", client_key(Some(sign_in.ip)))
        .with("proof", sign_in.proof.as_str())
        .with("must_enrol_mfa", must_enrol);
    audit::Context::new(
        Actor::User(user),
        Some(scope.clone()),
        sign_in.origin.clone(),
    )
    .record(conn, AuditAction::LoginSucceeded, &resource, facts)
    .await?;
    Ok(Some(SignedIn {
        started,
        scope,
        must_enrol,
    }))
}

/// The answer to a completed sign-in: the session cookie, and a redirect to `next` (or to
/// enrolment when the session must enrol first). Extra `Set-Cookie` values (e.g. clearing the
/// login challenge) go in `also_set`.
pub fn signed_in_response(
    auth: &Auth,
    signed: &SignedIn,
    next: &str,
    also_set: &[String],
) -> Response {
    let location = if signed.must_enrol {
        "/admin/account/mfa"
    } else {
        next
    };
    let mut cookies = vec![auth.cookie.set(
        signed.started.token.expose_secret(),
        auth.config.auth.session_max_age,
    )];
    cookies.extend_from_slice(also_set);
    redirect_setting(location, &cookies)
}

/// A 303 to `location` that sets `cookies`.
pub fn redirect_setting(location: &str, cookies: &[String]) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let Ok(location) = HeaderValue::from_str(location) else {
        return AppError::Internal("a redirect that is not a header value".into()).into_response();
    };
    res.headers_mut().insert(header::LOCATION, location);
    with_cookies(res, cookies)
}

/// `res` with a `Set-Cookie` for each of `cookies`.
pub fn with_cookies(mut res: Response, cookies: &[String]) -> Response {
    for cookie in cookies {
        let Ok(v) = HeaderValue::from_str(cookie) else {
            return AppError::Internal("a cookie that is not a header value".into())
                .into_response();
        };
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
