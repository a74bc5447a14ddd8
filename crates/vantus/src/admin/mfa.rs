//! Two-factor sign-in on the account page, `/admin/account/mfa`: enrol a TOTP authenticator
//! (QR code and the secret for manual entry; confirmed only by a correct code), see and
//! regenerate the single-use recovery codes, turn TOTP off.
//!
//! Every change here needs a recent proof of the user's factors (`VANTUS_REAUTH_WINDOW`;
//! otherwise the page asks for the password, and a code when TOTP is on, first), ends the
//! user's other sessions, continues this one under a new token, is audited and emails the user,
//! all in one transaction. The pending secret lives sealed in `mfa_totp`, never in the page's
//! forms.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use crate::audit::{self, AuditAction};
use crate::auth::Auth;
use crate::auth::mfa::{self, totp};
use crate::auth::notify::{self, Change};
use crate::auth::permission::perm;
use crate::auth::session::{self, Started};
use crate::auth::sign_in::{redirect_setting, requires_enrolment, with_cookies};
use crate::auth::staff::Staff;
use crate::auth::users;
use crate::http::client_ip::ClientIp;
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::http::rate_limit::{self, Decision, Quota};
use crate::site::layout::{Layout, Section};
use crate::store::Conn;

type Me = Staff<perm::ViewDashboard>;

/// A refused form: which field, and why.
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "admin/mfa.html")]
struct MfaPage {
    layout: Layout,
    csrf_token: String,
    /// The role requires a second factor and the user has none yet.
    must_enrol: bool,
    /// The last proof of a factor is too old: the page asks for it again first.
    reauth: bool,
    enrolled: bool,
    codes_left: i64,
    /// While enrolling: the QR code (inline SVG) and the secret for manual entry.
    qr_svg: String,
    manual_secret: String,
    /// Recovery codes just generated: shown this once.
    new_codes: Vec<String>,
    error: Option<FieldError>,
}

/// The state of the session the page is rendered for.
struct For {
    user: Uuid,
    csrf: String,
    fresh: bool,
    must_enrol: bool,
}

impl For {
    fn staff(auth: &Auth, staff: &Me) -> Self {
        For {
            user: staff.user_id,
            csrf: staff.session.csrf_token.clone(),
            fresh: staff.session.is_fresh(auth.config.auth.reauth_window),
            must_enrol: staff.session.must_enrol_mfa,
        }
    }

    /// After a change: the renewed session (fresh, as the change required).
    fn renewed(user: Uuid, started: &Started) -> Self {
        For {
            user,
            csrf: started.csrf_token.clone(),
            fresh: true,
            must_enrol: false,
        }
    }
}

/// Builds the page on `conn`; starts (or reuses) a pending enrolment when TOTP is off and the
/// session is fresh.
async fn view(
    conn: &mut Conn<'_>,
    auth: &Auth,
    who: &For,
    new_codes: Vec<String>,
    error: Option<FieldError>,
) -> Result<MfaPage, sqlx::Error> {
    let enrolled = mfa::has_totp(conn, who.user).await?;
    let mut page = MfaPage {
        layout: Layout::bare("Two-factor sign-in", Section::None),
        csrf_token: who.csrf.clone(),
        must_enrol: who.must_enrol,
        reauth: !who.fresh && new_codes.is_empty(),
        enrolled,
        codes_left: 0,
        qr_svg: String::new(),
        manual_secret: String::new(),
        new_codes,
        error,
    };
    if page.reauth {
        return Ok(page);
    }
    if enrolled {
        page.codes_left = mfa::recovery_codes_left(conn, who.user).await?;
    } else if let Some(secret) = mfa::pending_secret(conn, &auth.mfa_key, who.user).await? {
        let email = users::find_by_id(conn, who.user)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        page.manual_secret = totp::manual_entry(&secret);
        page.qr_svg = totp::uri(&secret, &email)
            .and_then(|uri| totp::qr_svg(&uri))
            .unwrap_or_default();
    }
    Ok(page)
}

/// Renders the page (in a write transaction: it may start an enrolment), with `status`, and
/// sets `cookie` when the session was renewed.
async fn render(
    auth: &Auth,
    who: &For,
    new_codes: Vec<String>,
    error: Option<FieldError>,
    status: StatusCode,
    cookie: Option<String>,
) -> Response {
    let built =
        in_write_tx!(auth.store.primary(), conn => view(conn, auth, who, new_codes, error).await);
    let mut res = match built {
        Ok(page) => crate::http::html_page(status, page.render()),
        Err(e) => return AppError::from(e).into_response(),
    };
    // Shown once: never stored by a cache, never restored from history.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cookies(res, cookie.as_slice())
}

