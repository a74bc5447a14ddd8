//! The staff portal. Every handler here starts from a [`Staff`] extractor naming the
//! permission it needs; there is no other way to a tenant scope on this side. Every page
//! renders inside the portal's layout ([`layout::Shell`]), and every change records its audit
//! entry through `staff.audit()` ([`crate::audit::Context`]).

pub mod account;
pub mod audit;
pub mod cms;
pub mod layout;
pub mod mfa;
pub mod tenants;
pub mod users;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::permission::{Permission, perm};
use crate::auth::routing::{Portal, RouteSpec};
use crate::auth::session::Started;
use crate::auth::staff::Staff;
use crate::auth::{Auth, csrf};
use crate::http::errors::AppError;
use crate::leads::queries::{self, Inbox};
use layout::{Area, Shell};

/// The sign-in routes and the portal, with the form-token layer over all of them
/// ([`crate::auth::csrf`]).
pub fn portal_routes(auth: &Auth) -> Router {
    let mut portal = Portal::wired(auth);
    declare(&mut portal);
    portal
        .into_router()
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
    crate::auth::routes::with_session_cookie_for(auth, started, max_age, redirect(location))
}

/// Every portal route and who may call it (`vantus routes`), from the same declarations.
pub fn route_table() -> Vec<RouteSpec> {
    let mut portal = Portal::table_only();
    declare(&mut portal);
    portal.into_table()
}

fn declare(portal: &mut Portal) {
    crate::auth::routes::declare(portal);
    crate::auth::passkeys::routes::declare(portal);
    users::declare(portal);
    cms::declare(portal);
    portal
        .staff::<perm::ViewDashboard, _, _>(Method::GET, "/admin", dashboard)
        .staff::<perm::ViewDashboard, _, _>(Method::GET, "/admin/account", account::page)
        .staff::<perm::ViewDashboard, _, _>(
            Method::POST,
            "/admin/account/sessions",
            account::revoke,
        )
        .staff::<perm::ViewDashboard, _, _>(
            Method::POST,
            "/admin/account/password",
            account::change_password,
        )
        .staff::<perm::ViewDashboard, _, _>(Method::GET, "/admin/account/mfa", mfa::page)
        .staff::<perm::ViewDashboard, _, _>(Method::POST, "/admin/account/mfa", mfa::confirm)
        .staff::<perm::ViewDashboard, _, _>(Method::POST, "/admin/account/mfa/reauth", mfa::reauth)
        .staff::<perm::ViewDashboard, _, _>(
            Method::POST,
            "/admin/account/mfa/recovery-codes",
            mfa::regenerate_codes,
        )
        .staff::<perm::ViewDashboard, _, _>(
            Method::POST,
            "/admin/account/mfa/disable",
            mfa::disable,
        )
        .staff::<perm::ViewDashboard, _, _>(Method::POST, "/admin/tenant", tenants::switch)
        .staff::<perm::ManageTenants, _, _>(Method::GET, "/admin/tenants", tenants::list)
        .staff::<perm::ManageTenants, _, _>(Method::POST, "/admin/tenants", tenants::create)
        // The tenant handlers take `OwnedTenant`: `Staff<ManageTenants>` plus ownership of
        // the tenant in the path.
        .staff::<perm::ManageTenants, _, _>(Method::GET, "/admin/tenants/{id}", tenants::show)
        .staff::<perm::ManageTenants, _, _>(Method::POST, "/admin/tenants/{id}", tenants::rename)
        .staff::<perm::ManageTenants, _, _>(
            Method::POST,
            "/admin/tenants/{id}/hosts",
            tenants::add_host,
        )
        .staff::<perm::ManageTenants, _, _>(
            Method::POST,
            "/admin/tenants/{id}/hosts/remove",
            tenants::remove_host,
        )
        .staff::<perm::ManageTenants, _, _>(
            Method::POST,
            "/admin/tenants/{id}/members",
            tenants::add_member,
        )
        .staff::<perm::ManageTenants, _, _>(
            Method::POST,
            "/admin/tenants/{id}/members/{user}",
            tenants::change_member,
        )
        .staff::<perm::ViewAudit, _, _>(Method::GET, "/admin/audit", audit::page)
        .staff::<perm::ExportAudit, _, _>(Method::GET, "/admin/audit/export", audit::export);
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
