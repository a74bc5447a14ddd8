//! Staff accounts and access: how passwords are checked and stored ([`password`]) and who may
//! do what ([`permission`]). Sessions, MFA, passkeys and the login routes build on these.

pub mod password;
pub mod permission;
pub mod users;
