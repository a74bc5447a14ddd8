//! Staff user management: the users page of a tenant (members, their roles and status,
//! pending invitations), invitations by email, and password reset.
//!
//! - [`handlers`]: the users page and its forms, behind `Staff<perm::ManageUsers>` (ending
//!   another member's sessions: `Staff<perm::RevokeSessions>`, owners only).
//! - [`rules`]: who may change whom, as one pure function.
//! - [`public`]: the pages an emailed link opens, without a session (accept an invitation,
//!   reset a password). They never sign anyone in: sign-in follows, with whatever it asks.
//! - [`views`]: the templates' data (`templates/admin/users/`).
//!
//! The queries live in `auth::users`, `auth::invitations` and `auth::resets`.

pub mod handlers;
pub mod public;
pub mod rules;
pub mod views;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::auth::Auth;
use crate::config::RateSetting;
use crate::http::rate_limit::{self, Quota, RouteLimit};

/// The per-client limit of a class of public form posts.
fn per_client(auth: &Auth, class: &'static str, rate: RateSetting) -> RouteLimit {
    RouteLimit {
        limiter: auth.limiter.clone(),
        class,
        quota: Quota::new(rate.count, rate.period),
        trusted: auth.trusted_proxies.clone(),
    }
}

/// The users area's routes; `admin::portal_routes` puts them under the form-token layer.
pub fn routes(auth: &Auth) -> Router<Auth> {
    // Accepting an invitation for an existing account checks its password: limited like a
    // sign-in (its own class, so accepting does not use up sign-in attempts).
    let accept_limit = per_client(auth, "invitation", auth.config.auth.login_rate);
    let reset = auth.config.auth.password_reset_rate;
    let reset_limit = per_client(auth, "password-reset", reset);
    let link_limit = per_client(auth, "password-reset-link", reset);
    let limited = |limit: &RouteLimit| from_fn_with_state(limit.clone(), rate_limit::limit);
    Router::new()
        .route("/admin/users", get(handlers::page))
        .route("/admin/users/invitations", post(handlers::invite))
        .route(
            "/admin/users/invitations/{id}/revoke",
            post(handlers::revoke_invitation),
        )
        .route("/admin/users/{id}/role", post(handlers::change_role))
        .route("/admin/users/{id}/disable", post(handlers::disable))
        .route("/admin/users/{id}/enable", post(handlers::enable))
        .route("/admin/users/{id}/sessions", post(handlers::end_sessions))
        .route(
            "/admin/invitations/{token}",
            get(public::accept_page)
                .merge(post(public::accept).route_layer(limited(&accept_limit))),
        )
        .route(
            "/admin/password-reset",
            get(public::reset_request_page)
                .merge(post(public::reset_request).route_layer(limited(&reset_limit))),
        )
        .route(
            "/admin/password-reset/{token}",
            get(public::reset_page).merge(post(public::reset).route_layer(limited(&link_limit))),
        )
}
