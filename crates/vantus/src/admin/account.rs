//! The account page: who you are, and where you are signed in, with a way to end any of those
//! sessions or all the others at once.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Actor, AuditAction};
use crate::auth::Auth;
use crate::auth::permission::perm;
use crate::auth::session;
use crate::auth::staff::Staff;
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
}

fn when(t: crate::store::Timestamp) -> String {
    t.to_rfc3339_seconds()
        .replace('T', " ")
        .replace('Z', " UTC")
}

pub async fn page(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
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
    };
    crate::http::html_page(StatusCode::OK, page.render())
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
