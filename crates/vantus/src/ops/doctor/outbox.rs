//! Notifications: whether email can be sent (and the SMTP server answers), the webhook
//! settings, and whether the outbox keeps up (its oldest waiting message, its dead letters).

use std::time::Duration;

use super::{Doctor, ENV, Finding, Severity, database};
use crate::mail::Mailer;
use crate::outbox;
use crate::store::Db;

/// A message waiting longer than this is a delayed notification...
pub const BACKLOG_HIGH: Duration = Duration::from_secs(15 * 60);
/// ...and longer than this, a lead nobody has heard of for an hour.
pub const BACKLOG_CRITICAL: Duration = Duration::from_secs(3600);

const MAIL_SETTINGS: &[&str] = &[
    ENV,
    "SMTP_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_TLS",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_FROM",
];

/// The mail transport: configured, and answering.
pub(super) async fn mail(d: &mut Doctor<'_>) {
    if !d.can_run("mail", MAIL_SETTINGS) {
        return;
    }
    let mail = &d.config.mail;
    let (Some(smtp), Some(from)) = (&mail.smtp, &mail.from) else {
        let severity = if d.production() {
            Severity::High
        } else {
            Severity::Medium
        };
        d.push(
            Finding::new("mail", severity, "no SMTP server is configured (SMTP_URL or SMTP_HOST unset)")
                .impact("Every new lead queues an email notification; without SMTP they wait in the outbox and nobody is told about the lead.")
                .fix("Set SMTP_URL (e.g. smtp://user:pass@smtp.example.com:587?tls=required) and SMTP_FROM; queued emails go out once it is set."),
        );
        return;
    };
    let finding = match Mailer::new(smtp, from.clone()) {
        Err(e) => Finding::critical("mail", e.to_string())
            .impact("Lead notifications cannot be sent.")
            .fix("Correct the SMTP settings."),
        Ok(mailer) => match tokio::time::timeout(Duration::from_secs(15), mailer.test_connection()).await {
            Ok(Ok(())) => Finding::ok("mail", format!("SMTP server {} answers", smtp.describe())),
            Ok(Err(e)) => Finding::high("mail", format!("SMTP server {}: {e}", smtp.describe()))
                .impact("Lead notifications wait in the outbox and are retried until the server answers.")
                .fix("Check SMTP_URL/SMTP_HOST, the credentials, TLS mode and that the server is reachable from here."),
            Err(_) => Finding::high("mail", format!("SMTP server {}: no answer within 15 s", smtp.describe()))
                .impact("Lead notifications wait in the outbox and are retried until the server answers.")
                .fix("Check the host, port and firewall."),
        },
    };
    d.push(finding);
}

/// The webhook settings (the endpoints are not called: a test call would be an event).
pub(super) fn webhooks(d: &mut Doctor<'_>) {
    let hooks = &d.config.webhooks;
    if hooks.urls.is_empty()
        || !d.can_run(
            "webhooks",
            &["VANTUS_WEBHOOK_URLS", "VANTUS_WEBHOOK_SECRET"],
        )
    {
        return;
    }
    let plain = hooks.urls.iter().filter(|u| u.scheme() == "http").count();
    let finding = if plain > 0 && d.production() {
        Finding::medium("webhooks", format!("{plain} of {} webhook endpoint(s) use plain http://", hooks.urls.len()))
            .impact("Lead details cross the network unencrypted (the signature protects integrity, not secrecy).")
            .fix("Use https:// endpoints in VANTUS_WEBHOOK_URLS.")
    } else {
        Finding::ok(
            "webhooks",
            format!("{} signed webhook endpoint(s)", hooks.urls.len()),
        )
    };
    d.push(finding);
}

/// Whether the outbox keeps up: its oldest waiting message and its dead letters.
pub(super) async fn backlog(d: &mut Doctor<'_>, db: &Db) {
    if !d.can_run("outbox", database::NEEDS) {
        return;
    }
    let read = with_conn!(db, conn => {
        let age = outbox::oldest_pending_age(conn).await?;
        let dead = outbox::dead_count(conn).await?;
        Ok::<_, sqlx::Error>((age, dead))
    });
    let (age, dead) = match read {
        Ok(read) => read,
        Err(e) => {
            d.push(
                Finding::high("outbox", format!("cannot read the outbox: {e}"))
                    .impact("Whether notifications go out is unknown.")
                    .fix("Run `vantus migrate`, then `vantus outbox status`."),
            );
            return;
        }
    };
    let minutes = |a: Duration| a.as_secs() / 60;
    let finding = match age {
        None => Finding::ok("outbox", "no notification is waiting"),
        Some(a) if a > BACKLOG_CRITICAL => Finding::critical("outbox", format!("the oldest waiting notification is {} min old", minutes(a)))
            .impact("New leads have not been notified for over an hour.")
            .fix("Run `vantus outbox status` for the last error; check the mail and webhook findings and the logs (`outbox delivery failed`)."),
        Some(a) if a > BACKLOG_HIGH => Finding::high("outbox", format!("the oldest waiting notification is {} min old", minutes(a)))
            .impact("Lead notifications are delayed.")
            .fix("Run `vantus outbox status` for the last error; check the mail and webhook findings."),
        Some(a) => Finding::ok("outbox", format!("the oldest waiting notification is {} s old", a.as_secs())),
    };
    d.push(finding);
    let finding = if dead > 0 {
        Finding::high("outbox-dead", format!("{dead} notification(s) dead-lettered"))
            .impact("They will not be retried: someone was never told about a lead.")
            .fix("Find the cause with `vantus outbox status`, fix it, then `vantus outbox retry --dead`.")
    } else {
        Finding::ok("outbox-dead", "no dead-lettered notification")
    };
    d.push(finding);
}
