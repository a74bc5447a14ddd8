//! The payloads messages carry, typed. The JSON stored in `outbox.payload` is the `data` of the
//! webhook event as it is, and what the email is rendered from; one type per [`Topic`], so the
//! writer (the lead slice) and the readers (the worker's channels) cannot disagree on a field.
//!
//! [`Topic`]: super::Topic

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `lead.created`: a new lead (never one stored as spam).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadCreated {
    pub lead: LeadData,
    pub tenant: TenantData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadData {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub company: Option<String>,
    pub role: Option<String>,
    /// The budget range's code, e.g. `25k-50k`.
    pub budget: String,
    /// The same for people, e.g. `€25k–50k`.
    pub budget_label: String,
    pub website: Option<String>,
    pub message: String,
    /// `form` or `api`.
    pub source: String,
    /// RFC 3339.
    pub created_at: String,
    pub spam: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantData {
    pub slug: String,
    pub name: String,
}

impl LeadCreated {
    /// The payload to store in [`NewMessage::payload`](super::NewMessage::payload).
    pub fn to_json(&self) -> serde_json::Value {
        // A struct of strings, bools and a UUID always serializes.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a stored payload back; `None` when it is not a `lead.created` payload.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// `user.invited`: an invitation to join a tenant. The link carries the only copy of the
/// token outside the email (the invitation row keeps its hash); the worker blanks the payload
/// once the email is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub tenant: TenantData,
    pub role: String,
    /// The inviter's name, as the portal shows it.
    pub invited_by: String,
    pub link: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// `password.reset_link`: a link to choose a new password (blanked once sent, like an
/// invitation's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordResetLink {
    pub name: String,
    pub link: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// `password.was_reset`: tells the account's owner that a reset link set a new password, so
/// a reset they did not ask for is noticed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordWasReset {
    pub name: String,
    /// RFC 3339.
    pub changed_at: String,
    pub sign_in: String,
}

/// The JSON of any payload (a struct of strings always serializes).
pub fn to_json(payload: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(payload).unwrap_or(serde_json::Value::Null)
}

/// A stored payload read back as `T`; `None` when it is not one.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_str(text).ok()
}

/// `account.credential_changed`: what changed on a staff member's own account. No secret and
/// no code, only what and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialChanged {
    /// `auth::notify::Change`'s code, e.g. `totp_enabled`.
    pub change: String,
    /// The sentence the email says it with.
    pub sentence: String,
    pub name: String,
    pub tenant: String,
    /// RFC 3339.
    pub at: String,
}

impl CredentialChanged {
    pub fn to_json(&self) -> serde_json::Value {
        to_json(self)
    }

    pub fn from_json(text: &str) -> Option<Self> {
        from_json(text)
    }
}
