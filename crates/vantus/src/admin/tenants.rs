//! Tenants: switching the tenant one works in (`POST /admin/tenant`, anyone in several), and
//! the owners' pages (`/admin/tenants`): creating tenants, renaming them, the hosts that pick
//! them for the public site, and who belongs to them as what.
//!
//! The tenants page is the one place the portal reaches a tenant other than the session's, and
//! only through the user's own membership ([`tenancy::membership`]): an owner manages exactly
//! the tenants they own. A tenant always keeps an owner ([`memberships::change`]). Every change
//! is audited with before and after, in the tenant it changed.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::layout::{Area, Shell};
use super::{redirect, renewed_session};
use crate::audit::{AuditAction, Change};
use crate::auth::Auth;
use crate::auth::memberships::{self, Member, MemberError};
use crate::auth::permission::{Role, perm};
use crate::auth::session;
use crate::auth::staff::Staff;
use crate::auth::users::{self, LoginEmail};
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::tenancy::{self, TenantError, TenantScope};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SwitchPost {
    tenant: String,
}

/// Moves the session to another of the user's tenants. The role may differ there, so this is
/// a privilege change: the session ends and a new one (new token, new form token) starts in
/// the chosen tenant, as after a password change.
pub async fn switch(
    State(auth): State<Auth>,
    headers: HeaderMap,
    staff: Staff<perm::ViewDashboard>,
    Form(post): Form<SwitchPost>,
) -> Response {
    let Ok(target) = post.tenant.trim().parse::<Uuid>() else {
        return AppError::bad_request("tenant", "must be the id of one of your tenants")
            .into_response();
    };
    let me = staff.user_id;
    // The new session ends when the old one would have: switching back and forth must not
    // stretch a session past its absolute limit.
    let now = crate::store::Timestamp::now();
    let left = staff.session.expires_at.unix_micros() - now.unix_micros();
    let max_age = std::time::Duration::from_micros(u64::try_from(left).unwrap_or(0));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let ctx = staff.audit();
    let ip = staff.origin.ip.clone();
    let from = staff.scope.id();
    let started = in_write_tx!(auth.store.primary(), conn => {
        let Some(m) = tenancy::membership(conn, me, target).await? else {
            return Ok::<_, sqlx::Error>(None);
        };
        session::revoke(conn, &staff.session.id).await?;
        let fresh = session::start_until(conn, me, &m.scope, ip.as_deref(), user_agent,
            staff.session.expires_at).await?;
        ctx.record_in(conn, &m.scope, AuditAction::TenantSwitched, &format!("user:{me}"),
            Change::new(json!({ "tenant": from }), json!({ "tenant": target, "role": m.role }))).await?;
        Ok(Some(fresh))
    });
    match started {
        Ok(Some(s)) => renewed_session(&auth, "/admin", &s, max_age),
        Ok(None) => AppError::Forbidden(
            "You are not a member of that tenant, so you cannot work in it.".into(),
        )
        .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// A field the client got wrong, as the page shows it beside the form.
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn of(e: &TenantError) -> Option<Self> {
        e.field().map(|field| FieldError {
            field,
            message: e.to_string(),
        })
    }
}

pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub role: String,
    pub owner: bool,
}

#[derive(Template)]
#[template(path = "admin/tenants.html")]
struct TenantsPage {
    shell: Shell,
    tenants: Vec<TenantRow>,
    error: Option<FieldError>,
    name: String,
    slug: String,
}

pub async fn list(State(auth): State<Auth>, staff: Staff<perm::ManageTenants>) -> Response {
    render_list(&auth, &staff, None, Default::default(), StatusCode::OK).await
}

