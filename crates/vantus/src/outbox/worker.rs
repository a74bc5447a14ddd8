//! The outbox worker: claims due messages under a lease, delivers them, records the outcome.
//!
//! Every replica runs one. A worker *claims* up to [`BATCH`] due rows in one statement that
//! sets `locked_by` (this worker) and `locked_until` (now + `VANTUS_OUTBOX_LEASE`), and only
//! takes rows whose lease is free or expired, so two replicas never deliver one row at the
//! same time. On PostgreSQL the inner `SELECT … FOR UPDATE SKIP LOCKED` lets concurrent
//! claims pass each other instead of queueing behind one another's row locks; the outer
//! `WHERE` repeats the lease condition, which PostgreSQL re-checks on the row as it is when
//! the lock is granted. SQLite has one writer at a time (`BEGIN IMMEDIATE`), so the same
//! statement without `SKIP LOCKED` is already exclusive.
//!
//! The claimed rows are delivered concurrently, each bounded by [`DELIVERY_TIMEOUT`], which is
//! shorter than the shortest lease allowed ([`MIN_OUTBOX_LEASE`]): a batch is done before its
//! lease ends. The outcome is written only while the row is still leased to this worker
//! (`… WHERE locked_by = $me`).
//!
//! Delivery is **at least once**, not exactly once: a worker that dies (or loses its database)
//! after sending but before recording leaves the row to be sent again once the lease expires.
//! Each row's `message_id` is stable across attempts and is sent as the email's `Message-ID`
//! and the webhook's `webhook-id`, so a receiver drops a repeat by remembering the ids it has
//! seen. Within one database and healthy workers, each message is delivered once.
//!
//! A failed attempt counts, records a `last_error` (never personal data: no addresses, no
//! content, no URL) and waits `min(RETRY_MAX, RETRY_BASE · 2^(attempts−1))` with full jitter
//! (a uniformly random fraction of that), so replicas that failed together do not retry
//! together. After `VANTUS_OUTBOX_MAX_ATTEMPTS` failures, or at once when retrying cannot
//! help (a payload that cannot be read), the row is `dead` until `vantus outbox retry`.
//!
//! With no SMTP configured, email rows are not claimed at all: they wait, unattempted, and
//! doctor says why. Webhooks are delivered independently of mail, and the other way round.
//!
//! Logs name the outbox row and the lead by id only, never a name, address or message.
//!
//! An invitation's or a password-reset link's payload holds the link's token, which exists
//! nowhere else (its tables keep only a hash): once the email is sent, the payload is blanked.

use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::payload::{
    self, CredentialChanged, Invitation, LeadCreated, PasswordResetLink, PasswordWasReset,
};
use super::{Channel, Topic, webhook};
use crate::config::{Config, MIN_OUTBOX_LEASE, OutboxConfig};
use crate::mail::account::AccountNotice;
use crate::mail::{self, Mailer, account, lead};
use crate::store::{Conn, Db, Timestamp, on_conn};

/// How often a worker looks for due messages when nothing woke it earlier.
pub const POLL: Duration = Duration::from_secs(1);
/// Most messages claimed (and delivered concurrently) at once.
pub const BATCH: i64 = 8;
/// Longest one delivery may take, connection included; below [`MIN_OUTBOX_LEASE`].
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);
const _: () = assert!(DELIVERY_TIMEOUT.as_secs() < MIN_OUTBOX_LEASE.as_secs());
/// How often the worker refreshes the outbox gauges.
const GAUGES_EVERY: Duration = Duration::from_secs(10);
/// `last_error` is kept short: it is for an operator's eye, not a log.
const MAX_ERROR_CHARS: usize = 300;

static WAKE: Notify = Notify::const_new();

/// Wakes this process's workers now instead of at their next poll. Call it after the
/// transaction that enqueued a message has committed (before, the row is not visible yet).
pub fn wake() {
    WAKE.notify_waiters();
}

/// One replica's deliverer.
pub struct Worker {
    db: Db,
    /// Unique per worker, even for two servers in one process: the lease is keyed by it.
    me: String,
    retry: OutboxConfig,
    mailer: Option<Mailer>,
    webhooks: Option<webhook::Sender>,
    /// The right side of each `Message-ID`.
    host: String,
}

