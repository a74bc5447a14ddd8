//! Storing a submission: the lead (or spam), its notifications and its audit entry in one
//! transaction, guarded by the idempotency key when there is one. Both doors (the form and
//! the API) come through here, so they cannot differ in what they store.
//!
//! **Group commit.** Submissions are not committed one transaction each: they queue for this
//! process's [`Writer`], a task that takes every submission waiting (up to [`MAX_BATCH`]) and
//! stores them in one transaction, with one multi-row statement per table. Under a burst, the
//! cost of a commit (SQLite's write lock, PostgreSQL's WAL flush) and of each statement's
//! round trip is shared by the whole batch; alone, a submission is a batch of one and waits
//! for nobody. Each caller is answered only after the commit that holds its lead, so a
//! success response still means "stored". If a batch fails, each of its submissions is
//! stored again in a transaction of its own, so one bad row cannot fail its neighbours.
//! Measurements and the trade-off: `docs/adr/0010-lead-group-commit.md`.

use std::collections::HashMap;
use std::sync::OnceLock;

use futures_util::FutureExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use url::Url;
use uuid::Uuid;

use super::form::ValidLead;
use super::idempotency::{self, Claim, ClaimRequest, IdempotencyKey, SavedResponse};
use super::queries::{self, LeadSource, NewLead};
use crate::audit::{self, Actor, AuditAction, TenantEvent};
use crate::outbox::{self, Channel, LeadCreated, LeadData, NewMessage, TenantData, Topic};
use crate::state::App;
use crate::store::{Conn, Db, Timestamp};
use crate::tenancy::{self, TenantScope};

/// The most submissions one transaction stores. Bounds a batch's statements (13 values a
/// lead: far below either engine's limit on bind parameters) and its latency.
pub const MAX_BATCH: usize = 64;

/// Submissions queued beyond the batch being stored; a caller past that waits to queue.
const QUEUE_DEPTH: usize = 1024;

/// A submission that passed the form's rules, judged by the spam defence.
#[derive(Clone)]
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
#[derive(Debug)]
pub enum Stored {
    /// Stored now; answer with this response (already saved under the key).
    New { id: Uuid, response: SavedResponse },
    /// The same request came before; answer as it was answered.
    Replay(SavedResponse),
    /// The key came before with a different submission.
    KeyConflict,
}

/// Stores `submission` for `scope`. `respond` builds the response from the new lead's id, so
/// it can be saved under the idempotency key in the same transaction. Returns once the
/// transaction holding it has committed (or failed).
pub async fn store(
    writer: &Writer,
    scope: &TenantScope,
    submission: &Submission,
    respond: impl FnOnce(Uuid, Timestamp) -> SavedResponse,
) -> Result<Stored, sqlx::Error> {
    let id = Uuid::now_v7();
    let at = Timestamp::now();
    let (reply, answer) = oneshot::channel();
    let job = Job {
        scope: scope.clone(),
        submission: submission.clone(),
        id,
        at,
        response: respond(id, at),
        reply,
    };
    writer
        .queue()
        .send(job)
        .await
        .map_err(|_| sqlx::Error::PoolClosed)?;
    // The writer answers every job it takes, even when its batch panics.
    let stored = answer.await.map_err(|_| sqlx::Error::WorkerCrashed)??;
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

/// This process's queue of submissions and the task that commits them in batches. The task
/// starts with the first submission and ends when the writer is dropped.
pub struct Writer {
    target: Target,
    queue: OnceLock<mpsc::Sender<Job>>,
}

/// Where the writer stores, and who it notifies.
#[derive(Clone)]
struct Target {
    db: Db,
    /// `VANTUS_LEADS_NOTIFY`; empty means each tenant's contact address.
    notify: Vec<String>,
    webhooks: Vec<Url>,
}

/// One submission waiting for its batch.
struct Job {
    scope: TenantScope,
    submission: Submission,
    id: Uuid,
    at: Timestamp,
    response: SavedResponse,
    reply: oneshot::Sender<Result<Stored, sqlx::Error>>,
}

impl Writer {
    /// A writer to `app`'s primary database, notifying as `app`'s configuration says.
    pub fn new(app: &App) -> Self {
        Self {
            target: Target {
                db: app.store.primary().clone(),
                notify: app.config.leads.notify.clone(),
                webhooks: app.config.webhooks.urls.clone(),
            },
            queue: OnceLock::new(),
        }
    }

    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(write_batches(self.target.clone(), jobs));
            queue
        })
    }
}

