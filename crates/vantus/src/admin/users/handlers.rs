//! The users page and its forms, for owners and admins (`Staff<perm::ManageUsers>`; ending
//! someone's sessions is an owner's, `Staff<perm::RevokeSessions>`).
//!
//! A change to a member runs in one write transaction that first takes the audit chain's lock
//! (the same lock its audit entry takes anyway): two owners demoting each other at the same
//! moment are serialised, so the "last active owner" rule holds on PostgreSQL too, and the
//! change, the sessions it ends and its audit entry commit together.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::rules::{self, Change, Refused, Target};
use super::views::{self, InvitationRow, MemberRow, UsersPage, role_options, when};
use crate::admin::layout::{Area, Shell};
use crate::audit::{self, AuditAction};
use crate::auth::Auth;
use crate::auth::invitations;
use crate::auth::permission::{Permission, Role, perm};
use crate::auth::session::{self, Ending};
use crate::auth::staff::Staff;
use crate::auth::users::{self, LoginEmail};
use crate::http::errors::AppError;
use crate::http::extract::{Form, Query};
use crate::outbox::{self, Channel, NewMessage, Topic, payload};
use crate::store::Conn;
use crate::store::append_only::lock_audit_chain;
use crate::tenancy::TenantScope;

/// Where the forms come back to, with what was done.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "invited" => "The invitation was sent.",
        "withdrawn" => "The invitation was withdrawn.",
        "role" => "The role was changed; that member signs in again.",
        "disabled" => "The account was disabled and signed out everywhere.",
        "enabled" => "The account was enabled again.",
        "sessions" => "That member was signed out everywhere.",
        "mfa" => {
            "That member's two-factor sign-in was removed; they set it up again at their next sign-in."
        }
        _ => return None,
    })
}

pub async fn page(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Query(q): Query<DoneQuery>,
) -> Response {
    render(
        &auth,
        &staff,
        notice(q.done.as_deref()),
        None,
        String::new(),
        StatusCode::OK,
    )
    .await
}

async fn render(
    auth: &Auth,
    staff: &Staff<perm::ManageUsers>,
    notice: Option<&'static str>,
    error: Option<String>,
    invite_email: String,
    status: StatusCode,
) -> Response {
    let read = with_conn!(auth.store.primary(), conn => {
        let members = users::members(conn, &staff.scope).await?;
        let pending = invitations::list_pending(conn, &staff.scope).await?;
        Ok::<_, sqlx::Error>((members, pending))
    });
    let (members, pending) = match read {
        Ok(r) => r,
        Err(e) => return AppError::from(e).into_response(),
    };
    let members = members
        .into_iter()
        .map(|m| {
            let role = m.role();
            MemberRow {
                is_me: m.id == staff.user_id,
                manageable: role != Some(Role::Owner) || staff.role == Role::Owner,
                roles: role_options(staff.role, role),
                id: m.id.to_string(),
                status: if m.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                },
                last_sign_in: m.last_sign_in.map(when).unwrap_or_else(|| "never".into()),
                name: m.name,
                email: m.email,
                role: m.role,
            }
        })
        .collect();
    let invitations = pending
        .into_iter()
        .map(|i| InvitationRow {
            id: i.id.to_string(),
            email: i.email,
            role: i.role,
            sent: when(i.created_at),
            expires: when(i.expires_at),
        })
        .collect();
    let shell = match Shell::load(auth, staff, Area::Users, "Users").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let page = UsersPage {
        shell,
        members,
        invitations,
        invite_roles: role_options(staff.role, Some(Role::Viewer)),
        invite_email,
        can_end_sessions: staff.role.can(Permission::RevokeSessions),
        notice,
        error,
    };
    crate::http::html_page(status, page.render())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InvitePost {
    email: String,
    role: String,
}