/// A row this worker has leased.
struct Claimed {
    id: Uuid,
    channel: String,
    topic: String,
    destination: String,
    lead_id: Option<Uuid>,
    payload: String,
    message_id: String,
    attempts: i64,
    created_at: Timestamp,
}
crate::store::from_row!(Claimed {
    id,
    channel,
    topic,
    destination,
    lead_id,
    payload,
    message_id,
    attempts,
    created_at
});

/// Why one attempt failed.
struct Failure {
    reason: String,
    /// Retrying cannot help: dead-letter now.
    permanent: bool,
}

impl Failure {
    fn retry(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            reason,
            permanent: false,
        }
    }

    fn permanent(reason: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::retry(reason)
        }
    }
}

/// The claim, with `$lock` after the candidates' `LIMIT`: one statement for both engines but
/// for PostgreSQL's `FOR UPDATE SKIP LOCKED` (see the module documentation).
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET locked_by = $1, locked_until = $2, updated_at = $3
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE status = 'pending' AND next_attempt_at <= $3
                   AND (locked_until IS NULL OR locked_until < $3)
                   AND ((channel = 'email' AND $4) OR (channel = 'webhook' AND $5))
                 ORDER BY next_attempt_at LIMIT $6",
            $lock,
            ")
               AND status = 'pending' AND (locked_until IS NULL OR locked_until < $3)
             RETURNING id, channel, topic, destination, lead_id, payload, message_id, attempts,
                       created_at"
        )
    };
}

const CLAIM_SQLITE: &str = claim_sql!("");
const CLAIM_POSTGRES: &str = claim_sql!(" FOR UPDATE SKIP LOCKED");

