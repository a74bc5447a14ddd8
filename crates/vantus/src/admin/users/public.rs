//! The pages a link in an email opens, without a session: accepting an invitation, and
//! resetting a forgotten password.
//!
//! Neither signs anyone in. Both end on a page that sends the person to the normal sign-in,
//! so whatever sign-in asks for (a second factor for the roles that need one) it still asks:
//! a link from an inbox is never a way around it.
//!
//! A link's token is looked up only by its SHA-256. An unknown token is 404; a link that
//! worked once, was withdrawn or expired is 410 with a page that says which.
//!
//! Asking for a reset link answers the same page, status and time whether or not the address
//! has an account: the lookup, the link and its email happen after the answer, in a task of
//! their own (one transaction, with the audit entry). Requests are limited per client
//! (`VANTUS_RATE_LIMIT_PASSWORD_RESET`, a route layer) and per address typed
//! (`VANTUS_RATE_LIMIT_PASSWORD_RESET_ACCOUNT`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::views::{self, AcceptPage, DonePage, ResetChoosePage, ResetRequestPage};
use crate::audit::{self, Actor, AuditAction, Change};
use crate::auth::invitations::{self, Found, Standing, token_from_path};
use crate::auth::permission::Role;
use crate::auth::session::{self, Ending};
use crate::auth::users::{self, CreateError, LoginEmail, StaffName, User};
use crate::auth::{Auth, password, resets};
use crate::config::RateSetting;
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::http::rate_limit::{self, Decision, Quota};
use crate::outbox::{self, Channel, NewMessage, Topic, payload};
use crate::store::Timestamp;
use crate::tenancy::{self, TenantScope};

/// The form token of the visitor's session when the browser is signed in already. The
/// portal's form-token layer checks every post of a signed-in browser, these public forms
/// included, so their pages carry it then (and nothing otherwise).
pub struct VisitorFormToken(Option<String>);

impl axum::extract::FromRequestParts<Auth> for VisitorFormToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        auth: &Auth,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = session::session_token(&parts.headers, auth.cookie.name) else {
            return Ok(VisitorFormToken(None));
        };
        let idle = auth.config.auth.session_idle;
        let found =
            with_conn!(auth.store.primary(), conn => session::find_live(conn, &token, idle).await);
        Ok(VisitorFormToken(found.ok().flatten().map(|s| s.csrf_token)))
    }
}

/// What an invitation's link found: the invitation, its tenant, and the account its address
/// has already, if any.
struct Opened {
    invitation: Found,
    role: Role,
    scope: TenantScope,
    existing: Option<User>,
}

/// Looks the link up; the answer for anything but a pending invitation.
async fn open_invitation(auth: &Auth, raw: &str) -> Result<Opened, Response> {
    let Some(token) = token_from_path(raw) else {
        return Err(AppError::NotFound.into_response());
    };
    let found = with_conn!(auth.store.primary(), conn => {
        let Some(invitation) = invitations::find_by_token(conn, token).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        let scope = tenancy::find_by_id(conn, invitation.tenant_id).await?;
        let existing = match LoginEmail::parse(&invitation.email) {
            Ok(email) => users::find_by_email(conn, &email).await?,
            Err(_) => None,
        };
        Ok(scope.map(|scope| (invitation, scope, existing)))
    });
    let (invitation, scope, existing) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return Err(AppError::NotFound.into_response()),
        Err(e) => return Err(AppError::from(e).into_response()),
    };
    match invitation.standing(Timestamp::now()) {
        Standing::Pending => {}
        Standing::Used => {
            return Err(views::gone(
                "This invitation has been accepted already: sign in at /admin/login.",
            ));
        }
        Standing::Revoked => {
            return Err(views::gone(
                "This invitation was withdrawn. Ask whoever invited you for a new one.",
            ));
        }
        Standing::Expired => {
            return Err(views::gone(
                "This invitation has expired. Ask whoever invited you for a new one.",
            ));
        }
    }
    let Some(role) = invitation.role() else {
        return Err(AppError::NotFound.into_response());
    };
    Ok(Opened {
        invitation,
        role,
        scope,
        existing,
    })
}

fn accept_view(
    opened: &Opened,
    raw: &str,
    name: String,
    error: Option<String>,
    csrf_token: Option<String>,
) -> AcceptPage {
    AcceptPage {
        csrf_token,
        layout: views::layout("Accept the invitation"),
        tenant: opened.scope.name().to_owned(),
        role: opened.role.to_string(),
        email: opened.invitation.email.clone(),
        existing: opened.existing.is_some(),
        name,
        action: format!("/admin/invitations/{raw}"),
        error,
    }
}

