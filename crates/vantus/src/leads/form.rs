//! The contact form's fields, parsed into a [`ValidLead`] or a [`FieldErrors`] map.
//!
//! Parse, don't validate: the only way to get a [`ValidLead`] (and so to store a lead) is
//! [`ContactForm::parse`], and its fields are types ([`Email`], [`PersonName`], [`Budget`])
//! that cannot hold a value the rules refuse. The same rules serve the HTML form (errors shown
//! beside each field) and the JSON API (a 422 with the same map).
//!
//! Every text is Unicode-normalised (NFC), trimmed, and bounded in characters; control
//! characters are refused (the message may hold line breaks and tabs, normalised to `\n`);
//! single-line fields refuse line breaks, so no value can smuggle a header into an email.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

pub use crate::mail::address::Email;

/// What the visitor sent, as sent. Every field is optional here so that a missing one is
/// reported by name like any other mistake.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactForm {
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub role: Option<String>,
    pub budget: Option<String>,
    pub website: Option<String>,
    pub message: Option<String>,
    /// The privacy-policy checkbox: `on` from a browser, `true`/`yes` from an API client.
    pub consent: Option<String>,
}

/// Field name → what is wrong with it, in the form's order of fields (a `BTreeMap` keeps the
/// JSON stable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors(pub BTreeMap<&'static str, String>);

impl FieldErrors {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A lead that passed every rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidLead {
    pub name: PersonName,
    pub email: Email,
    pub company: Option<String>,
    pub role: Option<String>,
    pub budget: Budget,
    pub website: Option<String>,
    pub message: String,
}

/// Limits, in characters (not bytes), so every script gets the same room.
pub mod limits {
    pub const NAME: usize = 100;
    pub const EMAIL: usize = crate::mail::address::Email::MAX_LEN;
    pub const COMPANY: usize = 120;
    pub const ROLE: usize = 120;
    pub const WEBSITE: usize = 200;
    pub const MESSAGE_MIN: usize = 10;
    pub const MESSAGE: usize = 5000;
}

/// A person's name as they wrote it: one line, 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The budget ranges the form offers; anything else is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    NotSure,
    Under10k,
    From10kTo25k,
    From25kTo50k,
    From50kTo100k,
    Over100k,
}

impl Budget {
    pub const ALL: [Budget; 6] = [
        Budget::NotSure,
        Budget::Under10k,
        Budget::From10kTo25k,
        Budget::From25kTo50k,
        Budget::From50kTo100k,
        Budget::Over100k,
    ];

    /// The value sent by the form and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::NotSure => "not-sure",
            Budget::Under10k => "under-10k",
            Budget::From10kTo25k => "10k-25k",
            Budget::From25kTo50k => "25k-50k",
            Budget::From50kTo100k => "50k-100k",
            Budget::Over100k => "over-100k",
        }
    }

    /// What the select shows.
    pub fn label(self) -> &'static str {
        match self {
            Budget::NotSure => "Not sure yet",
            Budget::Under10k => "Under €10,000",
            Budget::From10kTo25k => "€10,000 – €25,000",
            Budget::From25kTo50k => "€25,000 – €50,000",
            Budget::From50kTo100k => "€50,000 – €100,000",
            Budget::Over100k => "Over €100,000",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Budget::ALL.into_iter().find(|b| b.as_str() == raw)
    }
}

/// One line of text or a message: normalised, trimmed, checked for control characters and
/// length. `Ok(None)` when empty.
fn clean(raw: Option<&str>, multiline: bool, max: usize) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let text: String = raw.replace("\r\n", "\n").nfc().collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
    {
        return Err(if matches!(c, '\n' | '\r') {
            "must be on one line".to_owned()
        } else {
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            )
        });
    }
    // Names, companies and roles are plain words: markup in one is an attack, not a name.
    // (The message may quote code; it is stored as text and always escaped when shown.)
    if !multiline && text.contains(['<', '>']) {
        return Err("must not contain < or >".to_owned());
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(format!(
            "must be at most {max} characters (this is {chars})"
        ));
    }
    Ok(Some(text.to_owned()))
}