impl Worker {
    /// A worker for `db` with the mail, webhook and retry settings of `config`. `instance`
    /// names the process (host and pid); a random suffix makes the worker's lease id unique.
    pub fn new(db: Db, config: &Config, instance: &str) -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let me = format!("{instance}/{}", &suffix[..8]);
        let mailer = match (&config.mail.smtp, &config.mail.from) {
            (Some(smtp), Some(from)) => match Mailer::new(smtp, from.clone()) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(error = %e, "email notifications stay queued");
                    None
                }
            },
            _ => None,
        };
        let webhooks =
            config
                .webhooks
                .secret_bytes()
                .and_then(|key| match webhook::Sender::new(key) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "webhook calls stay queued");
                        None
                    }
                });
        Self {
            db,
            me,
            retry: config.outbox.clone(),
            mailer,
            webhooks,
            host: config
                .public_url
                .host_str()
                .unwrap_or("vantus.invalid")
                .to_owned(),
        }
    }

    /// This worker's lease id (`locked_by`).
    pub fn id(&self) -> &str {
        &self.me
    }

    /// Runs the worker until `stop` fires.
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(
            worker = %self.me,
            email = self.mailer.as_ref().map(Mailer::server).unwrap_or("not configured"),
            webhooks = self.webhooks.is_some(),
            "outbox worker started"
        );
        let this = self;
        let mut gauges_due = Instant::now();
        loop {
            if stop.is_cancelled() {
                break;
            }
            if Instant::now() >= gauges_due {
                this.refresh_gauges().await;
                gauges_due = Instant::now() + GAUGES_EVERY;
            }
            let claimed = match this.tick().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(worker = %this.me, error = %e, "cannot claim outbox messages");
                    0
                }
            };
            // A full batch suggests more are due: go again at once.
            if claimed as i64 == BATCH {
                continue;
            }
            let wake = WAKE.notified();
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = wake => {}
                _ = stop.cancelled() => break,
            }
        }
        tracing::info!(worker = %this.me, "outbox worker stopped");
    }

    /// Claims one batch of due messages and delivers it; returns how many were claimed.
    pub async fn tick(&self) -> Result<usize, sqlx::Error> {
        let email = self.mailer.is_some();
        let webhooks = self.webhooks.is_some();
        if !email && !webhooks {
            return Ok(0);
        }
        let now = Timestamp::now();
        let until = now.plus(self.retry.lease);
        let me = self.me.as_str();
        let rows: Vec<Claimed> = in_write_tx!(&self.db, conn => {
            let sql = if matches!(conn, Conn::Postgres(_)) { CLAIM_POSTGRES } else { CLAIM_SQLITE };
            on_conn!(conn.reborrow(), c => sqlx::query_as(sql)
                .bind(me).bind(until).bind(now).bind(email).bind(webhooks).bind(BATCH)
                .fetch_all(c).await)
        })?;
        let n = rows.len();
        futures_util::future::join_all(rows.iter().map(|row| self.process(row))).await;
        Ok(n)
    }

    /// Delivers one claimed row and records what happened.
    async fn process(&self, row: &Claimed) {
        let channel = row.channel.as_str();
        let outcome = match tokio::time::timeout(DELIVERY_TIMEOUT, self.deliver(row)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::retry(format!(
                "no delivery within {} s",
                DELIVERY_TIMEOUT.as_secs()
            ))),
        };
        let lead_id = row.lead_id.map(|id| id.to_string());
        let lead_id = lead_id.as_deref().unwrap_or("");
        match outcome {
            Ok(()) => match self.record_sent(row.id).await {
                Ok(true) => {
                    count(channel, "sent");
                    tracing::info!(outbox_id = %row.id, lead_id, channel, "outbox message delivered");
                }
                Ok(false) => {
                    count(channel, "sent");
                    tracing::warn!(outbox_id = %row.id, lead_id, channel,
                        "outbox message delivered after its lease expired; another worker may deliver it again (receivers deduplicate by message id)");
                }
                Err(e) => tracing::warn!(outbox_id = %row.id, lead_id, channel, error = %e,
                    "outbox message delivered but not recorded; it will be delivered again"),
            },
            Err(failure) => {
                let reason = truncate(&failure.reason, MAX_ERROR_CHARS);
                let attempts = u32::try_from(row.attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                let wait = backoff(&self.retry, attempts, random_fraction());
                match self
                    .record_failure(
                        row.id,
                        &reason,
                        Timestamp::now().plus(wait),
                        failure.permanent,
                    )
                    .await
                {
                    Ok(Some(dead)) if dead => {
                        count(channel, "dead");
                        tracing::error!(outbox_id = %row.id, lead_id, channel, attempts, error = %reason,
                            "outbox message dead-lettered; `vantus outbox retry` requeues it");
                    }
                    Ok(Some(_)) => {
                        count(channel, "failed");
                        tracing::warn!(outbox_id = %row.id, lead_id, channel, attempts, error = %reason,
                            retry_in_s = wait.as_secs(), "outbox delivery failed; will retry");
                    }
                    Ok(None) => {
                        tracing::warn!(outbox_id = %row.id, lead_id, channel, error = %reason,
                        "outbox delivery failed after its lease expired; another worker has it")
                    }
                    Err(e) => tracing::warn!(outbox_id = %row.id, lead_id, channel, error = %e,
                        "cannot record an outbox failure; the lease expiry frees the message"),
                }
            }
        }
    }

    async fn deliver(&self, row: &Claimed) -> Result<(), Failure> {
        let Some(topic) = Topic::parse(&row.topic) else {
            return Err(Failure::permanent(format!(
                "unknown topic {:?}",
                truncate(&row.topic, 40)
            )));
        };
        match Channel::parse(&row.channel) {
            Some(Channel::Email) => self.email(row, topic).await,
            Some(Channel::Webhook) => self.webhook(row, topic).await,
            None => Err(Failure::permanent("unknown channel")),
        }
    }

    async fn email(&self, row: &Claimed, topic: Topic) -> Result<(), Failure> {
        let Some(mailer) = &self.mailer else {
            return Err(Failure::retry("SMTP is not configured"));
        };
        let message = match topic {
            Topic::LeadCreated => {
                let payload = LeadCreated::from_json(&row.payload).ok_or_else(|| {
                    Failure::permanent("the payload is not a lead.created payload")
                })?;
                let to = mail::parse_recipients(&row.destination).map_err(Failure::permanent)?;
                let l = &payload.lead;
                let notice = lead::LeadNotice {
                    lead_id: l.id.to_string(),
                    tenant: &payload.tenant.name,
                    name: &l.name,
                    email: &l.email,
                    company: l.company.as_deref(),
                    role: l.role.as_deref(),
                    budget: &l.budget_label,
                    website: l.website.as_deref(),
                    message: &l.message,
                    source: &l.source,
                    received: &l.created_at,
                };
                let envelope = lead::Envelope {
                    from: mailer.from(),
                    to: &to,
                    message_id: &row.message_id,
                    host: &self.host,
                };
                lead::notification(&envelope, &notice)
                    .map_err(|e| Failure::permanent(e.to_string()))?
            }
            Topic::Invitation | Topic::PasswordResetLink | Topic::PasswordWasReset => {
                let notice = account_notice(topic, &row.payload).ok_or_else(|| {
                    Failure::permanent(format!("the payload is not a {} payload", topic.as_str()))
                })?;
                let to = mail::parse_recipients(&row.destination).map_err(Failure::permanent)?;
                let envelope = lead::Envelope {
                    from: mailer.from(),
                    to: &to,
                    message_id: &row.message_id,
                    host: &self.host,
                };
                account::message(&envelope, &notice)
                    .map_err(|e| Failure::permanent(e.to_string()))?
            }
            Topic::CredentialChanged => {
                let payload = CredentialChanged::from_json(&row.payload).ok_or_else(|| {
                    Failure::permanent("the payload is not an account.credential_changed payload")
                })?;
                let to = mail::parse_recipients(&row.destination).map_err(Failure::permanent)?;
                let envelope = lead::Envelope {
                    from: mailer.from(),
                    to: &to,
                    message_id: &row.message_id,
                    host: &self.host,
                };
                let notice = mail::credential::CredentialNotice {
                    name: &payload.name,
                    tenant: &payload.tenant,
                    sentence: &payload.sentence,
                    at: &payload.at,
                };
                mail::credential::notice(&envelope, &notice)
                    .map_err(|e| Failure::permanent(e.to_string()))?
            }
        };
        mailer
            .send(message)
            .await
            .map_err(|e| Failure::retry(e.to_string()))
    }

    async fn webhook(&self, row: &Claimed, topic: Topic) -> Result<(), Failure> {
        let Some(sender) = &self.webhooks else {
            return Err(Failure::retry("no webhook secret is configured"));
        };
        let data: serde_json::Value = serde_json::from_str(&row.payload)
            .map_err(|_| Failure::permanent("the payload is not JSON"))?;
        let url = url::Url::parse(&row.destination)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Failure::permanent("the destination is not an http(s) URL"))?;
        let body = webhook::body(topic.as_str(), row.created_at, &data);
        sender
            .send(url.as_str(), &row.message_id, &body)
            .await
            .map_err(|e| Failure::retry(e.to_string()))
    }

    /// Marks a row sent if this worker still holds its lease; `false` when it does not.
    async fn record_sent(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        let now = Timestamp::now();
        let me = self.me.as_str();
        let changed = in_write_tx!(&self.db, conn => on_conn!(conn.reborrow(), c => sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $3, attempts = attempts + 1,
                               last_error = NULL, locked_by = NULL, locked_until = NULL,
                               updated_at = $3,
                               payload = CASE WHEN topic IN ($4, $5) THEN '{}' ELSE payload END
             WHERE id = $1 AND locked_by = $2"
        ).bind(id).bind(me).bind(now)
            .bind(Topic::Invitation.as_str()).bind(Topic::PasswordResetLink.as_str()).execute(c).await.map(|r| r.rows_affected())))?;
        Ok(changed == 1)
    }

    /// Counts a failed attempt if this worker still holds the lease: the row waits until
    /// `next`, or is dead after the last attempt (or a `permanent` failure). Returns whether
    /// it is dead now, `None` when the lease was lost.
    async fn record_failure(
        &self,
        id: Uuid,
        reason: &str,
        next: Timestamp,
        permanent: bool,
    ) -> Result<Option<bool>, sqlx::Error> {
        let now = Timestamp::now();
        let me = self.me.as_str();
        let max = i64::from(self.retry.max_attempts);
        let status: Option<String> = in_write_tx!(&self.db, conn => on_conn!(conn.reborrow(), c => sqlx::query_scalar(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4,
                               status = CASE WHEN $5 OR attempts + 1 >= $6 THEN 'dead' ELSE 'pending' END,
                               locked_by = NULL, locked_until = NULL, updated_at = $7
             WHERE id = $1 AND locked_by = $2
             RETURNING status"
        ).bind(id).bind(me).bind(reason).bind(next).bind(permanent).bind(max).bind(now)
            .fetch_optional(c).await))?;
        Ok(status.map(|s| s == "dead"))
    }

    async fn refresh_gauges(&self) {
        let read = with_conn!(&self.db, conn => {
            let age = super::oldest_pending_age(conn).await?;
            let dead = super::dead_count(conn).await?;
            Ok::<_, sqlx::Error>((age, dead))
        });
        match read {
            Ok((age, dead)) => {
                metrics::gauge!("vantus_outbox_oldest_pending_seconds")
                    .set(age.map_or(0.0, |a| a.as_secs_f64()));
                metrics::gauge!("vantus_outbox_dead_messages").set(dead as f64);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the outbox gauges"),
        }
    }
}

