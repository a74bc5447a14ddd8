//! The passkey routes: registering and removing on the account page, and the passwordless
//! sign-in. The JSON endpoints are called by `static/js/passkeys.js`; the portal's form-token
//! layer covers them all (the script sends the session's token as `X-CSRF-Token`), and
//! starting a sign-in, which has no session yet, shares the password sign-in's rate limit.
//!
//! Adding or removing a passkey changes how the account can be entered, so, like a password
//! change, it ends every other session of the user, and it needs a recent proof of the
//! user's factors (`VANTUS_REAUTH_WINDOW`; the two-factor page re-authenticates).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::{Refusal, RelyingParty};
use crate::audit::{self, Actor, AuditAction, Change};
use crate::auth::permission::perm;
use crate::auth::routes::{login_limit, safe_next, with_session_cookie};
use crate::auth::routing::Portal;
use crate::auth::sign_in::{Proof, SignIn, complete_sign_in};
use crate::auth::staff::Staff;
use crate::auth::{Auth, session, users};
use crate::http::client_ip::ClientIp;
use crate::http::errors::AppError;
use crate::http::extract::{Form, Json};
use crate::http::rate_limit::{self, client_key};

/// Declares the passkey routes on the portal's table.
pub fn declare(portal: &mut Portal) {
    type Own = perm::ViewDashboard;
    portal
        .staff::<Own, _, _>(
            Method::POST,
            "/admin/account/passkeys/register/start",
            register_start,
        )
        .staff::<Own, _, _>(
            Method::POST,
            "/admin/account/passkeys/register/finish",
            register_finish,
        )
        .staff::<Own, _, _>(Method::POST, "/admin/account/passkeys/remove", remove)
        .public_layered(
            Method::POST,
            "/admin/login/passkey/start",
            sign_in_start,
            |route, auth| {
                route.route_layer(from_fn_with_state(login_limit(auth), rate_limit::limit))
            },
        )
        // Not limited itself: each finish uses up a ceremony, and starting one is limited, so
        // an attempt costs one unit of the budget, as a password attempt does.
        .public(Method::POST, "/admin/login/passkey/finish", sign_in_finish)
        // The second factor after a password: the same, for the account of the login
        // challenge (its cookie), and each finish also counts against the challenge.
        .public_layered(
            Method::POST,
            "/admin/login/mfa/passkey/start",
            second_factor_start,
            |route, auth| {
                route.route_layer(from_fn_with_state(login_limit(auth), rate_limit::limit))
            },
        )
        .public(
            Method::POST,
            "/admin/login/mfa/passkey/finish",
            second_factor_finish,
        );
}

/// The relying party, or 404 when this server offers no passkeys (an IP-address public URL).
fn relying_party(auth: &Auth) -> Result<&RelyingParty, AppError> {
    auth.passkeys.as_deref().ok_or(AppError::NotFound)
}

/// A started ceremony as the script receives it: the id to finish with, and the options for
/// `navigator.credentials`.
fn started(ceremony: String, options: impl serde::Serialize) -> Response {
    axum::Json(json!({ "ceremony": ceremony, "options": options })).into_response()
}

fn refused_field(refusal: Refusal) -> Response {
    let field = if refusal == Refusal::NoCeremony {
        "ceremony"
    } else {
        "credential"
    };
    AppError::bad_request(field, refusal.message()).into_response()
}

/// `POST /admin/account/passkeys/register/start`: creation options for the signed-in user.
/// Refuses a change of factors on a session whose last proof is older than the re-auth window.
fn needs_fresh_authentication(auth: &Auth, staff: &Staff<perm::ViewDashboard>) -> Option<Response> {
    if staff.session.is_fresh(auth.config.auth.reauth_window) {
        return None;
    }
    Some(
        AppError::Forbidden(
            "Confirm it is you first: re-enter your password on the two-factor page \
             (/admin/account/mfa), then add or remove the passkey."
                .into(),
        )
        .into_response(),
    )
}

