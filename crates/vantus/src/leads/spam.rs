//! Spam defence that costs a person nothing: no CAPTCHA, no third party.
//!
//! * A **honeypot** field, hidden from people and from assistive technology, that only a bot
//!   fills in.
//! * A **signed form token** (HMAC-SHA256 with the secret key) carrying the time the form was
//!   rendered and a random nonce (the form's idempotency key): a submission faster than a person
//!   can type, or older than a form could sensibly be, is a bot or a replay; a token that does not
//!   verify was forged.
//! * **Heuristics**: too many links in the message, an email domain on the blocked list.
//!
//! A submission caught here is not refused: it gets the normal thank-you page (a bot learns
//! nothing) and is stored as spam, so staff can rescue a false positive.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::form::ValidLead;
use crate::config::LeadsConfig;

/// The form token's wire format: `v1.<issued unix seconds>.<nonce>.<hex HMAC>`.
const VERSION: &str = "v1";

/// A verified form token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormToken {
    pub issued_at: i64,
    /// Unique per rendered form; doubles as the form's idempotency key.
    pub nonce: String,
}

/// Why a token does not count as a person's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Missing,
    /// Not in the format, or the signature does not match: forged or damaged.
    Forged,
    /// Sent sooner after rendering than a person fills a form.
    TooFast,
    /// Older than a form may be kept open.
    Expired,
}

impl TokenProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenProblem::Missing => "token-missing",
            TokenProblem::Forged => "token-forged",
            TokenProblem::TooFast => "too-fast",
            TokenProblem::Expired => "token-expired",
        }
    }
}

/// The MAC over what a token asserts; the prefix keeps it from matching any other use of the
/// secret key.
fn mac(secret: &[u8], issued_at: i64, nonce: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("vantus-form-token:{VERSION}.{issued_at}.{nonce}").as_bytes());
    mac
}

impl FormToken {
    /// A token for a form rendered at `now` (unix seconds).
    pub fn issue(secret: &[u8], now: i64) -> String {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let sig = hex::encode(mac(secret, now, &nonce).finalize().into_bytes());
        format!("{VERSION}.{now}.{nonce}.{sig}")
    }

    /// Checks the signature, then the fill time and age.
    pub fn verify(
        secret: &[u8],
        token: Option<&str>,
        now: i64,
        min_fill_seconds: i64,
        max_age_seconds: i64,
    ) -> Result<FormToken, TokenProblem> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let token = token.ok_or(TokenProblem::Missing)?;
        let mut parts = token.split('.');
        let (Some(VERSION), Some(issued), Some(nonce), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenProblem::Forged);
        };
        let issued_at: i64 = issued.parse().map_err(|_| TokenProblem::Forged)?;
        let valid_nonce = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        let sig = hex::decode(sig).map_err(|_| TokenProblem::Forged)?;
        // verify_slice compares in constant time.
        if !valid_nonce || mac(secret, issued_at, nonce).verify_slice(&sig).is_err() {
            return Err(TokenProblem::Forged);
        }
        let age = now.saturating_sub(issued_at);
        if age < min_fill_seconds {
            return Err(TokenProblem::TooFast);
        }
        if age > max_age_seconds {
            return Err(TokenProblem::Expired);
        }
        Ok(FormToken {
            issued_at,
            nonce: nonce.to_owned(),
        })
    }
}

/// The configurable heuristics, borrowed from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct SpamRules<'a> {
    /// More links than this in the message is spam.
    pub max_links: usize,
    /// Email domains (lowercase) whose submissions are spam.
    pub blocked_domains: &'a [String],
}

impl<'a> SpamRules<'a> {
    /// `VANTUS_SPAM_MAX_LINKS` and `VANTUS_SPAM_BLOCKED_DOMAINS`.
    pub fn of(config: &'a LeadsConfig) -> Self {
        SpamRules {
            max_links: config.max_links,
            blocked_domains: &config.blocked_domains,
        }
    }
}

impl Default for SpamRules<'_> {
    fn default() -> Self {
        SpamRules {
            max_links: 3,
            blocked_domains: &[],
        }
    }
}

/// Counts what a mail client or browser would turn into a link.
fn links_in(text: &str) -> usize {
    let lower = text.to_ascii_lowercase();
    ["http://", "https://", "www.", "[url", "<a "]
        .iter()
        .map(|needle| lower.matches(needle).count())
        .sum::<usize>()
        // "https://www." counts once.
        .saturating_sub(lower.matches("://www.").count())
}

