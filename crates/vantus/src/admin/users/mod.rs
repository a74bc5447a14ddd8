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

use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;

use crate::auth::Auth;
use crate::auth::permission::perm;
use crate::auth::routing::Portal;
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

/// Declares the users area's routes on the portal's table (`admin::portal_routes` puts them
/// under the form-token layer).
pub fn declare(portal: &mut Portal) {
    type Manage = perm::ManageUsers;
    let limited = |class: &'static str, rate: fn(&Auth) -> RateSetting| {
        move |route: MethodRouter<Auth>, auth: &Auth| {
            route.route_layer(from_fn_with_state(
                per_client(auth, class, rate(auth)),
                rate_limit::limit,
            ))
        }
    };
    portal
        .staff::<Manage, _, _>(Method::GET, "/admin/users", handlers::page)
        .staff::<Manage, _, _>(Method::POST, "/admin/users/invitations", handlers::invite)
        .staff::<Manage, _, _>(
            Method::POST,
            "/admin/users/invitations/{id}/revoke",
            handlers::revoke_invitation,
        )
        .staff::<Manage, _, _>(
            Method::POST,
            "/admin/users/{id}/role",
            handlers::change_role,
        )
        .staff::<Manage, _, _>(Method::POST, "/admin/users/{id}/disable", handlers::disable)
        .staff::<Manage, _, _>(Method::POST, "/admin/users/{id}/enable", handlers::enable)
        .staff::<Manage, _, _>(Method::POST, "/admin/users/{id}/mfa", handlers::reset_mfa)
        .staff::<perm::RevokeSessions, _, _>(
            Method::POST,
            "/admin/users/{id}/sessions",
            handlers::end_sessions,
        )
        .public(
            Method::GET,
            "/admin/invitations/{token}",
            public::accept_page,
        )
        // Accepting an invitation for an existing account checks its password: limited like
        // a sign-in (its own class, so accepting does not use up sign-in attempts).
        .public_layered(
            Method::POST,
            "/admin/invitations/{token}",
            public::accept,
            limited("invitation", |a| a.config.auth.login_rate),
        )
        .public(
            Method::GET,
            "/admin/password-reset",
            public::reset_request_page,
        )
        .public_layered(
            Method::POST,
            "/admin/password-reset",
            public::reset_request,
            limited("password-reset", |a| a.config.auth.password_reset_rate),
        )
        .public(
            Method::GET,
            "/admin/password-reset/{token}",
            public::reset_page,
        )
        .public_layered(
            Method::POST,
            "/admin/password-reset/{token}",
            public::reset,
            limited("password-reset-link", |a| a.config.auth.password_reset_rate),
        );
}