async fn register_start(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
    if let Some(refused) = needs_fresh_authentication(&auth, &staff) {
        return refused;
    }
    let rp = match relying_party(&auth) {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(user) = users::find_by_id(conn, me).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        super::start_registration(conn, rp, me, &user.email, &user.name).await.map(Some)
    });
    match done {
        Ok(Some((options, ceremony))) => started(ceremony, options),
        Ok(None) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct RegisterFinish {
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

/// `POST /admin/account/passkeys/register/finish`: verifies and stores the new passkey, ends
/// the user's other sessions, and audits `passkey.registered`.
async fn register_finish(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewDashboard>,
    Json(body): Json<RegisterFinish>,
) -> Response {
    if let Some(refused) = needs_fresh_authentication(&auth, &staff) {
        return refused;
    }
    let rp = match relying_party(&auth) {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let id = match super::finish_registration(conn, rp, me, &body.ceremony, &body.credential, &body.name).await? {
            Ok(id) => id,
            Err(refusal) => return Ok::<_, sqlx::Error>(Err(refusal)),
        };
        let others = session::revoke_others(conn, me, &staff.session.id).await?;
        staff.audit().record(conn, AuditAction::PasskeyRegistered, &format!("user:{me}"),
            Change::none().with("passkey", id.to_string()).with("other_sessions_ended", others)).await?;
        crate::auth::notify::credential_changed(conn, &staff.scope, me, crate::auth::notify::Change::PasskeyAdded).await?;
        Ok(Ok(id))
    });
    match done {
        Ok(Ok(id)) => axum::Json(json!({ "id": id, "redirect": "/admin/account" })).into_response(),
        Ok(Err(refusal)) => refused_field(refusal),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RemovePost {
    passkey: String,
}

/// `POST /admin/account/passkeys/remove` (a form): removes one of the user's passkeys, ends
/// their other sessions, and audits `passkey.removed`.
async fn remove(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewDashboard>,
    Form(post): Form<RemovePost>,
) -> Response {
    if let Some(refused) = needs_fresh_authentication(&auth, &staff) {
        return refused;
    }
    let Ok(id) = post.passkey.parse::<Uuid>() else {
        return AppError::bad_request("passkey", "must name one of your passkeys").into_response();
    };
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        if !super::remove(conn, me, id).await? {
            return Ok::<_, sqlx::Error>(false);
        }
        let others = session::revoke_others(conn, me, &staff.session.id).await?;
        staff.audit().record(conn, AuditAction::PasskeyRemoved, &format!("user:{me}"),
            Change::none().with("passkey", id.to_string()).with("other_sessions_ended", others)).await?;
        crate::auth::notify::credential_changed(conn, &staff.scope, me, crate::auth::notify::Change::PasskeyRemoved).await?;
        Ok(true)
    });
    match done {
        Ok(true) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/admin/account"));
            res
        }
        Ok(false) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// `POST /admin/login/passkey/start`: request options that name no account, and the ceremony.
async fn sign_in_start(State(auth): State<Auth>) -> Response {
    let rp = match relying_party(&auth) {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    match in_write_tx!(auth.store.primary(), conn => super::start_sign_in(conn, rp).await) {
        Ok((options, ceremony)) => started(ceremony, options),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SignInFinish {
    ceremony: String,
    credential: PublicKeyCredential,
    #[serde(default)]
    next: Option<String>,
}

/// Shown for every refused passkey sign-in, whatever the reason (as for passwords).
const REFUSED: &str = "This passkey was not accepted.";

/// `POST /admin/login/passkey/finish`: verifies the assertion, refuses a disabled account,
/// starts a session exactly as the password sign-in does (audited `login.succeeded` with
/// `"method": "passkey"`), and answers where to go.
async fn sign_in_finish(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    origin: audit::RequestOrigin,
    headers: HeaderMap,
    Json(body): Json<SignInFinish>,
) -> Response {
    let rp = match relying_party(&auth) {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    let next = safe_next(body.next.as_deref());
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let outcome = in_write_tx!(auth.store.primary(), conn => {
        let verified = match super::finish_sign_in(conn, rp, &body.ceremony, &body.credential).await? {
            Ok(v) => v,
            Err(refusal) => {
                audit::Context::new(Actor::Public, None, origin.clone())
                    .record(conn, AuditAction::LoginFailed, "session", Change::none()
                        .with("client", client_key(Some(ip))).with("method", "passkey")
                        .with("reason", format!("{refusal:?}"))).await?;
                return Ok::<_, sqlx::Error>(None);
            }
        };
        let user = verified.user_id;
        let active = users::find_by_id(conn, user).await?.is_some_and(|u| u.disabled_at.is_none());
        if !active {
            audit::Context::new(Actor::User(user), None, origin.clone())
                .record(conn, AuditAction::LoginFailed, &format!("user:{user}"), Change::none()
                    .with("method", "passkey").with("reason", "disabled")).await?;
            return Ok(None);
        }
        let sign_in = SignIn { user, ip, origin: &origin, user_agent, proof: Proof::Passkey,
            facts: Change::none().with("method", "passkey")
                .with("passkey", verified.passkey_id.to_string()) };
        complete_sign_in(conn, &auth, &sign_in).await
    });
    match outcome {
        Ok(Some(signed)) => {
            // A passkey is a second factor itself, so enrolment is only asked of an account
            // that lost it meanwhile; the script goes wherever the session may.
            let to = if signed.must_enrol {
                "/admin/account/mfa"
            } else {
                next.as_str()
            };
            with_session_cookie(
                &auth,
                &signed.started,
                axum::Json(json!({ "redirect": to })).into_response(),
            )
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": { "message": REFUSED } })),
        )
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// The live login challenge of the request (the password step passed), or the answer to give.
async fn live_challenge(
    auth: &Auth,
    headers: &HeaderMap,
) -> Result<crate::auth::mfa::challenge::Challenge, Response> {
    let expired = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({ "error": { "message": "Sign in with your password again.",
                                          "redirect": "/admin/login" } }),
            ),
        )
            .into_response()
    };
    let Some(token) = session::session_token(headers, auth.challenge_cookie.name) else {
        return Err(expired());
    };
    match with_conn!(auth.store.primary(), conn =>
        crate::auth::mfa::challenge::find_live(conn, &token).await)
    {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(expired()),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

/// `POST /admin/login/mfa/passkey/start`: options to prove the second factor with one of the
/// challenged account's passkeys (404 when it has none).
async fn second_factor_start(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let rp = match relying_party(&auth) {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    let challenge = match live_challenge(&auth, &headers).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let user = challenge.user_id;
    match in_write_tx!(auth.store.primary(), conn => super::start_second_factor(conn, rp, user).await)
    {
        Ok(Some((options, ceremony))) => started(ceremony, options),
        Ok(None) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SecondFactorFinish {
    ceremony: String,
    credential: PublicKeyCredential,
}

/// `POST /admin/login/mfa/passkey/finish`: the password was right and now the passkey is:
/// the session starts (audited with the proof `password+passkey`) and the challenge ends.
async fn second_factor_finish(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    origin: audit::RequestOrigin,
    headers: HeaderMap,
    Json(body): Json<SecondFactorFinish>,
) -> Response {
    let rp = match relying_party(&auth) {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    let challenge = match live_challenge(&auth, &headers).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let user = challenge.user_id;
    let outcome = in_write_tx!(auth.store.primary(), conn => {
        if !crate::auth::mfa::challenge::count_attempt(conn, &challenge.id).await? {
            return Ok::<_, sqlx::Error>(None);
        }
        let verified = match super::verify_second_factor(conn, rp, user, &body.ceremony, &body.credential).await? {
            Ok(v) => v,
            Err(refusal) => {
                audit::Context::new(Actor::User(user), None, origin.clone())
                    .record(conn, AuditAction::LoginMfaFailed, &format!("user:{user}"), Change::none()
                        .with("client", client_key(Some(ip))).with("method", "passkey")
                        .with("reason", format!("{refusal:?}"))).await?;
                return Ok(None);
            }
        };
        let active = users::find_by_id(conn, user).await?.is_some_and(|u| u.disabled_at.is_none());
        if !active {
            return Ok(None);
        }
        crate::auth::mfa::challenge::consume(conn, &challenge.id).await?;
        let sign_in = SignIn { user, ip, origin: &origin, user_agent, proof: Proof::PasswordAndPasskey,
            facts: Change::none().with("passkey", verified.passkey_id.to_string()) };
        Ok(complete_sign_in(conn, &auth, &sign_in).await?.map(|s| (s, challenge.next_path.clone())))
    });
    match outcome {
        Ok(Some((signed, next))) => {
            let to = if signed.must_enrol {
                "/admin/account/mfa".to_owned()
            } else {
                safe_next(Some(&next))
            };
            let res = with_session_cookie(
                &auth,
                &signed.started,
                axum::Json(json!({ "redirect": to })).into_response(),
            );
            crate::auth::sign_in::with_cookies(res, &[auth.challenge_cookie.clear()])
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": { "message": REFUSED } })),
        )
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