/// The account email a payload of `topic` describes; `None` when the payload is not one.
fn account_notice(topic: Topic, text: &str) -> Option<AccountNotice> {
    Some(match topic {
        Topic::Invitation => {
            let p: Invitation = payload::from_json(text)?;
            AccountNotice::invitation(
                &p.invited_by,
                &p.tenant.name,
                &p.role,
                &p.expires_at,
                &p.link,
            )
        }
        Topic::PasswordResetLink => {
            let p: PasswordResetLink = payload::from_json(text)?;
            AccountNotice::password_reset_link(&p.name, &p.expires_at, &p.link)
        }
        Topic::PasswordWasReset => {
            let p: PasswordWasReset = payload::from_json(text)?;
            AccountNotice::password_was_reset(&p.name, &p.changed_at, &p.sign_in)
        }
        Topic::LeadCreated | Topic::CredentialChanged => return None,
    })
}

fn count(channel: &str, outcome: &'static str) {
    // The channel comes from a CHECK-constrained column: two values, bounded series.
    let channel = match channel {
        "email" => "email",
        _ => "webhook",
    };
    metrics::counter!("vantus_outbox_deliveries_total", "channel" => channel, "outcome" => outcome)
        .increment(1);
}

/// The wait after the `attempts`-th failure (1 for the first): a `fraction` in [0, 1) of
/// `min(max, base · 2^(attempts−1))` ("full jitter").
pub fn backoff(cfg: &OutboxConfig, attempts: u32, fraction: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let cap = cfg
        .retry_base
        .saturating_mul(1u32 << doublings)
        .min(cfg.retry_max);
    cap.mul_f64(fraction.clamp(0.0, 1.0))
}

/// A uniformly random number in [0, 1); 1.0 (no jitter, the full wait) if the system has no
/// randomness to give, which errs on the side of waiting.
fn random_fraction() -> f64 {
    match getrandom::u64() {
        Ok(r) => (r >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 1.0,
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutboxConfig {
        OutboxConfig {
            max_attempts: 10,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let c = cfg();
        let full = |n| backoff(&c, n, 1.0);
        assert_eq!(full(1), Duration::from_secs(30));
        assert_eq!(full(2), Duration::from_secs(60));
        assert_eq!(full(5), Duration::from_secs(480));
        assert_eq!(full(8), Duration::from_secs(3600), "capped");
        assert_eq!(full(u32::MAX), Duration::from_secs(3600), "no overflow");
        assert_eq!(backoff(&c, 3, 0.5), Duration::from_secs(60));
        assert_eq!(backoff(&c, 3, 0.0), Duration::ZERO);
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }

    #[test]
    fn errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
