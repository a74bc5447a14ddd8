//! The staff portal. Every handler here starts from a [`Staff`] extractor naming the
//! permission it needs; there is no other way to a tenant scope on this side. Every page
//! renders inside the portal's layout ([`layout::Shell`]), and every change records its audit
//! entry through `staff.audit()` ([`crate::audit::Context`]).

pub mod account;
pub mod audit;
pub mod cms;
pub mod crm;
pub mod dashboard;
pub mod layout;
pub mod media;
pub mod mfa;
pub mod tenants;
pub mod users;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::permission::perm;
use crate::auth::routing::{Portal, RouteSpec};
use crate::auth::session::Started;
use crate::auth::{Auth, csrf};
use crate::http::errors::AppError;

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
    media::declare(portal);
    crm::declare(portal);
    cms::declare(portal);
    portal
        .staff::<perm::ViewDashboard, _, _>(Method::GET, "/admin", dashboard::page)
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