async fn render_list(
    auth: &Auth,
    staff: &Staff<perm::ManageTenants>,
    error: Option<FieldError>,
    typed: CreatePost,
    status: StatusCode,
) -> Response {
    let listed = with_conn!(auth.store.primary(), conn => tenancy::memberships_of(conn, staff.user_id).await);
    let tenants = match listed {
        Ok(ms) => ms
            .into_iter()
            .map(|m| TenantRow {
                id: m.scope.id(),
                name: m.scope.name().to_owned(),
                slug: m.scope.slug().to_owned(),
                owner: m.role == Role::Owner.as_str(),
                role: m.role,
            })
            .collect(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(auth, staff, Area::Tenants, "Tenants").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = TenantsPage {
        shell,
        tenants,
        error,
        name: typed.name,
        slug: typed.slug,
    };
    crate::http::html_page(status, page.render())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreatePost {
    name: String,
    slug: String,
}

/// Creates a tenant; its creator becomes its owner.
pub async fn create(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageTenants>,
    Form(post): Form<CreatePost>,
) -> Response {
    let ctx = staff.audit();
    let me = staff.user_id;
    let created = in_write_tx!(auth.store.primary(), conn => {
        let scope = tenancy::create(conn, &post.slug, &post.name).await?;
        users::add_membership(conn, me, &scope, Role::Owner).await?;
        ctx.record_in(conn, &scope, AuditAction::TenantCreated, &format!("tenant:{}", scope.id()),
            Change::new(serde_json::Value::Null,
                json!({ "name": scope.name(), "slug": scope.slug(), "owner": format!("user:{me}") }))).await?;
        Ok::<_, TenantError>(scope)
    });
    match created {
        Ok(scope) => redirect(&format!("/admin/tenants/{}", scope.id())),
        Err(e) => match FieldError::of(&e) {
            Some(fe) => {
                render_list(
                    &auth,
                    &staff,
                    Some(fe),
                    post,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            None => AppError::Internal(e.to_string()).into_response(),
        },
    }
}

/// An owner's hold on the tenant named in the path (`/admin/tenants/{id}/…`): the signed-in
/// staff member may manage tenants and owns this one; 403 for a member who is not an owner
/// there, 404 for a tenant they do not belong to (or that does not exist). The handlers below take it instead of `Staff`, so none can forget the check.
pub struct OwnedTenant {
    pub staff: Staff<perm::ManageTenants>,
    pub scope: TenantScope,
}

impl<S> axum::extract::FromRequestParts<S> for OwnedTenant
where
    Auth: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRef;
        let staff = Staff::<perm::ManageTenants>::from_request_parts(parts, state).await?;
        let not_found = || AppError::NotFound.into_response();
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        let id: Uuid = params
            .iter()
            .find(|(k, _)| k == "id")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(not_found)?;
        let auth = Auth::from_ref(state);
        let found = with_conn!(auth.store.primary(), conn =>
            tenancy::membership(conn, staff.user_id, id).await)
        .map_err(|e| AppError::from(e).into_response())?;
        match found {
            Some(m) if m.role == Role::Owner.as_str() => Ok(Self {
                staff,
                scope: m.scope,
            }),
            // Not a member: as far as this user is concerned, there is no such tenant.
            None => Err(not_found()),
            Some(_) => Err(AppError::Forbidden(
                "Only an owner of that tenant may manage it.".into(),
            )
            .into_response()),
        }
    }
}

pub struct MemberRow {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "admin/tenant.html")]
struct TenantPage {
    shell: Shell,
    id: Uuid,
    name: String,
    slug: String,
    hosts: Vec<String>,
    members: Vec<MemberRow>,
    roles: Vec<&'static str>,
    error: Option<FieldError>,
}

pub async fn show(State(auth): State<Auth>, OwnedTenant { staff, scope }: OwnedTenant) -> Response {
    render_tenant(&auth, &staff, &scope, None, StatusCode::OK).await
}

async fn render_tenant(
    auth: &Auth,
    staff: &Staff<perm::ManageTenants>,
    scope: &TenantScope,
    error: Option<FieldError>,
    status: StatusCode,
) -> Response {
    let loaded = with_conn!(auth.store.primary(), conn => {
        let hosts = tenancy::hosts_of(conn, scope).await?;
        let members = memberships::members(conn, scope).await?;
        Ok::<_, sqlx::Error>((hosts, members))
    });
    let (hosts, members) = match loaded {
        Ok(l) => l,
        Err(e) => return AppError::from(e).into_response(),
    };
    let shell = match Shell::load(auth, staff, Area::Tenants, scope.name()).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let members = members
        .into_iter()
        .map(|m: Member| MemberRow {
            is_me: m.user_id == staff.user_id,
            user_id: m.user_id,
            name: m.name,
            email: m.email,
            role: m.role,
        })
        .collect();
    let page = TenantPage {
        shell,
        id: scope.id(),
        name: scope.name().to_owned(),
        slug: scope.slug().to_owned(),
        hosts,
        members,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        error,
    };
    crate::http::html_page(status, page.render())
}

/// After a change on the tenant page: back to it, or the page again with the field at fault
/// (422).
async fn answer(
    auth: &Auth,
    staff: &Staff<perm::ManageTenants>,
    scope: &TenantScope,
    outcome: Result<(), FieldError>,
) -> Response {
    match outcome {
        Ok(()) => redirect(&format!("/admin/tenants/{}", scope.id())),
        Err(fe) => {
            render_tenant(
                auth,
                staff,
                scope,
                Some(fe),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// [`answer`] for a change that may fail on a field: a database failure is the server's,
/// anything else names its field (422).
async fn answer_change(
    auth: &Auth,
    staff: &Staff<perm::ManageTenants>,
    scope: &TenantScope,
    done: Result<(), TenantError>,
) -> Response {
    match done {
        Ok(()) => answer(auth, staff, scope, Ok(())).await,
        Err(TenantError::Database(e)) => AppError::from(e).into_response(),
        Err(e) => match FieldError::of(&e) {
            Some(fe) => answer(auth, staff, scope, Err(fe)).await,
            None => AppError::Internal(e.to_string()).into_response(),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RenamePost {
    name: String,
}

pub async fn rename(
    State(auth): State<Auth>,
    OwnedTenant { staff, scope }: OwnedTenant,
    Form(post): Form<RenamePost>,
) -> Response {
    let ctx = staff.audit();
    let done = in_write_tx!(auth.store.primary(), conn => {
        let renamed = tenancy::rename(conn, &scope, &post.name).await?;
        ctx.record_in(conn, &scope, AuditAction::TenantUpdated, &format!("tenant:{}", scope.id()),
            Change::new(json!({ "name": scope.name() }), json!({ "name": renamed.name() }))).await?;
        Ok::<_, TenantError>(())
    });
    answer_change(&auth, &staff, &scope, done).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HostPost {
    host: String,
}

pub async fn add_host(
    State(auth): State<Auth>,
    OwnedTenant { staff, scope }: OwnedTenant,
    Form(post): Form<HostPost>,
) -> Response {
    let ctx = staff.audit();
    let done = in_write_tx!(auth.store.primary(), conn => {
        let host = tenancy::claim_host(conn, &scope, &post.host).await?;
        ctx.record_in(conn, &scope, AuditAction::TenantHostAdded, &format!("tenant:{}", scope.id()),
            Change::new(serde_json::Value::Null, json!({ "host": host }))).await?;
        Ok::<_, TenantError>(())
    });
    // This replica shows the change at once; the others when their copy expires.
    auth.hosts.invalidate().await;
    answer_change(&auth, &staff, &scope, done).await
}

pub async fn remove_host(
    State(auth): State<Auth>,
    OwnedTenant { staff, scope }: OwnedTenant,
    Form(post): Form<HostPost>,
) -> Response {
    let ctx = staff.audit();
    let done = in_write_tx!(auth.store.primary(), conn => {
        if tenancy::remove_host(conn, &scope, &post.host).await? {
            ctx.record_in(conn, &scope, AuditAction::TenantHostRemoved, &format!("tenant:{}", scope.id()),
                Change::new(json!({ "host": tenancy::normalize_host(&post.host) }), serde_json::Value::Null)).await?;
        }
        Ok::<_, sqlx::Error>(())
    });
    auth.hosts.invalidate().await;
    match done {
        Ok(()) => answer(&auth, &staff, &scope, Ok(())).await,
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddMemberPost {
    email: String,
    role: String,
}

pub async fn add_member(
    State(auth): State<Auth>,
    OwnedTenant { staff, scope }: OwnedTenant,
    Form(post): Form<AddMemberPost>,
) -> Response {
    let refuse = |field: &'static str, message: &str| {
        Err(FieldError {
            field,
            message: format!("{field}: {message}"),
        })
    };
    let role = match post.role.parse::<Role>() {
        Ok(r) => r,
        Err(why) => return answer(&auth, &staff, &scope, refuse("role", &why)).await,
    };
    let Ok(email) = LoginEmail::parse(&post.email) else {
        return answer(
            &auth,
            &staff,
            &scope,
            refuse("email", "must be an email address"),
        )
        .await;
    };
    let ctx = staff.audit();
    let done = in_write_tx!(auth.store.primary(), conn => {
        let Some(user) = users::find_by_email(conn, &email).await? else {
            return Ok::<_, sqlx::Error>(Err("no account has this address; invite them on the users page first"));
        };
        if users::role_in(conn, user.id, &scope).await?.is_some() {
            return Ok(Err("is a member of this tenant already; change their role below"));
        }
        users::add_membership(conn, user.id, &scope, role).await?;
        ctx.record_in(conn, &scope, AuditAction::MembershipAdded, &format!("user:{}", user.id),
            Change::new(serde_json::Value::Null, json!({ "role": role.as_str() }))).await?;
        Ok(Ok(()))
    });
    match done {
        Ok(Ok(())) => answer(&auth, &staff, &scope, Ok(())).await,
        Ok(Err(why)) => answer(&auth, &staff, &scope, refuse("email", why)).await,
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemberPost {
    role: String,
    /// Present: remove the member instead.
    remove: Option<String>,
}

/// Changes a member's role, or removes them; never leaves the tenant without an owner.
pub async fn change_member(
    State(auth): State<Auth>,
    OwnedTenant { staff, scope }: OwnedTenant,
    Path((_, user)): Path<(String, String)>,
    Form(post): Form<MemberPost>,
) -> Response {
    let Ok(user) = user.parse::<Uuid>() else {
        return AppError::NotFound.into_response();
    };
    let role = if post.remove.is_some() {
        None
    } else {
        match post.role.parse::<Role>() {
            Ok(r) => Some(r),
            Err(why) => {
                let fe = FieldError {
                    field: "role",
                    message: format!("role: {why}"),
                };
                return answer(&auth, &staff, &scope, Err(fe)).await;
            }
        }
    };
    let ctx = staff.audit();
    let done = in_write_tx!(auth.store.primary(), conn => {
        let had = memberships::change(conn, &scope, user, role).await?;
        let (action, after) = match role {
            Some(r) => (AuditAction::MembershipChanged, json!({ "role": r.as_str() })),
            None => (AuditAction::MembershipRemoved, serde_json::Value::Null),
        };
        ctx.record_in(conn, &scope, action, &format!("user:{user}"),
            Change::new(json!({ "role": had.as_str() }), after)).await?;
        Ok::<_, MemberError>(())
    });
    match done {
        Ok(()) => answer(&auth, &staff, &scope, Ok(())).await,
        Err(MemberError::Database(e)) => AppError::from(e).into_response(),
        Err(e @ MemberError::NotMember) => {
            let fe = FieldError {
                field: "user",
                message: e.to_string(),
            };
            answer(&auth, &staff, &scope, Err(fe)).await
        }
        Err(e @ MemberError::LastOwner) => {
            let fe = FieldError {
                field: "role",
                message: e.to_string(),
            };
            answer(&auth, &staff, &scope, Err(fe)).await
        }
    }
}