/// The writer task: takes every job waiting, stores them together, answers each.
async fn write_batches(target: Target, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("vantus_lead_batch_size").record(batch.len() as f64);
        let outcomes = std::panic::AssertUnwindSafe(commit(&target, &batch))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(
                    submissions = batch.len(),
                    "storing a batch of submissions panicked"
                );
                batch
                    .iter()
                    .map(|_| Err(sqlx::Error::WorkerCrashed))
                    .collect()
            });
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            // A caller that went away (the client hung up) still has its lead stored.
            let _ = job.reply.send(outcome);
        }
    }
}

/// Stores `jobs` in one transaction; if that fails, each in a transaction of its own, so
/// each gets its own outcome. Returns one outcome per job, in order.
async fn commit(target: &Target, jobs: &[Job]) -> Vec<Result<Stored, sqlx::Error>> {
    let together = in_write_tx!(&target.db, conn => store_in(conn, target, jobs).await);
    match together {
        Ok(stored) => stored.into_iter().map(Ok).collect(),
        Err(e) if jobs.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, submissions = jobs.len(), "a batch of submissions failed; storing them one by one");
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in jobs {
                let alone = in_write_tx!(&target.db, conn => {
                    store_in(conn, target, std::slice::from_ref(job)).await
                });
                outcomes.push(alone.map(|mut stored| stored.remove(0)));
            }
            outcomes
        }
    }
}

/// The transaction's work for a batch. A replay or a conflict writes nothing for its job.
async fn store_in(
    conn: &mut Conn<'_>,
    target: &Target,
    jobs: &[Job],
) -> Result<Vec<Stored>, sqlx::Error> {
    // Keys first: a job whose key was used before stores nothing.
    let keyed: Vec<usize> = (0..jobs.len())
        .filter(|&i| jobs[i].submission.key.is_some())
        .collect();
    let requests: Vec<ClaimRequest<'_>> = keyed
        .iter()
        .filter_map(|&i| {
            let job = &jobs[i];
            Some(ClaimRequest {
                scope: &job.scope,
                key: job.submission.key.as_ref()?,
                response: &job.response,
            })
        })
        .collect();
    let mut outcomes: Vec<Option<Stored>> = jobs.iter().map(|_| None).collect();
    for (&i, claim) in keyed.iter().zip(idempotency::claim(conn, &requests).await?) {
        match claim {
            Claim::New => {}
            Claim::Replay(saved) => outcomes[i] = Some(Stored::Replay(saved)),
            Claim::Conflict => outcomes[i] = Some(Stored::KeyConflict),
        }
    }
    let fresh: Vec<&Job> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|(job, _)| job)
        .collect();

    let leads: Vec<NewLead<'_>> = fresh
        .iter()
        .map(|job| NewLead {
            scope: &job.scope,
            id: job.id,
            lead: &job.submission.lead,
            source: job.submission.source,
            spam_reason: job.submission.spam_reason,
            at: job.at,
        })
        .collect();
    queries::insert(conn, &leads).await?;
    notify(conn, target, &fresh).await?;
    let events: Vec<TenantEvent<'_>> = fresh
        .iter()
        .map(|job| TenantEvent {
            scope: &job.scope,
            actor: &Actor::Public,
            action: AuditAction::LeadReceived,
            resource: format!("lead:{}", job.id),
            detail: json!({
                "source": job.submission.source.as_str(),
                "spam_reason": job.submission.spam_reason,
            }),
        })
        .collect();
    audit::record_many_for(conn, &events).await?;

    Ok(jobs
        .iter()
        .zip(outcomes)
        .map(|(job, outcome)| {
            outcome.unwrap_or_else(|| Stored::New {
                id: job.id,
                response: job.response.clone(),
            })
        })
        .collect())
}

