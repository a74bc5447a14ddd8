//! Email: the SMTP transport ([`Mailer`]) and the messages Vantus sends ([`lead`], and
//! [`account`] for staff about their own account).
//!
//! Nothing here is sent directly by a request handler: messages go through the outbox
//! (`crate::outbox`), whose worker calls [`Mailer::send`]. So a mail server that is down
//! delays a notification, and never loses a lead or fails a form.
//!
//! Headers are only ever built from lettre's typed headers and parsed [`Mailbox`]es: lettre
//! encodes any control character in a header value (RFC 2047), so a visitor's text cannot add
//! a header line, whatever it contains.
//!
//! TLS is rustls with the process-wide `ring` provider and the system's CA certificates; no
//! OpenSSL is linked.

pub mod account;
pub mod address;
pub mod credential;
pub mod lead;

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpConfig, SmtpTls};

/// Longest wait for one SMTP command's answer (connect, greeting, each command).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the transport cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("SMTP settings cannot be used: {0}")]
pub struct TransportError(String);

/// A failed send, phrased without the message's content or addresses (it ends up in
/// `outbox.last_error` and in logs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(String);

/// A configured SMTP submission client. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl Mailer {
    pub fn new(smtp: &SmtpConfig, from: Mailbox) -> Result<Self, TransportError> {
        let tls_params =
            || TlsParameters::new(smtp.host.clone()).map_err(|e| TransportError(e.to_string()));
        let tls = match smtp.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            server: smtp.describe(),
        })
    }

    /// The sender of every message.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// `host:port (tls)`, for logs.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Connects, greets and says goodbye without sending anything: whether the server is
    /// reachable and speaks SMTP (with TLS, as configured). For doctor.
    pub async fn test_connection(&self) -> Result<(), SendError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SendError(
                "the SMTP server did not accept a NOOP".to_owned(),
            )),
            Err(e) => Err(SendError(describe_smtp_error(&e))),
        }
    }

    /// Submits one message. The SMTP server's reply text is not kept (it may quote an
    /// address); its code is.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(SendError(describe_smtp_error(&e))),
        }
    }
}

/// What went wrong, without the server's free text.
fn describe_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        let kind = if e.is_permanent() {
            "permanent"
        } else {
            "temporary"
        };
        return format!("the SMTP server refused the message ({kind} error {code})");
    }
    if e.is_response() {
        return "the SMTP server sent an answer that cannot be read".to_owned();
    }
    if e.is_timeout() {
        return "the SMTP server did not answer in time".to_owned();
    }
    if e.is_tls() {
        return format!("TLS with the SMTP server failed: {}", error_chain(e));
    }
    // Connection and protocol errors: their sources (io errors) carry no message content.
    format!("cannot reach the SMTP server: {}", error_chain(e))
}

/// An error and its sources on one line, each said once.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Parses a comma-separated list of addresses (an outbox row's destination) into mailboxes.
pub fn parse_recipients(list: &str) -> Result<Vec<Mailbox>, String> {
    let recipients = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Mailbox>()
                .map_err(|_| "a recipient is not a valid address".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if recipients.is_empty() {
        return Err("the message has no recipients".to_owned());
    }
    Ok(recipients)
}
