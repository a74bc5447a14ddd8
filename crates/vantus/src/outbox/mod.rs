//! The transactional outbox: messages (emails, webhook calls) written in the same transaction
//! as the change that causes them, and delivered afterwards by a worker.
//!
//! Why: a lead must never be lost because a mail server is down, and a notification must
//! never be sent for a lead that was rolled back. Writing the message beside the lead, in one
//! transaction, gives both; delivery is then at least once, and each row's stable
//! `message_id` (the email's `Message-ID`, the webhook's `webhook-id`) lets a receiver drop a
//! repeat.

use uuid::Uuid;

use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

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
}

impl Topic {
    /// The text stored in `outbox.topic`, and the webhook event type.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::LeadCreated => "lead.created",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lead.created" => Some(Topic::LeadCreated),
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
    let id = Uuid::now_v7();
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO outbox (id, tenant_id, channel, topic, destination, lead_id, payload,
                             message_id, status, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9, $9)"
    )
    .bind(id)
    .bind(scope.id())
    .bind(message.channel.as_str())
    .bind(message.topic.as_str())
    .bind(&message.destination)
    .bind(message.lead_id)
    .bind(message.payload.to_string())
    .bind(format!("msg_{}", id.simple()))
    .bind(now)
    .execute(c).await.map(|_| ()))?;
    Ok(id)
}
