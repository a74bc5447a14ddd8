//! The staff portal. Every handler here starts from a [`Staff`] extractor naming the
//! permission it needs; there is no other way to a tenant scope on this side.

pub mod account;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::permission::{Permission, perm};
use crate::auth::routing::{Portal, RouteSpec};
use crate::auth::staff::Staff;
use crate::auth::{Auth, csrf};
use crate::http::errors::AppError;
use crate::leads::queries::{self, Inbox};
use crate::site::layout::{Layout, Section};

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

/// Every portal route and who may call it (`vantus routes`), from the same declarations.
pub fn route_table() -> Vec<RouteSpec> {
    let mut portal = Portal::table_only();
    declare(&mut portal);
    portal.into_table()
}

fn declare(portal: &mut Portal) {
    crate::auth::routes::declare(portal);
    crate::auth::passkeys::routes::declare(portal);
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
        );
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard {
    layout: Layout,
    name: String,
    role: String,
    tenant: String,
    /// Shown to roles that may see leads.
    new_leads: Option<i64>,
    csrf_token: String,
}

async fn dashboard(State(auth): State<Auth>, staff: Staff<perm::ViewDashboard>) -> Response {
    let new_leads = if staff.role.can(Permission::ViewLeads) {
        match with_conn!(auth.store.primary(), conn => queries::count(conn, &staff.scope, Inbox::Leads).await)
        {
            Ok(n) => Some(n),
            Err(e) => return AppError::from(e).into_response(),
        }
    } else {
        None
    };
    let page = Dashboard {
        layout: Layout::bare("Dashboard", Section::None),
        name: staff.name.clone(),
        role: staff.role.to_string(),
        tenant: staff.scope.name().to_owned(),
        new_leads,
        csrf_token: staff.session.csrf_token.clone(),
    };
    crate::http::html_page(StatusCode::OK, page.render())
}