impl ContactForm {
    /// Applies every rule; all problems are reported at once, one per field.
    pub fn parse(&self) -> Result<ValidLead, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut field = |name: &'static str, raw: &Option<String>, multiline, max| match clean(
            raw.as_deref(),
            multiline,
            max,
        ) {
            Ok(v) => v,
            Err(e) => {
                errors.add(name, e);
                None
            }
        };
        let name = field("name", &self.name, false, limits::NAME);
        let email = field("email", &self.email, false, limits::EMAIL);
        let company = field("company", &self.company, false, limits::COMPANY);
        let role = field("role", &self.role, false, limits::ROLE);
        let budget = field("budget", &self.budget, false, 32);
        let website = field("website", &self.website, false, limits::WEBSITE);
        let message = field("message", &self.message, true, limits::MESSAGE);

        let name = match name {
            Some(n) => Some(PersonName(n)),
            None => {
                errors.add("name", "is required");
                None
            }
        };
        let email = match email.as_deref().map(Email::parse) {
            Some(Ok(e)) => Some(e),
            Some(Err(why)) => {
                errors.add("email", why);
                None
            }
            None => {
                errors.add("email", "is required");
                None
            }
        };
        let budget = match budget.as_deref() {
            None => Some(Budget::NotSure),
            Some(raw) => Budget::parse(raw).or_else(|| {
                errors.add("budget", "must be one of the listed ranges");
                None
            }),
        };
        if let Some(site) = &website {
            let ok = url::Url::parse(site)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                errors.add("website", "must be a web address starting with https://");
            }
        }
        match &message {
            Some(m) if m.chars().count() < limits::MESSAGE_MIN => errors.add(
                "message",
                format!("must be at least {} characters", limits::MESSAGE_MIN),
            ),
            Some(_) => {}
            None => errors.add("message", "is required"),
        }
        let consented = matches!(
            self.consent.as_deref().map(str::trim),
            Some("on" | "true" | "yes" | "1")
        );
        if !consented {
            errors.add("consent", "must be given to send the form");
        }

        match (name, email, budget, message) {
            (Some(name), Some(email), Some(budget), Some(message)) if errors.is_empty() => {
                Ok(ValidLead {
                    name,
                    email,
                    company,
                    role,
                    budget,
                    website,
                    message,
                })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ContactForm {
        ContactForm {
            name: Some("Ada Lovelace".into()),
            email: Some("Ada@Example.COM".into()),
            company: Some("Analytical Engines".into()),
            role: None,
            budget: Some("25k-50k".into()),
            website: Some("https://example.com".into()),
            message: Some("We need an integration that never loses an order.".into()),
            consent: Some("on".into()),
        }
    }

    #[test]
    fn a_valid_form_becomes_a_lead_with_a_normalised_email() {
        let lead = valid().parse().unwrap();
        assert_eq!(lead.email.as_str(), "Ada@example.com");
        assert_eq!(lead.email.domain(), "example.com");
        assert_eq!(lead.budget, Budget::From25kTo50k);
        assert_eq!(lead.role, None);
    }

    #[test]
    fn every_problem_is_reported_by_field_at_once() {
        let form = ContactForm {
            consent: None,
            ..ContactForm::default()
        };
        let errors = form.parse().unwrap_err();
        for field in ["name", "email", "message", "consent"] {
            assert!(errors.get(field).is_some(), "{field}: {errors:?}");
        }
        assert_eq!(errors.get("company"), None, "optional fields may be empty");
    }

    #[test]
    fn text_is_normalised_bounded_and_free_of_control_characters() {
        // "é" as e + combining acute becomes one character (NFC).
        let mut form = valid();
        form.name = Some("Jose\u{301} Núñez".into());
        assert_eq!(form.parse().unwrap().name.as_str(), "Jos\u{e9} Núñez");

        for (field, value, expected) in [
            ("name", "Ada\r\nBcc: victim@example.com", "one line"),
            ("name", "Ada\u{0}", "control characters"),
            ("company", &"x".repeat(121), "at most 120 characters"),
            ("message", "short", "at least 10"),
            ("message", &"m".repeat(5001), "at most 5000"),
            ("email", "ada@example", "email address"),
            ("email", "ada@@example.com", "email address"),
            ("email", "ada@example.com\r\nBcc: x@y.z", "one line"),
            ("budget", "a million", "listed ranges"),
            ("website", "javascript:alert(1)", "https://"),
            ("name", "<script>alert(1)</script>", "< or >"),
            ("company", "Acme <b>", "< or >"),
        ] {
            let mut form = valid();
            let slot = match field {
                "name" => &mut form.name,
                "company" => &mut form.company,
                "message" => &mut form.message,
                "email" => &mut form.email,
                "budget" => &mut form.budget,
                _ => &mut form.website,
            };
            *slot = Some(value.to_owned());
            let errors = form.parse().unwrap_err();
            let message = errors
                .get(field)
                .unwrap_or_else(|| panic!("{field}={value:?} accepted"));
            assert!(message.contains(expected), "{field}: {message}");
        }
        // The message may quote markup: it is text, escaped wherever it is shown.
        let mut form = valid();
        form.message = Some("Our page shows <script> tags as text".into());
        assert!(form.parse().is_ok());
        // Line breaks and tabs are fine in the message, CRLF becomes LF.
        let mut form = valid();
        form.message = Some("Line one\r\n\tLine two, indented".into());
        assert_eq!(
            form.parse().unwrap().message,
            "Line one\n\tLine two, indented"
        );
    }
}
