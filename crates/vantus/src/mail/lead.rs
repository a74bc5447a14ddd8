//! The new-lead notification: a plain-text and an HTML part from the same values, the HTML one
//! escaped by askama (`templates/mail/`), headers only from typed values.

use askama::Template;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

/// What the notification says, borrowed from the outbox payload.
pub struct LeadNotice<'a> {
    pub lead_id: String,
    pub tenant: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub company: Option<&'a str>,
    pub role: Option<&'a str>,
    pub budget: &'a str,
    pub website: Option<&'a str>,
    pub message: &'a str,
    pub source: &'a str,
    /// When the lead arrived, as written in the payload (RFC 3339).
    pub received: &'a str,
}

/// Where the message goes and the identity it carries.
pub struct Envelope<'a> {
    pub from: &'a Mailbox,
    pub to: &'a [Mailbox],
    /// The outbox row's stable id (`msg_…`): the same on every retry, so the `Message-ID`
    /// lets a mail client drop a duplicate.
    pub message_id: &'a str,
    /// The domain after `@` in the `Message-ID` (the public URL's host).
    pub host: &'a str,
}

#[derive(Template)]
#[template(path = "mail/lead_created.txt")]
struct TextPart<'a> {
    n: &'a LeadNotice<'a>,
    message_id: &'a str,
}

#[derive(Template)]
#[template(path = "mail/lead_created.html")]
struct HtmlPart<'a> {
    n: &'a LeadNotice<'a>,
    message_id: &'a str,
}

/// Why a notification cannot be built. Permanent: retrying would not change it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the notification cannot be rendered: {0}")]
    Render(#[from] askama::Error),
    #[error("the notification cannot be assembled: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("the message id is not of the form msg_<hex>")]
    MessageId,
}

/// The notification as a complete message.
pub fn notification(
    envelope: &Envelope<'_>,
    notice: &LeadNotice<'_>,
) -> Result<Message, BuildError> {
    let mut builder = headers(envelope, subject(notice))?;
    let text = TextPart {
        n: notice,
        message_id: envelope.message_id,
    }
    .render()?;
    let html = HtmlPart {
        n: notice,
        message_id: envelope.message_id,
    }
    .render()?;
    // The lead's own address (the form checked it); a reply goes straight to them. Their name
    // travels as a display name, which lettre encodes.
    if let Ok(address) = notice.email.parse::<lettre::Address>() {
        builder = builder.reply_to(Mailbox::new(Some(one_line(notice.name, 100)), address));
    }
    Ok(builder.multipart(MultiPart::alternative_plain_html(text, html))?)
}

/// A message's headers from typed values: sender, recipients, `subject`, the stable
/// `Message-ID` of its outbox row, and the user agent. Every email Vantus sends starts here.
pub(crate) fn headers(
    envelope: &Envelope<'_>,
    subject: String,
) -> Result<lettre::message::MessageBuilder, BuildError> {
    if !is_message_id(envelope.message_id) {
        return Err(BuildError::MessageId);
    }
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .subject(subject)
        .message_id(Some(format!(
            "<{}@{}>",
            envelope.message_id,
            message_id_domain(envelope.host)
        )))
        .user_agent(format!("vantus/{}", crate::build::VERSION));
    for to in envelope.to {
        builder = builder.to(to.clone());
    }
    Ok(builder)
}

/// `New lead: <name> (<company>)`, on one line and of bounded length.
pub fn subject(notice: &LeadNotice<'_>) -> String {
    let name = one_line(notice.name, 80);
    match notice
        .company
        .map(|c| one_line(c, 60))
        .filter(|c| !c.is_empty())
    {
        Some(company) => format!("New lead: {name} ({company})"),
        None => format!("New lead: {name}"),
    }
}

/// `s` with every control character (CR and LF included) a space, runs of space one, and at
/// most `max` characters. lettre would encode control characters safely anyway; a subject
/// line is simply easier to read without them.
pub(super) fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut count = 0;
    let mut space = false;
    for c in s.trim().chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == max {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// `msg_` followed by lowercase hex: what `outbox::enqueue` writes.
fn is_message_id(id: &str) -> bool {
    id.strip_prefix("msg_")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The host as the right side of a `Message-ID`: a name or IPv4 address as it is, an IPv6
/// address as a literal in brackets, anything odd replaced by `vantus.invalid`.
fn message_id_domain(host: &str) -> String {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
        && inner.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return host.to_owned();
    }
    if ok(host) {
        host.to_ascii_lowercase()
    } else {
        "vantus.invalid".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice<'a>(name: &'a str, message: &'a str) -> LeadNotice<'a> {
        LeadNotice {
            lead_id: "0190".into(),
            tenant: "Acme",
            name,
            email: "ada@example.com",
            company: Some("Analytical <Engines>"),
            role: None,
            budget: "€25k–50k",
            website: None,
            message,
            source: "form",
            received: "2026-11-26T09:30:00Z",
        }
    }

    fn render(n: &LeadNotice<'_>) -> String {
        let from: Mailbox = "Vantus <noreply@vantus.test>".parse().unwrap();
        let to = vec!["sales@vantus.test".parse().unwrap()];
        let m = notification(
            &Envelope {
                from: &from,
                to: &to,
                message_id: "msg_0123abcd",
                host: "vantus.test",
            },
            n,
        )
        .unwrap();
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn a_name_with_line_breaks_never_becomes_a_header() {
        let raw = render(&notice("Eve\r\nBcc: victim@example.com\r\nX-Evil: 1", "hi"));
        // Unfolded, as a mail client reads them.
        let headers = raw.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
        for line in headers.lines() {
            assert!(
                !line.starts_with("Bcc:") && !line.starts_with("X-Evil:"),
                "injected header: {headers}"
            );
        }
        assert!(
            headers.contains(
                "Subject: New lead: Eve Bcc: victim@example.com X-Evil: 1 (Analytical <Engines>)"
            ),
            "{headers}"
        );
        assert!(
            headers.contains("Message-ID: <msg_0123abcd@vantus.test>"),
            "{headers}"
        );
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let n = notice("Ada", "<script>alert(1)</script>");
        let from: Mailbox = "noreply@vantus.test".parse().unwrap();
        let to = vec!["sales@vantus.test".parse().unwrap()];
        let _ = Envelope {
            from: &from,
            to: &to,
            message_id: "msg_1",
            host: "h",
        };
        let html = HtmlPart {
            n: &n,
            message_id: "msg_1",
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("Analytical &#60;Engines&#62;")
                || html.contains("Analytical &lt;Engines&gt;"),
            "{html}"
        );
        let text = TextPart {
            n: &n,
            message_id: "msg_1",
        }
        .render()
        .unwrap();
        assert!(text.contains("<script>alert(1)</script>"), "{text}");
    }

    #[test]
    fn subjects_are_one_bounded_line() {
        assert_eq!(
            subject(&notice("  Ada \t Lovelace ", "")),
            "New lead: Ada Lovelace (Analytical <Engines>)"
        );
        let long = "x".repeat(500);
        assert!(subject(&notice(&long, "")).chars().count() < 160);
    }

    #[test]
    fn message_id_domains() {
        assert_eq!(
            message_id_domain("Vantus.Example.com"),
            "vantus.example.com"
        );
        assert_eq!(message_id_domain("127.0.0.1"), "127.0.0.1");
        assert_eq!(message_id_domain("[::1]"), "[::1]");
        assert_eq!(message_id_domain("a b>"), "vantus.invalid");
        assert!(is_message_id("msg_0190ab"));
        assert!(!is_message_id("msg_>x"));
        assert!(!is_message_id("0190"));
    }
}