pub async fn accept_page(
    State(auth): State<Auth>,
    VisitorFormToken(csrf): VisitorFormToken,
    Path(raw): Path<String>,
) -> Response {
    match open_invitation(&auth, &raw).await {
        Ok(opened) => crate::http::html_page(
            StatusCode::OK,
            accept_view(&opened, &raw, String::new(), None, csrf).render(),
        ),
        Err(res) => res,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AcceptPost {
    name: String,
    /// An existing account's password…
    password: String,
    /// …or a new account's, twice.
    new_password: String,
    new_password_again: String,
}

/// Accepts: a new account with the name and password chosen here, or, for an address that has
/// an account already, that account (its password confirms it is theirs) joins the tenant.
/// Either way the invitation is used once, and the person signs in next.
pub async fn accept(
    State(auth): State<Auth>,
    origin: audit::RequestOrigin,
    VisitorFormToken(csrf): VisitorFormToken,
    Path(raw): Path<String>,
    Form(post): Form<AcceptPost>,
) -> Response {
    let opened = match open_invitation(&auth, &raw).await {
        Ok(o) => o,
        Err(res) => return res,
    };
    let refuse = |why: String| {
        crate::http::html_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            accept_view(&opened, &raw, post.name.clone(), Some(why), csrf.clone()).render(),
        )
    };
    let (hash, name) = match &opened.existing {
        Some(user) => {
            let password = SecretString::from(post.password.clone());
            // A password check is a guess to limit, like a sign-in.
            if let Some(limited) = limit_address(
                &auth,
                "login-account",
                auth.config.auth.login_account_rate,
                &user.email,
            )
            .await
            {
                return limited;
            }
            if !auth
                .passwords
                .verify(&password, user.password_hash.as_deref())
                .await
                || user.disabled_at.is_some()
            {
                return refuse("Password: that is not the password of your account.".into());
            }
            (None, user.name.clone())
        }
        None => {
            let name = match StaffName::parse(&post.name) {
                Ok(n) => n,
                Err(why) => return refuse(format!("Name: {why}.")),
            };
            if post.new_password != post.new_password_again {
                return refuse("New password: the password and its repetition differ.".into());
            }
            if let Err(why) = password::check_policy(
                &post.new_password,
                &[&opened.invitation.email, name.as_str()],
            ) {
                return refuse(format!("New password: the password {why}."));
            }
            match auth.hash_new_password(post.new_password.clone()).await {
                Ok(h) => (Some(h), name.as_str().to_owned()),
                Err(res) => return res,
            }
        }
    };
    let invitation = &opened.invitation;
    let scope = &opened.scope;
    let role = opened.role;
    let existing = opened.existing.as_ref().map(|u| u.id);
    let accepted = in_write_tx!(auth.store.primary(), conn => {
        let (user, created) = match existing {
            Some(id) => {
                if users::role_in(conn, id, scope).await?.is_some() {
                    return Err(NotAccepted::Conflict("You are a member of this organisation already: sign in."));
                }
                users::add_membership(conn, id, scope, role).await?;
                (id, false)
            }
            None => {
                let Ok(email) = LoginEmail::parse(&invitation.email) else {
                    return Err(NotAccepted::Conflict("This invitation's address cannot be used."));
                };
                let id = users::create(conn, &email, &name, hash.as_deref(), scope, role).await?;
                audit::Context::new(Actor::User(id), Some(scope.clone()), origin.clone())
                    .record(conn, AuditAction::UserCreated, &format!("user:{id}"),
                        Change::from_detail(json!({ "role": role.as_str(), "via": "invitation" }))).await?;
                (id, true)
            }
        };
        if !invitations::mark_accepted(conn, invitation.id, user).await? {
            // Accepted (or withdrawn) meanwhile: roll everything back.
            return Err(NotAccepted::Gone);
        }
        audit::Context::new(Actor::User(user), Some(scope.clone()), origin.clone())
            .record(conn, AuditAction::InvitationAccepted, &format!("invitation:{}", invitation.id),
                Change::from_detail(json!({ "user": user.to_string(), "role": role.as_str(), "account_created": created }))).await?;
        Ok(())
    });
    match accepted {
        Ok(()) => done_page(
            "You have joined",
            format!(
                "You are now a member of {} as {role}. Sign in with your email address and password.",
                scope.name()
            ),
        ),
        Err(NotAccepted::Conflict(why)) => {
            views::refusal(StatusCode::CONFLICT, "Not possible", why)
        }
        Err(NotAccepted::Gone) => {
            views::gone("This invitation has been accepted already: sign in at /admin/login.")
        }
        Err(NotAccepted::Database(e)) => AppError::from(e).into_response(),
    }
}

/// Why an acceptance was rolled back.
enum NotAccepted {
    /// The invitation was used meanwhile (or its address got an account meanwhile).
    Gone,
    /// It cannot be accepted as it stands (409, with the reason).
    Conflict(&'static str),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for NotAccepted {
    fn from(e: sqlx::Error) -> Self {
        NotAccepted::Database(e)
    }
}

impl From<CreateError> for NotAccepted {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::EmailTaken => NotAccepted::Gone,
            CreateError::Database(e) => NotAccepted::Database(e),
        }
    }
}

