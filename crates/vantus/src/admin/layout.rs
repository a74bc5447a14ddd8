//! The portal's layout: what every admin page shares. A header with the tenant's name and,
//! for someone in several tenants, a switcher; the navigation, holding only what the role may
//! open; the sign-out button.
//!
//! A page gets it from its [`Staff`] extractor, so it cannot forget the form token or show a
//! link the role may not follow:
//!
//! ```ignore
//! #[derive(Template)]
//! #[template(path = "admin/users.html")]   // {% extends "admin/layout.html" %}
//! struct UsersPage { shell: Shell, /* the page's own fields */ }
//!
//! let shell = Shell::load(&auth, &staff, Area::Users, "Users").await?;
//! crate::http::html_page(StatusCode::OK, UsersPage { shell, .. }.render())
//! ```
//! The page's template fills `{% block content %}`; forms take the token from
//! `shell.csrf_token`. Server-rendered, no script, no inline style (the CSP allows neither).

use uuid::Uuid;

use crate::auth::Auth;
use crate::auth::permission::{Permission, Role};
use crate::auth::staff::Staff;
use crate::http::errors::AppError;
use crate::site::layout::{Layout, Section};
use crate::tenancy;

/// The area of the portal a page belongs to, for `aria-current` in the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Dashboard,
    Leads,
    Content,
    Media,
    Users,
    Tenants,
    Audit,
    Account,
}

/// The navigation: label, address, area, and the permission that shows it.
const NAV: &[(&str, &str, Area, Permission)] = &[
    (
        "Dashboard",
        "/admin",
        Area::Dashboard,
        Permission::ViewDashboard,
    ),
    ("Leads", "/admin/leads", Area::Leads, Permission::ViewLeads),
    (
        "Content",
        "/admin/content",
        Area::Content,
        Permission::ViewContent,
    ),
    (
        "Media",
        "/admin/media",
        Area::Media,
        Permission::ManageMedia,
    ),
    (
        "Users",
        "/admin/users",
        Area::Users,
        Permission::ManageUsers,
    ),
    (
        "Tenants",
        "/admin/tenants",
        Area::Tenants,
        Permission::ManageTenants,
    ),
    (
        "Audit log",
        "/admin/audit",
        Area::Audit,
        Permission::ViewAudit,
    ),
    (
        "Account",
        "/admin/account",
        Area::Account,
        Permission::ViewDashboard,
    ),
];

pub struct NavLink {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
}

/// A tenant the user may switch to.
pub struct TenantChoice {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub current: bool,
}

/// The links `role` may follow, with `area` marked current.
pub fn nav_for(role: Role, area: Area) -> Vec<NavLink> {
    NAV.iter()
        .filter(|(.., permission)| role.can(*permission))
        .map(|&(label, href, a, _)| NavLink {
            label,
            href,
            current: a == area,
        })
        .collect()
}

/// A time as the portal shows it: `2026-12-01 19:30:00 UTC`.
pub fn when(t: crate::store::Timestamp) -> String {
    t.to_rfc3339_seconds()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// What the layout template needs; every admin page struct holds one as `shell`.
pub struct Shell {
    /// The document head (title, stylesheet, icon) shared with the site.
    pub layout: Layout,
    /// The page's heading.
    pub heading: String,
    pub user_name: String,
    pub role: String,
    pub tenant_name: String,
    /// The session's form token, for every form on the page.
    pub csrf_token: String,
    pub nav: Vec<NavLink>,
    /// Empty unless the user belongs to more than one tenant (no switcher then).
    pub tenants: Vec<TenantChoice>,
}

impl Shell {
    /// The layout for `staff`, on a page of `area` titled `heading`. One query: the user's
    /// tenants, for the switcher.
    pub async fn load<P>(
        auth: &Auth,
        staff: &Staff<P>,
        area: Area,
        heading: &str,
    ) -> Result<Self, AppError> {
        let memberships = with_conn!(auth.store.primary(), conn =>
            tenancy::memberships_of(conn, staff.user_id).await)?;
        let tenants = if memberships.len() > 1 {
            memberships
                .into_iter()
                .map(|m| TenantChoice {
                    current: m.scope.id() == staff.scope.id(),
                    id: m.scope.id(),
                    name: m.scope.name().to_owned(),
                    role: m.role,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            layout: Layout::bare(&format!("{heading} · Portal"), Section::None),
            heading: heading.to_owned(),
            user_name: staff.name.clone(),
            role: staff.role.to_string(),
            tenant_name: staff.scope.name().to_owned(),
            csrf_token: staff.session.csrf_token.clone(),
            nav: nav_for(staff.role, area),
            tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_navigation_holds_what_the_role_may_open() {
        let labels = |r: Role| -> Vec<&str> {
            nav_for(r, Area::Dashboard)
                .iter()
                .map(|l| l.label)
                .collect()
        };
        assert_eq!(
            labels(Role::Owner),
            [
                "Dashboard",
                "Leads",
                "Content",
                "Media",
                "Users",
                "Tenants",
                "Audit log",
                "Account"
            ]
        );
        assert_eq!(labels(Role::Viewer), ["Dashboard", "Content", "Account"]);
        assert_eq!(labels(Role::Sales), ["Dashboard", "Leads", "Account"]);
        let current: Vec<&str> = nav_for(Role::Admin, Area::Audit)
            .iter()
            .filter(|l| l.current)
            .map(|l| l.label)
            .collect();
        assert_eq!(current, ["Audit log"]);
    }
}
