//! The users area's pages: what each template is given, and the small answers (410, 409)
//! rendered as the site's error page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::permission::Role;
use crate::http::errors::ErrorDetail;
use crate::site::layout::{Layout, Section};
use crate::store::Timestamp;

/// A time as the portal shows it.
pub fn when(t: Timestamp) -> String {
    t.to_rfc3339_seconds()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// One role in a `<select>`.
pub struct RoleOption {
    pub value: &'static str,
    pub selected: bool,
}

/// The roles `actor` may give, `current` selected.
pub fn role_options(actor: Role, current: Option<Role>) -> Vec<RoleOption> {
    Role::ALL
        .into_iter()
        .filter(|r| actor.may_assign(*r))
        .map(|r| RoleOption {
            value: r.as_str(),
            selected: Some(r) == current,
        })
        .collect()
}

pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    /// `active` or `disabled`.
    pub status: &'static str,
    pub last_sign_in: String,
    pub is_me: bool,
    /// Whether the viewer may change this member's role and status (owners are an owner's).
    pub manageable: bool,
    pub roles: Vec<RoleOption>,
}

pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub sent: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "admin/users/index.html")]
pub struct UsersPage {
    pub shell: crate::admin::layout::Shell,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    pub invite_roles: Vec<RoleOption>,
    pub invite_email: String,
    pub can_end_sessions: bool,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users/accept.html")]
pub struct AcceptPage {
    pub layout: Layout,
    /// The visitor's session form token, when signed in already (see `public::VisitorFormToken`).
    pub csrf_token: Option<String>,
    pub tenant: String,
    pub role: String,
    pub email: String,
    /// The address has an account already: its password joins it to the tenant.
    pub existing: bool,
    pub name: String,
    pub action: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users/reset_request.html")]
pub struct ResetRequestPage {
    pub layout: Layout,
    /// The visitor's session form token, when signed in already (see `public::VisitorFormToken`).
    pub csrf_token: Option<String>,
    pub email: String,
    /// Set once a request was taken: the same words whether the address has an account.
    pub sent: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users/reset_choose.html")]
pub struct ResetChoosePage {
    pub layout: Layout,
    /// The visitor's session form token, when signed in already (see `public::VisitorFormToken`).
    pub csrf_token: Option<String>,
    pub action: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users/done.html")]
pub struct DonePage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
}

/// A page of this area with its title.
pub fn layout(title: &str) -> Layout {
    let mut layout = Layout::bare(title, Section::None);
    layout.description = "The Vantus portal.".into();
    layout
}

/// The site's error page with `status`, `title` and `message` (the error layer renders it as
/// HTML or JSON, as the client asks).
pub fn refusal(status: StatusCode, title: &str, message: impl Into<String>) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(ErrorDetail {
        title: title.to_owned(),
        message: message.into(),
        field: None,
    });
    res
}

/// 410: a link that worked once, or no longer works.
pub fn gone(message: impl Into<String>) -> Response {
    refusal(StatusCode::GONE, "This link no longer works", message)
}

/// 303 to `location`.
pub fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(location) {
        res.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    res
}
