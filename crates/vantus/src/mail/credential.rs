//! The email telling a staff member that their own credentials changed (password, TOTP,
//! recovery codes): plain text, from typed values, with no secret and no code in it.

use askama::Template;
use lettre::Message;
use lettre::message::header::ContentType;

use super::lead::{BuildError, Envelope, headers};

/// What the email says.
pub struct CredentialNotice<'a> {
    pub name: &'a str,
    pub tenant: &'a str,
    /// One sentence saying what changed.
    pub sentence: &'a str,
    /// When, RFC 3339.
    pub at: &'a str,
}

#[derive(Template)]
#[template(path = "mail/credential_changed.txt")]
struct TextPart<'a> {
    n: &'a CredentialNotice<'a>,
    message_id: &'a str,
}

pub const SUBJECT: &str = "Your Vantus sign-in settings changed";

/// The email as a complete message.
pub fn notice(envelope: &Envelope<'_>, n: &CredentialNotice<'_>) -> Result<Message, BuildError> {
    let builder = headers(envelope, SUBJECT.to_owned())?;
    let text = TextPart {
        n,
        message_id: envelope.message_id,
    }
    .render()?;
    Ok(builder.header(ContentType::TEXT_PLAIN).body(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_says_what_changed_and_when() {
        let from: lettre::message::Mailbox = "Vantus <noreply@example.com>".parse().unwrap();
        let to = ["ada@example.com".parse().unwrap()];
        let envelope = Envelope {
            from: &from,
            to: &to,
            message_id: "msg_0123abcd",
            host: "vantus.example.com",
        };
        let n = CredentialNotice {
            name: "Ada Lovelace",
            tenant: "Vantus Systems",
            sentence: "Two-factor sign-in with an authenticator app was turned on.",
            at: "2026-12-01T19:00:00Z",
        };
        let message = notice(&envelope, &n).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Subject: Your Vantus sign-in settings changed"),
            "{text}"
        );
        assert!(
            text.contains("was turned on.") && text.contains("2026-12-01T19:00:00Z"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <msg_0123abcd@vantus.example.com>"),
            "{text}"
        );
    }
}
