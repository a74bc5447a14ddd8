//! Emails to staff about their own account: an invitation, a password-reset link, "your
//! password was reset". One plain-text and one HTML template (`templates/mail/account.*`)
//! render every one of them from an [`AccountNotice`]; the wording is chosen here, per
//! message, from the outbox payload.

use askama::Template;
use lettre::Message;
use lettre::message::MultiPart;

use super::lead::{BuildError, Envelope, headers, one_line};

/// A button (HTML) or a line (text) that opens `url`.
pub struct Link {
    pub label: String,
    pub url: String,
}

/// What an account email says.
pub struct AccountNotice {
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    pub link: Option<Link>,
    pub footer: String,
}

#[derive(Template)]
#[template(path = "mail/account.txt")]
struct TextPart<'a> {
    n: &'a AccountNotice,
    message_id: &'a str,
}

#[derive(Template)]
#[template(path = "mail/account.html")]
struct HtmlPart<'a> {
    n: &'a AccountNotice,
    subject: &'a str,
    message_id: &'a str,
}

/// A date as the payload has it (RFC 3339), as people read it.
fn readable(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").replace('Z', " UTC")
}

const NOT_YOU: &str = "If you did not expect this email, you can ignore it.";

impl AccountNotice {
    /// `role` in `tenant`, from `inviter`; `expires_at` and the other dates are RFC 3339.
    pub fn invitation(
        inviter: &str,
        tenant: &str,
        role: &str,
        expires_at: &str,
        link: &str,
    ) -> Self {
        let inviter = one_line(inviter, 80);
        let tenant = one_line(tenant, 80);
        AccountNotice {
            subject: format!("{inviter} invited you to {tenant}"),
            greeting: "Hello,".into(),
            paragraphs: vec![
                format!("{inviter} invited you to the portal of {tenant}, as {role}."),
                format!("The link below works once, until {}.", readable(expires_at)),
            ],
            link: Some(Link {
                label: "Accept the invitation".into(),
                url: link.to_owned(),
            }),
            footer: NOT_YOU.into(),
        }
    }

    pub fn password_reset_link(name: &str, expires_at: &str, link: &str) -> Self {
        AccountNotice {
            subject: "Choose a new password".into(),
            greeting: format!("Hello {},", one_line(name, 80)),
            paragraphs: vec![
                "Someone (we hope you) asked to reset the password of your portal account.".into(),
                format!(
                    "The link below works once, until {}. Your password stays as it is unless you use it.",
                    readable(expires_at)
                ),
            ],
            link: Some(Link {
                label: "Choose a new password".into(),
                url: link.to_owned(),
            }),
            footer: NOT_YOU.into(),
        }
    }

    pub fn password_was_reset(name: &str, changed_at: &str, sign_in: &str) -> Self {
        AccountNotice {
            subject: "Your password was changed".into(),
            greeting: format!("Hello {},", one_line(name, 80)),
            paragraphs: vec![
                format!(
                    "The password of your portal account was changed through a reset link at {}, and every session was signed out.",
                    readable(changed_at)
                ),
                "If this was not you, tell an owner of your organisation at once: they can disable the account.".into(),
            ],
            link: Some(Link {
                label: "Sign in".into(),
                url: sign_in.to_owned(),
            }),
            footer: "This email is sent for every password reset.".into(),
        }
    }
}

/// The email as a complete message.
pub fn message(envelope: &Envelope<'_>, notice: &AccountNotice) -> Result<Message, BuildError> {
    let builder = headers(envelope, one_line(&notice.subject, 140))?;
    let text = TextPart {
        n: notice,
        message_id: envelope.message_id,
    }
    .render()?;
    let html = HtmlPart {
        n: notice,
        subject: &notice.subject,
        message_id: envelope.message_id,
    }
    .render()?;
    Ok(builder.multipart(MultiPart::alternative_plain_html(text, html))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invitation_carries_its_link_in_both_parts_and_escapes_names_in_html() {
        let n = AccountNotice::invitation(
            "Ada\r\nBcc: x@example.com",
            "Acme <Labs>",
            "editor",
            "2026-12-08T10:00:00Z",
            "https://vantus.test/admin/invitations/abc_DEF-123",
        );
        let from: lettre::message::Mailbox = "noreply@vantus.test".parse().unwrap();
        let to = vec!["grace@example.com".parse().unwrap()];
        let m = message(
            &Envelope {
                from: &from,
                to: &to,
                message_id: "msg_abc1",
                host: "vantus.test",
            },
            &n,
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        let headers = raw.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
        let html = HtmlPart {
            n: &n,
            subject: &n.subject,
            message_id: "msg_abc1",
        }
        .render()
        .unwrap();
        assert!(!html.contains("<Labs>"), "{html}");
        assert!(html.contains("https://vantus.test/admin/invitations/abc_DEF-123"));
        let text = TextPart {
            n: &n,
            message_id: "msg_abc1",
        }
        .render()
        .unwrap();
        assert!(text.contains("https://vantus.test/admin/invitations/abc_DEF-123"));
        assert!(text.contains("as editor"), "{text}");
    }
}