fn done_page(heading: &str, message: String) -> Response {
    let page = DonePage {
        layout: views::layout(heading),
        heading: heading.to_owned(),
        message,
    };
    crate::http::html_page(StatusCode::OK, page.render())
}

/// 429 when `address` has been tried more than `rate` allows under `class` (keyed by a hash
/// of the address as typed, so an unknown address is limited like a known one).
async fn limit_address(
    auth: &Auth,
    class: &str,
    rate: RateSetting,
    address: &str,
) -> Option<Response> {
    let key = hex::encode(Sha256::digest(address.trim().to_lowercase().as_bytes()));
    match auth
        .limiter
        .check(class, &key, Quota::new(rate.count, rate.period))
        .await
    {
        Decision::Deny { retry_after } => Some(rate_limit::too_many_requests(retry_after)),
        _ => None,
    }
}

fn request_view(
    email: String,
    sent: Option<String>,
    error: Option<String>,
    csrf_token: Option<String>,
) -> ResetRequestPage {
    ResetRequestPage {
        csrf_token,
        layout: views::layout("Reset your password"),
        email,
        sent,
        error,
    }
}

pub async fn reset_request_page(VisitorFormToken(csrf): VisitorFormToken) -> Response {
    crate::http::html_page(
        StatusCode::OK,
        request_view(String::new(), None, None, csrf).render(),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetRequestPost {
    email: String,
}

/// Takes a request for a reset link; see the module documentation for why the answer never
/// depends on the address.
pub async fn reset_request(
    State(auth): State<Auth>,
    origin: audit::RequestOrigin,
    VisitorFormToken(csrf): VisitorFormToken,
    Form(post): Form<ResetRequestPost>,
) -> Response {
    if let Some(limited) = limit_address(
        &auth,
        "password-reset-account",
        auth.config.auth.password_reset_account_rate,
        &post.email,
    )
    .await
    {
        return limited;
    }
    let email = match LoginEmail::parse(&post.email) {
        Ok(e) => e,
        Err(why) => {
            return crate::http::html_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                request_view(
                    post.email,
                    None,
                    Some(format!("Email address: {why}.")),
                    csrf,
                )
                .render(),
            );
        }
    };
    let ttl = auth.config.auth.password_reset_ttl;
    let task_auth = auth.clone();
    tokio::spawn(async move {
        if let Err(e) = send_reset_link(&task_auth, &email, ttl, &origin).await {
            tracing::error!(error = %e, "a password-reset link could not be queued");
        }
    });
    let sent = format!(
        "If an account exists for that address, we have sent it a link to choose a new password. The link works once, for {}.",
        humantime::format_duration(ttl)
    );
    crate::http::html_page(
        StatusCode::OK,
        request_view(String::new(), Some(sent), None, None).render(),
    )
}

/// The reset link, its email and the audit entry, for an account that exists, is not disabled
/// and belongs to a tenant; nothing otherwise.
async fn send_reset_link(
    auth: &Auth,
    email: &LoginEmail,
    ttl: std::time::Duration,
    origin: &audit::RequestOrigin,
) -> Result<(), sqlx::Error> {
    let base = auth.config.public_url.clone();
    let queued = in_write_tx!(auth.store.primary(), conn => {
        let Some(user) = users::find_by_email(conn, email).await? else { return Ok(false) };
        if user.disabled_at.is_some() {
            return Ok(false);
        }
        let Some(scope) = users::first_scope(conn, user.id).await? else { return Ok(false) };
        let created = resets::create(conn, user.id, ttl).await?;
        let mail = payload::PasswordResetLink {
            name: user.name.clone(),
            link: invitations::link(&base, "/admin/password-reset/", &created.token),
            expires_at: created.expires_at.to_rfc3339_seconds(),
        };
        outbox::enqueue(conn, &scope, &NewMessage {
            channel: Channel::Email,
            topic: Topic::PasswordResetLink,
            destination: user.email.clone(),
            lead_id: None,
            payload: payload::to_json(&mail),
        }).await?;
        audit::Context::new(Actor::Public, Some(scope.clone()), origin.clone())
            .record(conn, AuditAction::PasswordResetRequested, &format!("user:{}", user.id),
                Change::from_detail(json!({ "expires_at": created.expires_at.to_rfc3339_seconds() }))).await?;
        Ok::<_, sqlx::Error>(true)
    })?;
    if queued {
        outbox::wake();
    }
    Ok(())
}

const RESET_GONE: &str = "This password-reset link has been used, replaced by a newer one, or has expired. Ask for a new one at /admin/password-reset.";

/// Looks the reset link up; the answer for anything but a live one.
async fn open_reset(auth: &Auth, raw: &str) -> Result<(resets::Found, User), Response> {
    let Some(token) = token_from_path(raw) else {
        return Err(AppError::NotFound.into_response());
    };
    let found = with_conn!(auth.store.primary(), conn => {
        let Some(reset) = resets::find(conn, token).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        let user = users::find_by_id(conn, reset.user_id).await?;
        Ok(user.map(|u| (reset, u)))
    });
    match found {
        Ok(Some((reset, user)))
            if reset.is_live(Timestamp::now()) && user.disabled_at.is_none() =>
        {
            Ok((reset, user))
        }
        Ok(Some(_)) => Err(views::gone(RESET_GONE)),
        Ok(None) => Err(AppError::NotFound.into_response()),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

fn choose_view(raw: &str, error: Option<String>, csrf_token: Option<String>) -> ResetChoosePage {
    ResetChoosePage {
        csrf_token,
        layout: views::layout("Choose a new password"),
        action: format!("/admin/password-reset/{raw}"),
        error,
    }
}

pub async fn reset_page(
    State(auth): State<Auth>,
    VisitorFormToken(csrf): VisitorFormToken,
    Path(raw): Path<String>,
) -> Response {
    match open_reset(&auth, &raw).await {
        Ok(_) => crate::http::html_page(StatusCode::OK, choose_view(&raw, None, csrf).render()),
        Err(res) => res,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetPost {
    new_password: String,
    new_password_again: String,
}

/// Sets the new password: the link is used up with every other of the account, every session
/// of the account ends, the account's owner is told by email, and all of it is audited, in
/// one transaction. Nobody is signed in.
pub async fn reset(
    State(auth): State<Auth>,
    origin: audit::RequestOrigin,
    VisitorFormToken(csrf): VisitorFormToken,
    Path(raw): Path<String>,
    Form(post): Form<ResetPost>,
) -> Response {
    let (reset, user) = match open_reset(&auth, &raw).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let refuse = |why: String| {
        crate::http::html_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            choose_view(&raw, Some(why), csrf.clone()).render(),
        )
    };
    if post.new_password != post.new_password_again {
        return refuse("New password: the password and its repetition differ.".into());
    }
    if let Err(why) = password::check_policy(&post.new_password, &[&user.email, &user.name]) {
        return refuse(format!("New password: the password {why}."));
    }
    let hash = match auth.hash_new_password(post.new_password).await {
        Ok(h) => h,
        Err(res) => return res,
    };
    let sign_in = format!(
        "{}/admin/login",
        auth.config.public_url.as_str().trim_end_matches('/')
    );
    let done = in_write_tx!(auth.store.primary(), conn => {
        if !resets::consume(conn, &reset).await? {
            return Ok::<_, sqlx::Error>(false);
        }
        users::set_password(conn, user.id, &hash).await?;
        let ended = session::end(conn, Ending::AllOf { user: user.id, keep: None, tenant: None }).await?;
        let scope = users::first_scope(conn, user.id).await?;
        let detail = json!({ "sessions_ended": ended });
        let resource = format!("user:{}", user.id);
        match &scope {
            Some(scope) => {
                let notice = payload::PasswordWasReset {
                    name: user.name.clone(),
                    changed_at: Timestamp::now().to_rfc3339_seconds(),
                    sign_in: sign_in.clone(),
                };
                outbox::enqueue(conn, scope, &NewMessage {
                    channel: Channel::Email,
                    topic: Topic::PasswordWasReset,
                    destination: user.email.clone(),
                    lead_id: None,
                    payload: payload::to_json(&notice),
                }).await?;
                audit::Context::new(Actor::User(user.id), Some(scope.clone()), origin.clone())
                    .record(conn, AuditAction::PasswordReset, &resource, Change::from_detail(detail)).await?;
            }
            None => audit::Context::new(Actor::User(user.id), None, origin.clone())
                .record(conn, AuditAction::PasswordReset, &resource, Change::from_detail(detail)).await?,
        }
        Ok(true)
    });
    match done {
        Ok(true) => {
            outbox::wake();
            done_page(
                "Your password is set",
                "Every session of your account was signed out. Sign in with the new password."
                    .into(),
            )
        }
        Ok(false) => views::gone(RESET_GONE),
        Err(e) => AppError::from(e).into_response(),
    }
}