/// Invites an address as a role: the invitation, its email (through the outbox) and its audit
/// entry commit together. An address that is a member already is refused (change its role
/// instead).
pub async fn invite(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Form(post): Form<InvitePost>,
) -> Response {
    let refuse = |why: String, status: StatusCode| {
        render(&auth, &staff, None, Some(why), post.email.clone(), status)
    };
    let email = match LoginEmail::parse(&post.email) {
        Ok(e) => e,
        Err(why) => {
            return refuse(
                format!("Email address: {why}."),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let role: Role = match post.role.parse() {
        Ok(r) => r,
        Err(why) => return refuse(format!("Role: {why}."), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    if !staff.role.may_assign(role) {
        return AppError::Forbidden(if role == Role::Owner {
            "Only an owner can invite an owner.".into()
        } else {
            format!("Your role ({}) cannot give the role {role}.", staff.role)
        })
        .into_response();
    }
    let ttl = auth.config.auth.invitation_ttl;
    let base = auth.config.public_url.clone();
    let me = staff.user_id;
    let scope = &staff.scope;
    let inviter = staff.name.clone();
    let done = in_write_tx!(auth.store.primary(), conn => {
        if let Some(existing) = users::find_by_email(conn, &email).await?
            && users::role_in(conn, existing.id, scope).await?.is_some()
        {
            return Ok::<_, sqlx::Error>(false);
        }
        let created = invitations::create(conn, scope, &email, role, me, ttl).await?;
        let mail = payload::Invitation {
            tenant: payload::TenantData { slug: scope.slug().to_owned(), name: scope.name().to_owned() },
            role: role.as_str().to_owned(),
            invited_by: inviter.clone(),
            link: invitations::link(&base, "/admin/invitations/", &created.token),
            expires_at: created.expires_at.to_rfc3339_seconds(),
        };
        outbox::enqueue(conn, scope, &NewMessage {
            channel: Channel::Email,
            topic: Topic::Invitation,
            destination: email.as_str().to_owned(),
            lead_id: None,
            payload: payload::to_json(&mail),
        }).await?;
        staff.audit().record_in(conn, scope, AuditAction::InvitationSent,
            &format!("invitation:{}", created.id),
            audit::Change::from_detail(json!({ "role": role.as_str(), "expires_at": created.expires_at.to_rfc3339_seconds() }))).await?;
        Ok(true)
    });
    match done {
        Ok(true) => {
            outbox::wake();
            views::see_other("/admin/users?done=invited")
        }
        Ok(false) => {
            refuse(
                "Email address: this address is a member already; change its role instead.".into(),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

/// An id from the path; anything that is not one is simply not found.
fn id_of(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// Withdraws a pending invitation of this tenant.
pub async fn revoke_invitation(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Path(raw): Path<String>,
) -> Response {
    let Some(id) = id_of(&raw) else {
        return AppError::NotFound.into_response();
    };
    let done = in_write_tx!(auth.store.primary(), conn => {
        if !invitations::revoke(conn, &staff.scope, id).await? {
            return Ok::<_, sqlx::Error>(false);
        }
        staff.audit().record(conn, AuditAction::InvitationRevoked,
            &format!("invitation:{id}"), audit::Change::none()).await?;
        Ok(true)
    });
    match done {
        Ok(true) => views::see_other("/admin/users?done=withdrawn"),
        Ok(false) => AppError::NotFound.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RolePost {
    role: String,
}

pub async fn change_role(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Path(raw): Path<String>,
    Form(post): Form<RolePost>,
) -> Response {
    match post.role.parse() {
        Ok(role) => change(&auth, &staff, &raw, Change::Role(role)).await,
        Err(why) => AppError::bad_request("role", why).into_response(),
    }
}

pub async fn disable(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Path(raw): Path<String>,
) -> Response {
    change(&auth, &staff, &raw, Change::Disable).await
}

pub async fn enable(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Path(raw): Path<String>,
) -> Response {
    change(&auth, &staff, &raw, Change::Enable).await
}

/// Removes a member's second factors (they lost their phone and their recovery codes): they
/// are signed out everywhere and enrol again after their password. Owners and admins, never
/// on oneself, and only an owner resets an owner.
pub async fn reset_mfa(
    State(auth): State<Auth>,
    staff: Staff<perm::ManageUsers>,
    Path(raw): Path<String>,
) -> Response {
    change(&auth, &staff, &raw, Change::ResetMfa).await
}

/// Signs a member out everywhere (one's own current session stays, when it is oneself).
pub async fn end_sessions(
    State(auth): State<Auth>,
    staff: Staff<perm::RevokeSessions>,
    Path(raw): Path<String>,
) -> Response {
    change(&auth, &staff, &raw, Change::EndSessions).await
}

/// Ends every session of `user` in every tenant, but `keep`; how many.
async fn end_everywhere(
    conn: &mut Conn<'_>,
    user: Uuid,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error> {
    session::end(
        conn,
        Ending::AllOf {
            user,
            keep,
            tenant: None,
        },
    )
    .await
}

/// What [`apply`] did.
enum Outcome {
    Done(&'static str),
    NotFound,
    Refused(Refused),
}

/// Checks `change` against the rules and applies it, with its audit entry.
async fn change<P>(auth: &Auth, staff: &Staff<P>, raw_id: &str, change: Change) -> Response {
    let Some(id) = id_of(raw_id) else {
        return AppError::NotFound.into_response();
    };
    let actor = (staff.user_id, staff.role, staff.session.id.as_str());
    let ctx = staff.audit();
    let outcome = in_write_tx!(auth.store.primary(), conn => {
        apply(conn, actor, &ctx, &staff.scope, id, change).await
    });
    match outcome {
        Ok(Outcome::Done(done)) => views::see_other(&format!("/admin/users?done={done}")),
        Ok(Outcome::NotFound) => AppError::NotFound.into_response(),
        Ok(Outcome::Refused(Refused::NotAllowed(why))) => AppError::Forbidden(why).into_response(),
        Ok(Outcome::Refused(Refused::Conflict(why))) => {
            views::refusal(StatusCode::CONFLICT, "Not possible", why)
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

/// `actor` is the signed-in member: id, role, and the session they act from.
async fn apply(
    conn: &mut Conn<'_>,
    (actor, actor_role, current): (Uuid, Role, &str),
    ctx: &audit::Context,
    scope: &TenantScope,
    id: Uuid,
    change: Change,
) -> Result<Outcome, sqlx::Error> {
    lock_audit_chain(conn).await?;
    // A member of another tenant is not found here, whatever else it is.
    let Some(member) = users::member(conn, scope, id).await? else {
        return Ok(Outcome::NotFound);
    };
    let Some(role) = member.role() else {
        return Ok(Outcome::NotFound);
    };
    let target = Target {
        id,
        role,
        disabled: member.disabled_at.is_some(),
    };
    let owners = users::active_owners(conn, scope).await?;
    if let Err(refused) = rules::check(actor, actor_role, &target, change, owners) {
        return Ok(Outcome::Refused(refused));
    }
    let status = |disabled: bool| if disabled { "disabled" } else { "active" };
    let (action, detail, done) = match change {
        Change::Role(new) => {
            if new == role {
                return Ok(Outcome::Done("role"));
            }
            users::set_role(conn, scope, id, new).await?;
            // A privilege change: the member's sessions in this tenant end.
            let ended = session::end(
                conn,
                Ending::AllOf {
                    user: id,
                    keep: None,
                    tenant: Some(scope.id()),
                },
            )
            .await?;
            (
                AuditAction::RoleChanged,
                json!({ "before": { "role": role.as_str() }, "after": { "role": new.as_str() }, "sessions_ended": ended }),
                "role",
            )
        }
        Change::Disable => {
            users::set_disabled(conn, id, true).await?;
            let ended = end_everywhere(conn, id, None).await?;
            (
                AuditAction::UserDisabled,
                json!({ "before": { "status": status(target.disabled) }, "after": { "status": "disabled" }, "sessions_ended": ended }),
                "disabled",
            )
        }
        Change::Enable => {
            users::set_disabled(conn, id, false).await?;
            (
                AuditAction::UserEnabled,
                json!({ "before": { "status": status(target.disabled) }, "after": { "status": "active" } }),
                "enabled",
            )
        }
        Change::ResetMfa => {
            let had_totp = crate::auth::mfa::disable(conn, id).await?;
            let passkeys = crate::auth::passkeys::remove_all(conn, id).await?;
            let ended = end_everywhere(conn, id, None).await?;
            crate::auth::notify::credential_changed(
                conn,
                scope,
                id,
                crate::auth::notify::Change::MfaReset,
            )
            .await?;
            (
                AuditAction::MfaReset,
                json!({ "totp_removed": had_totp, "passkeys_removed": passkeys, "sessions_ended": ended }),
                "mfa",
            )
        }
        Change::EndSessions => {
            let keep = (id == actor).then_some(current);
            let ended = end_everywhere(conn, id, keep).await?;
            (
                AuditAction::SessionsRevoked,
                json!({ "by": "owner", "sessions": ended }),
                "sessions",
            )
        }
    };
    ctx.record_in(
        conn,
        scope,
        action,
        &format!("user:{id}"),
        audit::Change::from_detail(detail),
    )
    .await?;
    Ok(Outcome::Done(done))
}
