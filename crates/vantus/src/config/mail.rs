//! Notifications leaving the process: email over SMTP, signed webhooks, and the outbox worker
//! that delivers both (attempts, backoff, leases).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::message::Mailbox;
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::source::Source;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or private network.
    None,
    /// STARTTLS, required: the message is never sent if the upgrade fails.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "tls",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        }
    }
}

/// Where and how mail is submitted.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SmtpConfig {
    /// `host:port (tls)`, for logs and doctor: no credentials.
    pub fn describe(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.tls.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `None`: no SMTP configured; email messages wait in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// The sender of every message (`SMTP_FROM`); always set when `smtp` is.
    pub from: Option<Mailbox>,
}

impl MailConfig {
    /// True when email can be sent.
    pub fn is_configured(&self) -> bool {
        self.smtp.is_some() && self.from.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Endpoints told about each new lead.
    pub urls: Vec<Url>,
    /// The Standard Webhooks signing secret (`whsec_<base64>`); set whenever `urls` is not
    /// empty.
    pub secret: Option<SecretString>,
}

/// How the outbox worker retries.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// A message that failed this many times is dead-lettered.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further failure...
    pub retry_base: Duration,
    /// ...up to this (before jitter).
    pub retry_max: Duration,
    /// How long a worker owns the messages it claimed; another replica may take them after.
    pub lease: Duration,
}

/// The shortest lease: it must outlast the longest delivery (see `outbox::worker`).
pub const MIN_OUTBOX_LEASE: Duration = Duration::from_secs(30);

impl MailConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        let url = src.optional("SMTP_URL", parse_smtp_url);
        // SMTP_TLS belongs to the SMTP_HOST form; SMTP_URL says the same in its scheme.
        let tls_given = src.raw("SMTP_TLS").is_some();
        let tls = src.choice(
            "SMTP_TLS",
            &[
                ("starttls", SmtpTls::StartTls),
                ("tls", SmtpTls::Implicit),
                ("smtps", SmtpTls::Implicit),
                ("none", SmtpTls::None),
            ],
            "a TLS mode",
            "starttls, tls or none",
        );
        let host = src.optional("SMTP_HOST", |raw| {
            let host = raw.trim();
            if host.is_empty() || host.contains(|c: char| c.is_whitespace() || "/@:?#".contains(c)) {
                return Err(format!(
                    "\"{raw}\" is not a host name such as smtp.example.com (put a port in SMTP_PORT)"
                ));
            }
            Ok(host.to_owned())
        });
        let port = src.optional("SMTP_PORT", |raw| {
            raw.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("\"{raw}\" is not a port number (1 to 65535)"))
        });
        let username = src.raw("SMTP_USERNAME");
        let password = src.raw("SMTP_PASSWORD").map(SecretString::from);
        let from = src.optional("SMTP_FROM", |raw| {
            raw.trim().parse::<Mailbox>().map_err(|_| {
                format!(
                    "\"{raw}\" is not a mailbox such as \"Vantus <noreply@example.com>\" or noreply@example.com"
                )
            })
        });

        let smtp = match (url, host) {
            (Some(_), Some(_)) => {
                src.problem(
                    "SMTP_HOST",
                    "is set as well as SMTP_URL: use one of them (SMTP_URL carries host, port, TLS and credentials)",
                );
                None
            }
            (Some(url), None) => {
                for (setting, given) in [
                    ("SMTP_PORT", port.is_some()),
                    ("SMTP_TLS", tls_given),
                    ("SMTP_USERNAME", username.is_some()),
                    ("SMTP_PASSWORD", password.is_some()),
                ] {
                    if given {
                        src.problem(
                            setting,
                            "is set as well as SMTP_URL, which already says it: use one form",
                        );
                    }
                }
                Some(url)
            }
            (None, Some(host)) => match (username, password) {
                (Some(_), None) => {
                    src.problem("SMTP_PASSWORD", "is required when SMTP_USERNAME is set");
                    None
                }
                (None, Some(_)) => {
                    src.problem("SMTP_USERNAME", "is required when SMTP_PASSWORD is set");
                    None
                }
                (username, password) => Some(SmtpConfig {
                    port: port.unwrap_or(tls.default_port()),
                    host,
                    tls,
                    username,
                    password,
                }),
            },
            (None, None) => {
                let parts = port.is_some() || tls_given || username.is_some() || password.is_some();
                if parts && !src.is_broken("SMTP_URL") && !src.is_broken("SMTP_HOST") {
                    src.problem(
                        "SMTP_HOST",
                        "is required when SMTP_PORT, SMTP_TLS, SMTP_USERNAME or SMTP_PASSWORD is set (or use SMTP_URL alone)",
                    );
                }
                None
            }
        };
        // Asked for, even if broken: the sender is needed too (one problem per setting).
        let smtp_wanted =
            smtp.is_some() || src.is_broken("SMTP_URL") || src.raw("SMTP_HOST").is_some();
        if smtp_wanted && from.is_none() && !src.is_broken("SMTP_FROM") {
            src.problem(
                "SMTP_FROM",
                "is required when SMTP_URL or SMTP_HOST is set: the sender of notifications, e.g. \"Vantus <noreply@example.com>\"",
            );
        }
        Self { smtp, from }
    }
}

