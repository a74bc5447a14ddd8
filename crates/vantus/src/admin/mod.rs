//! The staff portal. Every handler here starts from a [`Staff`] extractor naming the
//! permission it needs; there is no other way to a tenant scope on this side.

pub mod account;
pub mod mfa;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::permission::{Permission, perm};
use crate::auth::staff::Staff;
use crate::auth::{Auth, csrf};
use crate::http::errors::AppError;
use crate::leads::queries::{self, Inbox};
use crate::site::layout::{Layout, Section};

/// The sign-in routes and the portal, with the form-token layer over all of them
/// ([`crate::auth::csrf`]).
pub fn portal_routes(auth: &Auth) -> Router {
    crate::auth::routes::routes(auth)
        .route("/admin", get(dashboard))
        .route("/admin/account", get(account::page))
        .route("/admin/account/sessions", post(account::revoke))
        .route("/admin/account/password", post(account::change_password))
        .route("/admin/account/mfa", get(mfa::page).post(mfa::confirm))
        .route("/admin/account/mfa/reauth", post(mfa::reauth))
        .route(
            "/admin/account/mfa/recovery-codes",
            post(mfa::regenerate_codes),
        )
        .route("/admin/account/mfa/disable", post(mfa::disable))
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            csrf::verify,
        ))
        .with_state(auth.clone())
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
