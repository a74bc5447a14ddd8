//! The account page: who you are, and where you are signed in, with a way to end any of those
//! sessions or all the others at once.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Actor, AuditAction};
use crate::auth::Auth;
use crate::auth::notify::{self, Change};
use crate::auth::password;
use crate::auth::permission::perm;
use crate::auth::session;
use crate::auth::sign_in::redirect_setting;
use crate::auth::staff::Staff;
use crate::auth::users;
use crate::http::client_ip::ClientIp;
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::site::layout::{Layout, Section};

/// One row of the sessions table.
pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub signed_in: String,
    pub last_seen: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage {
    layout: Layout,
    name: String,
    role: String,
    tenant: String,
    sessions: Vec<SessionRow>,
    csrf_token: String,
    /// Why the last password change was refused, shown beside the form.
    password_error: Option<String>,
}

fn when(t: crate::store::Timestamp) -> String {
    t.to_rfc3339_seconds()
        .replace('T', " ")
        .replace('Z', " UTC")
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
    let listed = with_conn!(auth.store.primary(), conn => session::list_live(conn, staff.user_id, idle).await);
    let sessions = match listed {
        Ok(l) => l
            .into_iter()
            .map(|s| SessionRow {
                current: s.id == staff.session.id,
                device: s.user_agent.unwrap_or_else(|| "unknown device".into()),
                ip: s.ip.unwrap_or_else(|| "unknown address".into()),
                signed_in: when(s.created_at),
                last_seen: when(s.last_seen_at),
                id: s.id,
            })
            .collect(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let page = AccountPage {
        layout: Layout::bare("Your account", Section::None),
        name: staff.name.clone(),
        role: staff.role.to_string(),
        tenant: staff.scope.name().to_owned(),
        sessions,
        csrf_token: staff.session.csrf_token.clone(),
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
        audit::record_for(conn, &staff.scope, &Actor::User(me), AuditAction::SessionsRevoked,
            &format!("user:{me}"), json!({ "sessions": ended })).await?;
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
    let hash = match auth
        .passwords
        .hash(&SecretString::from(post.new_password))
        .await
    {
        Ok(h) => h,
        Err(e) => return AppError::Internal(e.to_string()).into_response(),
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
        audit::record_for(conn, &staff.scope, &Actor::User(me), AuditAction::PasswordChanged,
            &format!("user:{me}"), json!({ "other_sessions_ended": others })).await?;
        notify::credential_changed(conn, &staff.scope, me, Change::PasswordChanged).await?;
        Ok::<_, sqlx::Error>(fresh)
    });
    match started {
        Ok(s) => redirect_setting(
            "/admin/account",
            &[auth.cookie.set(s.token.expose_secret(), max_age)],
        ),
        Err(e) => AppError::from(e).into_response(),
    }
}