pub async fn page(State(auth): State<Auth>, staff: Me) -> Response {
    render(
        &auth,
        &For::staff(&auth, &staff),
        Vec::new(),
        None,
        StatusCode::OK,
        None,
    )
    .await
}

/// The answer to a change attempted on a stale session: the re-authentication form.
async fn stale(auth: &Auth, staff: &Me) -> Response {
    let error = FieldError {
        field: "password",
        message:
            "Confirm it is you first: enter your password (and a code if two-factor sign-in is on)."
                .into(),
    };
    refuse(auth, staff, error, StatusCode::FORBIDDEN).await
}

/// The page again, with why the form was refused.
async fn refuse(auth: &Auth, staff: &Me, error: FieldError, status: StatusCode) -> Response {
    let who = For::staff(auth, staff);
    render(auth, &who, Vec::new(), Some(error), status, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodePost {
    code: String,
}

fn client(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// What a change did: the renewed session, and the codes to show (if any).
struct Changed {
    started: Started,
    codes: Vec<String>,
}

/// Records a credential change on `conn`: renews the session (ending the others), audits
/// `action` and emails the user about `change`.
async fn record_change(
    conn: &mut Conn<'_>,
    auth: &Auth,
    staff: &Me,
    ip: &str,
    user_agent: Option<&str>,
    action: AuditAction,
    change: Change,
) -> Result<Started, sqlx::Error> {
    let max_age = auth.config.auth.session_max_age;
    let (started, others) = session::renew(
        conn,
        &staff.session,
        &staff.scope,
        Some(ip),
        user_agent,
        max_age,
    )
    .await?;
    let me = staff.user_id;
    staff
        .audit()
        .record(
            conn,
            action,
            &format!("user:{me}"),
            audit::Change::none().with("other_sessions_ended", others),
        )
        .await?;
    notify::credential_changed(conn, &staff.scope, me, change).await?;
    Ok(started)
}

/// The page after a change, under the renewed session's cookie.
async fn after_change(auth: &Auth, staff: &Me, changed: Changed) -> Response {
    let cookie = auth.cookie.set(
        changed.started.token.expose_secret(),
        auth.config.auth.session_max_age,
    );
    let who = For::renewed(staff.user_id, &changed.started);
    render(
        auth,
        &who,
        changed.codes,
        None,
        StatusCode::OK,
        Some(cookie),
    )
    .await
}

/// Confirms enrolment with a code from the app; on success shows the recovery codes once.
pub async fn confirm(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    staff: Me,
    Form(post): Form<CodePost>,
) -> Response {
    if !staff.session.is_fresh(auth.config.auth.reauth_window) {
        return stale(&auth, &staff).await;
    }
    let (ip, user_agent) = (ip.to_string(), client(&headers));
    let key = auth.mfa_key.clone();
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(codes) = mfa::confirm(conn, &key, staff.user_id, &post.code).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        let started = record_change(conn, &auth, &staff, &ip, user_agent,
            AuditAction::MfaTotpEnabled, Change::TotpEnabled).await?;
        Ok(Some(Changed { started, codes }))
    });
    match done {
        Ok(Some(changed)) => after_change(&auth, &staff, changed).await,
        Ok(None) => {
            let error = FieldError {
                field: "code",
                message: "The code is not right: enter the 6-digit code your authenticator app shows now.".into(),
            };
            refuse(&auth, &staff, error, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

/// The changes to an existing authenticator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// New recovery codes; the old ones stop working.
    RegenerateCodes,
    /// TOTP off, recovery codes deleted.
    Disable,
}

/// New recovery codes; the old ones stop working.
pub async fn regenerate_codes(
    State(auth): State<Auth>,
    ip: ClientIp,
    headers: HeaderMap,
    staff: Me,
) -> Response {
    change(&auth, ip, &headers, &staff, Op::RegenerateCodes).await
}

/// Turns TOTP off (and deletes the recovery codes). A user whose role requires a second
/// factor is sent straight back to enrolment.
pub async fn disable(
    State(auth): State<Auth>,
    ip: ClientIp,
    headers: HeaderMap,
    staff: Me,
) -> Response {
    change(&auth, ip, &headers, &staff, Op::Disable).await
}

async fn change(
    auth: &Auth,
    ClientIp(ip): ClientIp,
    headers: &HeaderMap,
    staff: &Me,
    op: Op,
) -> Response {
    if !staff.session.is_fresh(auth.config.auth.reauth_window) {
        return stale(auth, staff).await;
    }
    let (ip, user_agent) = (ip.to_string(), client(headers));
    let (action, what) = match op {
        Op::RegenerateCodes => (
            AuditAction::MfaRecoveryCodesRegenerated,
            Change::RecoveryCodesRegenerated,
        ),
        Op::Disable => (AuditAction::MfaTotpDisabled, Change::TotpDisabled),
    };
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        if !mfa::has_totp(conn, me).await? {
            return Ok::<_, sqlx::Error>(None);
        }
        let codes = match op {
            Op::RegenerateCodes => mfa::replace_recovery_codes(conn, me).await?,
            Op::Disable => {
                mfa::disable(conn, me).await?;
                Vec::new()
            }
        };
        let started = record_change(conn, auth, staff, &ip, user_agent, action, what).await?;
        if op == Op::Disable && requires_enrolment(conn, auth, me, &staff.scope).await? {
            session::set_must_enrol(conn, &started.session_id, true).await?;
        }
        Ok(Some(Changed { started, codes }))
    });
    match done {
        Ok(Some(changed)) if op == Op::Disable => redirect_setting(
            "/admin/account/mfa",
            &[auth.cookie.set(
                changed.started.token.expose_secret(),
                auth.config.auth.session_max_age,
            )],
        ),
        Ok(Some(changed)) => after_change(auth, staff, changed).await,
        Ok(None) => AppError::bad_request("mfa", "two-factor sign-in is not on; enrol first")
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReauthPost {
    password: String,
    code: String,
}

/// Proves the user's factors again (password, and a TOTP or recovery code when TOTP is on);
/// the session's `authenticated_at` becomes now. Limited per account like sign-in.
pub async fn reauth(State(auth): State<Auth>, staff: Me, Form(post): Form<ReauthPost>) -> Response {
    let me = staff.user_id;
    let rate = auth.config.auth.login_account_rate;
    if let Decision::Deny { retry_after } = auth
        .limiter
        .check(
            "reauth",
            &me.to_string(),
            Quota::new(rate.count, rate.period),
        )
        .await
    {
        return rate_limit::too_many_requests(retry_after);
    }
    let db = auth.store.primary();
    let user = match with_conn!(db, conn => users::find_by_id(conn, me).await) {
        Ok(Some(u)) => u,
        Ok(None) => return AppError::NotFound.into_response(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let password_ok = auth
        .passwords
        .verify(
            &SecretString::from(post.password),
            user.password_hash.as_deref(),
        )
        .await;
    let key = auth.mfa_key.clone();
    let outcome = in_write_tx!(db, conn => {
        let refused = |field: &'static str, message: &str| FieldError { field, message: message.into() };
        let error = if !password_ok {
            Some(refused("password", "The password is not right."))
        } else if mfa::has_totp(conn, me).await? {
            match mfa::verify(conn, &key, me, &post.code).await? {
                None => Some(refused("code", "The code is not right: enter the current 6-digit code, or an unused recovery code.")),
                Some(mfa::Factor::RecoveryCode) => {
                    let left = mfa::recovery_codes_left(conn, me).await?;
                    staff.audit().record(conn, AuditAction::MfaRecoveryCodeUsed,
                        &format!("user:{me}"), audit::Change::none().with("left", left)).await?;
                    notify::credential_changed(conn, &staff.scope, me, Change::RecoveryCodeUsed).await?;
                    None
                }
                Some(mfa::Factor::Totp) => None,
            }
        } else {
            None
        };
        let action = if error.is_some() { AuditAction::ReauthFailed } else { AuditAction::Reauthenticated };
        staff.audit().record(conn, action, &format!("user:{me}"),
            audit::Change::none().with("field", error.as_ref().map(|e| e.field))).await?;
        if error.is_none() {
            session::mark_authenticated(conn, &staff.session.id).await?;
        }
        Ok::<_, sqlx::Error>(error)
    });
    match outcome {
        Ok(None) => redirect_setting("/admin/account/mfa", &[]),
        Ok(Some(error)) => refuse(&auth, &staff, error, StatusCode::UNAUTHORIZED).await,
        Err(e) => AppError::from(e).into_response(),
    }
}
