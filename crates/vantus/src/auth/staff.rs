//! `Staff<P>`: the only way admin code learns who is signed in and which tenant it works in.
//! A handler names the permission it needs as `P` (`Staff<perm::EditContent>`); the extractor
//! loads the session from its cookie, and answers for the handler when there is none (a
//! redirect to sign-in for a page, 401 for JSON) or when the role lacks `P` (403).
//!
//! A session marked "must enrol" (the role requires a second factor the user lacks; see
//! [`super::sign_in`]) reaches only [`ALLOWED_WHILE_ENROLLING`]: every other portal route,
//! present or future, redirects to enrolment (403 for JSON) without its handler running.

use std::marker::PhantomData;

use axum::extract::FromRef;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::Auth;
use super::csrf;
use super::permission::{Role, perm};
use super::session::{self, Session, session_token};
use crate::audit::{self, Actor, RequestOrigin};
use crate::http::errors::AppError;
use crate::tenancy::{self, TenantScope};

/// A signed-in staff member allowed `P`, in the tenant they work in.
pub struct Staff<P> {
    pub user_id: Uuid,
    pub name: String,
    pub role: Role,
    /// The tenant this session works in: every admin query takes it.
    pub scope: TenantScope,
    pub session: Session,
    /// The client's address and the request id, for the audit log.
    pub origin: RequestOrigin,
    permission: PhantomData<P>,
}

impl<P> Staff<P> {
    /// The audit context of this request: this account as the actor, the session's tenant,
    /// the client's IP and the request id. Every portal mutation records through it
    /// (`staff.audit().record(conn, action, resource, Change::new(before, after))`), so none
    /// can leave out where it came from. See [`crate::audit`].
    pub fn audit(&self) -> audit::Context {
        audit::Context::new(
            Actor::User(self.user_id),
            Some(self.scope.clone()),
            self.origin.clone(),
        )
    }
}

fn wants_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// Not signed in: a page goes to sign-in (and comes back after), JSON gets 401.
fn sign_in_first(parts: &Parts) -> Response {
    if wants_json(parts) {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": {"message": "sign in first"}})),
        )
            .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Cookie"));
        return res;
    }
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/admin");
    let location = format!("/admin/login?next={}", urlencode(next));
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// What a session that must enrol a second factor may reach: the enrolment page and its
/// forms, and signing out.
pub const ALLOWED_WHILE_ENROLLING: &[(&str, &str)] = &[
    ("GET", "/admin/account/mfa"),
    ("HEAD", "/admin/account/mfa"),
    ("POST", "/admin/account/mfa"),
    ("POST", "/admin/account/mfa/reauth"),
    ("POST", "/admin/logout"),
];

fn allowed_while_enrolling(parts: &Parts) -> bool {
    let path = parts.uri.path();
    ALLOWED_WHILE_ENROLLING
        .iter()
        .any(|(m, p)| parts.method.as_str() == *m && path == *p)
}

/// A must-enrol session elsewhere: a page goes to enrolment, JSON gets 403.
fn enrol_first(parts: &Parts) -> Response {
    if wants_json(parts) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": {"message":
                "your role requires two-factor sign-in: enrol at /admin/account/mfa first"}})),
        )
            .into_response();
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_static("/admin/account/mfa"),
    );
    res
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl<S, P> axum::extract::FromRequestParts<S> for Staff<P>
where
    Auth: FromRef<S>,
    S: Send + Sync,
    P: perm::Required,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let Some(token) = session_token(&parts.headers, auth.cookie.name) else {
            return Err(sign_in_first(parts));
        };
        let idle = auth.app.config.auth.session_idle;
        // A state-changing request was verified by the portal's form-token layer, which loaded
        // the session already (for this cookie, in this request); otherwise load it here.
        let verified = parts
            .extensions
            .get::<csrf::Verified>()
            .map(|v| v.0.clone());
        let found = with_conn!(auth.app.store.primary(), conn => {
            let live = match verified.clone() {
                Some(s) => Some(s),
                None => session::find_live(conn, &token, idle).await?,
            };
            match live {
                Some(s) => {
                    let scope = tenancy::find_by_id(conn, s.tenant_id).await?;
                    Ok::<_, sqlx::Error>(scope.map(|scope| (s, scope)))
                }
                None => Ok(None),
            }
        })
        .map_err(|e| AppError::from(e).into_response())?;
        let Some((session, scope)) = found else {
            return Err(sign_in_first(parts));
        };
        let Ok(role) = session.role.parse::<Role>() else {
            return Err(sign_in_first(parts));
        };
        // Fail closed: a state-changing request reaches a handler only with its form token
        // checked by the portal's layer (a route mounted outside it gets 403, not a pass).
        if csrf::changes_state(&parts.method) && verified.is_none() {
            return Err(csrf::expired());
        }
        if session.must_enrol_mfa && !allowed_while_enrolling(parts) {
            return Err(enrol_first(parts));
        }
        if !role.can(P::PERMISSION) {
            return Err(AppError::Forbidden(format!(
                "Your role ({role}) does not allow you to {}.",
                P::PERMISSION.label()
            ))
            .into_response());
        }
        let origin = RequestOrigin::from_parts(parts, &auth.app.trusted_proxies);
        Ok(Staff {
            origin,
            user_id: session.user_id,
            name: session.user_name.clone(),
            role,
            scope,
            session,
            permission: PhantomData,
        })
    }
}