/// Why a submission was stored as spam, if it was.
pub fn spam_reason(
    lead: &ValidLead,
    honeypot: Option<&str>,
    token: Result<&FormToken, TokenProblem>,
    rules: &SpamRules<'_>,
) -> Option<&'static str> {
    if honeypot.is_some_and(|h| !h.trim().is_empty()) {
        return Some("honeypot");
    }
    if let Err(problem) = token {
        return Some(problem.as_str());
    }
    heuristics(lead, rules)
}

/// The heuristics alone, for doors without a honeypot or a form token (the JSON API).
pub fn heuristics(lead: &ValidLead, rules: &SpamRules<'_>) -> Option<&'static str> {
    if links_in(&lead.message) > rules.max_links {
        return Some("too-many-links");
    }
    let domain = lead.email.domain();
    if rules.blocked_domains.iter().any(|b| {
        // The domain itself or any subdomain of it.
        domain
            .strip_suffix(b.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    }) {
        return Some("blocked-domain");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::form::ContactForm;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn lead(message: &str, email: &str) -> ValidLead {
        ContactForm {
            name: Some("Ada".into()),
            email: Some(email.into()),
            message: Some(message.into()),
            consent: Some("on".into()),
            ..ContactForm::default()
        }
        .parse()
        .unwrap()
    }

    #[test]
    fn a_token_verifies_within_its_window_only() {
        let t = FormToken::issue(SECRET, 1_000);
        let ok = FormToken::verify(SECRET, Some(&t), 1_010, 3, 3600).unwrap();
        assert_eq!(ok.issued_at, 1_000);
        assert_eq!(ok.nonce.len(), 32);
        assert_eq!(
            FormToken::verify(SECRET, Some(&t), 1_001, 3, 3600),
            Err(TokenProblem::TooFast)
        );
        assert_eq!(
            FormToken::verify(SECRET, Some(&t), 1_000 + 3601, 3, 3600),
            Err(TokenProblem::Expired)
        );
        assert_eq!(
            FormToken::verify(SECRET, None, 1_010, 3, 3600),
            Err(TokenProblem::Missing)
        );
    }

    #[test]
    fn a_changed_or_foreign_token_is_forged() {
        let t = FormToken::issue(SECRET, 1_000);
        // An older issue time, to get past the minimum fill time, breaks the signature.
        let backdated = t.replacen("v1.1000.", "v1.900.", 1);
        assert_eq!(
            FormToken::verify(SECRET, Some(&backdated), 1_010, 3, 3600),
            Err(TokenProblem::Forged)
        );
        let other_key = FormToken::issue(b"another secret key, also 32 bytes", 1_000);
        assert_eq!(
            FormToken::verify(SECRET, Some(&other_key), 1_010, 3, 3600),
            Err(TokenProblem::Forged)
        );
        for junk in [
            "v1",
            "v1.1000.x.y",
            "v2.1000.abc.def",
            "v1.1000.nonce.zz.extra",
        ] {
            assert_eq!(
                FormToken::verify(SECRET, Some(junk), 1_010, 3, 3600),
                Err(TokenProblem::Forged),
                "{junk}"
            );
        }
    }

    #[test]
    fn heuristics_mark_spam_with_a_reason() {
        let rules = SpamRules {
            max_links: 2,
            blocked_domains: &["spam.example".to_owned()],
        };
        let token = FormToken {
            issued_at: 0,
            nonce: "n".into(),
        };
        let clean = lead(
            "Please look at https://our.example/shop, thanks",
            "a@b.example",
        );
        assert_eq!(spam_reason(&clean, Some(""), Ok(&token), &rules), None);
        assert_eq!(
            spam_reason(&clean, Some("filled by a bot"), Ok(&token), &rules),
            Some("honeypot")
        );
        assert_eq!(
            spam_reason(&clean, None, Err(TokenProblem::TooFast), &rules),
            Some("too-fast")
        );
        let links = lead(
            "http://a.example https://www.b.example www.c.example",
            "a@b.example",
        );
        assert_eq!(
            spam_reason(&links, None, Ok(&token), &rules),
            Some("too-many-links")
        );
        let blocked = lead("A perfectly normal message.", "x@mail.spam.example");
        assert_eq!(
            spam_reason(&blocked, None, Ok(&token), &rules),
            Some("blocked-domain")
        );
        let similar = lead("A perfectly normal message.", "x@notspam.example");
        assert_eq!(spam_reason(&similar, None, Ok(&token), &rules), None);
    }
}
