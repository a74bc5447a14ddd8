//! The transactional outbox: messages (emails, webhook calls) written in the same transaction
//! as the change that causes them, and delivered afterwards by a worker.
//!
//! Why: a lead must never be lost because a mail server is down, and a notification must
//! never be sent for a lead that was rolled back. Writing the message beside the lead, in one
//! transaction, gives both; delivery is then at least once, and each row's stable
//! `message_id` (the email's `Message-ID`, the webhook's `webhook-id`) lets a receiver drop a
//! repeat.
//!
//! A row's life: `pending` (attempts 0) → delivered (`sent`), or after a failure still
//! `pending` with attempts > 0 and a later `next_attempt_at` ("retrying"), and after
//! `VANTUS_OUTBOX_MAX_ATTEMPTS` failures `dead` until an operator requeues it
//! (`vantus outbox retry`). [`worker`] delivers; [`payload`] has the typed payloads; the
//! queries below are what the CLI, doctor and metrics read.
//!
//! The worker and the operator queries span every tenant on purpose: delivering is the
//! installation's job, like a backup. They never hand a message's content to anyone; a
//! tenant-facing view of the outbox would take a `TenantScope` like every other query.

pub mod payload;
pub mod webhook;
pub mod worker;

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::store::{Conn, Timestamp, multirow, on_conn};
use crate::tenancy::TenantScope;

pub use payload::{
    CredentialChanged, Invitation, LeadCreated, LeadData, PasswordResetLink, PasswordWasReset,
    TenantData,
};
pub use worker::{Worker, wake};

/// How a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    /// The text stored in `outbox.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            _ => None,
        }
    }
}

/// What a message is about; its payload's shape follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    LeadCreated,
    /// An invitation to the portal, with its link ([`payload::Invitation`]).
    Invitation,
    /// A password-reset link ([`payload::PasswordResetLink`]).
    PasswordResetLink,
    /// "Your password was changed" after a reset ([`payload::PasswordWasReset`]).
    PasswordWasReset,
    /// A staff member's own credentials changed (email to them only).
    CredentialChanged,
}

impl Topic {
    /// The text stored in `outbox.topic`, and the webhook event type.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::LeadCreated => "lead.created",
            Topic::Invitation => "user.invited",
            Topic::PasswordResetLink => "password.reset_link",
            Topic::PasswordWasReset => "password.was_reset",
            Topic::CredentialChanged => "account.credential_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lead.created" => Some(Topic::LeadCreated),
            "user.invited" => Some(Topic::Invitation),
            "password.reset_link" => Some(Topic::PasswordResetLink),
            "password.was_reset" => Some(Topic::PasswordWasReset),
            "account.credential_changed" => Some(Topic::CredentialChanged),
            _ => None,
        }
    }
}

/// A message to queue.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub channel: Channel,
    pub topic: Topic,
    /// Email: the recipients, comma-separated mailboxes. Webhook: the endpoint's URL.
    pub destination: String,
    /// The lead the message is about: erasing the lead erases the message.
    pub lead_id: Option<Uuid>,
    pub payload: serde_json::Value,
}

/// Queues `message` on `conn` (join the transaction of the change it reports). Returns the
/// row's id.
pub async fn enqueue(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    message: &NewMessage,
) -> Result<Uuid, sqlx::Error> {
    let ids = enqueue_many(conn, &[(scope, message)]).await?;
    Ok(ids[0])
}

/// Queues several messages, each in its own scope's tenant, a few rows a statement
/// ([`multirow`]). Returns their ids in order.
pub async fn enqueue_many(
    conn: &mut Conn<'_>,
    messages: &[(&TenantScope, &NewMessage)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let now = Timestamp::now();
    let rows: Vec<(Uuid, &TenantScope, &NewMessage, String)> = messages
        .iter()
        .map(|&(scope, message)| (Uuid::now_v7(), scope, message, message.payload.to_string()))
        .collect();
    let bytes = |(_, _, m, payload): &(Uuid, &TenantScope, &NewMessage, String)| {
        120 + m.destination.len() + payload.len()
    };
    for rows in multirow::chunks(&rows, bytes) {
        let sql = format!(
            "INSERT INTO outbox (id, tenant_id, channel, topic, destination, lead_id, payload,
                                 message_id, status, attempts, next_attempt_at, created_at,
                                 updated_at)
             VALUES {}",
            multirow::values(
                "($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9, $9)",
                9,
                rows.len()
            )
        );
        on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, scope, message, payload) in rows {
                q = q
                    .bind(*id)
                    .bind(scope.id())
                    .bind(message.channel.as_str())
                    .bind(message.topic.as_str())
                    .bind(&message.destination)
                    .bind(message.lead_id)
                    .bind(payload)
                    .bind(format!("msg_{}", id.simple()))
                    .bind(now);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(rows.into_iter().map(|(id, ..)| id).collect())
}

/// Where a message stands, as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not tried yet.
    Pending,
    /// Tried and failed; tried again at `next_attempt_at`.
    Retrying,
    /// Failed `VANTUS_OUTBOX_MAX_ATTEMPTS` times (or could never succeed); waits for an
    /// operator.
    Dead,
    Sent,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Retrying => "retrying",
            State::Dead => "dead",
            State::Sent => "sent",
        }
    }

    fn of(status: &str, attempts: i64) -> Self {
        match status {
            "sent" => State::Sent,
            "dead" => State::Dead,
            _ if attempts > 0 => State::Retrying,
            _ => State::Pending,
        }
    }
}

/// How many messages are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub pending: i64,
    pub retrying: i64,
    pub dead: i64,
    pub sent: i64,
}

