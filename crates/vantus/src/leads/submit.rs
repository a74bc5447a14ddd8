//! Storing a submission: the lead (or spam), its notifications and its audit entry in one
//! transaction, guarded by the idempotency key when there is one. Both doors (the form and
//! the API) come through here, so they cannot differ in what they store.

use serde_json::json;
use uuid::Uuid;

use super::form::ValidLead;
use super::idempotency::{self, Claim, IdempotencyKey, SavedResponse};
use super::queries::{self, LeadSource};
use crate::audit::{self, Actor, AuditAction};
use crate::outbox::{self, Channel, LeadCreated, LeadData, NewMessage, TenantData, Topic};
use crate::state::App;
use crate::store::{Conn, Timestamp};
use crate::tenancy::{self, TenantScope};

/// A submission that passed the form's rules, judged by the spam defence.
pub struct Submission {
    pub lead: ValidLead,
    pub source: LeadSource,
    /// Why the spam defence caught it, if it did.
    pub spam_reason: Option<&'static str>,
    pub key: Option<IdempotencyKey>,
}

impl Submission {
    /// The bytes that make two submissions "the same request" for an idempotency key: the
    /// normalised fields, not the raw body (a resubmit may encode them differently).
    pub fn fingerprint(lead: &ValidLead) -> Vec<u8> {
        json!([
            lead.name.as_str(),
            lead.email.as_str(),
            lead.company,
            lead.role,
            lead.budget.as_str(),
            lead.website,
            lead.message,
        ])
        .to_string()
        .into_bytes()
    }
}

/// What storing found.
pub enum Stored {
    /// Stored now; answer with this response (already saved under the key).
    New { id: Uuid, response: SavedResponse },
    /// The same request came before; answer as it was answered.
    Replay(SavedResponse),
    /// The key came before with a different submission.
    KeyConflict,
}

/// Stores `submission` for `scope`. `respond` builds the response from the new lead's id, so
/// it can be saved under the idempotency key in the same transaction.
pub async fn store(
    app: &App,
    scope: &TenantScope,
    submission: &Submission,
    respond: impl FnOnce(Uuid, Timestamp) -> SavedResponse,
) -> Result<Stored, sqlx::Error> {
    let id = Uuid::now_v7();
    let at = Timestamp::now();
    let response = respond(id, at);
    let stored = in_write_tx!(app.store.primary(), conn => {
        store_in(conn, app, scope, submission, id, at, response).await
    })?;
    if let Stored::New { id, .. } = &stored {
        // Committed: this process's worker may deliver now rather than at its next poll.
        if submission.spam_reason.is_none() {
            outbox::wake();
        }
        let kind = if submission.spam_reason.is_some() {
            "spam"
        } else {
            "lead"
        };
        metrics::counter!("vantus_leads_received_total", "source" => submission.source.as_str(), "kind" => kind)
            .increment(1);
        // The lead's id only: names, addresses and messages never reach the logs.
        tracing::info!(lead_id = %id, tenant = scope.slug(), source = submission.source.as_str(), spam_reason = submission.spam_reason, "submission stored");
    }
    Ok(stored)
}

/// The transaction's work. A replay or a conflict writes nothing, so committing it is the
/// same as rolling it back.
async fn store_in(
    conn: &mut Conn<'_>,
    app: &App,
    scope: &TenantScope,
    submission: &Submission,
    id: Uuid,
    at: Timestamp,
    response: SavedResponse,
) -> Result<Stored, sqlx::Error> {
    if let Some(key) = &submission.key {
        match idempotency::claim(conn, scope, key, &response).await? {
            Claim::New => {}
            Claim::Replay(saved) => return Ok(Stored::Replay(saved)),
            Claim::Conflict => return Ok(Stored::KeyConflict),
        }
    }
    queries::insert(
        conn,
        scope,
        id,
        &submission.lead,
        submission.source,
        submission.spam_reason,
        at,
    )
    .await?;
    if submission.spam_reason.is_none() {
        notify(conn, app, scope, id, submission, at).await?;
    }
    audit::record_for(
        conn,
        scope,
        &Actor::Public,
        AuditAction::LeadReceived,
        &format!("lead:{id}"),
        json!({ "source": submission.source.as_str(), "spam_reason": submission.spam_reason }),
    )
    .await?;
    Ok(Stored::New { id, response })
}

/// Queues the notifications about a new lead: an email to the configured recipients (or the
/// tenant's contact address), and a call to each webhook.
async fn notify(
    conn: &mut Conn<'_>,
    app: &App,
    scope: &TenantScope,
    id: Uuid,
    submission: &Submission,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    let lead = &submission.lead;
    let payload = LeadCreated {
        lead: LeadData {
            id,
            name: lead.name.as_str().to_owned(),
            email: lead.email.as_str().to_owned(),
            company: lead.company.clone(),
            role: lead.role.clone(),
            budget: lead.budget.as_str().to_owned(),
            budget_label: lead.budget.label().to_owned(),
            website: lead.website.clone(),
            message: lead.message.clone(),
            source: submission.source.as_str().to_owned(),
            created_at: at.to_rfc3339_seconds(),
            spam: false,
        },
        tenant: TenantData {
            slug: scope.slug().to_owned(),
            name: scope.name().to_owned(),
        },
    }
    .to_json();
    let recipients = if app.config.leads.notify.is_empty() {
        tenancy::contact_email(conn, scope)
            .await?
            .into_iter()
            .collect()
    } else {
        app.config.leads.notify.clone()
    };
    if !recipients.is_empty() {
        let message = NewMessage {
            channel: Channel::Email,
            topic: Topic::LeadCreated,
            destination: recipients.join(", "),
            lead_id: Some(id),
            payload: payload.clone(),
        };
        outbox::enqueue(conn, scope, &message).await?;
    }
    for url in &app.config.webhooks.urls {
        let message = NewMessage {
            channel: Channel::Webhook,
            topic: Topic::LeadCreated,
            destination: url.to_string(),
            lead_id: Some(id),
            payload: payload.clone(),
        };
        outbox::enqueue(conn, scope, &message).await?;
    }
    Ok(())
}
