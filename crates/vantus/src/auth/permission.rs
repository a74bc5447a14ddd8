//! Who may do what: five roles and one permission matrix, written once, here.
//!
//! A handler will not compare roles: it names the permission it needs as a type
//! (`Staff<perm::EditContent>`), and the matrix below decides. The matrix is also the table in
//! `docs/operations/roles.md`; a test reads that table and fails if the two differ.

use std::fmt;
use std::str::FromStr;

/// A staff member's role in a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Sales,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Editor,
        Role::Sales,
        Role::Viewer,
    ];

    /// The text stored in the database and typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Sales => "sales",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role has `permission` (the matrix).
    pub fn can(self, permission: Permission) -> bool {
        MATRIX
            .iter()
            .find(|(p, _)| *p == permission)
            .is_some_and(|(_, roles)| roles.contains(&self))
    }

    /// Whether a user of this role may give `other` to someone: never a role above one's own,
    /// and only with the permission to manage users.
    pub fn may_assign(self, other: Role) -> bool {
        self.can(Permission::ManageUsers) && self <= other
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("\"{s}\" is not a role; the roles are {}", names.join(", "))
            })
    }
}

macro_rules! permissions {
    ($( $(#[$doc:meta])* $name:ident => $label:literal: [$($role:ident),*]; )*) => {
        /// Something a staff member may be allowed to do.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Permission { $( $(#[$doc])* $name, )* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$( Permission::$name, )*];

            /// How the permission is named in `docs/operations/roles.md`.
            pub fn label(self) -> &'static str {
                match self { $( Permission::$name => $label, )* }
            }
        }

        /// Each permission and the roles that have it.
        const MATRIX: &[(Permission, &[Role])] = &[$( (Permission::$name, &[$(Role::$role),*]), )*];

        /// One type per permission, for extractors such as `Staff<perm::EditContent>`.
        pub mod perm {
            /// A permission as a type.
            pub trait Required: Send + Sync + 'static {
                const PERMISSION: super::Permission;
            }
            $(
                $(#[$doc])*
                pub struct $name;
                impl Required for $name {
                    const PERMISSION: super::Permission = super::Permission::$name;
                }
            )*
        }
    };
}

permissions! {
    /// The portal's dashboard and one's own account.
    ViewDashboard => "view the dashboard": [Owner, Admin, Editor, Sales, Viewer];
    /// Leads and their details, spam included.
    ViewLeads => "view leads": [Owner, Admin, Sales];
    /// A lead's stage and notes; rescuing a lead from spam.
    EditLeads => "edit leads": [Owner, Admin, Sales];
    /// Exporting leads (personal data leaves the system).
    ExportLeads => "export leads": [Owner, Admin];
    /// Pages, case studies and insights, drafts included.
    ViewContent => "view content": [Owner, Admin, Editor, Viewer];
    /// Drafting and changing content.
    EditContent => "edit content": [Owner, Admin, Editor];
    /// Publishing and unpublishing content.
    PublishContent => "publish content": [Owner, Admin, Editor];
    /// Uploading and deleting media.
    ManageMedia => "manage media": [Owner, Admin, Editor];
    /// Inviting users, changing roles, disabling users, revoking their sessions.
    ManageUsers => "manage users": [Owner, Admin];
    /// Signing any member of the tenant out everywhere (a stolen laptop, a departure).
    RevokeSessions => "revoke anyone's sessions": [Owner];
    /// Creating tenants, their hosts, and who belongs to them.
    ManageTenants => "manage tenants": [Owner];
    /// Reading the audit log.
    ViewAudit => "view the audit log": [Owner, Admin];
    /// Exporting the audit log (CSV, JSONL).
    ExportAudit => "export the audit log": [Owner];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// config cannot name `Role` (it sits below auth), so it validates
    /// VANTUS_MFA_REQUIRED_ROLES against its own list: the same names.
    #[test]
    fn config_knows_every_role_name() {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, crate::config::ROLE_NAMES);
    }

    /// The table in docs/operations/roles.md, as (label, roles with ✓).
    fn documented() -> Vec<(String, Vec<Role>)> {
        let doc = include_str!("../../../../docs/operations/roles.md");
        let mut lines = doc
            .lines()
            .skip_while(|l| !l.starts_with("| Permission |"))
            .filter(|l| l.starts_with('|'));
        let header: Vec<String> = lines
            .next()
            .expect("the matrix table in docs/operations/roles.md")
            .split('|')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        let roles: Vec<Role> = header[1..].iter().map(|r| r.parse().unwrap()).collect();
        assert_eq!(
            roles,
            Role::ALL,
            "the table's columns are the roles, in order"
        );
        lines
            .skip(1) // the |---| line
            .map(|l| {
                // Between the outer pipes; an empty cell is a role without the permission.
                let cells: Vec<&str> = l
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                let granted = roles
                    .iter()
                    .zip(&cells[1..])
                    .filter(|(_, c)| **c == "✓")
                    .map(|(r, _)| *r)
                    .collect();
                (cells[0].to_owned(), granted)
            })
            .collect()
    }

    #[test]
    fn the_documented_matrix_is_the_code() {
        let in_code: Vec<(String, Vec<Role>)> = Permission::ALL
            .iter()
            .map(|&p| {
                (
                    p.label().to_owned(),
                    Role::ALL.into_iter().filter(|r| r.can(p)).collect(),
                )
            })
            .collect();
        assert_eq!(documented(), in_code);
    }

    #[test]
    fn roles_parse_from_what_they_print_and_name_the_choices() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(r.as_str().to_uppercase().parse::<Role>(), Ok(r));
        }
        let e = "superuser".parse::<Role>().unwrap_err();
        assert!(e.contains("owner, admin, editor, sales, viewer"), "{e}");
    }

    #[test]
    fn nobody_hands_out_a_role_above_their_own() {
        assert!(Role::Owner.may_assign(Role::Owner));
        assert!(Role::Admin.may_assign(Role::Editor));
        assert!(!Role::Admin.may_assign(Role::Owner));
        assert!(
            !Role::Editor.may_assign(Role::Viewer),
            "editors do not manage users"
        );
        assert!(<perm::ManageTenants as perm::Required>::PERMISSION == Permission::ManageTenants);
        assert!(
            Role::Owner.can(Permission::ManageTenants)
                && !Role::Admin.can(Permission::ManageTenants)
        );
    }
}