/// One message as operators see it: no destination, no payload (both may carry personal data).
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub id: Uuid,
    pub message_id: String,
    pub tenant: String,
    pub channel: String,
    pub topic: String,
    pub state: State,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub lead_id: Option<Uuid>,
    pub created_at: Timestamp,
}

/// What [`retry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    Requeued,
    NotFound,
    /// Delivered already; sending it again would be a duplicate nobody asked for.
    AlreadySent,
}

/// The counts by state, across tenants.
pub async fn status_counts(conn: &mut Conn<'_>) -> Result<StatusCounts, sqlx::Error> {
    let rows: Vec<(String, i64)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT CASE WHEN status = 'pending' AND attempts > 0 THEN 'retrying' ELSE status END,
                COUNT(*)
         FROM outbox GROUP BY 1"
    ).fetch_all(c).await)?;
    let mut counts = StatusCounts::default();
    for (state, n) in rows {
        match state.as_str() {
            "pending" => counts.pending = n,
            "retrying" => counts.retrying = n,
            "dead" => counts.dead = n,
            "sent" => counts.sent = n,
            _ => {}
        }
    }
    Ok(counts)
}

struct EntryRow {
    id: Uuid,
    message_id: String,
    tenant: String,
    channel: String,
    topic: String,
    status: String,
    attempts: i64,
    next_attempt_at: Timestamp,
    last_error: Option<String>,
    lead_id: Option<Uuid>,
    created_at: Timestamp,
}
crate::store::from_row!(EntryRow {
    id,
    message_id,
    tenant,
    channel,
    topic,
    status,
    attempts,
    next_attempt_at,
    last_error,
    lead_id,
    created_at
});

/// The undelivered messages (pending, retrying, dead), oldest first, at most `limit`.
pub async fn list(conn: &mut Conn<'_>, limit: i64) -> Result<Vec<Entry>, sqlx::Error> {
    let rows: Vec<EntryRow> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT o.id, o.message_id, t.slug AS tenant, o.channel, o.topic, o.status, o.attempts,
                o.next_attempt_at, o.last_error, o.lead_id, o.created_at
         FROM outbox o JOIN tenants t ON t.id = o.tenant_id
         WHERE o.status <> 'sent'
         ORDER BY o.created_at, o.id
         LIMIT $1"
    ).bind(limit).fetch_all(c).await)?;
    Ok(rows
        .into_iter()
        .map(|r| Entry {
            state: State::of(&r.status, r.attempts),
            id: r.id,
            message_id: r.message_id,
            tenant: r.tenant,
            channel: r.channel,
            topic: r.topic,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            lead_id: r.lead_id,
            created_at: r.created_at,
        })
        .collect())
}

/// Requeues one undelivered message for delivery now, with its attempts counted from 0 again.
/// A lease a worker holds on it is left alone, so a delivery in progress is not doubled.
pub async fn retry(conn: &mut Conn<'_>, id: Uuid) -> Result<Requeue, sqlx::Error> {
    let now = Timestamp::now();
    let changed = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, updated_at = $2
         WHERE id = $1 AND status <> 'sent'"
    ).bind(id).bind(now).execute(c).await?.rows_affected());
    if changed == 1 {
        return Ok(Requeue::Requeued);
    }
    let status: Option<String> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT status FROM outbox WHERE id = $1"
    ).bind(id).fetch_optional(c).await)?;
    Ok(match status {
        Some(_) => Requeue::AlreadySent,
        None => Requeue::NotFound,
    })
}

/// Requeues every dead message; returns how many.
pub async fn retry_dead(conn: &mut Conn<'_>) -> Result<u64, sqlx::Error> {
    let now = Timestamp::now();
    Ok(on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1
         WHERE status = 'dead'"
    ).bind(now).execute(c).await?.rows_affected()))
}

/// How long the oldest undelivered, not dead, message has been waiting; `None` when none is.
pub async fn oldest_pending_age(conn: &mut Conn<'_>) -> Result<Option<Duration>, sqlx::Error> {
    let oldest: Option<Timestamp> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT MIN(created_at) FROM outbox WHERE status = 'pending'"
    ).fetch_one(c).await)?;
    Ok(oldest.map(|t| {
        (Timestamp::now().as_datetime() - t.as_datetime())
            .try_into()
            .unwrap_or(Duration::ZERO)
    }))
}

/// How many messages are dead-lettered.
pub async fn dead_count(conn: &mut Conn<'_>) -> Result<i64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE status = 'dead'"
    ).fetch_one(c).await)
}

/// Reads an id as `vantus outbox` shows it: the row's UUID, or its `msg_…` message id (the
/// same UUID, in simple form).
pub fn parse_id(raw: &str) -> Option<Uuid> {
    let raw = raw.trim();
    Uuid::parse_str(raw.strip_prefix("msg_").unwrap_or(raw)).ok()
}

/// A tenant's undelivered messages: waiting (first try or retrying) and dead-lettered. For the
/// portal's dashboard, which shows each tenant only its own backlog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pending: i64,
    pub dead: i64,
}

pub async fn backlog_of(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<Backlog, sqlx::Error> {
    let rows: Vec<(String, i64)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT status, COUNT(*) FROM outbox
         WHERE tenant_id = $1 AND status <> 'sent'
         GROUP BY status"
    ).bind(scope.id()).fetch_all(c).await)?;
    let mut backlog = Backlog::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" => backlog.pending = n,
            "dead" => backlog.dead = n,
            _ => {}
        }
    }
    Ok(backlog)
}
