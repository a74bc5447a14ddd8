//! The account page: who you are, and where you are signed in, with a way to end any of those
//! sessions or all the others at once.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::layout::{Area, Shell, when};
use crate::audit::{AuditAction, Change};
use crate::auth::Auth;
use crate::auth::notify;
use crate::auth::passkeys;
use crate::auth::password;
use crate::auth::permission::perm;
use crate::auth::session;
use crate::auth::staff::Staff;
use crate::auth::users;
use crate::http::client_ip::ClientIp;
use crate::http::errors::AppError;
use crate::http::extract::Form;

/// One row of the sessions table.
pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub signed_in: String,
    pub last_seen: String,
    pub current: bool,
}

/// One row of the passkeys table.
pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub added: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage {
    shell: Shell,
    sessions: Vec<SessionRow>,
    passkeys: Vec<PasskeyRow>,
    /// Whether a passkey can be added here (the server has a relying party).
    passkeys_available: bool,
    /// Why the last password change was refused, shown beside the form.
    password_error: Option<String>,
}

pub async fn page(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
    render(&auth, &staff, None, StatusCode::OK).await
}

async fn render(
    auth: &Auth,
    staff: &Staff<perm::ViewDashboard>,
    password_error: Option<String>,
    status: StatusCode,
) -> Response {
    let idle = auth.config.auth.session_idle;
    let listed = with_conn!(auth.store.primary(), conn => {
        let sessions = session::list_live(conn, staff.user_id, idle).await?;
        let keys = passkeys::list_for(conn, staff.user_id).await?;
        Ok::<_, sqlx::Error>((sessions, keys))
    });
    let (listed, keys) = match listed {
        Ok(both) => both,
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(auth, staff, Area::Account, "Your account").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let passkeys = keys
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id.to_string(),
            name: p.name,
            added: when(p.created_at),
            last_used: p.last_used_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let sessions = listed
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == staff.session.id,
            device: s.user_agent.unwrap_or_else(|| "unknown device".into()),
            ip: s.ip.unwrap_or_else(|| "unknown address".into()),
            signed_in: when(s.created_at),
            last_seen: when(s.last_seen_at),
            id: s.id,
        })
        .collect();
    let page = AccountPage {
        shell,
        sessions,
        passkeys,
        passkeys_available: auth.passkeys.is_some(),
        password_error,
    };
    crate::http::html_page(status, page.render())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokePost {
    /// One session to end, by the id the page shows…
    session: Option<String>,
    /// …or every session but this one.
    all_others: Option<String>,
}

/// Ends one of the user's sessions, or all the others; the form token was checked by the
/// portal's layer.
pub async fn revoke(
    State(auth): State<Auth>,
    staff: Staff<perm::ViewDashboard>,
    Form(post): Form<RevokePost>,
) -> Response {
    let me = staff.user_id;
    let done = in_write_tx!(auth.store.primary(), conn => {
        let ended = match (&post.session, post.all_others.is_some()) {
            (_, true) => session::revoke_others(conn, me, &staff.session.id).await?,
            (Some(id), false) => u64::from(session::revoke_own(conn, me, id).await?),
            (None, false) => return Ok(None),
        };
        staff.audit().record(conn, AuditAction::SessionsRevoked, &format!("user:{me}"),
            Change::none().with("sessions", ended)).await?;
        Ok::<_, sqlx::Error>(Some(ended))
    });
    match done {
        Ok(Some(_)) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/admin/account"));
            res
        }
        Ok(None) => {
            AppError::bad_request("session", "name a session to end, or all_others").into_response()
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordPost {
    current_password: String,
    new_password: String,
    new_password_again: String,
}

/// Changes the password. The current password is the fresh authentication it needs (and
/// counts as one: the session's `authenticated_at` is renewed). On success every other
/// session of the user ends, this one continues under a new token (a privilege change never
/// keeps the old one), and the user is emailed.
pub async fn change_password(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    staff: Staff<perm::ViewDashboard>,
    Form(post): Form<PasswordPost>,
) -> Response {
    let refuse = |why: String| render(&auth, &staff, Some(why), StatusCode::UNPROCESSABLE_ENTITY);
    let db = auth.store.primary();
    let user = match with_conn!(db, conn => users::find_by_id(conn, staff.user_id).await) {
        Ok(Some(u)) => u,
        Ok(None) => return AppError::NotFound.into_response(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let current = SecretString::from(post.current_password);
    if !auth
        .passwords
        .verify(&current, user.password_hash.as_deref())
        .await
    {
        return refuse("The current password is not right.".into()).await;
    }
    if post.new_password != post.new_password_again {
        return refuse("The new password and its repetition differ.".into()).await;
    }
    if let Err(why) = password::check_policy(&post.new_password, &[&user.email, &user.name]) {
        return refuse(format!("The new password {why}.")).await;
    }
    let hash = match auth.hash_new_password(post.new_password).await {
        Ok(h) => h,
        Err(res) => return res,
    };
    let me = staff.user_id;
    let max_age = auth.config.auth.session_max_age;
    let ip_text = ip.to_string();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let started = in_write_tx!(db, conn => {
        users::set_password(conn, me, &hash).await?;
        let (fresh, others) = session::renew(conn, &staff.session, &staff.scope, Some(&ip_text),
            user_agent, max_age).await?;
        // The current password was just proved: a fresh authentication.
        session::mark_authenticated(conn, &fresh.session_id).await?;
        staff.audit().record(conn, AuditAction::PasswordChanged, &format!("user:{me}"),
            Change::none().with("other_sessions_ended", others)).await?;
        notify::credential_changed(conn, &staff.scope, me, notify::Change::PasswordChanged).await?;
        Ok::<_, sqlx::Error>(fresh)
    });
    match started {
        Ok(s) => super::renewed_session(&auth, "/admin/account", &s, max_age),
        Err(e) => AppError::from(e).into_response(),
    }
}
