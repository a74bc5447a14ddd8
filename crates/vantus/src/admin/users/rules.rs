//! Who may change whom on the users page, as one pure function, so every rule is tested
//! without a server and no handler can forget one.
//!
//! - Nobody gives a role above their own ([`Role::may_assign`]): an admin never grants owner.
//! - An admin does not change, disable or enable an owner.
//! - Nobody disables themselves (the account page signs out; an owner disables others).
//! - A tenant always keeps one active owner: the last one is neither demoted nor disabled.

use uuid::Uuid;

use crate::auth::permission::Role;

/// What is to be done to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Role(Role),
    Disable,
    Enable,
    /// End every session of the member (the permission to do so is checked by the extractor).
    EndSessions,
    /// Remove the member's second factors (TOTP, recovery codes, passkeys) when they lost
    /// them: they sign in with the password and enrol again.
    ResetMfa,
}

/// The member as the check needs them.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub id: Uuid,
    pub role: Role,
    pub disabled: bool,
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The actor's role does not allow it (403).
    NotAllowed(String),
    /// It would leave the tenant without an owner, or it is oneself (409).
    Conflict(String),
}

/// Whether `actor` (signed in as `actor_role`) may make `change` to `target`, with
/// `active_owners` owners not disabled in the tenant now.
pub fn check(
    actor: Uuid,
    actor_role: Role,
    target: &Target,
    change: Change,
    active_owners: i64,
) -> Result<(), Refused> {
    let target_is_owner = target.role == Role::Owner;
    if target_is_owner && actor_role != Role::Owner && change != Change::EndSessions {
        return Err(Refused::NotAllowed(
            "Only an owner can change, disable, enable or reset an owner.".into(),
        ));
    }
    let last_owner = target_is_owner && !target.disabled && active_owners <= 1;
    match change {
        Change::Role(role) => {
            if !actor_role.may_assign(role) {
                return Err(Refused::NotAllowed(format!(
                    "Your role ({actor_role}) cannot give the role {role}."
                )));
            }
            if last_owner && role != Role::Owner {
                return Err(Refused::Conflict(
                    "This is the last active owner: make someone else an owner first.".into(),
                ));
            }
        }
        Change::Disable => {
            if target.id == actor {
                return Err(Refused::Conflict(
                    "You cannot disable your own account.".into(),
                ));
            }
            if last_owner {
                return Err(Refused::Conflict(
                    "This is the last active owner: it cannot be disabled.".into(),
                ));
            }
        }
        Change::ResetMfa => {
            if target.id == actor {
                return Err(Refused::Conflict(
                    "Manage your own two-factor sign-in on your account page.".into(),
                ));
            }
        }
        Change::Enable | Change::EndSessions => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(role: Role) -> Target {
        Target {
            id: Uuid::now_v7(),
            role,
            disabled: false,
        }
    }

    #[test]
    fn admins_leave_owners_alone_and_never_grant_owner() {
        let me = Uuid::now_v7();
        let owner = target(Role::Owner);
        for change in [Change::Role(Role::Viewer), Change::Disable, Change::Enable] {
            assert!(matches!(
                check(me, Role::Admin, &owner, change, 2),
                Err(Refused::NotAllowed(_))
            ));
        }
        let editor = target(Role::Editor);
        assert!(matches!(
            check(me, Role::Admin, &editor, Change::Role(Role::Owner), 2),
            Err(Refused::NotAllowed(_))
        ));
        assert_eq!(
            check(me, Role::Admin, &editor, Change::Role(Role::Admin), 2),
            Ok(())
        );
        assert_eq!(check(me, Role::Admin, &editor, Change::Disable, 2), Ok(()));
        assert_eq!(
            check(me, Role::Owner, &editor, Change::Role(Role::Owner), 1),
            Ok(())
        );
    }

    #[test]
    fn the_last_active_owner_stays_and_nobody_disables_themselves() {
        let me = Uuid::now_v7();
        let owner = target(Role::Owner);
        assert!(matches!(
            check(me, Role::Owner, &owner, Change::Role(Role::Admin), 1),
            Err(Refused::Conflict(_))
        ));
        assert!(matches!(
            check(me, Role::Owner, &owner, Change::Disable, 1),
            Err(Refused::Conflict(_))
        ));
        assert_eq!(
            check(me, Role::Owner, &owner, Change::Role(Role::Admin), 2),
            Ok(())
        );
        let myself = Target {
            id: me,
            ..target(Role::Owner)
        };
        assert!(matches!(
            check(me, Role::Owner, &myself, Change::Disable, 3),
            Err(Refused::Conflict(_))
        ));
        // A disabled owner is not the one keeping the tenant run.
        let disabled = Target {
            disabled: true,
            ..target(Role::Owner)
        };
        assert_eq!(
            check(me, Role::Owner, &disabled, Change::Role(Role::Viewer), 1),
            Ok(())
        );
    }
}