/// Queues the notifications about new leads (spam notifies nobody): an email to the
/// configured recipients (or the tenant's contact address), and a call to each webhook.
async fn notify(conn: &mut Conn<'_>, target: &Target, jobs: &[&Job]) -> Result<(), sqlx::Error> {
    let recipients = Recipients {
        notify: &target.notify,
        webhooks: &target.webhooks,
    };
    // Each tenant's contact address, read once per batch.
    let mut contacts: HashMap<Uuid, Vec<String>> = HashMap::new();
    let mut messages: Vec<(&TenantScope, NewMessage)> = Vec::new();
    for job in jobs
        .iter()
        .filter(|job| job.submission.spam_reason.is_none())
    {
        for m in recipients
            .messages(conn, &mut contacts, &job.scope, job.id, lead_created(job))
            .await?
        {
            messages.push((&job.scope, m));
        }
    }
    let messages: Vec<(&TenantScope, &NewMessage)> =
        messages.iter().map(|(scope, m)| (*scope, m)).collect();
    outbox::enqueue_many(conn, &messages).await?;
    Ok(())
}

/// Who hears of a new lead: `VANTUS_LEADS_NOTIFY` (empty: each tenant's contact address) by
/// email, and every configured webhook.
pub struct Recipients<'a> {
    pub notify: &'a [String],
    pub webhooks: &'a [Url],
}

impl<'a> Recipients<'a> {
    /// As `config` says.
    pub fn of(config: &'a crate::config::Config) -> Self {
        Self {
            notify: &config.leads.notify,
            webhooks: &config.webhooks.urls,
        }
    }

    /// The `lead.created` messages for the lead `lead_id` of `scope` (`contacts` caches the
    /// tenants' contact addresses across calls).
    async fn messages(
        &self,
        conn: &mut Conn<'_>,
        contacts: &mut HashMap<Uuid, Vec<String>>,
        scope: &TenantScope,
        lead_id: Uuid,
        payload: serde_json::Value,
    ) -> Result<Vec<NewMessage>, sqlx::Error> {
        let emails = if self.notify.is_empty() {
            match contacts.get(&scope.id()) {
                Some(found) => found.clone(),
                None => {
                    let found: Vec<String> = tenancy::contact_email(conn, scope)
                        .await?
                        .into_iter()
                        .collect();
                    contacts.insert(scope.id(), found.clone());
                    found
                }
            }
        } else {
            self.notify.to_vec()
        };
        let mut messages = Vec::new();
        if !emails.is_empty() {
            messages.push(NewMessage {
                channel: Channel::Email,
                topic: Topic::LeadCreated,
                destination: emails.join(", "),
                lead_id: Some(lead_id),
                payload: payload.clone(),
            });
        }
        for url in self.webhooks {
            messages.push(NewMessage {
                channel: Channel::Webhook,
                topic: Topic::LeadCreated,
                destination: url.to_string(),
                lead_id: Some(lead_id),
                payload: payload.clone(),
            });
        }
        Ok(messages)
    }

    /// Queues on `conn` the notifications a fresh lead gets, for `lead`, stored earlier as
    /// spam and now rescued by staff: the same topic, recipients and payload (its
    /// `created_at` is when it arrived). Returns the outbox rows' ids.
    pub async fn notify_rescued(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        lead: LeadData,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        let id = lead.id;
        let payload = LeadCreated {
            lead: LeadData {
                spam: false,
                ..lead
            },
            tenant: TenantData {
                slug: scope.slug().to_owned(),
                name: scope.name().to_owned(),
            },
        }
        .to_json();
        let messages = self
            .messages(conn, &mut HashMap::new(), scope, id, payload)
            .await?;
        let rows: Vec<(&TenantScope, &NewMessage)> = messages.iter().map(|m| (scope, m)).collect();
        outbox::enqueue_many(conn, &rows).await
    }
}

/// The `lead.created` payload of a job's lead.
fn lead_created(job: &Job) -> serde_json::Value {
    let lead = &job.submission.lead;
    LeadCreated {
        lead: LeadData {
            id: job.id,
            name: lead.name.as_str().to_owned(),
            email: lead.email.as_str().to_owned(),
            company: lead.company.clone(),
            role: lead.role.clone(),
            budget: lead.budget.as_str().to_owned(),
            budget_label: lead.budget.label().to_owned(),
            website: lead.website.clone(),
            message: lead.message.clone(),
            source: job.submission.source.as_str().to_owned(),
            created_at: job.at.to_rfc3339_seconds(),
            spam: false,
        },
        tenant: TenantData {
            slug: job.scope.slug().to_owned(),
            name: job.scope.name().to_owned(),
        },
    }
    .to_json()
}