/// `smtp://[user:pass@]host[:port][?tls=required]` or `smtps://…`. Errors never quote the
/// value: it may carry a password.
fn parse_smtp_url(raw: &str) -> Result<SmtpConfig, String> {
    let url = Url::parse(raw.trim()).map_err(|_| {
        "is not a URL such as smtp://user:password@smtp.example.com:587?tls=required".to_owned()
    })?;
    let mode = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let tls = match (url.scheme(), mode.as_deref()) {
        ("smtp", None) => SmtpTls::None,
        ("smtp", Some("required" | "starttls")) => SmtpTls::StartTls,
        ("smtp", Some("opportunistic")) => {
            return Err("tls=opportunistic can be silently downgraded to plain text by anyone on the path; use tls=required (STARTTLS) or smtps://".into());
        }
        ("smtp", Some(_)) => {
            return Err("has an unknown tls= mode; use tls=required (STARTTLS)".into());
        }
        ("smtps", None) => SmtpTls::Implicit,
        ("smtps", Some(_)) => {
            return Err("smtps:// is TLS already; drop the tls= parameter".into());
        }
        _ => return Err("must start with smtp:// or smtps://".into()),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "names no host, e.g. smtp://smtp.example.com:587".to_owned())?
        .to_owned();
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "has a user name or password that is not UTF-8 once decoded".to_owned())
    };
    let (username, password) = match (url.username(), url.password()) {
        ("", None) => (None, None),
        (user, Some(pass)) if !user.is_empty() => {
            (Some(decode(user)?), Some(SecretString::from(decode(pass)?)))
        }
        _ => return Err("needs both a user name and a password, or neither".into()),
    };
    Ok(SmtpConfig {
        port: url.port().unwrap_or(tls.default_port()),
        host,
        tls,
        username,
        password,
    })
}

impl WebhookConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        let urls = src.list("VANTUS_WEBHOOK_URLS", parse_webhook_url);
        let secret = src.optional("VANTUS_WEBHOOK_SECRET", |raw| {
            webhook_secret_bytes(raw)?;
            Ok(SecretString::from(raw.trim().to_owned()))
        });
        if !urls.is_empty() && secret.is_none() && !src.is_broken("VANTUS_WEBHOOK_SECRET") {
            src.problem(
                "VANTUS_WEBHOOK_SECRET",
                "is required when VANTUS_WEBHOOK_URLS is set: receivers verify each call with it (whsec_ followed by base64 of 24 to 64 random bytes, e.g. `echo whsec_$(openssl rand -base64 32)`)",
            );
        }
        Self { urls, secret }
    }

    /// The key bytes of the signing secret, if one is configured.
    pub fn secret_bytes(&self) -> Option<Vec<u8>> {
        self.secret
            .as_ref()
            .and_then(|s| webhook_secret_bytes(s.expose_secret()).ok())
    }
}

fn parse_webhook_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("\"{raw}\" is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("\"{raw}\" must start with https:// or http://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("\"{raw}\" names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo it: it holds a credential. It would also be copied into every outbox row
        // and backup; the signature is how a receiver knows the call is ours.
        return Err(
            "a webhook URL must not contain a user name or password; receivers verify the signature instead"
                .into(),
        );
    }
    Ok(url)
}

/// Decodes `whsec_<base64>` to the HMAC key. Errors never quote the value.
pub fn webhook_secret_bytes(raw: &str) -> Result<Vec<u8>, String> {
    let encoded = raw.trim().strip_prefix("whsec_").ok_or_else(|| {
        "must start with whsec_ (the Standard Webhooks form: whsec_ followed by base64)".to_owned()
    })?;
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| "is not whsec_ followed by valid base64".to_owned())?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!(
            "decodes to {} bytes; use 24 to 64 random bytes, e.g. `echo whsec_$(openssl rand -base64 32)`",
            bytes.len()
        ));
    }
    Ok(bytes)
}

impl OutboxConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        let max_attempts = src.number("VANTUS_OUTBOX_MAX_ATTEMPTS", 1, 100) as u32;
        let retry_base = src.duration("VANTUS_OUTBOX_RETRY_BASE");
        let mut retry_max = src.duration("VANTUS_OUTBOX_RETRY_MAX");
        if retry_max < retry_base
            && !src.is_broken("VANTUS_OUTBOX_RETRY_BASE")
            && !src.is_broken("VANTUS_OUTBOX_RETRY_MAX")
        {
            src.problem(
                "VANTUS_OUTBOX_RETRY_MAX",
                format!(
                    "is shorter than VANTUS_OUTBOX_RETRY_BASE ({}): it caps the growing wait, so it must be at least the first one",
                    humantime::format_duration(retry_base)
                ),
            );
            retry_max = retry_base;
        }
        let lease = src.or_default("VANTUS_OUTBOX_LEASE", |raw| {
            let d = humantime::parse_duration(raw.trim())
                .map_err(|_| format!("\"{raw}\" is not a duration such as 60s or 2m"))?;
            if d < MIN_OUTBOX_LEASE || d > Duration::from_secs(24 * 3600) {
                return Err(format!(
                    "\"{raw}\" must be between {}s (longer than one delivery may take) and a day",
                    MIN_OUTBOX_LEASE.as_secs()
                ));
            }
            Ok(d)
        });
        Self {
            max_attempts,
            retry_base,
            retry_max,
            lease,
        }
    }
}
