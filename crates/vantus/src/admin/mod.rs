//! The staff portal. Every handler here starts from a [`Staff`] extractor naming the
//! permission it needs; there is no other way to a tenant scope on this side. Every page
//! renders inside the portal's layout ([`layout::Shell`]), and every change records its audit
//! entry through `staff.audit()` ([`crate::audit::Context`]).

pub mod account;
pub mod audit;
pub mod layout;
pub mod tenants;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;

use crate::auth::permission::{Permission, perm};
use crate::auth::session::Started;
use crate::auth::staff::Staff;
use crate::auth::{Auth, csrf};
use crate::http::errors::AppError;
use crate::leads::queries::{self, Inbox};
use layout::{Area, Shell};

/// The sign-in routes and the portal, with the form-token layer over all of them
/// ([`crate::auth::csrf`]).
pub fn portal_routes(auth: &Auth) -> Router {
    crate::auth::routes::routes(auth)
        .route("/admin", get(dashboard))
        .route("/admin/account", get(account::page))
        .route("/admin/account/sessions", post(account::revoke))
        .route("/admin/account/password", post(account::change_password))
        .route("/admin/tenant", post(tenants::switch))
        .route("/admin/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/admin/tenants/{id}",
            get(tenants::show).post(tenants::rename),
        )
        .route("/admin/tenants/{id}/hosts", post(tenants::add_host))
        .route(
            "/admin/tenants/{id}/hosts/remove",
            post(tenants::remove_host),
        )
        .route("/admin/tenants/{id}/members", post(tenants::add_member))
        .route(
            "/admin/tenants/{id}/members/{user}",
            post(tenants::change_member),
        )
        .route("/admin/audit", get(audit::page))
        .route("/admin/audit/export", get(audit::export))
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            csrf::verify,
        ))
        .with_state(auth.clone())
}

/// 303 to `location` (after a form post).
pub fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => {
            AppError::Internal("a redirect that is not a header value".into()).into_response()
        }
    }
}

/// 303 to `location`, handing the browser the token of the session that replaced its old one
/// (a privilege change: password, tenant), for `max_age` (the session's lifetime).
pub fn renewed_session(
    auth: &Auth,
    location: &str,
    started: &Started,
    max_age: std::time::Duration,
) -> Response {
    let mut res = redirect(location);
    match HeaderValue::from_str(&auth.cookie.set(started.token.expose_secret(), max_age)) {
        Ok(v) => {
            res.headers_mut().insert(header::SET_COOKIE, v);
            res
        }
        Err(_) => {
            AppError::Internal("a session cookie that is not a header value".into()).into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard {
    shell: Shell,
    /// Shown to roles that may see leads.
    new_leads: Option<i64>,
    /// The tenant's last audit entries.
    activity: Vec<audit::EntryView>,
    can_view_audit: bool,
}

/// Entries in the dashboard's recent activity.
const RECENT: i64 = 10;

async fn dashboard(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
    let db = auth.store.primary();
    let new_leads = if staff.role.can(Permission::ViewLeads) {
        match with_conn!(db, conn => queries::count(conn, &staff.scope, Inbox::Leads).await) {
            Ok(n) => Some(n),
            Err(e) => return AppError::from(e).into_response(),
        }
    } else {
        None
    };
    let activity = match audit::recent(db, &staff.scope, RECENT).await {
        Ok(a) => a,
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(&auth, &staff, Area::Dashboard, "Dashboard").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = Dashboard {
        shell,
        new_leads,
        activity,
        can_view_audit: staff.role.can(Permission::ViewAudit),
    };
    crate::http::html_page(StatusCode::OK, page.render())
}
